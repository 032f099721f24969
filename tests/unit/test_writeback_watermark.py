"""The ticket's writeback watermark, through the writeback service on the in-memory table and the in-process
helpdesks (no sockets): only a write that was checked for others' edits moves it, it remembers where that check
started, and a later item is measured from it only when its own decision saw at least that much."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from deflect.domain import keys
from deflect.domain.models import Ticket
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemorySupportStore
from deflect.helpdesk.directory import CONNECTORS, connector_name
from deflect.helpdesk.models import HelpdeskCredentials
from deflect.ports import Put
from deflect.services import outbox
from deflect.services.outbox import OutboxRef
from deflect.services.writeback import Writeback
from infra.local.helpdesks import BOT, credentials_for
from infra.local.helpdesks.harness import ListQueue
from infra.local.helpdesks.inprocess import BASE_URL, InProcessHttp

TENANT = "acme"
HELPDESKS = ["zendesk", "intercom", "freshdesk", "jira"]
AGENT_REPLY = "Agent here: done, nothing else needed."


class Desks:
    """The tenant's helpdesk connections, all on the in-process helpdesks."""

    def __init__(self, http: InProcessHttp) -> None:
        self.http = http

    def connector(self, tenant_id: str, item):
        name = connector_name(item)
        creds = HelpdeskCredentials.parse(name, json.dumps(credentials_for(name, tenant_id, BASE_URL)))
        return CONNECTORS[name](tenant_id, creds, self.http)


@pytest.fixture
def http() -> InProcessHttp:
    return InProcessHttp(sleep=lambda s: None)


@pytest.fixture
def store() -> MemorySupportStore:
    return MemorySupportStore()


def writeback(store, http, queue: ListQueue | None = None) -> Writeback:
    return Writeback(store, Desks(http), queue=queue, audit=None)


def new_ticket(http, provider: str) -> tuple[Ticket, object]:
    desk = http.state.create_ticket(provider, TENANT)
    ticket = Ticket(
        tenant_id=TENANT,
        ticket_id=f"t-{provider}-{desk.id}",
        provider=provider,
        external_id=desk.id,
        external_updated_at=desk.updated_at,
    )
    return ticket, desk


def dispatch(svc: Writeback, *items) -> list[str]:
    ctx = TenantContext.system(TENANT)
    outcomes = []
    for item in items:
        if svc.outbox.get(ctx, item.outbox_id) is None:
            svc.store.transact(ctx, outbox.writes([item]))
        outcomes.append(svc.dispatch(OutboxRef(tenant_id=TENANT, outbox_id=item.outbox_id)).outcome)
    return outcomes


def watermark(store, ticket: Ticket) -> dict | None:
    found = store.get(
        TenantContext.system(TENANT), keys.ticket_pk(TENANT, ticket.ticket_id), f"WRITEBACK#{ticket.provider}"
    )
    return found.data if found else None


def public_from_deflect(desk) -> list:
    return [e for e in desk.events if e.author in BOT.values() and e.public and e.kind == "comment"]


@pytest.mark.parametrize("provider", HELPDESKS)
def test_a_note_moves_no_watermark_and_a_checked_reply_records_where_its_check_began(store, http, provider):
    svc = writeback(store, http)
    ticket, _ = new_ticket(http, provider)
    note = outbox.reply(ticket, "Looking into it.", public=False)
    assert dispatch(svc, note) == ["delivered"]
    assert watermark(store, ticket) is None

    reply = outbox.reply(ticket, "Here is how to fix it.", tags=["deflected"])
    assert dispatch(svc, reply) == ["delivered"]
    mark = watermark(store, ticket)
    assert mark["checked_from"] == ticket.external_updated_at.isoformat()
    assert mark["outbox_id"] == reply.outbox_id and mark["external_updated_at"] > mark["checked_from"]


@pytest.mark.parametrize("provider", HELPDESKS)
def test_a_watermark_written_before_it_named_its_check_hides_no_agent_reply(store, http, provider):
    """A watermark from before this fix may be a note's receipt, past an agent's reply: it is not trusted."""
    svc = writeback(store, http, ListQueue())
    ticket, desk = new_ticket(http, provider)
    http.state.human_edit(provider, TENANT, desk.id, "comment", body=AGENT_REPLY)
    ctx = TenantContext.system(TENANT)
    legacy = {
        "external_updated_at": (desk.updated_at + timedelta(minutes=5)).isoformat(),
        "outbox_id": "obx_old",
    }
    store.put(ctx, Put(pk=keys.ticket_pk(TENANT, ticket.ticket_id), sk=f"WRITEBACK#{provider}", data=legacy))

    assert dispatch(svc, outbox.reply(ticket, "Here is how to fix it.")) == ["conflict"]
    assert public_from_deflect(desk) == []


@pytest.mark.parametrize("provider", HELPDESKS)
def test_a_watermark_whose_check_began_after_an_items_snapshot_is_not_used(store, http, provider):
    """A reply decided before an agent's reply, sent after a reply decided since (that saw the agent's reply):
    the later reply's check covers only what came after its own snapshot, so the earlier one is held."""
    svc = writeback(store, http, ListQueue())
    ticket, desk = new_ticket(http, provider)
    older = outbox.reply(ticket, "Restart the sync.")
    http.state.human_edit(provider, TENANT, desk.id, "comment", body=AGENT_REPLY)
    newer = outbox.reply(
        ticket.model_copy(update={"external_updated_at": desk.updated_at}), "Glad it works now."
    )

    assert dispatch(svc, newer, older) == ["delivered", "conflict"]
    assert [e.body for e in public_from_deflect(desk) if "Restart" in e.body] == []


def test_a_chain_of_deflects_own_property_changes_is_not_a_conflict(store, http):
    """Freshdesk shows no author for property changes: each checked write extends the watermark from the same
    snapshot, so the next item skips Deflect's own changes (and only those)."""
    svc = writeback(store, http)
    ticket, desk = new_ticket(http, "freshdesk")
    items = [
        outbox.new_item(ticket, "status", status_value="pending"),
        outbox.new_item(ticket, "tags", tags=["triaged"]),
        outbox.new_item(ticket, "custom_fields", custom_fields={"cf_reason": "sync"}),
        outbox.new_item(ticket, "status", status_value="resolved"),
    ]
    assert dispatch(svc, *items) == ["delivered"] * 4
    assert desk.status == "4" and desk.tags == ["triaged"] and desk.custom_fields == {"cf_reason": "sync"}
    assert watermark(store, ticket)["checked_from"] == ticket.external_updated_at.isoformat()

    # An agent's reassignment after them is still someone else's edit.
    http.state.human_edit("freshdesk", TENANT, desk.id, "assignee")
    assert dispatch(svc, outbox.new_item(ticket, "status", status_value="pending")) == ["conflict"]
    assert desk.status == "4"
