"""Webhook intake against captured-and-replayed deliveries, and the audit trail of refused and replayed ones.

- A delivery id travels in a header the signature does not cover (Zendesk's invocation id, X-Deflect-Delivery):
  a captured signed body sent again with another delivery id, inside the signature's window, is the same message
  (no second message, no second triage job), while the helpdesk's own retry, signed again later, stays one message
  and a new comment on the ticket is still a new one (the same text sent again later too:
  test_repeated_customer_text_is_a_new_message.py).
- A signed delivery refused and quarantined is on the tenant's audit record (the body's own chain), without its
  body, and the message an operator later replays from that key says who replayed it and from where; refusals
  arriving together are each answered 400 with their key.
- A ticket's custom fields stay bounded across messages: a later message with other field names is stored (not
  refused 413 and lost), and the ticket keeps the newest values.

Through the real intake handler and `deflect` CLI on moto shaped from template.yaml (tests/integration harness).
"""

from __future__ import annotations

import json
import time

import pytest

from deflect.domain.errors import MalformedPayload
from deflect.domain.tenancy import TenantContext
from deflect.services.intake import quarantine_chain
from deflect.webhooks import sign
from tests.cli_shell import deflect
from tests.integration.intake_support import moto_harness, queued_triage_only, sample


@pytest.fixture(scope="module")
def harness():
    yield from moto_harness()


@pytest.fixture(autouse=True)
def without_sync_triage(harness):
    yield from queued_triage_only()


@pytest.fixture(scope="module")
def acme(harness):
    return harness.create_tenant("acme-rq")


def chain(harness, tenant: str, name: str):
    _, events = harness.container().audit.load(TenantContext.system(tenant), name)
    return [e for e in events if e is not None]


def zendesk_comment(ticket: str, text: str) -> bytes:
    payload = json.loads(sample("zendesk", "trigger_comment_created"))
    payload["ticket"]["id"] = ticket
    payload["ticket"]["latest_comment_html"] = f"<p>{text}</p>"
    return json.dumps(payload).encode()


# --------------------------------------------------------------------------- replays with another delivery id


def test_a_captured_zendesk_comment_sent_again_with_a_new_invocation_id_is_not_a_new_message(harness, acme):
    body = zendesk_comment("ZD-R1", "The export still fails with E42.")
    headers = sign("zendesk", acme.secrets["zendesk"], body, delivery_id="inv-genuine")
    harness.drain_triage_jobs()
    first = harness.webhook("zendesk", "acme-rq", body, headers)
    assert first.status == 200, first.body

    replays = [
        harness.webhook(
            "zendesk", "acme-rq", body, {**headers, "X-Zendesk-Webhook-Invocation-Id": f"inv-forged-{n}"}
        )
        for n in range(3)
    ]

    assert [r.status for r in replays] == [200, 200, 200]
    assert {r.body["message_id"] for r in replays} == {first.body["message_id"]}
    assert len(harness.messages("acme-rq", first.body["ticket_id"])) == 1
    assert len(harness.drain_triage_jobs()) == 1


def test_zendesk_retrying_one_invocation_signed_again_later_is_one_message(harness, acme):
    body = zendesk_comment("ZD-R2", "Nothing changed after the restart.")
    secret = acme.secrets["zendesk"]
    harness.drain_triage_jobs()
    first = harness.webhook("zendesk", "acme-rq", body, sign("zendesk", secret, body, delivery_id="inv-7"))
    # Zendesk's retries of one invocation keep its id and carry a new signature timestamp.
    retries = [
        harness.webhook(
            "zendesk", "acme-rq", body, sign("zendesk", secret, body, timestamp=time.time() + s, delivery_id="inv-7")
        )
        for s in (60, 120)
    ]

    assert [a.status for a in (first, *retries)] == [200, 200, 200]
    assert {r.body["message_id"] for r in retries} == {first.body["message_id"]}
    assert len(harness.messages("acme-rq", first.body["ticket_id"])) == 1
    assert len(harness.drain_triage_jobs()) == 1


