"""Versioned domain events for other systems (product, billing, analytics), published on EventBridge.

Each detail type carries its major version in its name (`TicketTriaged.v1`): a breaking change publishes
`.v2` next to `.v1` until subscribers move, so nobody's rule breaks on a deploy. Details carry labels and ids
only — never personal data — and `event_id` is the audit event's hash: EventBridge delivers at least once, so
subscribers dedupe on it. The JSON Schemas in docs/events/ are generated from these models
(`python -m deflect.insight.domain_events docs/events`); a test keeps them in step.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from deflect.domain.models import AuditEvent
from deflect.insight import metrics
from deflect.insight.events import canonical
from deflect.insight.facts import actor_kind, project

SOURCE = "deflect"


class EventDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    event_id: str = Field(
        description="`{audit event hash}:{detail type}`; stable across redeliveries (dedupe on it)"
    )
    tenant_id: str
    ticket_id: str
    occurred_at: datetime
    actor_kind: Literal["customer", "ai", "agent", "system"]
    audit_seq: int = Field(description="position in the ticket's audit chain")
    audit_type: str


class MessageReceivedV1(EventDetail):
    """A customer message was accepted (verified, deduplicated, stored as evidence)."""

    provider: str | None = None
    channel: str | None = None
    new_ticket: bool | None = None
    sla_tier: str | None = None


class TicketTriagedV1(EventDetail):
    """Triage decided: deflect, ask for diagnostics or escalate (in shadow mode nothing was sent)."""

    decision_id: str | None = None
    outcome: Literal["deflect", "ask_diagnostics", "escalate"] | None = None
    reasons: list[str] = Field(default_factory=list)
    rollout_mode: Literal["shadow", "assist", "auto"] | None = None
    intent: str | None = None
    intent_confidence: float | None = None
    product_area: str | None = None
    severity: str | None = None
    sensitive_flags: list[str] = Field(default_factory=list)
    action_kind: str | None = None
    confidence: float | None = None
    policy_version: int | None = None
    model_id: str | None = None


class TicketEscalatedV1(EventDetail):
    """Triage decided a human must take over (an escalation workflow starts for it)."""

    decision_id: str | None = None
    reason: str = Field(
        description="one bounded reason: " + ", ".join(sorted(metrics.DIMENSION_VALUES["reason"]))
    )
    reasons: list[str] = Field(default_factory=list)
    rollout_mode: Literal["shadow", "assist", "auto"] | None = None
    product_area: str | None = None
    severity: str | None = None


class TaskDecidedV1(EventDetail):
    """An agent decided an escalated task."""

    task_id: str | None = None
    outcome: Literal["approve", "edit", "reject", "reassign"] | None = None
    action_kind: str | None = None
    edit_distance: int | None = None


class TicketWrittenBackV1(EventDetail):
    """An outbox item reached (or could not reach) the helpdesk or CRM."""

    outbox_id: str | None = None
    kind: str | None = None
    provider: str | None = None
    purpose: str | None = None
    result: Literal["success", "conflict", "failure"]


DETAIL_TYPES: dict[str, type[EventDetail]] = {
    "MessageReceived.v1": MessageReceivedV1,
    "TicketTriaged.v1": TicketTriagedV1,
    "TicketEscalated.v1": TicketEscalatedV1,
    "TaskDecided.v1": TaskDecidedV1,
    "TicketWrittenBack.v1": TicketWrittenBackV1,
}
PUBLISHED: dict[str, tuple[str, ...]] = {
    "message.received": ("MessageReceived.v1",),
    "decision.made": ("TicketTriaged.v1", "TicketEscalated.v1"),
    "task.decided": ("TaskDecided.v1",),
    "writeback.delivered": ("TicketWrittenBack.v1",),
    "writeback.conflict": ("TicketWrittenBack.v1",),
    "writeback.dead": ("TicketWrittenBack.v1",),
}


@dataclass(frozen=True)
class DomainEvent:
    detail_type: str
    detail: EventDetail

    @property
    def tenant_id(self) -> str:
        return self.detail.tenant_id


def from_audit(event: AuditEvent) -> list[DomainEvent]:
    """The published form of an audit event (none for events other systems do not get)."""
    fact = project(event)
    p = event.payload
    found = []
    for detail_type in PUBLISHED.get(canonical(event.type), ()):
        model = DETAIL_TYPES[detail_type]
        if model is TicketEscalatedV1 and not escalation_started(fact, p):
            continue
        common: dict[str, Any] = {
            "event_id": f"{event.hash}:{detail_type}",
            "tenant_id": event.tenant_id,
            "ticket_id": event.ticket_id,
            "occurred_at": event.at,
            "actor_kind": actor_kind(event.actor),
            "audit_seq": event.seq,
            "audit_type": event.type,
        }
        found.append(DomainEvent(detail_type, model.model_validate({**common, **_fields(model, fact, p)})))
    return found


def escalation_started(fact: Any, payload: dict[str, Any]) -> bool:
    """Whether a decision handed the ticket to a person: an escalate decision in shadow mode starts nothing.
    Events recorded before the decision said so (`escalate`) tell by their rollout mode."""
    if fact.outcome != "escalate":
        return False
    started = payload.get("escalate")
    return bool(started) if isinstance(started, bool) else fact.rollout_mode != "shadow"


def _fields(model: type[EventDetail], fact: Any, p: dict[str, Any]) -> dict[str, Any]:
    if model is MessageReceivedV1:
        return {
            "provider": fact.provider,
            "channel": fact.channel,
            "new_ticket": p.get("new_ticket"),
            "sla_tier": fact.sla_tier,
        }
    if model is TicketTriagedV1:
        return {
            "decision_id": p.get("decision_id"),
            "outcome": fact.outcome,
            "reasons": fact.reasons,
            "rollout_mode": fact.rollout_mode,
            "intent": fact.intent,
            "intent_confidence": fact.intent_confidence,
            "product_area": fact.product_area,
            "severity": fact.severity,
            "sensitive_flags": fact.sensitive_flags,
            "action_kind": fact.action_kind,
            "confidence": fact.confidence,
            "policy_version": p.get("policy_version"),
            "model_id": p.get("model_id"),
        }
    if model is TicketEscalatedV1:
        reason = metrics.escalation_reason(
            fact.reasons, fact.sensitive_flags, fact.action_kind or "none", bool(fact.wants_human)
        )
        return {
            "decision_id": p.get("decision_id"),
            "reason": reason,
            "reasons": fact.reasons,
            "rollout_mode": fact.rollout_mode,
            "product_area": fact.product_area,
            "severity": fact.severity,
        }
    if model is TaskDecidedV1:
        return {
            "task_id": fact.task_id,
            "outcome": fact.outcome,
            "action_kind": fact.action_kind,
            "edit_distance": fact.edit_distance,
        }
    return {
        "outbox_id": fact.outbox_id,
        "kind": fact.kind,
        "provider": fact.provider,
        "purpose": fact.purpose,
        "result": fact.result,
    }


def schemas() -> dict[str, dict[str, Any]]:
    found = {}
    for detail_type, model in DETAIL_TYPES.items():
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"urn:deflect:events:{detail_type}"
        schema["x-eventbridge"] = {"source": SOURCE, "detail-type": detail_type}
        found[detail_type] = schema
    return found


def write_schemas(directory: str | Path) -> list[Path]:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for detail_type, schema in schemas().items():
        path = out / f"{detail_type}.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_schemas(sys.argv[1] if len(sys.argv) > 1 else "docs/events"):
        print(written_path)
