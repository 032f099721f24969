"""What a conversation's customer was sent, as `GET /v1/conversations/{id}` shows it.

Triage's reply reaches the customer in the answer to their POST or through writeback. An escalation reaches the customer as at most two public messages, each queued by one step of the escalation
(deflect.escalation.steps) and delivered by writeback like any other (the conversation API itself is their channel
when the tenant has no `generic-writeback` connection, deflect.helpdesk.conversation_channel): the acknowledgement
("a person will follow up, by then"), and the reply the person decided. The conversation shows each only once
writeback delivered it: never while it is queued, never when writeback held it back (a quoted article changed, the
rollout kill switch). Only those items are read, by the ids their escalation gives them: nothing of the internal
note, the summary or the evidence, nor the AI's proposal when the agent replaced or rejected it.

`sent_replies` lists everything the customer was sent over the whole conversation, for every triage decision and
not only the latest: triage's reply, and each escalation's acknowledgement and person's reply. A customer who
writes again does not lose an answer sent earlier, nor one delivered after the follow-up was decided. They are
found from the conversation's own records (each decision's `TRIAGED#` marker, each escalation's step records),
never by a Scan.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from deflect.domain import keys
from deflect.domain.models import Citation, Decision, OutboxItem
from deflect.domain.tenancy import TenantContext
from deflect.escalation.records import outbox_id_for, step_key
from deflect.escalation.start import execution_name_for
from deflect.helpdesk.conversation_channel import (
    NOT_SHOWN,
    shown_by_conversation_api,
)
from deflect.ports import SupportStore
from deflect.repositories import Outbox
from deflect.triage.service import MARKER_PREFIX

# Writeback has recorded the reply's effect / has yet to (queued, being sent, retrying, dead until replayed) / has
# held it back for good (the item's held note went to agents instead).
Delivery = Literal["delivered", "on_its_way", "held_back"]


@dataclass(frozen=True)
class AgentReply:
    delivery: Delivery
    text: str | None = None  # only once delivered
    delivered_at: datetime | None = None
    # The articles it quotes: only a proposal approved unchanged quotes any (writeback checked them before sending).
    citations: list[Citation] = field(default_factory=list)


@dataclass(frozen=True)
class SentReply:
    """One message the customer was sent: by `triage` (its reply, or an escalation's "a person will follow up")
    or by an `agent` (the reply a person decided). `decision_id` is the triage decision it follows."""

    outbox_id: str
    author: Literal["triage", "agent"]
    text: str
    sent_at: datetime
    decision_id: str


def agent_reply(
    store: SupportStore, ctx: TenantContext, conversation_id: str, decision: Decision
) -> AgentReply | None:
    """The reply a person decided after `decision` escalated the conversation; None while nobody has decided, when
    the decision sends no reply (a rejection without one), or when no escalation followed the decision."""
    item = _escalation_item(store, ctx, conversation_id, decision, "writeback")
    if item is None:
        return None
    if _held_back(item):
        return AgentReply("held_back")
    if item.status != "done":
        return AgentReply("on_its_way")
    return AgentReply("delivered", item.body, item.updated_at, list(item.citations or []))


def sent_replies(
    store: SupportStore,
    ctx: TenantContext,
    conversation_id: str,
    decisions: Sequence[Decision],
    handed_over: Collection[str] = (),
) -> list[SentReply]:
    """Every reply the conversation's customer was sent, oldest first, each once (an item delivered again is one
    item). `handed_over` names the decisions whose reply the answer to the customer's POST carried."""
    found: dict[str, SentReply] = {}
    for decision in decisions:
        sent = [triage_reply(store, ctx, conversation_id, decision, decision.decision_id in handed_over)]
        sent.append(_escalation_reply(store, ctx, conversation_id, decision, "acknowledged"))
        sent.append(_escalation_reply(store, ctx, conversation_id, decision, "writeback"))
        for reply in sent:
            if reply is not None:
                found.setdefault(reply.outbox_id, reply)
    return sorted(found.values(), key=lambda r: r.sent_at)


def triage_reply(
    store: SupportStore, ctx: TenantContext, conversation_id: str, decision: Decision, handed_over: bool
) -> SentReply | None:
    """Triage's reply to the message `decision` is about, once the customer has it: writeback delivered it, or the
    answer to their POST carried it. Never when writeback held it back (then it is not shown at all), and never a
    note for agents."""
    if decision.outcome == "escalate" or decision.message_id is None or decision.ticket_id != conversation_id:
        return None  # an escalation's messages are its steps' (`_escalation_item`)
    pk = keys.ticket_pk(ctx.tenant_id, conversation_id)
    marker = store.get(ctx, pk, MARKER_PREFIX + decision.message_id)
    if marker is None or marker.data.get("decision_id", decision.decision_id) != decision.decision_id:
        return None  # a follow-up that joined an escalation names that escalation's decision: not its own
    for outbox_id in marker.data.get("outbox_ids") or []:
        item = Outbox(store).get(ctx, str(outbox_id))
        if item is None or item.ticket_id != conversation_id or item.caused_by != decision.decision_id:
            continue
        if not shown_by_conversation_api(item) or _held_back(item):
            continue
        if item.status == "done" or handed_over:
            # At the decision's time, as `answered_at` has it: when GET began to show it.
            return SentReply(
                item.outbox_id, "triage", str(item.body), decision.decided_at, decision.decision_id
            )
    return None


def _escalation_reply(
    store: SupportStore,
    ctx: TenantContext,
    conversation_id: str,
    decision: Decision,
    step: str,
) -> SentReply | None:
    """The acknowledgement (step `acknowledged`, written by no person) or a person's reply (step `writeback`) of the
    escalation `decision` started, once writeback delivered it."""
    item = _escalation_item(store, ctx, conversation_id, decision, step)
    if item is None or not _delivered(item):
        return None
    author = "agent" if step == "writeback" else "triage"
    return SentReply(item.outbox_id, author, str(item.body), item.updated_at, decision.decision_id)


def _delivered(item: OutboxItem) -> bool:
    return item.status == "done" and not _held_back(item) and bool(item.body)


def _escalation_item(
    store: SupportStore,
    ctx: TenantContext,
    conversation_id: str,
    decision: Decision,
    step: str,
) -> OutboxItem | None:
    """The public message `step` of the escalation `decision` started queued for the customer; None when the step
    has not run, queued none, or the item is not one the conversation API shows."""
    if decision.outcome != "escalate" or decision.ticket_id != conversation_id:
        return None
    execution = execution_name_for(ctx.tenant_id, conversation_id, decision.decision_id)
    done = store.get(ctx, *step_key(ctx.tenant_id, conversation_id, execution, step))
    # The step's public message: its id derives from the execution and step (deflect.escalation.steps).
    outbox_id = outbox_id_for(execution, step, "public_reply")
    if done is None or outbox_id not in (done.data.get("result") or {}).get("outbox_ids", []):
        return None
    item = Outbox(store).get(ctx, outbox_id)
    if item is None or item.ticket_id != conversation_id or not shown_by_conversation_api(item):
        return None
    return item


def _held_back(item: OutboxItem) -> bool:
    receipt = item.receipt or {}
    not_shown = receipt.get("effects") == [NOT_SHOWN]
    return item.status == "conflict" or bool(receipt.get("suppressed")) or not_shown
