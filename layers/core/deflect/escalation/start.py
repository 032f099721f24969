"""How triage starts an escalation: one call, one named execution per decision, one open escalation per ticket."""

from __future__ import annotations

from typing import Any

from deflect.domain.canonical import sha256_hex
from deflect.domain.errors import Conflict
from deflect.domain.models import Decision, EvidenceRef, Ticket
from deflect.domain.tenancy import TenantContext
from deflect.escalation.models import EscalationRequest
from deflect.escalation.records import OpenEscalation, OpenEscalations
from deflect.ports import SupportStore, Workflow


def execution_name(request: EscalationRequest) -> str:
    """Unique per (tenant, ticket, decision) and stable: starting the same decision twice is a no-op."""
    return execution_name_for(request.tenant_id, request.ticket_id, request.decision_id)


def execution_name_for(tenant_id: str, ticket_id: str, decision_id: str) -> str:
    digest = sha256_hex(f"{tenant_id}:{ticket_id}:{decision_id}".encode())
    return f"esc-{digest[:40]}"  # Step Functions names: at most 80 characters of [A-Za-z0-9-_]


def start_escalation(
    container_or_ports: Any, decision: Decision, ticket: Ticket, *, evidence: list[EvidenceRef] | None = None
) -> str:
    """Start the escalation workflow for `decision` and return the execution ARN.

    `container_or_ports` is the composition root (anything with a `.workflow`) or a Workflow port itself. With a
    store (a composition root), the ticket's open escalation is checked first: while another decision's escalation
    of the ticket is open, nothing starts (Conflict) — its task is where the customer's follow-ups go.
    """
    workflow: Workflow = getattr(container_or_ports, "workflow", container_or_ports)
    store: SupportStore | None = getattr(container_or_ports, "store", None)
    request = EscalationRequest.from_decision(decision, ticket, evidence=evidence)
    name = execution_name(request)
    if store is not None:
        _claim_ticket(store, request, name)
    return workflow.start(name, request.model_dump(mode="json"))


def _claim_ticket(store: SupportStore, request: EscalationRequest, name: str) -> None:
    """Record this escalation as the ticket's open one. Triage records it with its decision already; this covers
    other callers, and a start repeated after a later escalation replaced the record (it ran, so it is a no-op)."""
    ctx = TenantContext.system(request.tenant_id, actor="deflect:escalation")
    escalations = OpenEscalations(store)
    item = escalations.latest(ctx, request.ticket_id)
    if item is not None and item.data.get("execution") == name:
        return
    if escalations.has_run(ctx, request.ticket_id, name):
        return
    if item is not None and escalations.current(ctx, request.ticket_id, item) is not None:
        raise Conflict("another escalation of this ticket is open: its task takes the customer's follow-ups")
    record = OpenEscalation(
        execution=name,
        decision_id=request.decision_id,
        message_id=request.message_id,
        proposed_action=request.proposed_action,
        opened_at=request.escalated_at,
    )
    store.put(ctx, OpenEscalations.write(request.tenant_id, request.ticket_id, record, item))