def test_a_new_zendesk_comment_on_the_ticket_is_still_a_new_message(harness, acme):
    secret = acme.secrets["zendesk"]
    bodies = [zendesk_comment("ZD-R3", "First question."), zendesk_comment("ZD-R3", "Second question.")]
    harness.drain_triage_jobs()
    answers = [
        harness.webhook("zendesk", "acme-rq", body, sign("zendesk", secret, body, delivery_id=f"inv-r3-{n}"))
        for n, body in enumerate(bodies)
    ]

    assert [a.status for a in answers] == [200, 200]
    assert answers[0].body["message_id"] != answers[1].body["message_id"]
    assert len(harness.messages("acme-rq", answers[0].body["ticket_id"])) == 2
    assert len(harness.drain_triage_jobs()) == 2


def test_a_generic_message_without_id_sent_again_with_another_delivery_header_is_not_a_new_message(
    harness, acme
):
    payload = json.loads(sample("generic", "message_created"))
    payload["ticket"]["id"] = "HD-R4"
    del payload["message"]["id"]
    body = json.dumps(payload).encode()
    headers = sign("generic", acme.secrets["generic"], body, delivery_id="d-genuine")
    harness.drain_triage_jobs()
    first = harness.webhook("generic", "acme-rq", body, headers)

    replayed = harness.webhook("generic", "acme-rq", body, {**headers, "X-Deflect-Delivery": "d-forged"})

    assert (first.status, replayed.status) == (200, 200), (first.body, replayed.body)
    assert replayed.body["message_id"] == first.body["message_id"]
    assert len(harness.messages("acme-rq", first.body["ticket_id"])) == 1
    assert len(harness.drain_triage_jobs()) == 1


# --------------------------------------------------------------------------- the trail of quarantines and replays


def test_a_quarantined_delivery_and_its_replay_are_on_the_audit_record(harness, acme, capsys):
    payload = json.loads(sample("generic", "message_created"))
    payload["ticket"]["id"] = "HD-R5"
    del payload["message"]["id"]
    body = json.dumps(payload).encode()
    # Signed, but without X-Deflect-Delivery: refused and kept.
    refused = harness.webhook("generic", "acme-rq", body, sign("generic", acme.secrets["generic"], body))
    assert refused.status == 400, refused.body
    key = refused.body["quarantine_key"]

    recorded = chain(harness, "acme-rq", quarantine_chain(key))
    assert [(e.type, e.actor) for e in recorded] == [("message.quarantined", "webhook:generic")]
    assert recorded[0].payload == {
        "provider": "generic",
        "reason": "no_delivery_id",
        "quarantine_key": key,
        "delivery_id": None,
    }
    assert "Members page" not in json.dumps(recorded[0].model_dump(mode="json"))  # no body text on the record
    capsys.readouterr()  # the handler's own log and metric lines
    code, out, err = deflect(capsys, "audit", "verify", "--tenant", "acme-rq")
    assert code == 0, err
    [verified] = [r for r in map(json.loads, out.splitlines()) if r.get("ticket") == quarantine_chain(key)]
    assert (verified["events"], verified["ok"]) == (1, True)

    code, out, err = deflect(
        capsys, "tenant", "replay", "--tenant", "acme-rq", "--key", key, "--actor", "ops:dana"
    )
    assert code == 0, err
    ticket_id = json.loads(out)["ticket_id"]
    [received] = [e for e in chain(harness, "acme-rq", ticket_id) if e.type == "message.received"]
    assert received.actor == "ops:dana"
    assert received.payload["replayed_by"] == "ops:dana"
    assert received.payload["quarantine_key"] == key


def test_a_body_of_the_wrong_shape_is_recorded_with_its_delivery_id(harness, acme):
    body = json.dumps({"event": "message.created", "ticket": {"subject": "no id"}}).encode()
    refused = harness.webhook(
        "generic", "acme-rq", body, sign("generic", acme.secrets["generic"], body, delivery_id="d-shape-1")
    )
    assert refused.status == 400, refused.body

    [event] = chain(harness, "acme-rq", quarantine_chain(refused.body["quarantine_key"]))
    assert event.type == "message.quarantined"
    assert event.payload["reason"] == "unexpected_shape"
    assert event.payload["delivery_id"] == "d-shape-1"
    assert event.payload["quarantine_key"] == refused.body["quarantine_key"]


