"""The transactional outbox: an externally visible effect is recorded in the SAME transaction as the decision
that causes it, and only then handed to the writeback function.

Producers (triage, escalation) do:

    items = [outbox.reply(ticket, text, caused_by=decision.decision_id, tags=["deflected"])]
    audit.append(ctx, ticket.ticket_id, "decision", payload, writes=[ticket_put, *outbox.writes(items)])
    outbox.enqueue(writeback_queue, ctx, items)   # after the commit; a lost enqueue is relayed by the table stream

The writeback function dispatches from the SQS queue (`enqueue` after commit); the SupportTable stream
(`ref_from_stream_record`) relays each newly pending item to that queue as well, so a commit whose enqueue was
lost still goes out. Both send the item's delivery id (outbox id + the revision that made it pending), so the
FIFO queue keeps one of the two copies; a replay is a new revision, so it is a new message. Messages are grouped
by ticket: one ticket's effects go out in the order they were queued. Dispatch is exactly-once per outbox id
however many messages arrive.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from deflect.domain import keys
from deflect.domain.errors import InvalidTenant
from deflect.domain.models import (
    Citation,
    DecisionPolicy,
    OutboxItem,
    OutboxKind,
    RequestedAction,
    RolloutMode,
    Ticket,
)
from deflect.domain.tenancy import TenantContext, TenantId
from deflect.ports import Put, WorkQueue
from deflect.repositories import Outbox, put_versioned
from deflect.triage import policy as triage_policy

# Kinds that change what a human may also be editing: they carry the helpdesk version the decision saw.
OVERWRITING_KINDS: frozenset[str] = frozenset({"public_reply", "tags", "status", "custom_fields"})


class OutboxRef(BaseModel):
    """What travels on the queue: only ids. The item itself is read from DynamoDB, the source of truth."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    tenant_id: TenantId
    outbox_id: str
    # The queue's message group (the ticket) and, with the outbox id, its deduplication id (the revision). A queue
    # message carries the ticket only: what it is read back for, dispatch, needs neither.
    ticket_id: str | None = None
    revision: str | None = None

    @property
    def delivery_id(self) -> str:
        return f"{self.outbox_id}@{self.revision or ''}"


def revision(updated_at: datetime) -> str:
    """When the item was last written: the same for the item a producer holds and for its stream image."""
    return updated_at.astimezone(UTC).isoformat(timespec="microseconds")


def ref(item: OutboxItem) -> OutboxRef:
    return OutboxRef(
        tenant_id=item.tenant_id,
        outbox_id=item.outbox_id,
        ticket_id=item.ticket_id,
        revision=revision(item.updated_at),
    )


def new_item(
    ticket: Ticket,
    kind: OutboxKind,
    *,
    body: str | None = None,
    tags: Sequence[str] = (),
    status_value: str | None = None,
    custom_fields: Mapping[str, Any] | None = None,
    action: RequestedAction | None = None,
    caused_by: str | None = None,
    intent: str | None = None,
    rollout_mode: RolloutMode | None = None,
    intent_uncertain: bool = False,
    citations: Sequence[Citation] = (),
) -> OutboxItem:
    """One outbox item for one ticket. The helpdesk version the decision saw comes from the ticket, so the
    writeback can tell a newer human edit from its own. An AI-caused item also names its intent and the rollout
    mode it was decided under, which writeback checks against the tenant's policy again before sending; a reply
    with AI-written text names the article passages it quotes (`citations`), which writeback checks again too."""
    if kind in ("public_reply", "internal_note") and not (body and body.strip()):
        raise ValueError(f"a {kind} needs a body")
    if kind == "account_action" and (action is None or action.kind == "none"):
        raise ValueError("an account action needs the approved action")
    return OutboxItem(
        tenant_id=ticket.tenant_id,
        ticket_id=ticket.ticket_id,
        provider=ticket.provider,
        external_ticket_id=ticket.external_id,
        kind=kind,
        body=body,
        tags=list(tags),
        status_value=status_value,
        custom_fields=dict(custom_fields or {}),
        action=action,
        caused_by=caused_by,
        expected_external_updated_at=ticket.external_updated_at if kind in OVERWRITING_KINDS else None,
        intent=intent,
        rollout_mode=rollout_mode,
        intent_uncertain=intent_uncertain,
        citations=list(citations),
    )


