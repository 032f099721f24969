"""Deflect never answers a customer over an agent's newer reply because of something it wrote itself.

The ticket's writeback watermark ("Deflect's own writes up to here") lets a later item skip Deflect's own earlier
changes. A note is never checked for newer edits (it overwrites nothing): the held-conflict note, an assist draft,
an escalation outcome. So a note must not move the watermark, or the agent's reply written before it would no
longer count against the replies queued behind it. Nor may a checked write stand in for an older decision that
never saw the agent's reply (a reply replayed after an outage). Deflect's own consecutive items still go out.
"""

from __future__ import annotations

import pytest

from deflect.domain.models import DecisionPolicy, TenantConfig, Ticket
from deflect.domain.tenancy import TenantContext
from deflect.repositories import TenantConfigs
from deflect.services import outbox
from deflect.services.outbox import OutboxRef
from infra.local.helpdesks import BOT, Fault, connect_tenant, start_helpdesks
from infra.local.helpdesks.harness import ListQueue, fast_http, helpdesk_ticket, service, writeback_aws

TENANT = "markco"
PROVIDERS = ["zendesk", "intercom", "freshdesk", "jira"]
AGENT_REPLY = "Agent here: I refunded you myself, nothing else to do."
FIRST = "To reset your password, open Settings, then Security."
SECOND = "Your invoice is under Billing, then History."
ACK = "Thanks, a person from our team will follow up by 17:00."


@pytest.fixture(scope="module")
def world():
    with writeback_aws(stream=False) as aws, start_helpdesks() as helpdesks:
        connect_tenant(aws.container.secrets, helpdesks, TENANT)
        # The tenant is in assist: an AI reply decided under auto goes to agents as a note.
        config = TenantConfig(
            tenant_id=TENANT, display_name=TENANT, policy=DecisionPolicy(rollout_default="assist")
        )
        aws.container.store.put(
            TenantContext.system(TENANT), TenantConfigs(aws.container.store).save_write(config)
        )
        yield aws, helpdesks


def seen_now(ticket: Ticket, desk) -> Ticket:
    """The ticket as intake records it after the helpdesk's latest change (a decision made now saw this)."""
    return ticket.model_copy(update={"external_updated_at": desk.updated_at})


def commit(aws, *items) -> None:
    aws.container.store.transact(TenantContext.system(TENANT), outbox.writes(items))


def dispatch(svc, item) -> str:
    return svc.dispatch(OutboxRef(tenant_id=TENANT, outbox_id=item.outbox_id)).outcome


def public_from_deflect(desk) -> list:
    """What the customer saw from Deflect."""
    return [e for e in desk.events if e.author in BOT.values() and e.public and e.kind == "comment"]


