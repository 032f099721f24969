"""What a person's side of an escalation sent a conversation's customer, as `GET /v1/conversations/{id}` shows it.

An escalation reaches the customer as at most two public messages, each queued by one step of the escalation
(deflect.escalation.steps) and delivered by writeback like any other (the conversation API itself is their channel
when the tenant has no `generic-writeback` connection, deflect.helpdesk.conversation_channel): the acknowledgement
("a person will follow up, by then"), and the reply the person decided. The conversation shows each only once
writeback delivered it: never while it is queued, never when writeback held it back (a quoted article changed, the
rollout kill switch). Only those items are read, by the ids their escalation gives them: nothing of the internal
note, the summary or the evidence, nor the AI's proposal when the agent replaced or rejected it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from deflect.domain.models import Citation, Decision, OutboxItem
from deflect.domain.tenancy import TenantContext
from deflect.escalation.records import step_key
from deflect.escalation.start import execution_name_for
from deflect.helpdesk.conversation_channel import (
    acknowledgement_id,
    agents_reply_id,
    shown_by_conversation_api,
)
from deflect.ports import SupportStore
from deflect.repositories import Outbox

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
class Acknowledgement:
    text: str
    sent_at: datetime


def agent_reply(
    store: SupportStore, ctx: TenantContext, conversation_id: str, decision: Decision
) -> AgentReply | None:
    """The reply a person decided after `decision` escalated the conversation; None while nobody has decided, when
    the decision sends no reply (a rejection without one), or when no escalation followed the decision."""
    item = _escalation_item(store, ctx, conversation_id, decision, "writeback", agents_reply_id)
    if item is None:
        return None
    if _held_back(item):
        return AgentReply("held_back")
    if item.status != "done":
        return AgentReply("on_its_way")
    return AgentReply("delivered", item.body, item.updated_at, list(item.citations or []))


def acknowledgement(
    store: SupportStore, ctx: TenantContext, conversation_id: str, decision: Decision
) -> Acknowledgement | None:
    """The "a person will follow up" the escalation that followed `decision` sent, once writeback delivered it; None
    before, when it was held back (the tenant switched to shadow), or when none was queued (shadow mode)."""
    item = _escalation_item(store, ctx, conversation_id, decision, "acknowledged", acknowledgement_id)
    if item is None or item.status != "done" or _held_back(item) or not item.body:
        return None
    return Acknowledgement(item.body, item.updated_at)


def _escalation_item(
    store: SupportStore,
    ctx: TenantContext,
    conversation_id: str,
    decision: Decision,
    step: str,
    outbox_id_of: Callable[[str], str],
) -> OutboxItem | None:
    """The public message `step` of the escalation `decision` started queued for the customer; None when the step
    has not run, queued none, or the item is not one the conversation API shows."""
    if decision.outcome != "escalate" or decision.ticket_id != conversation_id:
        return None
    execution = execution_name_for(ctx.tenant_id, conversation_id, decision.decision_id)
    done = store.get(ctx, *step_key(ctx.tenant_id, conversation_id, execution, step))
    outbox_id = outbox_id_of(execution)
    if done is None or outbox_id not in (done.data.get("result") or {}).get("outbox_ids", []):
        return None
    item = Outbox(store).get(ctx, outbox_id)
    if item is None or item.ticket_id != conversation_id or not shown_by_conversation_api(item):
        return None
    return item


def _held_back(item: OutboxItem) -> bool:
    return item.status == "conflict" or bool((item.receipt or {}).get("suppressed"))
