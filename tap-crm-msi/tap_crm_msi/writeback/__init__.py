"""target-crm-msi: MSI scores from Marketo written back to Salesforce or Dynamics 365."""
