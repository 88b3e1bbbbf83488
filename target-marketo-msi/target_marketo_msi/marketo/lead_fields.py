"""Which Marketo lead fields an instance has, and which of them hold each field a reader wants.

Adobe's pages name two of MSI's scores two ways (its Sales Insight pages `relativeScoring` and
`relativeUrgency`, its list of standard fields `relativeScore` and `urgency`); the `lead_scores`
contract lists the names each field may have (`x-marketo-fields`) and the instance's describe2
says which it has. describe2 comes from the instance's describe cache, which target-marketo-msi
fills too, so the choice costs no call while the cache is fresh. tap-marketo-msi and msi-doctor
both read Marketo's scores through this one choice.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from target_marketo_msi.marketo.objects import LEADS

if TYPE_CHECKING:
    from target_marketo_msi.marketo.client import MarketoClient
    from target_marketo_msi.marketo.instance_state import InstanceState

DESCRIBE2 = LEADS.describe_path


def lead_field_types(
    client: MarketoClient, state: InstanceState, max_age_s: float
) -> dict[str, str]:
    """Marketo lead field -> describe2 dataType: the cached describe2 when younger than
    `max_age_s`, else one call (then cached)."""
    result = state.cached_describe(DESCRIBE2, max_age_s)
    if result is None:
        result = client.describe(DESCRIBE2)
        state.store_describe(DESCRIBE2, result)
    fields: list[dict[str, Any]] = []
    for entry in result:
        fields.extend(entry.get("fields") or [])
    return {f["name"]: f.get("dataType", "string") for f in fields if f.get("name")}


def choose_fields(
    choices: Mapping[str, Sequence[str]],
    present: Collection[str],
    overrides: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """(field -> the Marketo field that holds it, field -> the names looked for in vain).

    A field's Marketo name is its override when one is set, else the first of its `choices`
    the instance has (`present`: describe2's field names).
    """
    overrides = overrides or {}
    found: dict[str, str] = {}
    missing: dict[str, tuple[str, ...]] = {}
    for name, names in choices.items():
        wanted = (overrides[name],) if name in overrides else tuple(names)
        held = next((n for n in wanted if n in present), None)
        if held is None:
            missing[name] = wanted
        else:
            found[name] = held
    return found, missing
