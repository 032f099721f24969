"""The conflict path for every provider, through the writeback service: the ticket changed after the decision
read it, so the reply is not sent, the human's edit stands, a human gets the held reply as an internal note,
and the audit chain says what happened."""

from __future__ import annotations

import pytest

from deflect.domain.tenancy import TenantContext
from deflect.services import outbox
from deflect.services.outbox import OutboxRef
from infra.local.helpdesks import connect_tenant, start_helpdesks
from infra.local.helpdesks.harness import ListQueue, fast_http, helpdesk_ticket, service, writeback_aws

TENANT = "clashco"
EDIT = {"zendesk": "status", "intercom": "assignee", "freshdesk": "assignee", "jira": "comment"}
NEW_STATUS = {"zendesk": "pending"}


@pytest.fixture(scope="module")
def world():
    with writeback_aws(stream=False) as aws, start_helpdesks() as helpdesks:
        connect_tenant(aws.container.secrets, helpdesks, TENANT)
        yield aws, helpdesks


@pytest.mark.parametrize("provider", ["zendesk", "intercom", "freshdesk", "jira"])
def test_a_newer_human_edit_holds_the_reply_for_a_human(world, provider):
    aws, helpdesks = world
    ctx = TenantContext.system(TENANT)
    queue = ListQueue()
    svc = service(aws, fast_http(), queue=queue)
    ticket = helpdesk_ticket(helpdesks, TENANT, provider)
    desk = helpdesks.state.ticket(provider, TENANT, ticket.external_id)
    item = outbox.reply(
        ticket, "You can close your account from Settings.", tags=["deflected"], status_value="solved"
    )
    aws.container.store.transact(ctx, outbox.writes([item]))

    # An agent acts in the helpdesk between the decision and the writeback.
    helpdesks.state.human_edit(provider, TENANT, desk.id, EDIT[provider], value=NEW_STATUS.get(provider))
    status_after_human = desk.status
    result = svc.dispatch(OutboxRef(tenant_id=TENANT, outbox_id=item.outbox_id))

    assert result.outcome == "conflict"
    stored = svc.outbox.get(ctx, item.outbox_id)
    assert stored.status == "conflict" and stored.receipt["held_note"] == f"{item.outbox_id}-held"
    assert desk.status == status_after_human and "deflected" not in desk.tags
    assert not [e for e in desk.events if e.kind == "comment" and e.marker == item.outbox_id]

    # The held reply goes to the agents as an internal note (never public), exactly once.
    [held] = queue.take()
    assert svc.dispatch(held).outcome == "delivered"
    assert svc.dispatch(held).outcome == "already_handled"
    [note] = [e for e in desk.events if e.marker == held.outbox_id and e.kind in ("note", "comment")]
    assert note.kind == "note" and not note.public
    assert "You can close your account from Settings." in note.body and "status: solved" in note.body

    # The audit chain records the conflict and the note's delivery, and verifies.
    types = [e.type for e in aws.container.audit.entries(ctx, ticket.ticket_id)]
    assert types == ["writeback.conflict", "writeback.delivered"]
    assert aws.container.audit.verify(ctx, ticket.ticket_id).ok


def test_deflects_own_earlier_items_are_not_conflicts(world):
    aws, helpdesks = world
    ctx = TenantContext.system(TENANT)
    svc = service(aws, fast_http())
    ticket = helpdesk_ticket(helpdesks, TENANT, "freshdesk")
    desk = helpdesks.state.ticket("freshdesk", TENANT, ticket.external_id)
    items = [
        outbox.new_item(ticket, "tags", tags=["triaged"]),
        outbox.reply(ticket, "Here you go.", status_value="pending"),
        outbox.new_item(ticket, "status", status_value="resolved"),
    ]
    aws.container.store.transact(ctx, outbox.writes(items))
    outcomes = [svc.dispatch(OutboxRef(tenant_id=TENANT, outbox_id=i.outbox_id)).outcome for i in items]
    assert outcomes == ["delivered", "delivered", "delivered"]
    assert desk.status == "4" and desk.tags == ["triaged"]
