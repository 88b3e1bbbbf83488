"""msi-doctor's CRM minimum while tap-crm-msi reads several objects at once: the pages of each
query's own rows, however the reads of other objects interleave with it (a shared row counter
read before and after each object gave some objects' rows to others, and a minimum above the
calls made)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from doctor_support import crm_config

from msi_doctor.crm_side import read_crm

PAGE = 40
# The tables the Dynamics queries read, each whole: the opportunity table twice (opportunities,
# and contact customers' roles), connections in both directions.
TABLES = ("systemuser", "account", "lead", "contact", "opportunity", "opportunity", "connection")


def test_the_minimum_is_each_querys_pages_while_objects_are_read_at_once(
    sandbox: Any, tmp_path: Path
) -> None:
    sandbox.seeded("dynamics")
    store = sandbox.service("dynamics").store
    # Round trips long enough that fetching a page takes longer than emitting it: the tap then
    # reads the objects after the one being emitted ahead, four at once.
    sandbox.service("dynamics").faults.configure({"latency_ms": 40})
    config = crm_config(sandbox, "dynamics", tmp_path) | {"page_size": PAGE, "read_concurrency": 4}

    world = read_crm(config, writer=None)

    rows = sorted(len(store.select(t, "", (), columns=[f"{t}id"])) for t in TABLES)
    assert sorted(world.rows_per_query) == rows
    assert world.minimum_calls() == sum(-(-n // PAGE) for n in rows)
    # Every call but the connection roles' look-up is one of those pages: the read made exactly
    # the minimum.
    assert world.calls == world.minimum_calls() + 1
