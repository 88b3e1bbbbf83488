"""Salesforce: OAuth, REST/SOQL and Bulk 2.0 query paging, and the five streams."""
