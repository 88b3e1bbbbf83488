"""Token endpoints retry what is transient, under the same policy as data calls.

A 5xx, a 429 with Retry-After or a dropped connection on Salesforce's OAuth token endpoint or on
Entra ID's (through MSAL) costs one more token request, not the run; refused credentials still
stop at once, naming the settings to check and never their values.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from tap_crm_helpers import dynamics_config, run_tap, salesforce_config

from tap_crm_msi.errors import AuthError

TOKEN_PATHS = {"salesforce": "/services/oauth2/token", "dynamics": "/oauth2/v2.0/token"}
CONFIGS = {"salesforce": salesforce_config, "dynamics": dynamics_config}
FAULTS = {
    "503": {"errors": [{"code": "503", "nth": 1, "times": 1}]},
    "429": {"errors": [{"code": "429", "nth": 1, "times": 1}]},
    "dropped": {"drop_nth": 1},
}


def token_requests(sandbox: Any, crm: str) -> list[tuple[str, int]]:
    stats = sandbox.admin(crm, "GET", "stats").json()
    return [
        (str(row["outcome"]), row["calls"])
        for row in stats["calls"]
        if TOKEN_PATHS[crm] in row["endpoint"] and row["method"] == "POST"
    ]


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("crm", list(CONFIGS))
def test_a_transient_token_failure_costs_one_more_request(
    sandbox: Any, crm: str, fault: str
) -> None:
    sandbox.seeded(crm)
    reference = run_tap(CONFIGS[crm](sandbox))
    sandbox.admin(crm, "POST", "stats/reset")
    plan = dict(FAULTS[fault])
    if "errors" in plan:
        plan["errors"] = [{**rule, "path": TOKEN_PATHS[crm]} for rule in plan["errors"]]
    else:
        plan["drop_path"] = TOKEN_PATHS[crm]
    sandbox.admin(crm, "PUT", "faults", json=plan)

    # A decimal setting arrives as the SDK parses meltano's config file: a Decimal.
    run = run_tap(CONFIGS[crm](sandbox, max_tries=3, backoff_factor=Decimal("0.01")))

    for stream in reference.records:
        assert sorted(run.ids(stream)) == sorted(reference.ids(stream)), stream
    outcomes = token_requests(sandbox, crm)
    assert sum(calls for _, calls in outcomes) == 2, outcomes
    assert any(outcome not in ("200", "ok") for outcome, _ in outcomes), outcomes


@pytest.mark.parametrize("crm", list(CONFIGS))
def test_refused_credentials_stop_at_once_naming_the_settings(sandbox: Any, crm: str) -> None:
    sandbox.seeded(crm)
    secret = "refused-secret-never-printed-42"
    sandbox.admin(crm, "POST", "stats/reset")

    with pytest.raises(AuthError) as refused:
        run_tap(CONFIGS[crm](sandbox, client_secret=secret, max_tries=5, backoff_factor=0.01))

    assert "client_secret" in str(refused.value)
    assert secret not in str(refused.value)
    assert sum(calls for _, calls in token_requests(sandbox, crm)) == 1
