"""Salesforce, the one home of its API: OAuth flows, REST/SOQL and Bulk 2.0 paging, ids, limits."""
