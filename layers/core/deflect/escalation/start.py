"""How triage starts an escalation: one call, one named execution per decision."""

from __future__ import annotations

from typing import Any

from deflect.domain.canonical import sha256_hex
from deflect.domain.models import Decision, EvidenceRef, Ticket
from deflect.escalation.models import EscalationRequest
from deflect.ports import Workflow


def execution_name(request: EscalationRequest) -> str:
    """Unique per (tenant, ticket, decision) and stable: starting the same decision twice is a no-op."""
    digest = sha256_hex(f"{request.tenant_id}:{request.ticket_id}:{request.decision_id}".encode())
    return f"esc-{digest[:40]}"  # Step Functions names: at most 80 characters of [A-Za-z0-9-_]


def start_escalation(
    container_or_ports: Any, decision: Decision, ticket: Ticket, *, evidence: list[EvidenceRef] | None = None
) -> str:
    """Start the escalation workflow for `decision` and return the execution ARN.

    `container_or_ports` is the composition root (anything with a `.workflow`) or a Workflow port itself.
    """
    workflow: Workflow = getattr(container_or_ports, "workflow", container_or_ports)
    request = EscalationRequest.from_decision(decision, ticket, evidence=evidence)
    return workflow.start(execution_name(request), request.model_dump(mode="json"))
