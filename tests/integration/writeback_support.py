"""Account actions for writeback tests, made the way escalation makes them: the tenant's policy, the ticket, a
person's decision on the task (with its approvals) and escalation's own writeback step, which commits the outbox
items in one transaction with the audit event that names the decision they carry out."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from deflect.domain.models import (
    AgentOutcome,
    Classification,
    DecisionPolicy,
    OutboxItem,
    RequestedAction,
    TenantConfig,
    Ticket,
)
from deflect.domain.tenancy import TenantContext
from deflect.escalation.models import AppliedDecision, EscalationState, TaskDecision
from deflect.escalation.records import EscalationPorts, TaskDecisions
from deflect.escalation.steps import EscalationSteps
from deflect.repositories import TenantConfigs, Tickets
from infra.local.helpdesks import HelpdesksHandle, connect_tenant, start_helpdesks
from infra.local.helpdesks.harness import ListQueue, writeback_aws

APPROVER = ("agent", "approver")


def escalation_ports(container: Any, queue: ListQueue) -> EscalationPorts:
    """The escalation steps' ports on a writeback world: no workflow, cipher or notifier, outbox to `queue`."""
    return EscalationPorts(
        store=container.store,
        evidence=container.evidence,
        audit=container.audit,
        workflow=None,
        cipher=None,
        notifier=None,
        writeback=queue,
    )


@contextmanager
def helpdesk_world(tenant_id: str) -> Iterator[tuple[Any, HelpdesksHandle]]:
    """moto-backed writeback and the local helpdesks, with `tenant_id` connected to them."""
    with writeback_aws(stream=False) as aws, start_helpdesks() as helpdesks:
        connect_tenant(aws.container.secrets, helpdesks, tenant_id)
        yield aws, helpdesks


@contextmanager
def auto_mode_world(tenant_id: str) -> Iterator[tuple[Any, HelpdesksHandle]]:
    """`helpdesk_world` with the tenant configured in `auto` rollout (its replies go to customers)."""
    with helpdesk_world(tenant_id) as (aws, helpdesks):
        config = TenantConfig(
            tenant_id=tenant_id, display_name=tenant_id, policy=DecisionPolicy(rollout_default="auto")
        )
        aws.container.store.put(
            TenantContext.system(tenant_id), TenantConfigs(aws.container.store).save_write(config)
        )
        yield aws, helpdesks


def commit_account_action(
    aws: Any,
    ticket: Ticket,
    action: RequestedAction,
    *,
    approvals: Sequence[str] = ("agent:ann",),
    roles: Sequence[str] = APPROVER,
    outcome: AgentOutcome = "approve",
    decision_ticket: Ticket | None = None,
    threshold: Decimal = Decimal("500"),
) -> OutboxItem:
    """Decide `action` on `ticket` as `approvals[-1]` (holding `roles`) and run escalation's writeback step.

    Returns the account action item, committed and pending (not queued). The decision is taken as given, so a
    test can commit what a faulty escalation would (too few approvals, no approver, another ticket's decision).
    """
    c = aws.container
    ctx = TenantContext.system(ticket.tenant_id)
    if TenantConfigs(c.store).find(ctx) is None:
        config = TenantConfig(tenant_id=ticket.tenant_id, display_name=ticket.tenant_id)
        config.policy.two_person_amount_threshold = threshold
        c.store.put(ctx, TenantConfigs(c.store).save_write(config))
    tickets = Tickets(c.store)
    for case in {t.ticket_id: t for t in (ticket, decision_ticket or ticket)}.values():
        if tickets.get(ctx, case.ticket_id) is None:
            c.store.put(ctx, tickets.save_write(case))
    decided_on = decision_ticket or ticket
    execution = f"esc-{uuid.uuid4().hex}"
    record = TaskDecision(
        tenant_id=ticket.tenant_id,
        task_id=f"task_{uuid.uuid4().hex}",
        ticket_id=decided_on.ticket_id,
        decision_id=f"d-{uuid.uuid4().hex[:12]}",
        outcome=outcome,
        actor=approvals[-1],
        actor_roles=sorted(roles),
        action=action,
        approvals=list(approvals),
        approvals_required=len(set(approvals)),
    )
    c.audit.append(
        ctx,
        decided_on.ticket_id,
        "task.decided",
        {"task_id": record.task_id, "decision_id": record.decision_id},
        writes=TaskDecisions.writes(record),
    )
    ports = escalation_ports(c, ListQueue())
    state = EscalationState(
        tenant_id=ticket.tenant_id,
        ticket_id=ticket.ticket_id,
        decision_id=f"dec_{uuid.uuid4().hex[:12]}",
        classification=Classification(intent="refund", intent_confidence=0.9, requested_action=action),
        proposed_action=action,
        applied=AppliedDecision(
            next="writeback", task_id=record.task_id, decision_id=record.decision_id, outcome=outcome
        ),
    )
    result = EscalationSteps(ports).enqueue_writeback(ctx, state, execution)
    found = [ports.outbox.get(ctx, outbox_id) for outbox_id in result["outbox_ids"]]
    [item] = [i for i in found if i is not None and i.kind == "account_action"]
    return item
