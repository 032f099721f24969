"""A decision to escalate in shadow mode hands nothing to a person, so other systems must not hear that a ticket
was escalated: the bus and the Escalated metric report only escalations that started."""

from __future__ import annotations

import pytest

from deflect.domain.models import DecisionPolicy, Message, Ticket
from deflect.repositories import Tickets, save
from deflect.triage.service import Handoffs, TriageService
from tests.integration.insight_story import seed_tenant
from tests.integration.test_insight_events import drain, subscribe
from tests.unit.triage_fakes import make_world

REFUND = "Please refund my last invoice"


def escalate_refund(moto_stack, mode):
    """Triage one refund request (always escalated) in `mode` through the container's observed audit log."""
    container = moto_stack.container()
    url = subscribe(moto_stack.session, container.settings.events_bus_name)
    ctx = seed_tenant(container, "acme", policy=DecisionPolicy(rollout_default=mode))
    started = []
    service = TriageService(
        container.store,
        container.evidence,
        container.audit,  # observes each event: facts, metrics, the bus
        make_world().service.engine,
        Handoffs(None, lambda decision, ticket, refs: started.append(decision) or "esc-1"),
    )
    ticket = Ticket(tenant_id="acme", ticket_id="tkt-1", provider="zendesk", external_id="1")
    message = Message(tenant_id="acme", ticket_id="tkt-1", message_id="msg-1", body_redacted=REFUND)
    save(container.store, ctx, [Tickets(container.store).save_write(ticket), Tickets.message_write(message)])
    result = service.triage(ctx, "tkt-1", "msg-1")
    assert result.outcome == "escalate"
    return [e["detail-type"] for e in drain(moto_stack.session, url)], started


@pytest.mark.parametrize(
    ("mode", "published", "escalations"),
    [
        ("shadow", ["TicketTriaged.v1"], 0),
        ("assist", ["TicketTriaged.v1", "TicketEscalated.v1"], 1),
    ],
)
def test_only_escalations_that_started_are_announced_and_counted(
    moto_stack, capsys, mode, published, escalations
):
    capsys.readouterr()

    detail_types, started = escalate_refund(moto_stack, mode)

    assert detail_types == published and len(started) == escalations
    emitted = [line for line in capsys.readouterr().out.splitlines() if '"Escalated"' in line]
    assert len(emitted) == escalations
