"""Long messages in any script: a genuine body under the webhook limit is stored, whole in the locked evidence of
the raw request and cut to what a DynamoDB item holds as the message text triage reads; a retry stores nothing
twice."""

from __future__ import annotations

import json

import pytest

from deflect.domain.models import EvidenceRef
from deflect.domain.tenancy import TenantContext
from deflect.webhooks import sign
from deflect.webhooks.common import MAX_BODY_BYTES
from tests.integration.intake_support import Tenant, moto_harness, sample

ACME = TenantContext.system("acme")
BODY_LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def harness():
    yield from moto_harness()


@pytest.fixture(scope="module")
def acme(harness) -> Tenant:
    return harness.create_tenant("acme")


def _delivery(ticket: str, html: str, subject: str | None = None) -> bytes:
    payload = json.loads(sample("generic", "ticket_created"))
    payload["ticket"]["id"] = ticket
    payload["message"]["id"] = f"m-{ticket}"
    payload["message"]["body_html"] = html
    if subject is not None:
        payload["ticket"]["subject"] = subject
    # As a helpdesk sends it: UTF-8, not \u escapes (so the body is as long as the limit allows).
    return json.dumps(payload, ensure_ascii=False).encode()


def _send(harness, acme: Tenant, body: bytes, delivery: str):
    return harness.webhook(
        "generic", "acme", body, sign("generic", acme.secrets["generic"], body, delivery_id=delivery)
    )


@pytest.mark.parametrize(("char", "count"), [("日", 70_000), ("😀", 50_000)], ids=["cjk", "emoji"])
def test_a_long_non_ascii_message_under_the_body_limit_is_stored_once(harness, acme, char, count):
    body = _delivery(f"HD-LONG-{count}", f"<p>{char * count}</p>")
    assert len(body) < BODY_LIMIT
    harness.drain_triage_jobs()

    first = _send(harness, acme, body, f"long-{count}")

    assert first.status == 200, first.body
    ticket_id, message_id = first.body["ticket_id"], first.body["message_id"]
    [message] = harness.messages("acme", ticket_id)
    text = message["body_redacted"]
    # The text triage reads is the start of the message, as much as fits the item.
    stored_size = len(json.dumps(text, ensure_ascii=False).encode())
    assert set(text) == {char} and len(text) > 30_000 and stored_size <= MAX_BODY_BYTES
    # The whole body is kept in the locked raw-request evidence.
    evidence = harness.container().sealed_evidence
    raw = json.loads(evidence.read(ACME, EvidenceRef.model_validate(message["evidence"])))
    assert raw["body"] == body.decode()
    assert [j["message_id"] for j in harness.drain_triage_jobs()] == [message_id]

    # The helpdesk retries: the same delivery, then the same message under a new delivery id.
    again = _send(harness, acme, body, f"long-{count}")
    redelivered = _send(harness, acme, body, f"long-{count}-redelivered")

    assert (again.status, again.body) == (200, first.body)
    assert (redelivered.status, redelivered.body["message_id"]) == (200, message_id)
    assert harness.messages("acme", ticket_id) == [message]
    assert harness.drain_triage_jobs() == []
    assert harness.container().audit.verify(ACME, ticket_id).ok


def test_a_body_of_characters_stored_escaped_is_bounded_by_their_escaped_size(harness, acme):
    """Quotes and backslashes take two bytes each in the item's JSON: the bound counts them so."""
    body = _delivery("HD-QUOTES", '"\\' * 60_000)
    assert len(body) < BODY_LIMIT

    answer = _send(harness, acme, body, "quotes")

    assert answer.status == 200, answer.body
    [message] = harness.messages("acme", answer.body["ticket_id"])
    stored_size = len(json.dumps(message["body_redacted"], ensure_ascii=False).encode())
    assert message["body_redacted"].startswith('"\\"\\') and stored_size <= MAX_BODY_BYTES


def test_a_lone_surrogate_escape_is_stored_not_a_crash(harness, acme):
    """`\\ud800` is valid JSON but not UTF-8: the body keeps a replacement character, the subject stays escaped."""
    body = (
        _delivery("HD-SURROGATE", "<p>broken \\ud800 text</p>", subject="subject \\udfff")
        .replace(b"\\\\ud800", b"\\ud800")
        .replace(b"\\\\udfff", b"\\udfff")
    )
    assert b"\\ud800" in body and b"\\\\ud800" not in body

    answer = _send(harness, acme, body, "surrogate")

    assert answer.status == 200, answer.body
    [message] = harness.messages("acme", answer.body["ticket_id"])
    assert message["body_redacted"] == "broken \ufffd text"
    [ticket] = harness.tickets("acme", answer.body["ticket_id"])
    assert ticket["subject_redacted"] == "subject \udfff"
