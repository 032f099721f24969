"""`deflect customer erase` finds every ticket a customer wrote, whatever happened right after intake stored it.

Erasure finds a customer's tickets through customer → ticket links. A link written only after intake's commit (by
the best-effort observer) was lost when that write was throttled or the Lambda died in between, and the helpdesk's
retry found the delivery receipt and wrote nothing: the "erased" customer's subject and message text stayed.

Real services on moto; faults injected with a botocore hook on the handler's own client, or an audit log that
commits and then dies (a timeout, an out-of-memory kill).
"""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from deflect.cli import main as cli
from deflect.domain import keys
from deflect.domain.errors import TransientFailure
from deflect.domain.tenancy import TenantContext
from deflect.services.audit import AuditLog
from deflect.webhooks import Requester, sign
from tests.integration.intake_fixtures import acme_fixture, harness_fixture, queue_path_fixture  # noqa: F401
from tests.integration.intake_support import sample

SECRET_TEXT = "my card ends 4242 and my dog is called Biscuit"




class DiesAfterCommit(AuditLog):
    """Commits the append, then the Lambda dies before anything observes it."""

    def append(self, *args, **kwargs):
        super().append(*args, **kwargs)
        raise TransientFailure("Task timed out after 29.00 seconds")


def _webhook_body(n: int, name: str = "ticket_created") -> bytes:
    """A sample delivery for a requester and a ticket of this test's own."""
    return (
        sample("generic", name)
        .replace(b"HD-90817", f"HD-LINK-{n}".encode())
        .replace(b"jonas.weber", f"linked.{n}".encode())
        .replace(b"hooli-118", f"hooli-link-{n}".encode())
    )


def _erase_with_the_cli(harness, ticket_id: str, capsys) -> dict:
    [ticket] = harness.tickets("acme", ticket_id)
    customer_id = ticket["customer_id"]
    assert customer_id
    capsys.readouterr()
    assert cli(["customer", "erase", "--tenant", "acme", "--customer", customer_id]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _personal_text_left(harness, ticket_id: str) -> list[str]:
    [ticket] = harness.tickets("acme", ticket_id)
    left = [
        m["body_redacted"] for m in harness.messages("acme", ticket_id) if m["body_redacted"] != "[erased]"
    ]
    return left + (
        [ticket["subject_redacted"]] if ticket.get("subject_redacted") not in ("", "[erased]") else []
    )


def test_a_webhook_whose_lambda_dies_after_the_commit_is_still_erased(harness, acme, capsys):
    body = _webhook_body(1)
    headers = sign("generic", acme.secrets["generic"], body, delivery_id="link-1")
    real = harness.container()
    dying = harness.container(audit=DiesAfterCommit(real.store, real.evidence))
    with pytest.raises(TransientFailure):
        dying.intake.receive_webhook("generic", "acme", headers, body)

    retried = harness.webhook("generic", "acme", body, headers)  # the helpdesk retries the same delivery

    assert retried.status == 200
    ticket_id = retried.body["ticket_id"]
    assert _personal_text_left(harness, ticket_id)  # there was something to erase
    report = _erase_with_the_cli(harness, ticket_id, capsys)
    assert ticket_id in report["tickets"]
    assert _personal_text_left(harness, ticket_id) == []


def test_a_throttled_observer_neither_hides_the_ticket_nor_doubles_its_link(harness, acme, capsys):
    from deflect.bootstrap import container as handler_container

    body = _webhook_body(2)
    headers = sign("generic", acme.secrets["generic"], body, delivery_id="link-2")
    events = handler_container().client("dynamodb").meta.events
    throttled: list[str] = []

    def throttle_links(params, **_):
        item = params.get("Item", {})
        if "#CUST#" in item.get("PK", {}).get("S", "") and item.get("SK", {}).get("S", "").startswith(
            "TICKET#"
        ):
            throttled.append(item["SK"]["S"])
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "PutItem")

    events.register("before-parameter-build.dynamodb.PutItem", throttle_links, unique_id="link-survives")
    try:
        answer = harness.webhook("generic", "acme", body, headers)
    finally:
        events.unregister("before-parameter-build.dynamodb.PutItem", unique_id="link-survives")

    assert answer.status == 200
    ticket_id = answer.body["ticket_id"]
    [ticket] = harness.tickets("acme", ticket_id)
    # The observer's own link write was the one throttled; the one committed with the message is there, once.
    assert throttled == [f"TICKET#{ticket_id}"]
    links = harness.items("acme", f"CUST#{ticket['customer_id']}", "TICKET#")
    assert links == [{"ticket_id": ticket_id}]

    report = _erase_with_the_cli(harness, ticket_id, capsys)
    assert ticket_id in report["tickets"]
    assert _personal_text_left(harness, ticket_id) == []


def test_a_conversation_whose_lambda_dies_after_the_commit_is_still_erased(harness, acme, capsys):
    email = "linked.api@example.com"
    real = harness.container()
    dying = harness.container(audit=DiesAfterCommit(real.store, real.evidence))
    ctx, config = dying.intake.authenticate_api_key(acme.api_key)
    with pytest.raises(TransientFailure):
        dying.intake.converse(
            ctx, config, text=SECRET_TEXT, requester=Requester(email=email), idempotency_key="link-api-1"
        )

    retried = harness.call(
        "POST",
        "/v1/conversations",
        body=json.dumps({"message": SECRET_TEXT, "requester": {"email": email}}).encode(),
        headers={"Authorization": f"Bearer {acme.api_key}", "Idempotency-Key": "link-api-1"},
    )

    assert retried.status == 202
    conversation_id = retried.body["conversation_id"]
    stored = [m["body_redacted"] for m in harness.messages("acme", conversation_id)]
    assert stored and "Biscuit" in stored[0]
    report = _erase_with_the_cli(harness, conversation_id, capsys)
    assert conversation_id in report["tickets"]
    assert [m["body_redacted"] for m in harness.messages("acme", conversation_id)] == ["[erased]"]


def test_every_author_of_a_ticket_is_linked_once_per_ticket(harness, acme):
    """Links are keyed by customer and ticket: a second message on the ticket rewrites the same link."""
    first = _webhook_body(3)
    answer = harness.webhook(
        "generic", "acme", first, sign("generic", acme.secrets["generic"], first, delivery_id="link-3a")
    )
    ticket_id = answer.body["ticket_id"]
    [ticket] = harness.tickets("acme", ticket_id)
    again = _webhook_body(3, "message_created")
    added = harness.webhook(
        "generic", "acme", again, sign("generic", acme.secrets["generic"], again, delivery_id="link-3b")
    )
    assert added.status == 200 and added.body["ticket_id"] == ticket_id
    assert len(harness.messages("acme", ticket_id)) == 2
    ctx = TenantContext.system("acme")
    links = harness.container().store.query(ctx, keys.customer_pk("acme", ticket["customer_id"]), "TICKET#")
    assert [item.data for item in links] == [{"ticket_id": ticket_id}]
