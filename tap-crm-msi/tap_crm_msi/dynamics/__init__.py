"""Dynamics 365 / Dataverse: MSAL auth, OData paging and change tracking, and the five streams."""
