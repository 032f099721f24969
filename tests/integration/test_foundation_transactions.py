"""A state change, its outbox item and its audit entry are written together or not at all.

The audit event object is written to S3 first; faults are then injected into the DynamoDB transaction
(botocore `before-send` hooks, which run ahead of moto) to show that nothing is left half-written.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from deflect.domain import keys
from deflect.domain.errors import Conflict, PayloadTooLarge, TransientFailure
from deflect.domain.models import OutboxItem, Ticket
from deflect.domain.tenancy import TenantContext
from deflect.ports import Put
from deflect.repositories import Outbox, Tickets, save

ACME = TenantContext.system("acme")


@pytest.fixture
def world(moto_stack):
    container = moto_stack.container()
    tickets, outbox = Tickets(container.store), Outbox(container.store)
    ticket = Ticket(tenant_id="acme", ticket_id="t1", provider="zendesk", external_id="z1")
    save(container.store, ACME, [tickets.save_write(ticket)])
    return container, tickets, outbox, moto_stack.session.client("s3")


def _escalate(container: Any, tickets: Tickets, outbox: Outbox, ticket: Ticket) -> OutboxItem:
    """The shape every audited state change takes: new state + outbox item + audit entry, one transaction."""
    item = OutboxItem(
        tenant_id="acme",
        outbox_id="o1",
        ticket_id="t1",
        provider="zendesk",
        external_ticket_id="z1",
        kind="tags",
        tags=["escalated"],
    )
    container.audit.append(
        ACME,
        "t1",
        "ticket.escalated",
        {"reason": "refund"},
        writes=[
            tickets.save_write(ticket.model_copy(update={"status": "escalated"})),
            outbox.save_write(item),
        ],
    )
    return item


def _fail_transactions(container: Any, fault: Any) -> None:
    container.client("dynamodb").meta.events.register_first("before-send.dynamodb.TransactWriteItems", fault)


def _audit_objects(s3: Any, container: Any) -> list[str]:
    listed = s3.list_objects_v2(Bucket=container.settings.evidence_bucket, Prefix="tenant=acme/audit/")
    return [o["Key"] for o in listed.get("Contents", [])]


def _nothing_half_written(container: Any, tickets: Tickets, outbox: Outbox) -> None:
    ticket = tickets.require(ACME, "t1")
    assert (ticket.status, ticket.version) == ("new", 1)
    assert outbox.get(ACME, "o1") is None
    assert container.audit.entries(ACME, "t1") == []
    assert container.audit.verify(ACME, "t1").ok


def test_a_lost_connection_during_the_transaction_leaves_nothing_half_written(world):
    container, tickets, outbox, s3 = world
    attempts = []

    def unplugged(request: Any, **_: Any) -> None:
        attempts.append(request)
        raise EndpointConnectionError(endpoint_url=request.url)

    _fail_transactions(container, unplugged)

    with pytest.raises(TransientFailure):
        _escalate(container, tickets, outbox, tickets.require(ACME, "t1"))

    assert len(attempts) >= 1
    _nothing_half_written(container, tickets, outbox)
    # Only the locked event object exists: an orphan no index entry points to, harmless to the chain.
    assert len(_audit_objects(s3, container)) == 1

    container.client("dynamodb").meta.events.unregister("before-send.dynamodb.TransactWriteItems", unplugged)
    _escalate(container, tickets, outbox, tickets.require(ACME, "t1"))

    assert tickets.require(ACME, "t1").status == "escalated"
    assert outbox.get(ACME, "o1").status == "pending"
    report = container.audit.verify(ACME, "t1")
    assert report.ok and report.events == 1


def test_a_failed_guard_on_one_item_cancels_the_whole_transaction(world):
    container, tickets, outbox, _ = world
    read = tickets.require(ACME, "t1")
    # Someone else changes the ticket after we read it.
    save(container.store, ACME, [tickets.save_write(read.model_copy(update={"status": "triaging"}))])

    with pytest.raises(Conflict):
        _escalate(container, tickets, outbox, read)

    assert tickets.require(ACME, "t1").status == "triaging"
    assert outbox.get(ACME, "o1") is None
    assert container.audit.entries(ACME, "t1") == []
    assert container.audit.verify(ACME, "t1").ok


def test_a_concurrent_audit_append_moves_ours_to_the_next_seq(world, moto_stack):
    container, tickets, outbox, _ = world
    other_writer = moto_stack.container()
    raced = []

    def someone_else_first(request: Any, **_: Any) -> None:
        # Between our read of the chain's tail and our transaction, another writer appends.
        if not raced:
            raced.append(True)
            other_writer.audit.append(ACME, "t1", "note.added", {"by": "someone else"})

    _fail_transactions(container, someone_else_first)

    _escalate(container, tickets, outbox, tickets.require(ACME, "t1"))

    entries = container.audit.entries(ACME, "t1")
    assert [(e.seq, e.type) for e in entries] == [(0, "note.added"), (1, "ticket.escalated")]
    assert container.audit.verify(ACME, "t1").ok
    assert tickets.require(ACME, "t1").status == "escalated"
    assert container.store.get(ACME, keys.audit_pk("acme", "t1"), f"SEQ#{1:010d}") is not None


def test_an_item_over_the_size_limit_is_payload_too_large_not_a_crash(world):
    """DynamoDB refuses items over 400 KB with a plain ValidationException: no retry can fix it."""
    container, *_ = world
    big = Put(pk="T#acme#TICKET#t1", sk="NOTE#1", data={"text": "x" * 500_000})

    with pytest.raises(PayloadTooLarge):
        container.store.put(ACME, big)
    with pytest.raises(PayloadTooLarge):
        container.store.transact(ACME, [big])

    assert container.store.get(ACME, big.pk, big.sk) is None


def test_an_oversized_item_cancelling_a_transaction_is_payload_too_large_not_a_conflict(world):
    """In a transaction AWS may report the oversized item as a ValidationError cancellation reason: that is no
    conflict to re-read and retry (the audit append would retry it, and intake answer 429 for ever)."""
    container, tickets, outbox, _ = world

    def oversized(request: Any, **_: Any) -> None:
        # Raised, not returned: every before-send hook runs, so moto would apply the transaction behind an answer.
        reasons = [{"Code": "ValidationError", "Message": "Item size has exceeded the maximum allowed size"}]
        raise ClientError(
            {
                "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
                "CancellationReasons": [*reasons, {"Code": "None"}, {"Code": "None"}],
                "ResponseMetadata": {"HTTPStatusCode": 400},
            },
            "TransactWriteItems",
        )

    _fail_transactions(container, oversized)

    with pytest.raises(PayloadTooLarge):
        _escalate(container, tickets, outbox, tickets.require(ACME, "t1"))

    _nothing_half_written(container, tickets, outbox)
