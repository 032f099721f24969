"""The reply a person sent a conversation's customer after an escalation, as `GET /v1/conversations/{id}` shows it.

An escalation's decision reaches the customer as one public reply, queued by the escalation's writeback step
(deflect.escalation.steps) and delivered by writeback like any other (the conversation API itself is its channel
when the tenant has no `generic-writeback` connection, deflect.helpdesk.conversation_channel). The conversation shows
it only once writeback delivered it: never while it is queued, never when writeback held it back (a quoted article
changed, the rollout kill switch). Only that one item is read, by the id its escalation gives it: nothing of the
internal note, the summary or the evidence, nor the AI's proposal when the agent replaced or rejected it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from deflect.domain.models import Citation, Decision
from deflect.domain.tenancy import TenantContext
from deflect.escalation.records import step_key
from deflect.escalation.start import execution_name_for
from deflect.helpdesk.conversation_channel import agents_reply_id, shown_by_conversation_api
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


def agent_reply(
    store: SupportStore, ctx: TenantContext, conversation_id: str, decision: Decision
) -> AgentReply | None:
    """The reply a person decided after `decision` escalated the conversation; None while nobody has decided, when
    the decision sends no reply (a rejection without one), or when no escalation followed the decision."""
    if decision.outcome != "escalate" or decision.ticket_id != conversation_id:
        return None
    execution = execution_name_for(ctx.tenant_id, conversation_id, decision.decision_id)
    decided = store.get(ctx, *step_key(ctx.tenant_id, conversation_id, execution, "writeback"))
    reply_id = agents_reply_id(execution)
    if decided is None or reply_id not in (decided.data.get("result") or {}).get("outbox_ids", []):
        return None
    item = Outbox(store).get(ctx, reply_id)
    if item is None or item.ticket_id != conversation_id or not shown_by_conversation_api(item):
        return None
    if item.status == "conflict" or (item.receipt or {}).get("suppressed"):
        return AgentReply("held_back")
    if item.status != "done":
        return AgentReply("on_its_way")
    return AgentReply("delivered", item.body, item.updated_at, list(item.citations or []))
