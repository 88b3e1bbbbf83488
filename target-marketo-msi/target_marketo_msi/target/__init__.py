"""target-marketo-msi, the plugin: the five contract streams loaded into Marketo in MSI's order."""
