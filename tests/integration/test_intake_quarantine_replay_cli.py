"""The replay command a refused webhook's 400 names, run as given, on moto: the real handler, the sealed quarantine
and the Powertools delivery guard. A generic delivery that came without `X-Deflect-Delivery` is accepted once,
however often it is replayed; a body that is still not JSON is told in one line and stays quarantined."""

from __future__ import annotations

import json
import shlex

import pytest

from deflect.domain.tenancy import TenantContext
from deflect.webhooks import sign
from tests.cli_shell import deflect, one_line
from tests.integration.intake_support import Tenant, moto_harness, queued_triage_only, sample


@pytest.fixture(scope="module")
def harness():
    yield from moto_harness()


@pytest.fixture(scope="module")
def acme(harness) -> Tenant:
    return harness.create_tenant("acme")


@pytest.fixture(autouse=True)
def without_sync_triage(harness):
    yield from queued_triage_only()


def _refused(harness, acme: Tenant, body: bytes, delivery_id: str | None = None) -> dict:
    answer = harness.webhook(
        "generic", "acme", body, sign("generic", acme.secrets["generic"], body, delivery_id=delivery_id)
    )
    assert answer.status == 400, answer.body
    return answer.body


def _replay(capsys, command: str, *more: str) -> tuple[int, str, str]:
    capsys.readouterr()  # the handler's own log and metric lines
    argv = shlex.split(command)
    assert argv[:3] == ["deflect", "tenant", "replay"]
    return deflect(capsys, *argv[1:], *more)


def test_the_400s_replay_command_accepts_a_body_that_came_without_a_delivery_id_once(harness, acme, capsys):
    body = (
        sample("generic", "message_created")
        .replace(b"HD-90817", b"HD-REPLAY-1")
        .replace(b'"id": "m-2", ', b"")
    )
    refused = _refused(harness, acme, body)
    assert refused["detail"] == "X-Deflect-Delivery header is required (1..200 characters)"
    harness.drain_triage_jobs()

    code, out, err = _replay(capsys, refused["replay"])
    assert code == 0, err
    first = json.loads(out)
    code, out, err = _replay(capsys, refused["replay"])
    assert code == 0, err

    assert json.loads(out) == first and first["status"] == "accepted"
    [message] = harness.messages("acme", first["ticket_id"])
    assert message["message_id"] == first["message_id"]
    assert [j["message_id"] for j in harness.drain_triage_jobs()] == [first["message_id"]]


def test_the_helpdesk_delivery_id_given_to_the_replay_is_kept(harness, acme, capsys):
    body = (
        sample("generic", "message_created")
        .replace(b"HD-90817", b"HD-REPLAY-2")
        .replace(b'"id": "m-2", ', b"")
    )
    refused = _refused(harness, acme, body)

    code, out, err = _replay(capsys, refused["replay"], "--delivery-id", "hd-replay-2")

    assert code == 0, err
    [message] = harness.messages("acme", json.loads(out)["ticket_id"])
    assert message["delivery_id"] == "hd-replay-2"


def test_a_body_that_is_still_not_json_is_told_in_one_line_and_stays_quarantined(harness, acme, capsys):
    body = b'{"event": "message.created", "ticket": {"id": "HD-REPLAY-3"'
    refused = _refused(harness, acme, body, "hd-replay-3")
    key = refused["quarantine_key"]
    ctx = TenantContext.system("acme")
    held = harness.container().evidence.read_latest(ctx, key)

    code, out, err = _replay(capsys, refused["replay"])

    assert code == 1 and out == ""
    assert json.loads(one_line(err)) == {
        "error": "malformed_payload",
        "message": f"body is not valid UTF-8 JSON (the quarantined body stays at {key})",
    }
    assert harness.container().evidence.read_latest(ctx, key) == held