def citing(items: Iterable[OutboxItem], citations: Sequence[Citation]) -> list[OutboxItem]:
    """`items` with their public replies carrying `citations`: for a reply that sends the AI's text as drafted
    (an escalation's proposal approved unchanged), whose quoted articles writeback checks again before sending."""
    return [
        item.model_copy(update={"citations": list(citations)}) if item.kind == "public_reply" else item
        for item in items
    ]


def reply(ticket: Ticket, text: str, *, public: bool = True, **extra: Any) -> OutboxItem:
    """A public reply (or an internal note), optionally with tags / status / custom fields in the same update."""
    return new_item(ticket, "public_reply" if public else "internal_note", body=text, **extra)


def mode_now(
    policy: DecisionPolicy, decided: RolloutMode, intent: str | None, *, intent_uncertain: bool = False
) -> RolloutMode:
    """The rollout mode an AI effect decided under `decided` may go out under now: the stricter of that and the
    mode triage would give it under the tenant's current policy. A later check only tightens: a note for agents
    is never turned into a public reply after the fact."""
    return triage_policy.stricter(
        decided, triage_policy.effective_mode(policy, intent, uncertain=intent_uncertain)
    )


def writes(items: Iterable[OutboxItem]) -> list[Put]:
    """Put writes (expect new) to add to the transaction of the state change that causes these effects."""
    return [
        put_versioned(keys.outbox_pk(i.tenant_id, i.outbox_id), "META", i, **Outbox.status_index(i))
        for i in items
    ]


def message(item: OutboxItem) -> dict[str, Any]:
    return {"outbox_id": item.outbox_id, "ticket_id": item.ticket_id}


def enqueue(queue: WorkQueue, ctx: TenantContext, items: Iterable[OutboxItem]) -> list[str]:
    """Hand committed items to the writeback queue. Call only after the transaction succeeded."""
    return [send(queue, ctx, ref(item)) for item in items if item.tenant_id == ctx.tenant_id]


def send(queue: WorkQueue, ctx: TenantContext, item: OutboxRef) -> str:
    """One message for one pending item, in its ticket's group, deduplicated on its delivery id."""
    return queue.send(
        ctx,
        {"outbox_id": item.outbox_id, "ticket_id": item.ticket_id},
        dedupe_id=item.delivery_id,
        group_id=item.ticket_id,
    )


# ------------------------------------------------------------------------------------------ event parsing
def ref_from_message(body: str | Mapping[str, Any]) -> OutboxRef:
    """An SQS message body (as written by `enqueue`) → ref. Raises ValueError on anything else."""
    try:
        data = json.loads(body) if isinstance(body, str) else dict(body)
        return OutboxRef.model_validate(data)
    except (ValueError, ValidationError, InvalidTenant) as error:
        raise ValueError("not an outbox message") from error


def ref_from_stream_record(record: Mapping[str, Any]) -> OutboxRef | None:
    """A SupportTable stream record → ref, for outbox items that are waiting to be dispatched; None otherwise.

    Only `pending` items: writeback's own status updates (dispatching, done, ...) also flow through the
    stream and must not dispatch again. A replay sets an item back to pending, so it dispatches once more.
    """
    if record.get("eventName") not in ("INSERT", "MODIFY"):
        return None
    image = (record.get("dynamodb") or {}).get("NewImage") or {}
    pk = (image.get("PK") or {}).get("S", "")
    sk = (image.get("SK") or {}).get("S", "")
    if sk != "META" or "#OUTBOX#" not in pk:
        return None
    try:
        data = json.loads((image.get("data") or {}).get("S", "{}"))
    except ValueError:
        return None
    if data.get("status") != "pending":
        return None
    try:
        updated_at = datetime.fromisoformat(str(data["updated_at"]))
    except (KeyError, ValueError):
        updated_at = None
    try:
        return OutboxRef(
            tenant_id=pk[2:].split("#OUTBOX#", 1)[0],
            outbox_id=data.get("outbox_id", pk.rsplit("#", 1)[-1]),
            ticket_id=data.get("ticket_id"),
            revision=revision(updated_at) if updated_at else None,
        )
    except (ValidationError, InvalidTenant):
        return None


def refs_from_stream(event: Mapping[str, Any]) -> list[OutboxRef]:
    return [ref for ref in (ref_from_stream_record(r) for r in event.get("Records") or []) if ref is not None]
