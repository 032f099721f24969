"""The conversation API through the intake handler, with the real delivery guard on DynamoDB (moto): an
Idempotency-Key used again for another request is refused with 409 `idempotency_key_reused`, before and after
the guard's record for it expired, and the conversation it first started is never handed to that request."""

from __future__ import annotations

import json

from tests.integration.intake_fixtures import acme_fixture, harness_fixture, queue_path_fixture  # noqa: F401


def _start(harness, acme, text, email, key):
    payload = {"message": text, "requester": {"email": email}}
    return harness.call(
        "POST",
        "/v1/conversations",
        body=json.dumps(payload).encode(),
        headers={"Authorization": f"Bearer {acme.api_key}", "Idempotency-Key": key},
    )


def _expire_guard_records(harness):
    """Stands for the guard's records reaching their 7-day expiry (DynamoDB TTL removes them)."""
    table = harness.session.resource("dynamodb").Table(harness.env["IDEMPOTENCY_TABLE"])
    for item in table.scan()["Items"]:
        table.delete_item(Key={"id": item["id"]})


def test_a_reused_key_is_refused_with_a_clear_409_before_and_after_the_guard_forgets_it(harness, acme):
    ana = _start(harness, acme, "How do I set up SSO? idp alpha-prod-7781", "ana@alpha.example", "chat-1")
    assert ana.status == 202
    conversation = ana.body["conversation_id"]

    within = _start(harness, acme, "How do I export a report?", "bob@beta.example", "chat-1")
    _expire_guard_records(harness)
    after = _start(harness, acme, "How do I export a report?", "bob@beta.example", "chat-1")

    for refused in (within, after):
        assert refused.status == 409
        assert refused.body["error"] == "idempotency_key_reused"
        assert "Idempotency-Key was already used" in refused.body["message"]
        assert conversation not in json.dumps(refused.body)
    [message] = harness.messages("acme", conversation)
    assert "alpha-prod-7781" in message["body_redacted"]

    # Ana's client retrying her own request after the expiry gets her conversation back, stored once.
    retried = _start(harness, acme, "How do I set up SSO? idp alpha-prod-7781", "ana@alpha.example", "chat-1")
    assert retried.status == 202 and retried.body == ana.body
    assert len(harness.messages("acme", conversation)) == 1
