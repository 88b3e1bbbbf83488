"""`msi-doctor --about`: what the plugin is and every setting it takes, in the shape the Singer
plugins' `--about --format=json` has, so scripts/plugin_definitions.py makes its Meltano Hub
definition the way it makes theirs (and a test keeps the two from drifting).

The settings are those a meltano utility plugin passes as `MSI_DOCTOR_<NAME>` (settings.py reads
them): a section per plugin (that plugin's own settings, as JSON), its secrets one by one, the
CRM to check and the doctor's own settings.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from singer_sdk.about import python_versions

from msi_doctor import __version__
from msi_doctor.settings import CRMS, OWN_SETTINGS, SECRETS

DISTRIBUTION = "msi-doctor"
DESCRIPTION = (
    "Proves that Marketo Sales Insight will show the CRM's data (every link MSI needs, checked "
    "on both sides) and repairs what it will not through the connectors."
)
SECTIONS = {
    "salesforce": "tap-crm-msi's (and target-crm-msi's) settings for Salesforce, secrets apart.",
    "dynamics": "tap-crm-msi's (and target-crm-msi's) settings for Dynamics 365, secrets apart.",
    "marketo": "target-marketo-msi's settings (the same state_dir, so the same daily call "
    "count), secrets apart.",
}


def settings_schema() -> dict[str, Any]:
    """Every setting as JSON Schema, in the order meltano.yml declares them."""
    properties: dict[str, Any] = {
        "crm": {
            "type": ["string"],
            "enum": list(CRMS),
            "description": "Which CRM to check (or pass --crm).",
        }
    }
    for section, description in SECTIONS.items():
        properties[section] = {"type": ["object"], "description": description}
        for secret in SECRETS[section]:
            properties[f"{section}_{secret}"] = {
                "type": ["string"],
                "secret": True,
                "description": f"The {section} section's {secret} (kept apart, as a secret).",
            }
    properties.update(OWN_SETTINGS)
    return {"type": "object", "properties": properties, "required": []}


def about() -> dict[str, Any]:
    return {
        "name": DISTRIBUTION,
        "description": DESCRIPTION,
        "version": __version__,
        "supported_python_versions": python_versions(metadata.metadata(DISTRIBUTION)),
        "capabilities": [],
        "settings": settings_schema(),
    }
