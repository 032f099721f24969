"""Changing a tenant's decision policy the ways users are told to: `PUT /v1/tenants/{id}/config` (admin JWT) through
the real intake handler, and `deflect policy set|show|history` — both against moto shaped from template.yaml."""

from __future__ import annotations

import json

import pytest

from deflect.domain.tenancy import TenantContext
from deflect.triage.policy import POLICY_CHAIN, policy_history
from tests.integration.intake_support import admin_claims, moto_harness


@pytest.fixture(scope="module")
def harness():
    yield from moto_harness()


@pytest.fixture(scope="module")
def tenants(harness):
    return {t: harness.create_tenant(t) for t in ("acme-pol", "globex-pol", "initech-pol", "umbrella-pol")}


def _put(harness, tenant, body, as_admin_of=None):
    return harness.call(
        "PUT",
        f"/v1/tenants/{tenant}/config",
        body=json.dumps(body).encode(),
        claims=admin_claims(as_admin_of or tenant),
    )


def _policy_events(harness, tenant):
    _, events = harness.container().audit.load(TenantContext.system(tenant), POLICY_CHAIN)
    return [e for e in events if e.type == "policy.changed"]


def test_put_config_with_a_new_policy_makes_version_2_keeps_v1_and_audits_the_admin(harness, tenants):
    changed = _put(harness, "acme-pol", {"policy": {"rollout_default": "shadow", "answer_threshold": 0.8}})
    assert changed.status == 200
    assert changed.body["policy"]["version"] == 2 and changed.body["policy"]["rollout_default"] == "shadow"

    ctx = TenantContext.system("acme-pol")
    history = policy_history(harness.container().store, ctx)
    assert [(h["policy_version"], h["changed_by"]) for h in history] == [
        (2, "agent:acme-pol-admin"),
        (1, "test"),
    ]
    assert history[1]["policy"]["rollout_default"] == "assist"
    [event] = _policy_events(harness, "acme-pol")
    assert event.actor == "agent:acme-pol-admin"
    assert (event.payload["from_version"], event.payload["to_version"], event.payload["changed"]) == (
        1,
        2,
        ["answer_threshold", "rollout_default"],
    )
    assert harness.container().audit.verify(ctx, POLICY_CHAIN).ok

    again = _put(harness, "acme-pol", {"policy": {"rollout_default": "shadow", "answer_threshold": 0.8}})
    assert again.status == 200 and again.body["policy"]["version"] == 2
    assert len(_policy_events(harness, "acme-pol")) == 1
    # An empty PUT sets nothing: the configuration keeps its version and nothing is audited.
    _, before = harness.container().audit.load(ctx, POLICY_CHAIN)
    empty = _put(harness, "acme-pol", {})
    assert empty.status == 200 and empty.body["version"] == again.body["version"]
    assert harness.container().audit.load(ctx, POLICY_CHAIN)[1] == before


def test_a_client_setting_the_policy_version_gets_a_clear_400(harness, tenants):
    refused = _put(harness, "initech-pol", {"policy": {"version": 7, "rollout_default": "auto"}})
    assert refused.status == 400
    assert refused.body["error"] == "policy_version_not_settable"
    assert "assigned by the server" in refused.body["message"]
    typo = _put(harness, "initech-pol", {"policy": {"answer_treshold": 0.9}})
    assert typo.status == 422 and any("answer_treshold" in f for f in typo.body["fields"])
    config = harness.container().tenants.get(TenantContext.system("initech-pol"))
    assert config.policy.version == 1 and config.policy.rollout_default == "assist"


def test_an_admin_of_one_tenant_cannot_change_another_tenants_policy(harness, tenants):
    refused = _put(harness, "globex-pol", {"policy": {"rollout_default": "auto"}}, as_admin_of="acme-pol")
    assert refused.status == 404
    ctx = TenantContext.system("globex-pol")
    assert harness.container().tenants.get(ctx).policy.version == 1
    assert _policy_events(harness, "globex-pol") == []
    agent = harness.call(
        "PUT",
        "/v1/tenants/globex-pol/config",
        body=b'{"policy": {"rollout_default": "auto"}}',
        claims=admin_claims("globex-pol", groups="agent"),
    )
    assert agent.status == 403  # the config is the admins'


def _run(cli, capsys, *argv):
    code = cli(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_set_show_history_round_trip(harness, tenants, tmp_path, capsys):
    """An operator reads the policy, edits it, sets it with their name, and finds who changed what."""
    from deflect.cli import main as cli

    code, out, _ = _run(cli, capsys, "policy", "show", "--tenant", "umbrella-pol")
    shown = json.loads(out)
    assert code == 0 and shown["version"] == 1 and "version" not in shown["policy"]

    edited = {**shown["policy"], "rollout_by_intent": {"how_to": "auto"}}  # `show | jq .policy`, edited
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps(edited))
    code, out, _ = _run(
        cli, capsys, "policy", "set", "--tenant", "umbrella-pol", str(policy_file), "--actor", "ops:kim"
    )
    result = json.loads(out)
    assert code == 0 and result["version"] == 2 and result["changed"] and result["changed_by"] == "ops:kim"

    code, out, _ = _run(
        cli, capsys, "policy", "set", "--tenant", "umbrella-pol", str(policy_file), "--actor", "ops:kim"
    )
    assert code == 0 and json.loads(out)["version"] == 2 and not json.loads(out)["changed"]

    code, out, _ = _run(cli, capsys, "policy", "show", "--tenant", "umbrella-pol")
    shown = json.loads(out)
    assert (shown["version"], shown["changed_by"]) == (2, "ops:kim")
    assert shown["policy"]["rollout_by_intent"] == {"how_to": "auto"}

    code, out, _ = _run(cli, capsys, "policy", "show", "--tenant", "umbrella-pol", "--version", "1")
    assert code == 0 and json.loads(out)["policy"]["rollout_by_intent"] == {}

    code, out, _ = _run(cli, capsys, "policy", "history", "--tenant", "umbrella-pol")
    lines = [json.loads(line) for line in out.strip().splitlines()]
    assert [(v["version"], v["current"], v["changed_by"]) for v in lines[:-1]] == [
        (2, True, "ops:kim"),
        (1, False, "test"),
    ]
    assert lines[0]["changed"] == ["rollout_by_intent"] and lines[-1] == {
        "tenant": "umbrella-pol",
        "current": 2,
        "versions": 2,
    }
    [event] = _policy_events(harness, "umbrella-pol")
    assert event.actor == "ops:kim" and event.payload["to_version"] == 2


def test_cli_set_refuses_a_version_in_the_file_and_unknown_tenants(harness, tenants, tmp_path, capsys):
    from deflect.cli import main as cli

    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps({"version": 5, "answer_threshold": 0.7}))
    code, _, err = _run(cli, capsys, "policy", "set", "--tenant", "initech-pol", str(policy_file))
    assert code == 1 and json.loads(err)["error"] == "policy_version_not_settable"
    policy_file.write_text(json.dumps({"answer_threshold": 0.7}))
    code, _, err = _run(cli, capsys, "policy", "set", "--tenant", "nobody-here", str(policy_file))
    assert code == 1 and json.loads(err)["error"] == "not_found"
    assert harness.container().tenants.get(TenantContext.system("initech-pol")).policy.version == 1
