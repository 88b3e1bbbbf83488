"""tap-marketo-msi, the plugin: MSI lead scores and Marketo people read back out of Marketo."""
