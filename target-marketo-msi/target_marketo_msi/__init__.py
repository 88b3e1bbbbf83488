"""target-marketo-msi and tap-marketo-msi: MSI objects into Marketo, scores and people out."""
