"""One ticket's life, appended the way the producers append it (same event types and payload shapes as
services/intake.py, escalation/*.py and services/writeback.py; triage's `decision.made` as insight/events.py
documents it). Shared by the insight integration tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from deflect.domain.canonical import canonical_json
from deflect.domain.models import (
    ArticleRef,
    AuditEvent,
    Classification,
    Customer,
    Decision,
    Draft,
    HumanTask,
    Message,
    OutboxItem,
    RequestedAction,
    TenantConfig,
    Ticket,
    utcnow,
)
from deflect.domain.tenancy import TenantContext
from deflect.repositories import Customers, Outbox, Tasks, Tickets

EMAIL = "ana.lima@example.org"
NAME = "Ana Lima"
PHONE = "+44 7700 900123"
BODY = f"Hi, I am {NAME} ({EMAIL}, {PHONE}). Please refund my last invoice of 120 EUR, export is broken."


@dataclass
class Story:
    ctx: TenantContext
    ticket_id: str
    customer_id: str
    events: list[AuditEvent] = field(default_factory=list)
    task_id: str = ""
    outbox_id: str = ""
    decision: Decision | None = None


def seed_tenant(container: Any, tenant: str, **config: Any) -> TenantContext:
    ctx = TenantContext.system(tenant)
    container.store.put(
        ctx, container.tenants.save_write(TenantConfig(tenant_id=tenant, display_name=tenant, **config))
    )
    return ctx


def escalated_ticket(
    container: Any, ctx: TenantContext, ticket_id: str = "tkt_1", customer_id: str = "cus_1"
) -> Story:
    """received → triaged (escalate) → escalated → decided (approve) → written back."""
    audit = container.audit
    story = Story(ctx, ticket_id, customer_id)

    def append(type_: str, payload: dict[str, Any], **kw: Any) -> AuditEvent:
        event = audit.append(ctx, ticket_id, type_, payload, **kw)  # container.audit observes each event
        story.events.append(event)
        return event

    customer = Customer(
        tenant_id=ctx.tenant_id, customer_id=customer_id, email=EMAIL, name=NAME, verified=True
    )
    container.store.transact(ctx, Customers(container.store).save_writes(customer))

    # intake: the raw request is sealed for the customer; ticket + message + audit index in one transaction
    raw = container.sealed_evidence.put_for_customer(
        ctx,
        ticket_id,
        customer_id,
        canonical_json({"headers": {}, "body": {"comment": BODY, "email": EMAIL}}),
        "inbound_request",
    )
    ticket = Ticket(
        tenant_id=ctx.tenant_id,
        ticket_id=ticket_id,
        provider="zendesk",
        external_id="4711",
        subject_redacted=f"Refund for {NAME}",
        customer_id=customer_id,
        sla_tier="premium",
    )
    message = Message(
        tenant_id=ctx.tenant_id, ticket_id=ticket_id, message_id="msg_1", body_redacted=BODY, evidence=raw
    )
    append(
        "message.received",
        {
            "provider": "zendesk",
            "event": "ticket.created",
            "delivery_id": "dlv-1",
            "message_id": "msg_1",
            "external_ticket_id": "4711",
            "new_ticket": True,
            "customer_id": customer_id,
            "customer_verified": True,
            "sla_tier": "premium",
            "channel": "email",
        },
        actor="webhook:zendesk",
        evidence=[raw],
        writes=[Tickets(container.store).save_write(ticket), Tickets.message_write(message)],
    )

    # triage: the decision with its inputs, stored whole as evidence
    classification = Classification(
        intent="refund_request",
        intent_confidence=0.91,
        product_area="billing",
        severity="P3",
        sensitive_flags=["refund"],
        requested_action=RequestedAction(kind="refund", amount=120, currency="EUR"),
    )
    retrieved = [
        ArticleRef(article_id="kb-refunds", version=4, title="Refund policy", score=0.82),
        ArticleRef(article_id="kb-export", version=2, title="Exporting data", score=0.41),
    ]
    decision = Decision(
        tenant_id=ctx.tenant_id,
        ticket_id=ticket_id,
        decision_id="dec_1",
        outcome="escalate",
        reasons=["sensitive: refund", "account-changing action requested: refund"],
        classification=classification,
        retrieved=retrieved,
        draft=Draft(
            text=f"Hello {NAME}, we will refund 120 EUR.", confidence=0.74, model_id="embedded-extractive"
        ),
        model_id="embedded-extractive",
        prompt_sha256="ab" * 32,
        policy_version=3,
        rollout_mode="auto",
    )
    decision_ref = container.sealed_evidence.put_for_customer(
        ctx, ticket_id, customer_id, canonical_json(decision.model_dump(mode="json")), "decision"
    )
    story.decision = decision
    append(
        "decision.made",
        {
            "decision_id": "dec_1",
            "outcome": "escalate",
            "reasons": decision.reasons,
            "classification": classification.model_dump(mode="json"),
            "retrieved": [
                {"article_id": a.article_id, "version": a.version, "score": a.score} for a in retrieved
            ],
            "confidence": 0.74,
            "grounded": True,
            "model_id": "embedded-extractive",
            "prompt_sha256": "ab" * 32,
            "policy_version": 3,
            "rollout_mode": "auto",
        },
        actor="triage",
        evidence=[decision_ref],
        writes=[Tickets.decision_write(decision)],
    )

    # escalation: summary, acknowledgement, human task
    summary = container.sealed_evidence.put_for_customer(
        ctx,
        ticket_id,
        customer_id,
        canonical_json({"markdown": f"# {NAME} wants a refund"}),
        "escalation_summary",
    )
    append(
        "escalation.summarized",
        {"decision_id": "dec_1", "execution": "esc-1", "summary_sha256": summary.sha256},
        actor="escalation",
        evidence=[summary],
    )
    task = HumanTask(
        tenant_id=ctx.tenant_id,
        ticket_id=ticket_id,
        queue="billing",
        required_role="approver",
        due_at=utcnow() + timedelta(hours=4),
        proposed_reply=f"Hello {NAME}, we will refund 120 EUR.",
        proposed_action=RequestedAction(kind="refund", amount=120, currency="EUR"),
    )
    story.task_id = task.task_id
    append(
        "task.opened",
        {
            "task_id": task.task_id,
            "queue": "billing",
            "kind": "review",
            "hops": 0,
            "required_role": "approver",
            "due_at": task.due_at.isoformat(),
        },
        actor="escalation",
        writes=[Tasks(container.store).save_write(task)],
    )

    # approval: the agent approves the draft as proposed
    outbox = OutboxItem(
        tenant_id=ctx.tenant_id,
        ticket_id=ticket_id,
        provider="zendesk",
        external_ticket_id="4711",
        kind="public_reply",
        body=f"Hello {NAME}, we will refund 120 EUR.",
        caused_by="tdec_1",
    )
    story.outbox_id = outbox.outbox_id
    append(
        "task.decided",
        {
            "task_id": task.task_id,
            "decision_id": "tdec_1",
            "outcome": "approve",
            "roles": ["approver"],
            "action": {"kind": "refund", "amount": "120", "currency": "EUR", "target": None},
            "reply_sha256": "cd" * 32,
            "note": None,
            "diff": {},
            "approvals": ["agent:u-approver"],
        },
        actor="agent:u-approver",
    )
    append(
        "escalation.writeback_enqueued",
        {"decision_id": "tdec_1", "outcome": "approve", "outbox_ids": [outbox.outbox_id]},
        actor="escalation",
        writes=[Outbox(container.store).save_write(outbox)],
    )

    # writeback: delivered to the helpdesk
    append(
        "writeback.delivered",
        {
            "outbox_id": outbox.outbox_id,
            "kind": "public_reply",
            "provider": "zendesk",
            "external_ticket_id": "4711",
            "attempts": 1,
            "caused_by": "tdec_1",
            "body_sha256": "ef" * 32,
            "effects": ["comment"],
        },
        actor="writeback",
    )
    return story
