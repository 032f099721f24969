"""A helpdesk that sends no ticket version with the customer's message (Freshdesk "Simple content" webhooks, a
Zendesk trigger without updated_at): writeback measures newer edits from when Deflect received the message, so
an agent's reply since then still holds the AI's reply back, on every helpdesk."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from deflect.domain.models import Message, Ticket, utcnow
from deflect.domain.tenancy import TenantContext
from deflect.repositories import Tickets
from deflect.services import outbox
from deflect.services.outbox import OutboxRef
from infra.local.helpdesks import BOT, connect_tenant, providers, start_helpdesks
from infra.local.helpdesks.harness import ListQueue, fast_http, helpdesk_ticket, service, writeback_aws

TENANT = "unstampedco"
PROVIDERS = ["zendesk", "intercom", "freshdesk", "jira"]
REPLY = "Open Settings, then Security, to reset it."


@pytest.fixture(scope="module")
def world():
    with writeback_aws(stream=False) as aws, start_helpdesks() as helpdesks:
        connect_tenant(aws.container.secrets, helpdesks, TENANT)
        yield aws, helpdesks


def received_without_version(aws, helpdesks, provider: str) -> tuple[Ticket, object]:
    """A new helpdesk ticket whose webhook carried no updated time, and the customer message Deflect stored."""
    ticket = helpdesk_ticket(helpdesks, TENANT, provider).model_copy(update={"external_updated_at": None})
    desk = helpdesks.state.ticket(provider, TENANT, ticket.external_id)
    # The local helpdesk's clock may run ahead of the wall clock (Intercom steps whole seconds); Deflect
    # receives the message only after the helpdesk has written it.
    _wait_past(desk.updated_at)
    message = Message(
        tenant_id=TENANT,
        ticket_id=ticket.ticket_id,
        message_id=f"m-{desk.id}",
        body_redacted="How do I reset?",
    )
    ctx = TenantContext.system(TENANT)
    tickets = Tickets(aws.container.store)
    aws.container.store.transact(ctx, [tickets.save_write(ticket), Tickets.message_write(message)])
    return ticket, desk


def _wait_past(at: datetime) -> None:
    while utcnow() <= at:
        time.sleep(0.02)


def public_from_deflect(desk) -> list:
    """What the customer saw from Deflect: public comments by its helpdesk user."""
    return [e for e in desk.events if e.author in BOT.values() and e.public and e.kind == "comment"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_agent_reply_since_the_message_arrived_holds_the_ai_reply(world, provider):
    aws, helpdesks = world
    ctx = TenantContext.system(TENANT)
    queue = ListQueue()
    svc = service(aws, fast_http(), queue=queue)
    ticket, desk = received_without_version(aws, helpdesks, provider)
    item = outbox.reply(ticket, REPLY, tags=["deflect-ai"], caused_by="dec_unstamped")
    aws.container.store.transact(ctx, outbox.writes([item]))

    helpdesks.state.human_edit(provider, TENANT, desk.id, "comment", body="Agent: I reset it for you.")
    result = svc.dispatch(OutboxRef(tenant_id=TENANT, outbox_id=item.outbox_id))

    # The customer got nothing public from Deflect; the agents get the held reply as an internal note.
    assert result.outcome == "conflict"
    assert public_from_deflect(desk) == []
    [held] = queue.take()
    assert svc.dispatch(held).outcome == "delivered"
    [note] = [e for e in desk.events if e.author in BOT.values() and REPLY in (e.body or "")]
    assert not note.public


@pytest.mark.parametrize("provider", PROVIDERS)
def test_without_newer_activity_the_reply_still_goes_out(world, provider):
    aws, helpdesks = world
    ctx = TenantContext.system(TENANT)
    svc = service(aws, fast_http())
    ticket, desk = received_without_version(aws, helpdesks, provider)
    item = outbox.reply(ticket, REPLY, tags=["deflect-ai"])
    aws.container.store.transact(ctx, outbox.writes([item]))

    # The customer's own message, written before Deflect received it, is no conflict.
    assert svc.dispatch(OutboxRef(tenant_id=TENANT, outbox_id=item.outbox_id)).outcome == "delivered"
    [reply] = public_from_deflect(desk)
    assert REPLY in reply.body


def test_zendesk_an_agent_reply_between_the_check_and_the_update_holds_the_ai_reply(world, monkeypatch):
    aws, helpdesks = world
    ctx = TenantContext.system(TENANT)
    svc = service(aws, fast_http())
    ticket, desk = received_without_version(aws, helpdesks, "zendesk")
    item = outbox.reply(ticket, REPLY)
    aws.container.store.transact(ctx, outbox.writes([item]))
    real = providers.HANDLERS["zendesk"]
    replied = []

    def handler(state, req):
        answer = real(state, req)
        # Right after Deflect has read the ticket's audits, before its update arrives, an agent replies.
        if req.method == "GET" and "/audits" in req.path and not replied:
            replied.append(state.human_edit("zendesk", TENANT, desk.id, "comment", body="Agent: done."))
        return answer

    monkeypatch.setitem(providers.HANDLERS, "zendesk", handler)
    result = svc.dispatch(OutboxRef(tenant_id=TENANT, outbox_id=item.outbox_id))

    assert replied and result.outcome == "conflict"
    assert public_from_deflect(desk) == []