def notes_from_deflect(desk) -> list:
    """What only the agents saw from Deflect."""
    return [e for e in desk.events if e.author in BOT.values() and not e.public and e.kind == "note"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_held_note_does_not_let_the_next_reply_out_over_an_agents_reply(world, provider):
    aws, helpdesks = world
    queue = ListQueue()
    svc = service(aws, fast_http(), queue=queue)
    ticket = helpdesk_ticket(helpdesks, TENANT, provider)
    desk = helpdesks.state.ticket(provider, TENANT, ticket.external_id)
    first = outbox.reply(ticket, FIRST, tags=["deflect-ai"])
    helpdesks.state.human_edit(provider, TENANT, desk.id, "customer_reply", body="And my invoice?")
    second = outbox.reply(seen_now(ticket, desk), SECOND, tags=["deflect-ai"])
    commit(aws, first, second)
    # An agent answers the customer in the helpdesk after both decisions read the ticket.
    helpdesks.state.human_edit(provider, TENANT, desk.id, "comment", body=AGENT_REPLY)

    assert dispatch(svc, first) == "conflict"
    [held] = queue.take()
    assert svc.dispatch(held).outcome == "delivered"  # the held reply, as a note for the agents
    assert dispatch(svc, second) == "conflict"
    [held] = queue.take()
    assert svc.dispatch(held).outcome == "delivered"

    # The customer saw the agent's reply and nothing from Deflect; both AI replies reached agents as notes only.
    assert public_from_deflect(desk) == []
    notes = " ".join(n.body for n in notes_from_deflect(desk))
    assert FIRST in notes and SECOND in notes
    assert [e.body for e in desk.events if e.public and e.kind == "comment"][-1] == AGENT_REPLY


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_assist_draft_does_not_let_the_acknowledgement_out_over_an_agents_reply(world, provider):
    aws, helpdesks = world
    queue = ListQueue()
    svc = service(aws, fast_http(), queue=queue)
    ticket = helpdesk_ticket(helpdesks, TENANT, provider)
    desk = helpdesks.state.ticket(provider, TENANT, ticket.external_id)
    # Triage answered the first message under auto; the tenant is in assist now, so it goes out as a draft note.
    draft = outbox.reply(
        ticket,
        FIRST,
        tags=["deflect-ai"],
        caused_by="dec_first",
        intent="password_reset",
        rollout_mode="auto",
    )
    helpdesks.state.human_edit(provider, TENANT, desk.id, "customer_reply", body="I want a refund")
    # The refund request escalates: the customer is told a person will follow up (public even in assist).
    ack = outbox.reply(seen_now(ticket, desk), ACK, caused_by="escalation:esc-refund")
    commit(aws, draft, ack)
    helpdesks.state.human_edit(provider, TENANT, desk.id, "comment", body=AGENT_REPLY)

    assert dispatch(svc, draft) == "delivered"
    assert dispatch(svc, ack) == "conflict"
    [held] = queue.take()
    assert svc.dispatch(held).outcome == "delivered"

    assert public_from_deflect(desk) == []
    notes = " ".join(n.body for n in notes_from_deflect(desk))
    assert FIRST in notes and ACK in notes


@pytest.mark.parametrize("provider", PROVIDERS)
def test_without_an_agents_reply_the_acknowledgement_still_follows_the_draft(world, provider):
    """Deflect's own note is no one else's edit: the acknowledgement behind it goes out to the customer."""
    aws, helpdesks = world
    svc = service(aws, fast_http(), queue=ListQueue())
    ticket = helpdesk_ticket(helpdesks, TENANT, provider)
    desk = helpdesks.state.ticket(provider, TENANT, ticket.external_id)
    draft = outbox.reply(
        ticket,
        FIRST,
        tags=["deflect-ai"],
        caused_by="dec_first",
        intent="password_reset",
        rollout_mode="auto",
    )
    helpdesks.state.human_edit(provider, TENANT, desk.id, "customer_reply", body="I want a refund")
    ack = outbox.reply(seen_now(ticket, desk), ACK, caused_by="escalation:esc-refund")
    commit(aws, draft, ack)

    assert [dispatch(svc, draft), dispatch(svc, ack)] == ["delivered", "delivered"]
    [public] = public_from_deflect(desk)
    assert ACK in public.body
    [note] = notes_from_deflect(desk)
    assert FIRST in note.body


@pytest.mark.parametrize("provider", PROVIDERS)
def test_deflects_own_note_reply_and_status_from_one_snapshot_all_go_out(world, provider):
    aws, helpdesks = world
    svc = service(aws, fast_http(), queue=ListQueue())
    ticket = helpdesk_ticket(helpdesks, TENANT, provider)
    desk = helpdesks.state.ticket(provider, TENANT, ticket.external_id)
    items = [
        outbox.reply(ticket, "Checked the logs: the sync token expired.", public=False),
        outbox.reply(ticket, FIRST, tags=["deflected"]),
        outbox.new_item(ticket, "status", status_value="solved"),
    ]
    commit(aws, *items)

    assert [dispatch(svc, i) for i in items] == ["delivered", "delivered", "delivered"]
    [public] = public_from_deflect(desk)
    assert FIRST in public.body
    assert (
        desk.status
        == {"zendesk": "solved", "intercom": "closed", "freshdesk": "4", "jira": "Resolved"}[provider]
    )


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_reply_replayed_after_an_outage_is_held_when_its_decision_never_saw_the_agents_reply(
    world, provider
):
    aws, helpdesks = world
    ctx = TenantContext.system(TENANT)
    queue = ListQueue()
    svc = service(
        aws, fast_http(), queue=queue, max_attempts=1, dead_letters=aws.container.writeback_dead_letters
    )
    ticket = helpdesk_ticket(helpdesks, TENANT, provider)
    desk = helpdesks.state.ticket(provider, TENANT, ticket.external_id)
    older = outbox.reply(ticket, FIRST)
    commit(aws, older)
    helpdesks.state.faults.append(Fault(provider=provider, status=503, count=100))
    assert dispatch(svc, older) == "dead"  # the helpdesk is down
    helpdesks.state.faults.clear()
    aws.queue_messages("WritebackDLQ")

    # Meanwhile an agent answers, the customer asks something else, and Deflect answers that (seeing both).
    helpdesks.state.human_edit(provider, TENANT, desk.id, "comment", body=AGENT_REPLY)
    helpdesks.state.human_edit(provider, TENANT, desk.id, "customer_reply", body="And my invoice?")
    newer = outbox.reply(seen_now(ticket, desk), SECOND)
    commit(aws, newer)
    assert dispatch(svc, newer) == "delivered"

    # The operator replays the dead reply: its decision never saw the agent's reply, so it is held.
    assert svc.replay(ctx, [older.outbox_id]) == [older.outbox_id]
    [ref] = queue.take()
    assert svc.dispatch(ref).outcome == "conflict"
    [public] = public_from_deflect(desk)
    assert SECOND in public.body and FIRST not in public.body
