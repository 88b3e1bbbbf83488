"""Settings several MSI plugins share, declared once: one name, type, default and description.

Each plugin puts these `th.Property` objects in its `config_jsonschema`; the Singer SDK fills a
missing setting from its default there, so plugin code reads `config["name"]` and never restates
a default. `meltano.yml` declares the same names and defaults (tests/msi-common checks it).

- Retries (all four plugins): `max_tries`, `backoff_factor`, `max_backoff_seconds`,
  `request_timeout_seconds`, read by `msi_common.retry.RetrySettings.from_config`.
- TLS (all four): `ca_bundle`.
- Cached describe answers (target-marketo-msi, tap-marketo-msi, target-crm-msi):
  `describe_cache_hours`.
- One Marketo instance (target-marketo-msi and tap-marketo-msi): `state_dir`, `daily_call_budget`
  and the call limiter's `calls_per_window`, `window_seconds`, `max_concurrent`. The two plugins
  keep the day's call count in one file per instance under `state_dir`: with the same default
  they share that count (and the budget) even outside meltano.
- One CRM instance (tap-crm-msi and target-crm-msi): `state_dir`, one file per CRM instance.
- Connector state in a shared database (both Marketo plugins, tap-crm-msi and target-crm-msi):
  `state_url`, read by `msi_common.state_store` (empty: the SQLite file under `state_dir`).
- The run lock (target-marketo-msi, tap-marketo-msi, target-crm-msi): `lock_wait_seconds`, read
  by `msi_common.run_lock`.
"""

from __future__ import annotations

from singer_sdk import typing as th

from msi_common.run_lock import EXIT_LOCKED

# Retries -----------------------------------------------------------------------------------------
MAX_TRIES = th.Property(
    "max_tries",
    th.IntegerType,
    default=10,
    description="Tries per API call, the first included (1: never retry). Transient failures "
    "are retried: throttling, 5xx, timeouts, dropped connections, the API's transient codes.",
)
BACKOFF_FACTOR = th.Property(
    "backoff_factor",
    th.NumberType,
    default=1.0,
    description="Seconds before the first retry; the wait doubles each retry, up to "
    "max_backoff_seconds. A server's Retry-After is honoured instead.",
)
MAX_BACKOFF_SECONDS = th.Property(
    "max_backoff_seconds",
    th.NumberType,
    default=30.0,
    description="Longest wait between two tries (a server's Retry-After may ask for longer, "
    "up to 300 s).",
)
REQUEST_TIMEOUT_SECONDS = th.Property(
    "request_timeout_seconds",
    th.NumberType,
    default=300.0,
    description="Seconds to wait for a connection and for each read of an answer before the "
    "try counts as failed (and is retried).",
)
RETRY_SETTINGS = (MAX_TRIES, BACKOFF_FACTOR, MAX_BACKOFF_SECONDS, REQUEST_TIMEOUT_SECONDS)

# Marketo's connection (both Marketo plugins) ----------------------------------------------------
MARKETO_CONNECTION = (
    th.Property(
        "base_url",
        th.StringType,
        required=True,
        description="Marketo REST base URL, e.g. https://123-ABC-456.mktorest.com",
    ),
    th.Property(
        "client_id",
        th.StringType,
        required=True,
        secret=True,
        description="Client id of the LaunchPoint service (Admin > Web Services)",
    ),
    th.Property(
        "client_secret",
        th.StringType,
        required=True,
        secret=True,
        description="Client secret of the LaunchPoint service",
    ),
)

# TLS ---------------------------------------------------------------------------------------------
CA_BUNDLE = th.Property(
    "ca_bundle",
    th.StringType,
    description="CA bundle (PEM) to verify the service's TLS certificate with (default: the "
    "system's). Passed as verify= on every request, so REQUESTS_CA_BUNDLE cannot override it.",
)

# Cached describe answers -------------------------------------------------------------------------
DESCRIBE_CACHE_HOURS = th.Property(
    "describe_cache_hours",
    th.NumberType,
    default=24,
    description="How long a describe answer (the fields an object has) is reused, per "
    "instance (0: describe every run).",
)

# One Marketo instance (target-marketo-msi and tap-marketo-msi) -----------------------------------
MARKETO_STATE_DIR = th.Property(
    "state_dir",
    th.StringType,
    default=".marketo-msi-state",
    description="Directory of the per-Marketo-instance state file (the day's call count, "
    "describe cache, the target's fingerprints and leadId cache, the tap's ledger). "
    "target-marketo-msi and tap-marketo-msi share it, and so one daily call count.",
)
# One CRM instance (tap-crm-msi and target-crm-msi) ------------------------------------------------
CRM_STATE_DIR = th.Property(
    "state_dir",
    th.StringType,
    default=".crm-msi-state",
    description="Directory of the per-CRM-instance state file: what target-crm-msi last wrote, "
    "and which opportunity role each Dynamics role row was when tap-crm-msi emitted it (so a "
    "connection deleted by id, or a role whose contact changed, becomes a role delete).",
)
# Where connector state lives (target-marketo-msi, tap-marketo-msi, tap-crm-msi, target-crm-msi) --
STATE_URL = th.Property(
    "state_url",
    th.StringType,
    default="",
    secret=True,  # a Postgres URL carries its password
    description="Connector state in a database shared by every worker instead of the SQLite "
    "file under state_dir: postgresql://user:password@host:5432/db (one schema per external "
    "instance; the local file is carried over on first use). Empty: the file.",
)
LOCK_WAIT_SECONDS = th.Property(
    "lock_wait_seconds",
    th.NumberType,
    default=0,
    description="When another run of this flow into the same instance holds its run lock "
    f"(kept where state_url says): seconds to wait for it, then end with exit code {EXIT_LOCKED} "
    "and nothing written (0: end at once).",
)
DAILY_CALL_BUDGET = th.Property(
    "daily_call_budget",
    th.IntegerType,
    default=25_000,
    description="Stop cleanly once this many Marketo calls were made in the UTC day, counted "
    "per instance over both Marketo plugins (0: no budget).",
)
CALLS_PER_WINDOW = th.Property(
    "calls_per_window",
    th.IntegerType,
    default=50,
    description="Calls per window (Marketo allows 100 per 20 s; half is advised when shared).",
)
WINDOW_SECONDS = th.Property(
    "window_seconds",
    th.NumberType,
    default=20,
    description="The rate window in seconds (Marketo's is 20).",
)
MAX_CONCURRENT = th.Property(
    "max_concurrent",
    th.IntegerType,
    default=5,
    description="Concurrent calls (Marketo allows 10; half is advised when shared).",
)
MARKETO_INSTANCE_SETTINGS = (
    MARKETO_STATE_DIR,
    STATE_URL,
    LOCK_WAIT_SECONDS,
    DAILY_CALL_BUDGET,
    CALLS_PER_WINDOW,
    WINDOW_SECONDS,
    MAX_CONCURRENT,
)
