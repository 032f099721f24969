"""`deflect tenant create|show|rotate-secret|set-connection|profile`: onboarding prints secrets once, rotation keeps
two valid, connections are checked before they are stored and never echoed, the triage profile is versioned."""

from __future__ import annotations

import json

import pytest

from deflect.cli import main
from deflect.domain.errors import SignatureInvalid
from deflect.domain.tenancy import TenantContext
from deflect.webhooks import sign
from tests.integration.intake_support import moto_harness, sample


@pytest.fixture(scope="module")
def harness():
    yield from moto_harness()


def run(capsys, *argv: str) -> tuple[int, dict]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


def test_create_show_and_rotate(harness, capsys):
    code, created = run(
        capsys, "tenant", "create", "--tenant", "globex", "--name", "Globex", "--providers", "zendesk,generic",
        "--secret", "zendesk=zd-signing-secret",
    )  # fmt: skip
    assert code == 0
    assert created["api_key"].startswith("dfk_globex_")
    assert set(created["webhook_secrets"]) == {"zendesk", "generic"}
    assert created["webhook_paths"]["generic"] == "/v1/webhooks/generic/globex"

    code, shown = run(capsys, "tenant", "show", "--tenant", "globex")
    assert code == 0
    assert {k: v for k, v in shown["secrets"].items() if v} == {"zendesk": 1, "generic": 1, "api": 1}
    assert shown["secrets"]["zendesk-writeback"] == 0 and shown["secrets"]["telemetry"] == 0
    assert created["webhook_secrets"]["generic"] not in json.dumps(shown) and created[
        "api_key"
    ] not in json.dumps(shown)

    from deflect.bootstrap import container

    intake = container().intake  # the CLI's own container: secrets are cached per process for a minute
    body = sample("generic", "message_created")
    first = created["webhook_secrets"]["generic"]
    code, rotated = run(capsys, "tenant", "rotate-secret", "--tenant", "globex", "--provider", "generic")
    second = rotated["secret"]
    for delivery, secret in (("r-1", first), ("r-2", second)):  # both valid during the rotation
        assert (
            intake.receive_webhook(
                "generic", "globex", sign("generic", secret, body, delivery_id=delivery), body
            ).status_code
            == 200
        )
    run(capsys, "tenant", "rotate-secret", "--tenant", "globex", "--provider", "generic")
    with pytest.raises(SignatureInvalid):  # two rotations later the first secret is gone
        intake.receive_webhook("generic", "globex", sign("generic", first, body, delivery_id="r-3"), body)

    code, new_key = run(capsys, "tenant", "rotate-secret", "--tenant", "globex", "--provider", "api")
    assert intake.authenticate_api_key(new_key["secret"])[0].tenant_id == "globex"
    assert (
        intake.authenticate_api_key(created["api_key"])[0].tenant_id == "globex"
    )  # previous key still valid

    types = [
        e.type for e in harness.container().audit.entries(TenantContext.system("globex"), "tenant-config")
    ]
    assert types == [
        "tenant.created",
        "tenant.secret_rotated",
        "tenant.secret_rotated",
        "tenant.secret_rotated",
    ]


def test_zendesk_rotation_needs_the_value_zendesk_generated(harness, capsys):
    run(capsys, "tenant", "create", "--tenant", "initech", "--name", "Initech", "--providers", "zendesk")
    code = main(["tenant", "rotate-secret", "--tenant", "initech", "--provider", "zendesk"])
    assert code == 1
    assert "--value" in capsys.readouterr().err


def test_creating_an_existing_tenant_fails_cleanly(harness, capsys):
    run(capsys, "tenant", "create", "--tenant", "hooli", "--name", "Hooli")
    assert main(["tenant", "create", "--tenant", "hooli", "--name", "Hooli again"]) == 1
    assert "conflict" in capsys.readouterr().err


def test_writeback_and_telemetry_connections_are_checked_stored_and_never_echoed(
    harness, capsys, tmp_path, monkeypatch
):
    import io

    run(capsys, "tenant", "create", "--tenant", "vandelay", "--name", "Vandelay", "--providers", "zendesk")
    token = "zd-oauth-token-7f3a"
    connect = ["tenant", "set-connection", "--tenant", "vandelay", "--name", "zendesk-writeback", "--file"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"base_url": "http://vandelay.zendesk.example", "oauth_token": token}))
    assert main([*connect, str(bad)]) == 1
    refused = capsys.readouterr()
    assert "base_url" in refused.err and token not in refused.err + refused.out

    good = tmp_path / "zendesk.json"
    creds = {"base_url": "https://vandelay.zendesk.example", "oauth_token": token, "bot_user_id": "42"}
    good.write_text(json.dumps(creds))
    code, stored = run(capsys, *connect, str(good))
    assert code == 0 and stored["stored"] and token not in json.dumps(stored)
    monkeypatch.setattr("sys.stdin", io.StringIO("telemetry-bearer-1\n"))
    assert (
        run(capsys, "tenant", "set-connection", "--tenant", "vandelay", "--name", "telemetry", "--file", "-")[
            0
        ]
        == 0
    )

    code, shown = run(capsys, "tenant", "show", "--tenant", "vandelay")
    assert shown["secrets"]["zendesk-writeback"] == 1 and shown["secrets"]["telemetry"] == 1
    secrets = harness.container().secrets
    assert (
        json.loads(secrets.secrets("vandelay", "zendesk-writeback")[0]) == creds
    )  # what writeback will read
    assert secrets.secrets("vandelay", "telemetry") == ["telemetry-bearer-1"]
    assert main(["tenant", "set-connection", "--tenant", "vandelay", "--name", "ftp", "--value", "x"]) == 1
    assert (
        main(["tenant", "set-connection", "--tenant", "nobody", "--name", "telemetry", "--value", "x"]) == 1
    )


def test_the_triage_profile_is_shown_changed_versioned_and_audited(harness, capsys, tmp_path):
    run(capsys, "tenant", "create", "--tenant", "pendant", "--name", "Pendant", "--providers", "generic")
    code, before = run(capsys, "tenant", "profile", "--tenant", "pendant")
    assert code == 0 and before["tool_grants"] == [] and before["version"] == 0
    changes = tmp_path / "profile.json"
    changes.write_text(
        json.dumps(
            {
                "bedrock_model_id": "eu.anthropic.claude-haiku-4-5-20251001-v1:0",
                "tool_grants": [{"tool": "recent_errors", "roles": ["service", "agent"]}],
                "telemetry_errors_url": "https://telemetry.pendant.example/errors",
            }
        )
    )
    code, after = run(
        capsys, "tenant", "profile", "--tenant", "pendant", "--set", str(changes), "--actor", "admin:pia"
    )
    assert code == 0 and after["version"] == 1 and after["updated_by"] == "admin:pia"
    assert run(capsys, "tenant", "profile", "--tenant", "pendant")[1]["tool_grants"] == after["tool_grants"]
    _, events = harness.container().audit.load(TenantContext.system("pendant"), "tenant-config")
    assert events[-1].type == "triage.profile_updated"
    assert events[-1].payload["fields"] == ["bedrock_model_id", "telemetry_errors_url", "tool_grants"]

    changes.write_text(json.dumps({"tenant_id": "someone-else"}))
    assert main(["tenant", "profile", "--tenant", "pendant", "--set", str(changes)]) == 1
    assert "tenant_id" in capsys.readouterr().err
    changes.write_text(json.dumps({"tool_grants": [{"tool": "recent_errors", "roles": []}]}))
    assert main(["tenant", "profile", "--tenant", "pendant", "--set", str(changes)]) == 1
