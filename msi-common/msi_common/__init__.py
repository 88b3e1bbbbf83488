"""What the MSI connector packages share, each concern in one module.

`contract`: the stream contracts' JSON Schemas (the five forward streams, and `lead_scores` back),
read by the plugin that emits each stream and the one that loads it; `retry`, `settings`,
`state_store`, `reports` and `sdk_compat`: the concerns every plugin has alike. Both connector
packages depend on this one rather than on each other, so each fact has one copy and neither
plugin installs the other.
"""
