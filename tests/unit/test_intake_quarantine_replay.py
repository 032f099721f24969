"""`deflect tenant replay`: a quarantined webhook body, run again, is processed like a fresh delivery and loses nothing.

A verified delivery refused after authentication keeps its body in quarantine, and its 400 names the key and the
replay command. A generic delivery refused only because it came without `X-Deflect-Delivery` is accepted on replay:
it gets a delivery id derived from its bytes (so replaying it again stores no second message and queues no second
triage job) or the one the operator gives with `--delivery-id`. A body that is still refused (not JSON, the wrong
shape) is told in one line naming what is wrong, and its quarantined object stays where it was.

Through the real Intake service on the in-memory store and evidence store (tests/unit/triage_fakes.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from deflect.domain.canonical import sha256_hex
from deflect.domain.errors import Conflict, MalformedPayload
from deflect.http import error_response
from deflect.repositories import TenantConfigs, Tickets, save
from deflect.services.intake import Intake, ticket_id_for
from deflect.webhooks import sign
from tests.cli_shell import deflect, one_line
from tests.unit.test_intake_idempotency_key_reuse import ExpiringGuard
from tests.unit.triage_fakes import RecordingQueue, make_world

SECRET = "generic-signing-secret"
# A follow-up with no message id of its own: its message id is derived from the delivery id.
FOLLOW_UP = json.dumps(
    {
        "event": "message.created",
        "ticket": {"id": "HD-4471", "subject": "Export stuck at 99%", "channel": "portal"},
        "requester": {"email": "jonas.weber@hooli.example", "external_id": "hooli-118"},
        "message": {"body": "The CSV export of March is still stuck at 99 percent."},
    }
).encode()


class Secrets:
    def secrets(self, tenant_id: str, name: str) -> list[str]:
        return [SECRET] if name == "generic" else []


class Desk:
    """Tenant acme with the generic webhook enabled, a delivery guard that can forget, and a recording queue."""

    def __init__(self) -> None:
        self.world = make_world()
        self.ctx = self.world.ctx
        tenants = TenantConfigs(self.world.store)
        config = tenants.get(self.ctx)
        save(
            self.world.store,
            self.ctx,
            [tenants.save_write(config.model_copy(update={"providers": ["generic"]}))],
        )
        self.guard = ExpiringGuard()
        self.queue = RecordingQueue()
        self.metrics: list[tuple[str, float]] = []
        self.intake = Intake(
            self.world.store,
            self.world.evidence,
            Secrets(),
            self.queue,
            self.world.audit,
            self.guard,
            metric=lambda name, value: self.metrics.append((name, value)),
        )

    def deliver(self, body: bytes, delivery_id: str | None = None) -> Any:
        return self.intake.receive_webhook(
            "generic", "acme", sign("generic", SECRET, body, delivery_id=delivery_id), body
        )

    def refused(self, body: bytes, delivery_id: str | None = None) -> dict[str, Any]:
        """What the helpdesk is told when the delivery is refused (400 with the quarantine key)."""
        with pytest.raises(MalformedPayload) as refusal:
            self.deliver(body, delivery_id)
        answer = error_response(refusal.value)
        assert answer.status_code == 400
        return answer.body

    def quarantined(self) -> dict[str, bytes | None]:
        prefix = "tenant=acme/quarantine/"
        held = self.world.evidence.versions(self.ctx, prefix)
        return {key: self.world.evidence.read_latest(self.ctx, key) for key in held}

    def messages(self, ticket_id: str) -> list[Any]:
        return Tickets(self.world.store).messages(self.ctx, ticket_id)


@pytest.fixture
def desk() -> Desk:
    return Desk()


# --------------------------------------------------------------------------- no delivery id


def test_a_body_refused_for_its_missing_delivery_id_is_accepted_on_replay(desk: Desk) -> None:
    refusal = desk.refused(FOLLOW_UP)
    assert refusal["detail"] == "X-Deflect-Delivery header is required (1..200 characters)"
    key = refusal["quarantine_key"]
    assert refusal["replay"] == f"deflect tenant replay --tenant acme --key {key}"

    replayed = desk.intake.replay_quarantined(desk.ctx, key)

    assert replayed.status_code == 200 and replayed.body["status"] == "accepted"
    ticket_id = ticket_id_for("generic", "HD-4471")
    assert replayed.body["ticket_id"] == ticket_id
    [message] = desk.messages(ticket_id)
    assert message.message_id == replayed.body["message_id"]
    assert "stuck at 99 percent" in message.body_redacted
    assert [(job["ticket_id"], job["message_id"]) for job in desk.queue.sent] == [
        (ticket_id, message.message_id)
    ]


def test_replaying_the_same_body_again_stores_and_queues_it_once(desk: Desk) -> None:
    key = desk.refused(FOLLOW_UP)["quarantine_key"]
    first = desk.intake.replay_quarantined(desk.ctx, key)
    again = desk.intake.replay_quarantined(desk.ctx, key)
    desk.guard.expire()  # a week later the delivery guard has forgotten it; the stored receipt has not
    much_later = desk.intake.replay_quarantined(desk.ctx, key)

    assert again.body == first.body and much_later.body == first.body
    ticket_id = first.body["ticket_id"]
    assert [m.message_id for m in desk.messages(ticket_id)] == [first.body["message_id"]]
    assert len(desk.queue.sent) == 1


def test_a_replay_is_processed_like_a_fresh_delivery_of_that_body(desk: Desk) -> None:
    key = desk.refused(FOLLOW_UP)["quarantine_key"]
    replayed = desk.intake.replay_quarantined(desk.ctx, key)
    [message] = desk.messages(replayed.body["ticket_id"])

    fresh_desk = Desk()  # the same body sent with the id the replay used, to a desk that never saw it
    fresh = fresh_desk.deliver(FOLLOW_UP, message.delivery_id)

    assert fresh.body == replayed.body
    [fresh_message] = fresh_desk.messages(fresh.body["ticket_id"])
    assert fresh_message.body_redacted == message.body_redacted
    replayed_ticket = Tickets(desk.world.store).get(desk.ctx, replayed.body["ticket_id"])
    fresh_ticket = Tickets(fresh_desk.world.store).get(fresh_desk.ctx, fresh.body["ticket_id"])
    compared = {"created_at", "updated_at", "version"}
    assert replayed_ticket.model_dump(exclude=compared) == fresh_ticket.model_dump(exclude=compared)


def test_the_operator_can_give_the_helpdesk_delivery_id(desk: Desk) -> None:
    key = desk.refused(FOLLOW_UP)["quarantine_key"]

    replayed = desk.intake.replay_quarantined(desk.ctx, key, delivery_id="hd-delivery-77")

    [message] = desk.messages(replayed.body["ticket_id"])
    assert message.delivery_id == "hd-delivery-77"
    # The helpdesk retries later, this time with its delivery id: the same delivery, not a second message.
    retried = desk.deliver(FOLLOW_UP, "hd-delivery-77")
    assert retried.body == replayed.body
    assert len(desk.messages(replayed.body["ticket_id"])) == 1 and len(desk.queue.sent) == 1


def test_a_delivery_id_already_used_for_another_body_is_refused_and_nothing_is_stored(desk: Desk) -> None:
    other = FOLLOW_UP.replace(b"99 percent", b"98 percent")
    first = desk.deliver(other, "hd-delivery-78")
    key = desk.refused(FOLLOW_UP)["quarantine_key"]
    held = desk.quarantined()

    with pytest.raises(Conflict):
        desk.intake.replay_quarantined(desk.ctx, key, delivery_id="hd-delivery-78")

    assert [m.message_id for m in desk.messages(first.body["ticket_id"])] == [first.body["message_id"]]
    assert len(desk.queue.sent) == 1 and desk.quarantined() == held


@pytest.mark.parametrize("given", ["", "   ", "x" * 201])
def test_an_unusable_delivery_id_is_refused_before_anything_is_stored(desk: Desk, given: str) -> None:
    key = desk.refused(FOLLOW_UP)["quarantine_key"]
    with pytest.raises(MalformedPayload) as refusal:
        desk.intake.replay_quarantined(desk.ctx, key, delivery_id=given)
    assert refusal.value.detail == "--delivery-id must be 1..200 characters"
    assert desk.messages(ticket_id_for("generic", "HD-4471")) == [] and desk.queue.sent == []


# --------------------------------------------------------------------------- still refused


NOT_JSON = b'{"event": "message.created", "ticket": {"id": "HD-4472"'  # cut off by a proxy
WRONG_SHAPE = json.dumps(
    {"event": "message.created", "ticket": "HD-4473", "message": {"body": "Export stuck again"}}
).encode()


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (NOT_JSON, "body is not valid UTF-8 JSON"),
        (WRONG_SHAPE, "generic payload does not match the expected shape at: ticket"),
    ],
    ids=["not JSON", "wrong shape"],
)
def test_a_body_still_refused_on_replay_says_why_and_stays_in_quarantine(
    desk: Desk, body: bytes, what: str
) -> None:
    refusal = desk.refused(body, "hd-delivery-80")
    assert refusal["detail"] == what
    key = refusal["quarantine_key"]
    held = desk.quarantined()

    for delivery_id in (None, "hd-delivery-80"):
        with pytest.raises(MalformedPayload) as replayed:
            desk.intake.replay_quarantined(desk.ctx, key, delivery_id=delivery_id)
        assert replayed.value.detail == what

    assert desk.quarantined() == held  # nothing deleted, nothing added
    assert desk.queue.sent == [] and desk.messages(ticket_id_for("generic", "HD-4472")) == []


# --------------------------------------------------------------------------- the command


@pytest.fixture
def cli(desk: Desk, monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str, str]]:
    """`deflect tenant replay ...` with the command's container holding this desk's intake."""
    monkeypatch.setattr("deflect.bootstrap.container", lambda: SimpleNamespace(intake=desk.intake))

    def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
        return deflect(capsys, "tenant", "replay", "--tenant", "acme", *argv)

    return run


def test_the_replay_command_takes_a_delivery_id(desk: Desk, cli: Any, capsys: Any) -> None:
    key = desk.refused(FOLLOW_UP)["quarantine_key"]

    code, out, err = cli(capsys, "--key", key, "--delivery-id", "hd-delivery-90")

    assert code == 0, err
    printed = json.loads(out)
    assert printed["status_code"] == 200 and printed["status"] == "accepted"
    [message] = desk.messages(printed["ticket_id"])
    assert message.delivery_id == "hd-delivery-90"


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (NOT_JSON, "body is not valid UTF-8 JSON"),
        (WRONG_SHAPE, "generic payload does not match the expected shape at: ticket"),
    ],
    ids=["not JSON", "wrong shape"],
)
def test_the_replay_command_says_in_one_line_what_is_still_wrong(
    desk: Desk, cli: Any, capsys: Any, body: bytes, what: str
) -> None:
    key = desk.refused(body, f"hd-{sha256_hex(body)[:8]}")["quarantine_key"]
    held = desk.quarantined()

    code, out, err = cli(capsys, "--key", key)

    assert code == 1 and out == ""
    line = json.loads(one_line(err))
    assert line["error"] == "malformed_payload"
    assert what in line["message"] and key in line["message"]
    assert desk.quarantined() == held


def test_the_replay_command_names_a_key_that_holds_nothing(desk: Desk, cli: Any, capsys: Any) -> None:
    code, _, err = cli(capsys, "--key", "tenant=acme/quarantine/generic/nothing-here.json")
    assert code == 1
    assert json.loads(one_line(err))["error"] == "not_found"
