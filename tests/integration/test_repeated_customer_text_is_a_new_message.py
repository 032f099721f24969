"""A customer who writes the same text again on a ticket ("It still does not work.", "yes") wrote a new message.

A message without an id of its own (a Zendesk trigger comment, a generic message without `message.id`) was known by
its ticket and body, so a second identical reply was answered 200 with the first one's message id: nothing stored,
the ticket not reopened, no triage. Each delivery the helpdesk signs at its own time is a message; only the same
signed body sent again with a new (unsigned) delivery id is not.

Through the real intake handler on moto shaped from template.yaml (tests/integration harness).
"""

from __future__ import annotations

import json
import time

from deflect.domain.tenancy import TenantContext
from deflect.repositories import Tickets, save
from deflect.services.intake import ticket_id_for
from deflect.webhooks import sign
from tests.integration.intake_fixtures import acme_fixture, harness_fixture, queue_path_fixture  # noqa: F401


def deliver(harness, acme, provider: str, payload: dict, delivery: str, signed_at: float):
    body = json.dumps(payload).encode()
    headers = sign(provider, acme.secrets[provider], body, timestamp=signed_at, delivery_id=delivery)
    return harness.webhook(provider, "acme", body, headers), body, headers


def mark_deflected(harness, provider: str, external_id: str) -> None:
    """The answer was sent and the ticket set aside: a reply from the customer must bring it back."""
    ctx = TenantContext.system("acme")
    store = harness.container().store
    tickets = Tickets(store)
    ticket = tickets.get(ctx, ticket_id_for(provider, external_id))
    save(store, ctx, [tickets.save_write(ticket.model_copy(update={"status": "deflected"}))])


def test_the_same_generic_reply_sent_twice_is_two_messages_and_reopens_the_ticket(harness, acme):
    now = time.time()
    requester = {"email": "ana@example.com"}
    opened, _, _ = deliver(
        harness,
        acme,
        "generic",
        {
            "event": "ticket.created",
            "ticket": {"id": "HD-SAME-1", "subject": "Export fails"},
            "requester": requester,
            "message": {"body": "Export to CSV fails with error E42."},
        },
        "d-open",
        now - 200,
    )
    assert opened.status == 200, opened.body
    reply = {
        "event": "message.created",
        "ticket": {"id": "HD-SAME-1"},
        "requester": requester,
        "message": {"body": "It still does not work."},
    }
    harness.drain_triage_jobs()
    first, _, _ = deliver(harness, acme, "generic", reply, "d-reply-1", now - 100)
    mark_deflected(harness, "generic", "HD-SAME-1")

    second, body, headers = deliver(harness, acme, "generic", reply, "d-reply-2", now)

    assert (first.status, second.status) == (200, 200), (first.body, second.body)
    assert second.body["message_id"] != first.body["message_id"]
    ticket_id = opened.body["ticket_id"]
    assert len(harness.messages("acme", ticket_id)) == 3
    [ticket] = harness.tickets("acme", ticket_id)
    assert ticket["status"] == "new"  # reopened for triage
    assert {j["message_id"] for j in harness.drain_triage_jobs()} == {
        first.body["message_id"],
        second.body["message_id"],
    }

    # That second delivery captured and sent again with another X-Deflect-Delivery is still not a third message.
    resent = harness.webhook("generic", "acme", body, {**headers, "X-Deflect-Delivery": "d-forged"})
    assert (resent.status, resent.body["message_id"]) == (200, second.body["message_id"])
    assert len(harness.messages("acme", ticket_id)) == 3
    assert harness.drain_triage_jobs() == []


def test_the_same_zendesk_trigger_comment_twice_in_one_minute_is_two_messages(harness, acme):
    now = time.time()
    requester = {"id": "9", "email": "ana@example.com"}
    opened, _, _ = deliver(
        harness,
        acme,
        "zendesk",
        {
            "event": "ticket.created",
            "ticket": {
                "id": "ZD-SAME-2",
                "subject": "Export fails",
                "description": "Export fails with E42",
                "updated_at": "2025-03-05T08:00:00Z",
                "requester": requester,
            },
            "current_user": {"role": "end-user"},
        },
        "inv-open",
        now - 60,
    )
    assert opened.status == 200, opened.body
    # "Did you restart the export?" "yes" ... "Is the file over 1 GB?" "yes": the trigger's `updated_at` stops at
    # minutes, so both bodies are byte-identical; Zendesk signs each invocation at its own time.
    comment = {
        "event": "comment.created",
        "ticket": {
            "id": "ZD-SAME-2",
            "latest_comment": "yes",
            "status": "open",
            "updated_at": "2025-03-05T08:01:00Z",
            "requester": requester,
        },
        "current_user": {"role": "end-user"},
    }
    harness.drain_triage_jobs()
    first, _, _ = deliver(harness, acme, "zendesk", comment, "inv-yes-1", now - 40)
    mark_deflected(harness, "zendesk", "ZD-SAME-2")

    second, _, _ = deliver(harness, acme, "zendesk", comment, "inv-yes-2", now - 10)

    assert (first.status, second.status) == (200, 200), (first.body, second.body)
    assert second.body["message_id"] != first.body["message_id"]
    ticket_id = opened.body["ticket_id"]
    assert len(harness.messages("acme", ticket_id)) == 3
    [ticket] = harness.tickets("acme", ticket_id)
    assert ticket["status"] == "new"
    assert len(harness.drain_triage_jobs()) == 2
