"""Marketo bulk endpoints: the lead import and the lead extract, each on its own job queue.

The queues live in `app.extensions["marketo_bulk"]` (Flask's place for per-app state), so the
service can pause them around a reset with `paused(service)`.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING

from flask import Flask

from msi_sandbox.marketo import bulk_extract, bulk_import
from msi_sandbox.marketo.jobs import JobQueue
from msi_sandbox.marketo.records import now_iso

if TYPE_CHECKING:
    from msi_sandbox.marketo.service import MarketoService

EXTENSION = "marketo_bulk"

# Limits a user can change at run time (PUT /_sandbox/limits); MarketoService.default_limits
# includes them. Speeds of 0 mean "as fast as the machine goes"; benchmarks set real ones.
DEFAULT_LIMITS: dict[str, float] = {
    "bulk_import_max_queued": 10,  # 1016 "Too many imports" past this many queued + importing
    "bulk_import_max_running": 2,
    "bulk_import_max_file_bytes": 10_485_760,  # HTTP 413 above 10 MB
    "bulk_import_rows_per_second": 0,
    "bulk_extract_max_queued": 10,  # 1029 "Too many jobs in queue" past this many
    "bulk_extract_max_running": 2,
    "bulk_extract_daily_quota_bytes": 524_288_000,  # 500 MB/day, 1029 "Export daily quota"
    "bulk_extract_rows_per_second": 0,
    "bulk_extract_updated_at_filter": 1,  # 0: updatedAt/smart list filters answer 1035
    "bulk_extract_file_cut_bytes": 0,  # >0: each file answer is cut after this many bytes
}


def body_limit(path: str) -> str:
    """The limit on a request body: 10 MB for the lead import file, 1 MB everywhere else."""
    return "bulk_import_max_file_bytes" if path == bulk_import.IMPORT_PATH else "max_body_bytes"


def register(app: Flask, service: MarketoService) -> None:
    """Add the bulk routes to the Marketo app."""
    imports = JobQueue(bulk_import.ImportRunner(service), now=now_iso)
    exports = JobQueue(bulk_extract.ExportRunner(service), now=now_iso)
    app.extensions[EXTENSION] = (imports, exports)
    bulk_import.register(app, service, imports)
    bulk_extract.register(app, service, exports)


@contextlib.contextmanager
def stopped(service: MarketoService) -> Iterator[None]:
    """No bulk job runs inside this block: running ones are stopped, queued ones wait."""
    queues: tuple[JobQueue, ...] = service.app.extensions.get(EXTENSION, ())
    with contextlib.ExitStack() as stack:
        for queue in queues:
            stack.enter_context(queue.paused())
        yield


@contextlib.contextmanager
def paused(service: MarketoService) -> Iterator[None]:
    """Stop every bulk job (and drop its files) while the store is being reset."""
    with stopped(service):
        for directory in (bulk_import.import_dir(service), bulk_extract.export_dir(service)):
            shutil.rmtree(directory, ignore_errors=True)
        yield
