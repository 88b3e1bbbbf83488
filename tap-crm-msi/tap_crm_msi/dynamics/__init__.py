"""Dynamics 365 / Dataverse, the one home of its API: MSAL auth, OData paging and $batch."""
