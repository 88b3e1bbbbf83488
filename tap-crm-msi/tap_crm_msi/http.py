"""One requests session per CRM client: TLS verified against a configurable CA bundle.

`trust_env = False` because requests lets REQUESTS_CA_BUNDLE (and proxies from the environment)
override `Session.verify`; every call also passes `verify=` explicitly. TLS is never disabled.
"""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter

USER_AGENT = "tap-crm-msi/0.1"


def make_session(ca_bundle: str | None, pool_size: int = 8) -> requests.Session:
    """A session keeping up to `pool_size` connections per host (one per call in flight)."""
    session = requests.Session()
    session.trust_env = False
    session.verify = ca_bundle or True
    session.headers["User-Agent"] = USER_AGENT
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(8, pool_size))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
