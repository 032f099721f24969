"""Which connector a conversation's outbox item gets: the tenant's generic webhook when it has one, else the
conversation API itself, which delivers what that API shows its customer (a triage reply), records what it has no
reader for by design (a note, a status) as not shown, and refuses any other public message."""

from __future__ import annotations

import json

import pytest

from deflect.domain.models import RequestedAction, Ticket
from deflect.helpdesk.conversation_channel import ConversationChannel
from deflect.helpdesk.directory import HelpdeskDirectory
from deflect.helpdesk.errors import HelpdeskNotConfigured
from deflect.helpdesk.webhook import SignedWebhookConnector
from deflect.services import outbox

CONVERSATION = Ticket(tenant_id="acme", ticket_id="cnv_1", provider="api", external_id="cnv_1")
GENERIC = json.dumps(
    {"provider": "generic", "base_url": "https://backend.acme.test/hook", "signing_secret": "s"}
)


class Secrets:
    def __init__(self, stored: dict[str, str]) -> None:
        self.stored = stored

    def secrets(self, tenant_id: str, name: str) -> list[str]:
        return [self.stored[name]] if name in self.stored else []


def triage_reply(ticket: Ticket = CONVERSATION):
    return outbox.reply(ticket, "Open Reports, then Export CSV.", caused_by="dec_1", tags=["deflect-ai"])


def test_without_a_generic_connection_a_triage_reply_is_delivered_by_the_conversation_api():
    item = triage_reply()
    connector = HelpdeskDirectory(Secrets({})).connector("acme", item)

    assert isinstance(connector, ConversationChannel)
    receipt = connector.send(item)
    assert receipt.effects == [f"conversation_api:{item.outbox_id}"]
    assert (receipt.outbox_id, receipt.requests) == (item.outbox_id, 0)


def test_with_a_generic_connection_the_reply_goes_to_the_tenants_backend():
    connector = HelpdeskDirectory(Secrets({"generic-writeback": GENERIC})).connector("acme", triage_reply())

    assert isinstance(connector, SignedWebhookConnector)


@pytest.mark.parametrize(
    "item",
    [
        outbox.reply(
            CONVERSATION,
            "Deflect escalation: approve by agent:ann.",
            public=False,
            caused_by="escalation:esc-1",
        ),
        outbox.new_item(CONVERSATION, "status", status_value="solved", caused_by="escalation:esc-1"),
    ],
    ids=["escalation_note", "escalation_status"],
)
def test_what_the_conversation_api_has_no_reader_for_is_recorded_as_not_shown(item):
    connector = HelpdeskDirectory(Secrets({})).connector("acme", item)

    receipt = connector.send(item)

    assert receipt.effects == ["conversation_api:not_shown"] and receipt.requests == 0


@pytest.mark.parametrize("caused_by", ["dec_1", "cnv_1-reply-outbox-id"], ids=["assist_draft", "held_note"])
def test_a_note_asking_a_person_for_work_only_it_shows_is_never_recorded_as_not_shown(caused_by):
    # An assist-mode draft, or the note handing over a held reply: nobody would ever see either, so it must alarm.
    item = outbox.reply(CONVERSATION, "Suggested reply for agents", public=False, caused_by=caused_by)
    connector = HelpdeskDirectory(Secrets({})).connector("acme", item)

    with pytest.raises(HelpdeskNotConfigured):
        connector.send(item)


def test_a_public_message_the_conversation_api_does_not_show_is_never_recorded_as_delivered():
    # An escalation's public reply under an id neither its acknowledgement nor its decision's reply has.
    item = outbox.reply(CONVERSATION, "A person will follow up.", caused_by="escalation:esc-1")
    connector = HelpdeskDirectory(Secrets({})).connector("acme", item)

    with pytest.raises(HelpdeskNotConfigured):
        connector.send(item)


def test_account_actions_and_helpdesk_tickets_are_routed_as_before():
    action = outbox.new_item(
        CONVERSATION, "account_action", action=RequestedAction(kind="refund", amount="10", currency="USD")
    )
    with pytest.raises(HelpdeskNotConfigured):
        HelpdeskDirectory(Secrets({})).connector("acme", action)
    zendesk = Ticket(tenant_id="acme", ticket_id="tkt_1", provider="zendesk", external_id="1")
    with pytest.raises(HelpdeskNotConfigured):
        HelpdeskDirectory(Secrets({})).connector("acme", triage_reply(zendesk))
