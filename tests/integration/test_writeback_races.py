"""An agent's edit that lands while one writeback is in progress is never overwritten or swallowed: Freshdesk's
tag list (a PUT replaces it) and Zendesk's stamp refresh after a 409 caused only by Deflect itself."""

from __future__ import annotations

from datetime import timedelta

import pytest

from deflect.domain.tenancy import TenantContext
from deflect.services import outbox
from deflect.services.outbox import OutboxRef
from infra.local.helpdesks import BOT, connect_tenant, providers, start_helpdesks
from infra.local.helpdesks.harness import ListQueue, fast_http, helpdesk_ticket, service, writeback_aws
from infra.local.helpdesks.state import Event

TENANT = "raceco"


@pytest.fixture(scope="module")
def world():
    with writeback_aws(stream=False) as aws, start_helpdesks() as helpdesks:
        connect_tenant(aws.container.secrets, helpdesks, TENANT)
        yield aws, helpdesks


def dispatch(svc, item):
    return svc.dispatch(OutboxRef(tenant_id=TENANT, outbox_id=item.outbox_id))


@pytest.mark.parametrize("public", [True, False], ids=["public_reply", "internal_note"])
def test_freshdesk_keeps_an_agents_tag_edit_made_while_deflect_posts(world, monkeypatch, public):
    aws, helpdesks = world
    svc = service(aws, fast_http())
    ticket = helpdesk_ticket(helpdesks, TENANT, "freshdesk")
    desk = helpdesks.state.ticket("freshdesk", TENANT, ticket.external_id)
    desk.tags = ["billing"]
    real = providers.HANDLERS["freshdesk"]

    def handler(state, req):
        # As Deflect's reply arrives, an agent removes "billing" and adds "vip" in the helpdesk.
        if req.method == "POST" and req.path.endswith(("/reply", "/notes")) and "vip" not in desk.tags:
            with state.lock:
                desk.tags = ["vip"]
                state.tick(desk)
        return real(state, req)

    monkeypatch.setitem(providers.HANDLERS, "freshdesk", handler)
    item = outbox.reply(ticket, "Here is how.", public=public, tags=["deflect-ai"])
    aws.container.store.transact(TenantContext.system(TENANT), outbox.writes([item]))

    assert dispatch(svc, item).outcome == "delivered"
    assert desk.tags == ["vip", "deflect-ai"]  # the agent's edit stands; Deflect's tag is added to it


def test_freshdesk_an_agent_edit_after_deflects_reply_holds_its_tags_and_status(world, monkeypatch):
    aws, helpdesks = world
    queue = ListQueue()
    svc = service(aws, fast_http(), queue=queue)
    ticket = helpdesk_ticket(helpdesks, TENANT, "freshdesk")
    desk = helpdesks.state.ticket("freshdesk", TENANT, ticket.external_id)
    real = providers.HANDLERS["freshdesk"]
    edited = []

    def handler(state, req):
        # Seconds after Deflect's reply (well past its own change), an agent retags and reopens the ticket.
        if (
            req.method == "GET"
            and req.path.endswith(f"/tickets/{desk.id}")
            and len(desk.events) > 1
            and not edited
        ):
            with state.lock:
                desk.tags, desk.status = ["vip"], "2"
                desk.updated_at += timedelta(seconds=10)
            edited.append(1)
        return real(state, req)

    monkeypatch.setitem(providers.HANDLERS, "freshdesk", handler)
    item = outbox.reply(ticket, "Here is how.", tags=["deflect-ai"], status_value="pending")
    aws.container.store.transact(TenantContext.system(TENANT), outbox.writes([item]))

    result = dispatch(svc, item)

    assert edited and result.outcome == "conflict"
    assert desk.tags == ["vip"] and desk.status == "2"
    # The reply itself went out before the edit; what is held goes to the agents in a note.
    [ref] = queue.take()
    assert svc.dispatch(ref).outcome == "delivered"
    [note] = [e for e in desk.events if e.marker == ref.outbox_id]
    assert not note.public and "tags: deflect-ai" in note.body and "Here is how." not in note.body


def test_zendesk_an_agent_reply_during_the_stamp_refresh_holds_the_ai_reply(world, monkeypatch):
    aws, helpdesks = world
    svc = service(aws, fast_http())
    ticket = helpdesk_ticket(helpdesks, TENANT, "zendesk")
    desk = helpdesks.state.ticket("zendesk", TENANT, ticket.external_id)
    # An earlier Deflect update moved the ticket past the decision's stamp without leaving a watermark (its
    # receipt was found on the helpdesk after a lost answer): the next update gets a 409 and refreshes the stamp.
    with helpdesks.state.lock:
        own = Event(helpdesks.state.next_id(), helpdesks.state.tick(desk), BOT["zendesk"], "note", body="ack")
        own.audit_id = helpdesks.state.next_id()
        desk.events.append(own)
    real = providers.HANDLERS["zendesk"]
    replied = []

    def handler(state, req):
        # While Deflect re-reads the ticket for a fresh stamp, an agent answers the customer.
        if req.method == "GET" and req.path.endswith(f"/tickets/{desk.id}.json") and not replied:
            replied.append(state.human_edit("zendesk", TENANT, desk.id, "comment", body="Agent: fixed it."))
        return real(state, req)

    monkeypatch.setitem(providers.HANDLERS, "zendesk", handler)
    item = outbox.reply(ticket, "You can reset it from Settings.")
    aws.container.store.transact(TenantContext.system(TENANT), outbox.writes([item]))

    result = dispatch(svc, item)

    assert replied and result.outcome == "conflict"
    assert not [e for e in desk.events if e.author == BOT["zendesk"] and e.public and e.kind == "comment"]
