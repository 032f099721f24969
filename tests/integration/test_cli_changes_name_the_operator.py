"""An auditor asks who changed a tenant's secrets, connections and triage profile: the CLI names the operator
(`--actor`, else cli:<OS user>), as `policy set` and `intents train` already did, never just the command."""

from __future__ import annotations

import getpass
import json

import pytest

from deflect.domain.tenancy import TenantContext
from tests.cli_shell import deflect
from tests.integration.intake_support import moto_harness


@pytest.fixture(scope="module")
def harness():
    yield from moto_harness()


def actors(harness, tenant: str) -> dict[str, str]:
    _, events = harness.container().audit.load(TenantContext.system(tenant), "tenant-config")
    return {e.type: e.actor for e in events if e is not None}


def test_tenant_commands_record_the_operator_who_ran_them(harness, capsys, tmp_path):
    harness.create_tenant("acme-who")
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"low_confidence_risk_tolerance": 0.3}))
    creds = json.dumps(
        {
            "base_url": "https://acme.zendesk.example",
            "email": "bot@acme.example",
            "api_token": "t0k",
            "bot_user_id": "1",
        }
    )
    runs = [
        ["tenant", "rotate-secret", "--tenant", "acme-who", "--provider", "generic", "--actor", "admin:dana"],
        ["tenant", "set-connection", "--tenant", "acme-who", "--name", "zendesk-writeback", "--value", creds],
        ["tenant", "profile", "--tenant", "acme-who", "--set", str(profile), "--actor", "admin:dana"],
    ]
    for argv in runs:
        code, _, err = deflect(capsys, *argv)
        assert code == 0, (argv, err)
    recorded = actors(harness, "acme-who")
    named = {kind: who for kind, who in recorded.items() if kind != "tenant.created"}
    assert len(named) == 3 and set(named.values()) == {"admin:dana", f"cli:{getpass.getuser()}"}, named
    assert "cli:tenant" not in recorded.values()
