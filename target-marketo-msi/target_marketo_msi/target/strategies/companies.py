"""Companies: the generic upsert and delete by externalCompanyId are all they need."""

from __future__ import annotations

from target_marketo_msi.marketo.objects import COMPANIES
from target_marketo_msi.target.strategies.base import ObjectStrategy


class Companies(ObjectStrategy):
    spec = COMPANIES
