"""The customer's recent contacts, so a repeat contact about the same problem raises severity and never gets
the same answer again.

Each triaged message leaves a small record under the customer's partition (`T#{t}#CUST#{id}` /
`CONTACT#{at}#{decision}`), written in the decision's transaction: labels and article ids only, no text.
Messages without a known customer still see their own ticket's earlier decisions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from deflect.domain import keys
from deflect.domain.models import Decision, DecisionOutcome
from deflect.domain.tenancy import TenantContext
from deflect.ports import Put, SupportStore
from deflect.triage.intents import OUT_OF_SCOPE, UNCLASSIFIED

CONTACT_PREFIX = "CONTACT#"
CONTACT_TTL_DAYS = 400
GENERIC_INTENTS = frozenset({OUT_OF_SCOPE, UNCLASSIFIED, "how_to", "feedback", "unknown"})


class ContactRecord(BaseModel):
    ticket_id: str
    message_id: str = ""
    decision_id: str
    intent: str
    product_area: str = "general"
    outcome: DecisionOutcome
    # Articles the customer was sent (or would have been, in shadow mode): "article_id".
    cited: list[str] = Field(default_factory=list)
    sent: bool = False
    at: datetime

    @classmethod
    def from_decision(cls, decision: Decision, message_id: str, *, sent: bool | None = None) -> ContactRecord:
        """`sent`: whether the customer (or an agent, in assist mode) got the answer; shadow mode sends nothing."""
        c = decision.classification
        return cls(
            ticket_id=decision.ticket_id,
            message_id=message_id,
            decision_id=decision.decision_id,
            intent=c.intent if c else UNCLASSIFIED,
            product_area=c.product_area if c else "general",
            outcome=decision.outcome,
            cited=sorted({x.article_id for x in decision.draft.citations}) if decision.draft else [],
            sent=decision.rollout_mode != "shadow" if sent is None else sent,
            at=decision.decided_at,
        )


class ContactHistory:
    def __init__(self, store: SupportStore) -> None:
        self.store = store

    @staticmethod
    def write(tenant_id: str, customer_id: str, record: ContactRecord) -> Put:
        return Put(
            pk=keys.customer_pk(tenant_id, customer_id),
            sk=f"{CONTACT_PREFIX}{record.at.isoformat()}#{record.decision_id}",
            data=record.model_dump(mode="json"),
            expect="new",
            ttl_epoch=int((record.at + timedelta(days=CONTACT_TTL_DAYS)).timestamp()),
        )

    def recent(
        self,
        ctx: TenantContext,
        *,
        customer_id: str | None,
        ticket_decisions: Iterable[Decision] = (),
        now: datetime,
        window_days: int,
        limit: int = 25,
    ) -> list[ContactRecord]:
        since = now - timedelta(days=window_days)
        records: dict[str, ContactRecord] = {}
        if customer_id:
            for item in self.store.query(
                ctx,
                keys.customer_pk(ctx.tenant_id, customer_id),
                CONTACT_PREFIX,
                limit=limit,
                newest_first=True,
            ):
                record = ContactRecord.model_validate(item.data)
                records[record.decision_id] = record
        for decision in ticket_decisions:
            # Records written by this ticket's decisions are complete already; older decisions fill gaps.
            if decision.decision_id not in records:
                records[decision.decision_id] = ContactRecord.from_decision(decision, "")
        return sorted((r for r in records.values() if r.at >= since), key=lambda r: r.at, reverse=True)


class RepeatAssessment(BaseModel):
    repeat: bool = False
    same_answer: bool = False
    previous_decisions: list[str] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)


def assess(
    history: Sequence[ContactRecord], *, ticket_id: str, intent: str, cited_articles: Iterable[str]
) -> RepeatAssessment:
    """A repeat contact: the same ticket again after an AI answer, or the same (specific) intent again, or a
    question the customer was already answered with the same articles. The same answer is never sent twice."""
    cited = set(cited_articles)
    result = RepeatAssessment()
    for record in history:
        reasons = []
        if not record.sent and record.ticket_id != ticket_id:
            continue  # nothing reached this customer: shadow mode
        if record.ticket_id == ticket_id and record.sent and record.outcome in ("deflect", "ask_diagnostics"):
            reasons.append("same_ticket_follow_up")
        if intent not in GENERIC_INTENTS and record.intent == intent:
            reasons.append("same_intent")
        overlap = cited.intersection(record.cited)
        if overlap and record.outcome == "deflect" and record.sent:
            reasons.append("same_articles")
            result.same_answer = True
        if reasons:
            result.repeat = True
            result.previous_decisions.append(record.decision_id)
            result.reasons.extend(r for r in reasons if r not in result.reasons)
    return result
