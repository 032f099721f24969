"""What flows through an escalation: the request triage starts it with, the state the workflow carries between
its steps, and the records an agent's decision leaves behind."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from deflect.domain.models import (
    ActionInput,
    AgentOutcome,
    ArticleRef,
    Citation,
    Classification,
    Decision,
    EvidenceRef,
    Record,
    RequestedAction,
    RolloutMode,
    Severity,
    Ticket,
    utcnow,
)
from deflect.domain.tenancy import TenantId

TaskRole = Literal["agent", "approver", "supervisor"]
ReviewKind = Literal["review", "second_approval"]
# Whether the workflow has a decision: "sending" while the deciding request calls back, "unconfirmed" when that
# call failed in a way that may or may not have reached it (a retry sends it again), "delivered" once it has.
Delivery = Literal["sending", "unconfirmed", "delivered"]
# Decision ids become part of a key: no separators, bounded length.
DECISION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,100}$"
MAX_REPLY_CHARS = 20_000


class EscalationRequest(BaseModel):
    """The input of an escalation execution. Triage builds it from its Decision (`from_decision`)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = 1
    tenant_id: TenantId
    ticket_id: str
    decision_id: str
    reasons: list[str] = Field(default_factory=list)
    classification: Classification
    proposed_reply: str | None = Field(default=None, max_length=MAX_REPLY_CHARS)
    proposed_action: RequestedAction = Field(default_factory=RequestedAction)
    retrieved: list[ArticleRef] = Field(default_factory=list)
    citations: list[Citation] = Field(default_factory=list)
    confidence: float | None = None
    missing_diagnostics: list[str] = Field(default_factory=list)
    sla_tier: str = "standard"
    product_area: str = "general"
    severity: Severity = "P3"
    language: str = "en"
    rollout_mode: RolloutMode = "assist"
    evidence_refs: list[EvidenceRef] = Field(default_factory=list)
    escalated_at: datetime = Field(default_factory=utcnow)
    # The customer message that escalated: the summary's problem (requests started before this field have none).
    message_id: str | None = None

    @classmethod
    def from_decision(
        cls, decision: Decision, ticket: Ticket, *, evidence: list[EvidenceRef] | None = None
    ) -> EscalationRequest:
        classification = decision.classification or Classification(intent="unknown", intent_confidence=0.0)
        refs = [decision.evidence] if decision.evidence else []
        return cls(
            tenant_id=decision.tenant_id,
            ticket_id=decision.ticket_id,
            decision_id=decision.decision_id,
            reasons=list(decision.reasons),
            classification=classification,
            proposed_reply=decision.draft.text if decision.draft else None,
            proposed_action=classification.requested_action,
            retrieved=list(decision.retrieved),
            citations=list(decision.draft.citations) if decision.draft else [],
            confidence=decision.draft.confidence if decision.draft else None,
            missing_diagnostics=list(decision.missing_diagnostics),
            sla_tier=ticket.sla_tier,
            product_area=classification.product_area,
            severity=classification.severity,
            language=classification.language or ticket.locale,
            rollout_mode=decision.rollout_mode,
            evidence_refs=[*refs, *(evidence or [])],
            escalated_at=decision.decided_at,
            message_id=decision.message_id,
        )


class ReviewRoute(BaseModel):
    """Where the human task sits now and how long the workflow waits for it (TimeoutSecondsPath)."""

    queue: str
    plan: list[str]
    hops: int = 0
    kind: ReviewKind = "review"
    required_role: TaskRole = "agent"
    approvals_required: int = 1
    skill: str = "general"
    timeout_seconds: int = Field(ge=1)
    wait_seconds: int = Field(ge=1)
    warned: bool = False
    exhausted: bool = False


class SummaryResult(BaseModel):
    ref: EvidenceRef


class AppliedDecision(BaseModel):
    next: Literal["second_approval", "writeback", "reassign"]
    task_id: str
    decision_id: str
    outcome: AgentOutcome
    route: ReviewRoute | None = None


class EscalationState(EscalationRequest):
    """The request plus what earlier steps added (each step writes one ResultPath)."""

    model_config = ConfigDict(extra="ignore")

    summary: SummaryResult | None = None
    route: ReviewRoute | None = None
    applied: AppliedDecision | None = None
    # What a Catch put at $.error ({"Error": ..., "Cause": ...}): only the failure path reads it.
    error: dict[str, Any] | None = None


StepName = Literal[
    "ping",
    "summarize",
    "route",
    "acknowledge",
    "open_human_task",
    "check_sla",
    "reassign",
    "apply_decision",
    "enqueue_writeback",
    "record_outcome",
    "note_review_expired",
    "note_failed",
]


class StepEvent(BaseModel):
    """What the state machine sends to the escalation function."""

    task: StepName
    execution: str = ""
    escalation: EscalationState | None = None
    # The task token: a secret. SecretStr keeps it out of reprs and logs.
    token: SecretStr | None = None


class DecisionRequest(BaseModel):
    """Body of POST /v1/tasks/{id}/decision. The task token is never part of it."""

    model_config = ConfigDict(extra="forbid")

    decision_id: str = Field(pattern=DECISION_ID_PATTERN)
    outcome: AgentOutcome
    reply: str | None = Field(default=None, max_length=MAX_REPLY_CHARS)
    action: RequestedAction | None = None
    note: str | None = Field(default=None, max_length=4000)

    @field_validator("action", mode="before", json_schema_input_type=ActionInput | None)
    @classmethod
    def _bounded_action(cls, value: Any) -> Any:
        """A person's action is checked as ActionInput (positive bounded amount, ISO currency code; the API schema
        shows that model); errors keep their place (`action.amount`). It is held as a plain RequestedAction, so it
        compares equal to the proposal it approves."""
        if value is None:
            return None
        return ActionInput.model_validate(value, from_attributes=True).action()


class TaskDecision(Record):
    """One applied decision on one task, stored with the task and keyed by decision_id for idempotency."""

    tenant_id: TenantId
    task_id: str
    ticket_id: str
    decision_id: str
    outcome: AgentOutcome
    actor: str
    actor_roles: list[str] = Field(default_factory=list)
    reply: str | None = None
    action: RequestedAction = Field(default_factory=RequestedAction)
    note: str | None = None
    diff: dict[str, Any] = Field(default_factory=dict)
    approvals: list[str] = Field(default_factory=list)
    approvals_required: int = 1
    decided_at: datetime = Field(default_factory=utcnow)
    # Decisions stored before this field existed count as delivered: their workflows have moved on.
    delivery: Delivery = "delivered"

    @property
    def deciders(self) -> list[str]:
        """Who made this outcome: every approver of an approval; the one person who rejected or reassigned (an
        earlier first approval does not make its approver part of a rejection)."""
        if self.outcome in ("approve", "edit") and self.approvals:
            return list(self.approvals)
        return [self.actor]

    def response(self) -> dict[str, Any]:
        awaiting = self.outcome in ("approve", "edit") and len(set(self.approvals)) < self.approvals_required
        return {
            "task_id": self.task_id,
            "decision_id": self.decision_id,
            "outcome": self.outcome,
            "status": "decided",
            "approvals": len(set(self.approvals)),
            "approvals_required": self.approvals_required,
            "awaiting_second_approval": awaiting,
        }
