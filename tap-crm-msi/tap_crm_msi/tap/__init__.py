"""tap-crm-msi, the plugin: the five contract streams read from Salesforce or Dynamics 365."""
