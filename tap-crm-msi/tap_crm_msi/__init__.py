"""tap-crm-msi: the five MSI objects from Salesforce or Dynamics 365, in Marketo's field names."""