def test_refusals_arriving_together_are_each_answered_400_with_their_quarantine_key(harness, acme, monkeypatch):
    from deflect.bootstrap import container

    intake = container().intake  # the handler's
    secret = acme.secrets["generic"]
    evidence = intake.audit.evidence
    write_event = evidence.put_locked
    # Under load: while this refusal's audit event is written, another delivery's refusal is recorded first, at
    # every attempt (as many others as the audit log tries).
    others = [json.dumps({"event": "message.created", "ticket": {"subject": f"other {n}"}}).encode() for n in range(5)]
    busy = []

    def meanwhile(ctx, key, body, kind):
        if kind == "audit" and "/audit/tickets/quarantine" in key and others and not busy:
            busy.append(True)
            other = others.pop()
            with pytest.raises(MalformedPayload):
                intake.receive_webhook(
                    "generic", "acme-rq", sign("generic", secret, other, delivery_id=f"d-{len(others)}"), other
                )
            busy.clear()
        return write_event(ctx, key, body, kind)

    monkeypatch.setattr(evidence, "put_locked", meanwhile)
    body = json.dumps({"event": "message.created", "ticket": {"subject": "mine"}}).encode()
    refused = harness.webhook("generic", "acme-rq", body, sign("generic", secret, body, delivery_id="d-mine"))

    assert refused.status == 400, refused.body
    [event] = chain(harness, "acme-rq", quarantine_chain(refused.body["quarantine_key"]))
    assert event.payload["delivery_id"] == "d-mine"


def test_a_helpdesk_delivery_is_not_marked_as_a_replay(harness, acme):
    body = zendesk_comment("ZD-R6", "Plain delivery.")
    answer = harness.webhook(
        "zendesk", "acme-rq", body, sign("zendesk", acme.secrets["zendesk"], body, delivery_id="i-6")
    )
    assert answer.status == 200, answer.body

    [received] = [
        e for e in chain(harness, "acme-rq", answer.body["ticket_id"]) if e.type == "message.received"
    ]
    assert "replayed_by" not in received.payload and "quarantine_key" not in received.payload


# --------------------------------------------------------------------------- a ticket's custom fields


def fields_message(event: str, message_id: str, prefix: str) -> bytes:
    fields = {f"{prefix}_{i}": "\u4e00" * 2000 for i in range(40)}  # 40 x 6 KB of UTF-8: 240 KB, under 256 KB
    payload = {
        "event": event,
        "ticket": {"id": "HD-R7", "subject": "Export fails", "custom_fields": fields},
        "requester": {"email": "a@example.com"},
        "message": {"id": message_id, "body": f"Our export fails with error E42 ({message_id})."},
    }
    return json.dumps(payload, ensure_ascii=False).encode()


def test_later_messages_with_other_custom_fields_are_stored_and_the_ticket_keeps_the_newest(harness, acme):
    answers = []
    for n, (event, prefix) in enumerate(
        [("ticket.created", "a"), ("message.created", "b"), ("message.created", "c")]
    ):
        body = fields_message(event, f"m-{n}", prefix)
        headers = sign("generic", acme.secrets["generic"], body, delivery_id=f"cf-{n}")
        answers.append(harness.webhook("generic", "acme-rq", body, headers))

    assert [a.status for a in answers] == [200, 200, 200], [a.body for a in answers]
    ticket_id = answers[0].body["ticket_id"]
    assert len(harness.messages("acme-rq", ticket_id)) == 3
    [ticket] = harness.tickets("acme-rq", ticket_id)
    assert {f"c_{i}" for i in range(40)} <= set(
        ticket["custom_fields"]
    )  # the newest message's values, all of them
