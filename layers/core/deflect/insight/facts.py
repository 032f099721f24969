"""Analytics facts: one small, label-only item per audit event, filed under the tenant's day.

`T#{tenant}#DAY#{yyyy-mm-dd}` / `FACT#{at}#{ticket}#{seq}` lets analytics read a tenant's date range with one
Query per day (never a table-wide read). A fact is a projection of an audit event: re-recording the same event
overwrites the same item, so replaying a chain (`deflect report --rebuild-facts`) is safe. Facts carry no
personal data (labels, numbers and ids only), so erasure never needs to touch them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from difflib import SequenceMatcher
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deflect.domain import keys
from deflect.domain.models import AuditEvent
from deflect.domain.tenancy import TenantContext
from deflect.insight.events import canonical, stage_of
from deflect.ports import Put, SupportStore

FACT_RETENTION_DAYS = 400  # a year of trends plus a margin; facts hold no personal data


class Fact(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticket_id: str
    seq: int
    type: str
    stage: str
    at: datetime
    actor_kind: str = "system"
    # decision / classification labels
    outcome: str | None = None
    reasons: list[str] = Field(default_factory=list)
    rollout_mode: str | None = None
    intent: str | None = None
    intent_confidence: float | None = None
    out_of_scope: bool | None = None
    product_area: str | None = None
    severity: str | None = None
    sensitive_flags: list[str] = Field(default_factory=list)
    action_kind: str | None = None
    wants_human: bool | None = None
    confidence: float | None = None
    grounded: bool | None = None
    retrieved: int | None = None
    # intake
    provider: str | None = None
    channel: str | None = None
    sla_tier: str | None = None
    # tasks and agents
    task_id: str | None = None
    queue: str | None = None
    reason: str | None = None
    edit_distance: int | None = None
    edit_ratio: float | None = None
    agent_action: str | None = None
    public: bool | None = None
    corrected_fields: list[str] = Field(default_factory=list)
    # writeback and the outbox items an event created
    outbox_id: str | None = None
    outbox_ids: list[str] = Field(default_factory=list)
    kind: str | None = None
    purpose: str | None = None
    result: str | None = None


def day_pk(tenant_id: str, day: date) -> str:
    return f"{keys.tenant_pk(tenant_id)}#DAY#{day.isoformat()}"


def days(first: date, last: date) -> Iterator[date]:
    current = first
    while current <= last:
        yield current
        current += timedelta(days=1)


def actor_kind(actor: str) -> str:
    head = actor.split(":", 1)[0].lower()
    if head in {"agent", "approver", "supervisor", "admin"}:
        return "agent"
    if head in {"customer", "webhook", "api_key", "requester"}:
        return "customer"
    if head in {"ai", "triage", "model"}:
        return "ai"
    return "system"


_WRITEBACK_RESULT = {
    "writeback.delivered": "success",
    "writeback.conflict": "conflict",
    "writeback.dead": "failure",
}


def edit_distance(before: str, after: str) -> int:
    """Characters inserted plus deleted to turn `before` into `after` (an indel edit distance)."""
    matched = sum(
        block.size for block in SequenceMatcher(None, before, after, autojunk=False).get_matching_blocks()
    )
    return len(before) + len(after) - 2 * matched


def _edit_size(payload: dict[str, Any]) -> int | None:
    """Edit distance of the agent's reply against the AI draft: stated, or measured on the recorded diff."""
    if payload.get("edit_distance") is not None:
        return int(payload["edit_distance"])
    diff = payload.get("diff") if isinstance(payload.get("diff"), dict) else {}
    lines = diff.get("reply")
    if isinstance(lines, list) and lines:
        removed = "\n".join(line[1:] for line in lines if line.startswith("-") and not line.startswith("---"))
        added = "\n".join(line[1:] for line in lines if line.startswith("+") and not line.startswith("+++"))
        return edit_distance(removed, added)
    return 0 if payload.get("outcome") == "approve" else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def project(event: AuditEvent) -> Fact:
    """The labels analytics needs from one event; unknown payload fields are ignored, never copied."""
    p: dict[str, Any] = event.payload or {}
    type_name = canonical(event.type)
    classification = _dict(p.get("classification"))
    action = _dict(p.get("action")) or _dict(classification.get("requested_action"))
    retrieved = p.get("retrieved")
    outcome = p.get("outcome")
    return Fact(
        ticket_id=event.ticket_id,
        seq=event.seq,
        type=type_name,
        stage=stage_of(type_name),
        at=event.at,
        actor_kind=actor_kind(event.actor),
        outcome=str(outcome) if outcome is not None else None,
        reasons=[str(r) for r in p.get("reasons") or []][:10],
        rollout_mode=p.get("rollout_mode"),
        intent=classification.get("intent"),
        intent_confidence=classification.get("intent_confidence"),
        out_of_scope=classification.get("out_of_scope"),
        product_area=classification.get("product_area") or p.get("product_area"),
        severity=classification.get("severity"),
        sensitive_flags=list(classification.get("sensitive_flags") or []),
        action_kind=p.get("action_kind") or action.get("kind"),
        wants_human=classification.get("wants_human"),
        confidence=p.get("confidence"),
        grounded=p.get("grounded"),
        retrieved=len(retrieved) if isinstance(retrieved, list) else None,
        provider=p.get("provider"),
        channel=p.get("channel"),
        sla_tier=p.get("sla_tier"),
        task_id=p.get("task_id"),
        queue=p.get("queue") or p.get("to"),
        reason=p.get("reason"),
        edit_distance=_edit_size(p) if type_name == "task.decided" else None,
        edit_ratio=p.get("edit_ratio")
        if p.get("edit_ratio") is not None or type_name != "task.decided" or p.get("outcome") != "approve"
        else 0.0,
        agent_action=p.get("action") if type_name == "agent.replied" else None,
        public=p.get("public"),
        corrected_fields=[str(f) for f in p.get("corrected_fields") or []],
        outbox_id=p.get("outbox_id"),
        outbox_ids=[str(i) for i in p.get("outbox_ids") or []],
        kind=p.get("kind"),
        purpose=p.get("purpose"),
        result=_WRITEBACK_RESULT.get(type_name),
    )


class FactStore:
    def __init__(self, store: SupportStore) -> None:
        self.store = store

    @staticmethod
    def write(tenant_id: str, fact: Fact) -> Put:
        at = fact.at.astimezone(UTC)
        return Put(
            pk=day_pk(tenant_id, at.date()),
            sk=f"FACT#{at.isoformat()}#{fact.ticket_id}#{fact.seq:010d}",
            data=fact.model_dump(mode="json", exclude_none=True),
            expect="any",
            ttl_epoch=int((at + timedelta(days=FACT_RETENTION_DAYS)).timestamp()),
        )

    def record(self, ctx: TenantContext, event: AuditEvent) -> Fact:
        fact = project(event)
        self.store.put(ctx, self.write(ctx.tenant_id, fact))
        return fact

    def between(self, ctx: TenantContext, first: date, last: date) -> list[Fact]:
        found: list[Fact] = []
        for day in days(first, last):
            found += [
                Fact.model_validate(i.data)
                for i in self.store.query(ctx, day_pk(ctx.tenant_id, day), "FACT#")
            ]
        return found
