"""One strategy per Marketo object: what its upserts, deletes and answers need beyond the
loader's generic flow (intake, ordering, change detection, batching, settling)."""

from __future__ import annotations

from target_marketo_msi.target.strategies.base import ObjectStrategy
from target_marketo_msi.target.strategies.companies import Companies
from target_marketo_msi.target.strategies.leads import Leads
from target_marketo_msi.target.strategies.opportunities import Opportunities
from target_marketo_msi.target.strategies.opportunity_roles import OpportunityRoles
from target_marketo_msi.target.strategies.sales_persons import SalesPersons

# The strategy of each contract stream's Marketo object.
STRATEGIES: dict[str, type[ObjectStrategy]] = {
    cls.spec.stream: cls
    for cls in (SalesPersons, Companies, Leads, Opportunities, OpportunityRoles)
}

__all__ = [
    "STRATEGIES",
    "Companies",
    "Leads",
    "ObjectStrategy",
    "Opportunities",
    "OpportunityRoles",
    "SalesPersons",
]
