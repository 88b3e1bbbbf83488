"""The settings that connect tap-crm-msi and target-crm-msi to a sandbox CRM (one home for both
test folders; tests/ is on sys.path as the root conftest's folder)."""

from __future__ import annotations

from typing import Any


def crm_connection(sandbox: Any, crm: str) -> dict[str, Any]:
    """Connection settings for `crm` ("salesforce" or "dynamics") in the running sandbox."""
    info = sandbox.info[crm]
    common = {
        "crm": crm,
        "client_id": info["client_id"],
        "client_secret": info["client_secret"],
        "ca_bundle": sandbox.ca_bundle,
    }
    if crm == "salesforce":
        return {
            **common,
            "login_url": info["base_url"],
            "api_version": info["api_version"].lstrip("v"),
        }
    return {
        **common,
        "org_url": info["base_url"],
        "authority": info["authority"],
        "tenant_id": info["tenant_id"],
        "scope": info["scope"],
    }
