"""A ticket's story from its audit chain: the agent-facing timeline, and a rebuild that needs nothing else.

Both read the locked audit objects (through the chain's index) and the evidence they point to — never the
mutable ticket, message, task or outbox records — so they still work after those expired or were erased.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from deflect.domain.errors import DeflectError, NotFound
from deflect.domain.models import AuditEvent, Decision, EvidenceRef
from deflect.domain.tenancy import TenantContext
from deflect.insight import metrics
from deflect.insight.events import STAGE_ORDER, canonical, stage_of
from deflect.insight.privacy import is_sealed, plain_kind
from deflect.ports import EvidenceStore
from deflect.services.audit import AuditLog

LINK_TTL_S = 300  # agents open evidence from the page they are on; a link outliving that is a leak
INPUT_KEYS = ("classification", "retrieved", "model_id", "prompt_sha256", "policy_version", "rollout_mode")


class EvidenceLink(BaseModel):
    kind: str
    sha256: str
    sealed: bool = False
    url: str | None = None
    expires_in_s: int | None = None


class DecisionInputs(BaseModel):
    classification: dict[str, Any] | None = None
    retrieved: list[dict[str, Any]] = Field(default_factory=list)
    model_id: str | None = None
    prompt_sha256: str | None = None
    policy_version: int | None = None
    rollout_mode: str | None = None


class TimelineEntry(BaseModel):
    seq: int
    type: str
    stage: str
    at: datetime | None = None
    actor: str | None = None
    inputs: DecisionInputs | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    evidence: list[EvidenceLink] = Field(default_factory=list)
    hash: str
    missing: bool = False


class ChainStatus(BaseModel):
    ok: bool
    events: int
    first_broken_seq: int | None = None
    reason: str | None = None


class Timeline(BaseModel):
    tenant_id: str
    ticket_id: str
    chain: ChainStatus
    events: list[TimelineEntry]


class StageRecord(BaseModel):
    seq: int
    stage: str
    type: str
    at: datetime
    actor: str
    detail: dict[str, Any] = Field(default_factory=dict)


class TicketHistory(BaseModel):
    """A ticket rebuilt from audit + evidence alone."""

    tenant_id: str
    ticket_id: str
    chain_ok: bool
    chain_reason: str | None = None
    status: str
    reached: list[str]
    stages: list[StageRecord]
    provider: str | None = None
    external_id: str | None = None
    channel: str | None = None
    customer_id: str | None = None
    received_at: datetime | None = None
    messages: list[dict[str, Any]] = Field(default_factory=list)
    decisions: list[Decision] = Field(default_factory=list)
    escalation: dict[str, Any] | None = None
    agent_decisions: list[dict[str, Any]] = Field(default_factory=list)
    writebacks: list[dict[str, Any]] = Field(default_factory=list)


class TimelineService:
    def __init__(self, audit: AuditLog, evidence: EvidenceStore) -> None:
        # `evidence` should be the SealedEvidence wrapper so sealed decision evidence can be opened.
        self.audit = audit
        self.evidence = evidence

    # ------------------------------------------------------------------ timeline
    def timeline(self, ctx: TenantContext, ticket_id: str) -> Timeline:
        entries, events = self.audit.load(ctx, ticket_id)
        if not entries:
            raise NotFound(
                "ticket not found"
            )  # also for another tenant's ticket: its chain is not under ours
        report = self.audit.verify(ctx, ticket_id)
        if not report.ok:
            metrics.count("AuditVerifyFailures", tenant_id=ctx.tenant_id)  # alarmed in template.yaml
        rows = []
        for entry, event in zip(entries, events, strict=True):
            if event is None:
                rows.append(
                    TimelineEntry(
                        seq=entry.seq,
                        type=entry.type,
                        stage=stage_of(entry.type),
                        hash=entry.hash,
                        missing=True,
                    )
                )
                continue
            rows.append(
                TimelineEntry(
                    seq=event.seq,
                    type=event.type,
                    stage=stage_of(event.type),
                    at=event.at,
                    actor=event.actor,
                    inputs=self.inputs(ctx, event),
                    outputs={k: v for k, v in event.payload.items() if k not in INPUT_KEYS},
                    evidence=[self.link(ctx, ref) for ref in event.evidence],
                    hash=event.hash,
                )
            )
        return Timeline(
            tenant_id=ctx.tenant_id,
            ticket_id=ticket_id,
            chain=ChainStatus(
                ok=report.ok,
                events=report.events,
                first_broken_seq=report.first_break.seq if report.first_break else None,
                reason=report.first_break.reason if report.first_break else None,
            ),
            events=rows,
        )

    def link(self, ctx: TenantContext, ref: EvidenceRef) -> EvidenceLink:
        if is_sealed(ref):
            # A presigned URL would hand out ciphertext; sealed personal data is shown through the ticket instead.
            return EvidenceLink(kind=plain_kind(ref), sha256=ref.sha256, sealed=True)
        return EvidenceLink(
            kind=ref.kind,
            sha256=ref.sha256,
            url=self.evidence.presign(ctx, ref, LINK_TTL_S),
            expires_in_s=LINK_TTL_S,
        )

    def inputs(self, ctx: TenantContext, event: AuditEvent) -> DecisionInputs | None:
        payload = event.payload
        found: dict[str, Any] = {k: payload[k] for k in INPUT_KEYS if payload.get(k) is not None}
        decision = self.decision_evidence(ctx, event)
        if decision is not None:
            found.setdefault(
                "classification",
                decision.classification.model_dump(mode="json") if decision.classification else None,
            )
            found.setdefault(
                "retrieved", [a.model_dump(mode="json", exclude_none=True) for a in decision.retrieved]
            )
            found.setdefault("model_id", decision.model_id or None)
            found.setdefault("prompt_sha256", decision.prompt_sha256)
            found.setdefault("policy_version", decision.policy_version)
            found.setdefault("rollout_mode", decision.rollout_mode)
        if not any(v is not None and v != [] for v in found.values()):
            return None
        return DecisionInputs.model_validate({k: v for k, v in found.items() if v is not None})

    def decision_evidence(self, ctx: TenantContext, event: AuditEvent) -> Decision | None:
        for ref in event.evidence:
            if plain_kind(ref) != "decision":
                continue
            try:
                return Decision.model_validate(json.loads(self.evidence.read(ctx, ref)))
            except (DeflectError, ValidationError, ValueError):
                return None  # erased or unreadable: the payload still carries the inputs
        return None

    # ------------------------------------------------------------------ rebuild
    def rebuild_from_audit(self, ctx: TenantContext, ticket_id: str) -> TicketHistory:
        entries, events = self.audit.load(ctx, ticket_id)
        if not entries:
            raise NotFound("ticket not found")
        report = self.audit.verify(ctx, ticket_id)
        history = TicketHistory(
            tenant_id=ctx.tenant_id,
            ticket_id=ticket_id,
            chain_ok=report.ok,
            chain_reason=report.first_break.reason if report.first_break else None,
            status="new",
            reached=[],
            stages=[],
        )
        for event in events:
            if event is not None:
                self._apply(ctx, history, event)
        reached = {s.stage for s in history.stages}
        history.reached = [stage for stage in STAGE_ORDER if stage in reached]
        history.status = self._status(history)
        return history

    def _apply(self, ctx: TenantContext, history: TicketHistory, event: AuditEvent) -> None:
        p = event.payload
        name = canonical(event.type)
        history.stages.append(
            StageRecord(
                seq=event.seq, stage=stage_of(name), type=event.type, at=event.at, actor=event.actor, detail=p
            )
        )
        if name == "message.received":
            if history.received_at is None:
                history.received_at = event.at
                history.provider = p.get("provider")
                history.external_id = p.get("external_id")
                history.channel = p.get("channel")
                history.customer_id = p.get("customer_id")
            history.messages.append(
                {
                    "message_id": p.get("message_id"),
                    "at": event.at,
                    "evidence": [self._readable(ctx, ref) for ref in event.evidence],
                }
            )
        elif name == "decision.made":
            decision = self.decision_evidence(ctx, event)
            if decision is None:
                # Evidence gone (erased): the payload still names the outcome and its inputs.
                fields = {
                    k: p[k]
                    for k in ("decision_id", "outcome", "reasons", "model_id", "prompt_sha256")
                    if k in p
                }
                fields.update(
                    {
                        k: p[k]
                        for k in ("policy_version", "rollout_mode", "classification", "retrieved")
                        if k in p
                    }
                )
                decision = Decision(
                    tenant_id=ctx.tenant_id, ticket_id=history.ticket_id, decided_at=event.at, **fields
                )
            history.decisions.append(decision)
        elif name in {"escalation.summarized", "escalation.acknowledged", "task.opened", "task.reassigned"}:
            merged = dict(history.escalation or {})
            merged.update({k: v for k, v in p.items() if v is not None})
            merged.setdefault("started_at", event.at)
            history.escalation = merged
        elif name == "task.decided":
            history.agent_decisions.append({"actor": event.actor, "at": event.at, **p})
        elif name in {
            "writeback.delivered",
            "writeback.suppressed",  # held back by the rollout mode: what was not sent is part of the story
            "writeback.not_shown",  # an API-only tenant's note: finished, with nobody to read it
            "writeback.conflict",
            "writeback.dead",
            "answer.delivered",
        }:
            history.writebacks.append({"type": name, "at": event.at, **p})

    def _readable(self, ctx: TenantContext, ref: EvidenceRef) -> dict[str, Any]:
        try:
            self.evidence.read(ctx, ref)
            readable = True
        except DeflectError:
            readable = False
        return {"kind": plain_kind(ref), "sha256": ref.sha256, "sealed": is_sealed(ref), "readable": readable}

    @staticmethod
    def _status(history: TicketHistory) -> str:
        names = [canonical(s.type) for s in history.stages]
        last_close = next(
            (n for n in reversed(names) if n in {"ticket.resolved", "ticket.closed", "ticket.reopened"}), None
        )
        if last_close == "ticket.closed":
            return "closed"
        if last_close == "ticket.resolved":
            return "resolved"
        last_decision = history.decisions[-1].outcome if history.decisions else None
        delivered = any(w["type"] in {"writeback.delivered", "answer.delivered"} for w in history.writebacks)
        if history.escalation is not None:
            # As the escalation does: an approved or edited decision handed to the outbox resolves the ticket.
            approved = any(d.get("outcome") in {"approve", "edit"} for d in history.agent_decisions)
            handed_over = delivered or "escalation.writeback_enqueued" in names
            if approved and handed_over:
                return "resolved"
            # As the ticket's stored status: the latest escalation got no decision in any queue.
            ends = {"escalation.summarized", "escalation.review_expired"}
            latest = next((n for n in reversed(names) if n in ends), None)
            return "review_expired" if latest == "escalation.review_expired" else "escalated"
        if last_decision == "deflect" and delivered:
            return "deflected"
        if last_decision == "ask_diagnostics":
            return "awaiting_customer"
        return "triaging" if history.decisions else "new"
