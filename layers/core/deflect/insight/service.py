"""`observe(ctx, audit_event)`: one call after an audit append feeds facts, metrics, usage and the event bus.

Producers need nothing else from this package for the business numbers: they append the canonical audit
events (insight/events.py) and call `container.insight.observe(ctx, event)` — or the container's audit log is an
`ObservedAuditLog`, which calls it for them. Observing never fails the caller's work (the state change is
already committed when it runs); what it could not do is logged, and `replay()` redoes it from the chain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deflect.domain.models import AuditEvent
from deflect.domain.tenancy import TenantContext
from deflect.insight import metrics
from deflect.insight.domain_events import escalation_started, from_audit
from deflect.insight.events import canonical
from deflect.insight.facts import Fact, FactStore
from deflect.insight.privacy import link_ticket
from deflect.insight.usage import UsageMeter
from deflect.observability import logger
from deflect.ports import DomainEventBus, EvidenceStore, SupportStore
from deflect.services.audit import AuditLog


class Insight:
    def __init__(
        self, store: SupportStore, facts: FactStore, bus: DomainEventBus, meter: UsageMeter | None
    ) -> None:
        self.store = store
        self.facts = facts
        self.bus = bus
        self.meter = meter

    def observe(self, ctx: TenantContext, event: AuditEvent) -> None:
        fact = self._step("fact", lambda: self.facts.record(ctx, event))
        if fact is None:
            return
        self._step("metrics", lambda: self.count(ctx, fact, event.payload))
        self._step("links", lambda: self._link(ctx, event))
        self._step("usage", lambda: self._usage(ctx, event))
        self._step("publish", lambda: self.publish(ctx, event))

    def replay(self, ctx: TenantContext, audit: AuditLog, ticket_id: str, *, publish: bool = True) -> int:
        """Re-record facts (and republish) from a ticket's chain; idempotent for facts and for subscribers."""
        _, events = audit.load(ctx, ticket_id)
        done = 0
        for event in events:
            if event is None:
                continue
            self.facts.record(ctx, event)
            self._link(ctx, event)
            if publish:
                self.publish(ctx, event)
            done += 1
        return done

    # -- steps
    @staticmethod
    def _step(name: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except Exception as error:  # the audit append already happened; never undo the caller's work
            logger().warning("insight step failed", extra={"step": name, "error": type(error).__name__})
            metrics.count("StageErrors", stage="audit")
            return None

    def count(self, ctx: TenantContext, fact: Fact, payload: dict[str, Any] | None = None) -> None:
        t = ctx.tenant_id
        if fact.type == "message.received":
            metrics.count("MessagesReceived", tenant_id=t, provider=fact.provider)
        elif fact.type == "decision.made":
            if fact.outcome == "deflect":
                metrics.count("Deflected", tenant_id=t, mode=fact.rollout_mode)
            elif fact.outcome == "ask_diagnostics":
                metrics.count("DiagnosticsRequested", tenant_id=t)
            elif escalation_started(fact, payload or {}):  # not shadow: TicketTriaged.v1 reports those
                reason = metrics.escalation_reason(
                    fact.reasons, fact.sensitive_flags, fact.action_kind or "none", bool(fact.wants_human)
                )
                metrics.count("Escalated", tenant_id=t, reason=reason)
        elif fact.type == "task.decided":
            metrics.count("AgentOutcome", tenant_id=t, outcome=fact.outcome)
        elif fact.result is not None:
            metrics.count("Writeback", tenant_id=t, result=fact.result)
        elif fact.type == "escalation.review_expired" or (
            fact.type == "task.reassigned" and fact.reason == "timeout"
        ):
            metrics.count("SlaBreaches", tenant_id=t, kind="task_timeout")

    def _link(self, ctx: TenantContext, event: AuditEvent) -> None:
        """The customer → ticket link erasure reads. Intake commits it with the message itself; this re-write (the
        same item, create-or-overwrite) is harmless there, and links other producers' events and, on replay,
        tickets received before intake wrote it."""
        customer_id = event.payload.get("customer_id")
        if canonical(event.type) == "message.received" and customer_id:
            self.store.put(ctx, link_ticket(ctx.tenant_id, str(customer_id), event.ticket_id))

    def _usage(self, ctx: TenantContext, event: AuditEvent) -> None:
        if self.meter is None or canonical(event.type) != "message.received":
            return
        new_ticket = event.payload.get("new_ticket", event.seq == 0)
        self.meter.add(ctx.tenant_id, messages=1, tickets=1 if new_ticket else 0)

    def publish(self, ctx: TenantContext, event: AuditEvent) -> None:
        published = from_audit(event)
        if published:
            self.bus.publish(ctx, published)


class ObservedAuditLog(AuditLog):
    """An AuditLog that observes each event it appends (facts, metrics, usage, EventBridge)."""

    def __init__(self, store: SupportStore, evidence: EvidenceStore, observer: Callable[[], Insight]) -> None:
        super().__init__(store, evidence)
        self._observer = observer  # a factory: the container builds Insight lazily, after the audit log

    def append(
        self, ctx: TenantContext, ticket_id: str, type: str, payload: dict[str, Any], **options: Any
    ) -> AuditEvent:
        event = super().append(ctx, ticket_id, type, payload, **options)
        try:
            self._observer().observe(ctx, event)
        except Exception:  # the event is committed; insight must never fail the operation that caused it
            logger().warning("observing an audit event failed", extra={"type": type}, exc_info=True)
        return event
