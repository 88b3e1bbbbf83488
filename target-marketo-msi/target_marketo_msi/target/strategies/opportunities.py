"""Opportunities: the generic upsert and delete by externalOpportunityId are all they need."""

from __future__ import annotations

from target_marketo_msi.marketo.objects import OPPORTUNITIES
from target_marketo_msi.target.strategies.base import ObjectStrategy


class Opportunities(ObjectStrategy):
    spec = OPPORTUNITIES
