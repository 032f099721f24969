"""A chat customer gets the reply a person decided after their conversation escalated.

A tenant that answers through the conversation API alone (no `generic-writeback` connection): the escalation's
reply, approved as proposed, edited, or written on rejecting the proposal, ends `done` through the conversation API
itself (effect `conversation_api:<outbox id>`), not `dead`, and `GET /v1/conversations/{id}` shows it once delivered,
`answered_by: agent`. Never before, never when writeback held it back; never the internal note (which ends `done`,
not shown: the conversation API has no reader for it) or a proposal the agent rejected; never to another requester,
tenant or conversation; once however often it is delivered.

The real triage, escalation steps, approval service, writeback and helpdesk directory on the in-memory store.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from deflect.domain.models import OutboxItem, Ticket
from deflect.escalation.records import outbox_id_for
from deflect.helpdesk.conversation_channel import ConversationChannel
from deflect.helpdesk.errors import HelpdeskNotConfigured
from deflect.services import outbox
from tests.unit.conversation_chat import (
    ADMIN,
    PROPOSAL_QUOTE,
    Chat,
    Clock,
    Crash,
    X,
    crash_once_sent,
)
from tests.unit.triage_fakes import REFUND_ARTICLE

# ------------------------------------------------------------------ delivered and shown


def test_an_approved_reply_ends_done_through_the_conversation_api_and_the_customer_sees_it():
    chat = Chat()
    conversation = chat.start()
    assert PROPOSAL_QUOTE in chat.proposal
    waiting = chat.shown(conversation)
    assert (waiting["status"], waiting["decision"]["reply"], waiting["decision"]["answered_by"]) == (
        "escalated",
        None,
        None,
    )

    items = chat.decide("approve")
    reply = items["public_reply"]
    assert reply.body == chat.proposal
    # Queued, not delivered yet: nothing to show, and not `resolved` (the approval resolved the ticket already).
    queued = chat.shown(conversation)
    assert (queued["status"], queued["decision"]["reply"]) == ("escalated", None)

    result = chat.dispatch(reply)

    assert (result.outcome, result.detail) == ("delivered", f"conversation_api:{reply.outbox_id}")
    done = chat.item(reply.outbox_id)
    assert done.status == "done" and done.receipt["effects"] == [f"conversation_api:{reply.outbox_id}"]
    shown = chat.shown(conversation)
    assert shown["status"] == "resolved"
    answer = shown["decision"]
    assert (answer["reply"], answer["answered_by"]) == (chat.proposal, "agent")
    assert answer["answered_at"] == done.updated_at.isoformat()
    # Approved as proposed, it quotes the article triage drafted it from (checked again before it was sent).
    assert [c["article_id"] for c in answer["citations"]] == [REFUND_ARTICLE.article_id]
    # Nothing of what agents alone see: the decision's internal note, the summary, the task.
    text = json.dumps(shown)
    assert "agent:ann" not in text and "Deflect escalation" not in text and chat.task_id not in text
    assert chat.audited(conversation, "writeback.delivered")[0]["effects"] == [
        f"conversation_api:{reply.outbox_id}"
    ]


def test_an_edited_reply_is_shown_as_the_agent_wrote_it_and_never_the_proposal():
    chat = Chat()
    conversation = chat.start()
    edited = "We refunded 120 EUR to your card today. - Ann"

    reply = chat.decide("edit", edited)["public_reply"]
    assert chat.dispatch(reply).outcome == "delivered"

    shown = chat.shown(conversation)
    assert shown["status"] == "resolved"
    assert (shown["decision"]["reply"], shown["decision"]["answered_by"]) == (edited, "agent")
    assert shown["decision"]["citations"] == []
    assert PROPOSAL_QUOTE not in json.dumps(shown)


def test_a_reply_written_on_rejecting_the_proposal_is_shown_and_the_conversation_is_answered_not_resolved():
    chat = Chat()
    conversation = chat.start()
    written = "We cannot refund this invoice; it is older than 30 days."

    reply = chat.decide("reject", written)["public_reply"]
    assert chat.dispatch(reply).outcome == "delivered"

    shown = chat.shown(conversation)
    assert shown["status"] == "answered"
    assert (shown["decision"]["reply"], shown["decision"]["answered_by"]) == (written, "agent")
    assert PROPOSAL_QUOTE not in json.dumps(shown)


# ------------------------------------------------------------------ not shown, and undeliverable as before


def test_a_rejected_proposal_is_never_shown_and_the_decisions_note_ends_not_shown():
    chat = Chat()
    conversation = chat.start()

    items = chat.decide("reject")

    assert set(items) == {"internal_note"}  # no reply for the customer: nothing to deliver or show
    note = chat.dispatch(items["internal_note"])
    assert (note.outcome, note.detail) == ("not_shown", "conversation_api:not_shown")
    for outbox_id in chat.acknowledged:  # "a person will follow up": delivered, and shown while escalated
        assert chat.dispatch(chat.item(outbox_id)).outcome == "delivered"
    shown = chat.shown(conversation)
    assert (shown["status"], shown["decision"]["reply"], shown["decision"]["answered_by"]) == (
        "escalated",
        None,
        None,
    )
    assert PROPOSAL_QUOTE not in json.dumps(shown) and "Deflect escalation" not in json.dumps(shown)


def test_a_reply_writeback_held_back_is_not_shown():
    chat = Chat()
    conversation = chat.start()
    reply = chat.decide("approve")["public_reply"]
    chat.kb.delete(ADMIN, REFUND_ARTICLE.article_id)  # the article the approved proposal quotes is withdrawn

    assert chat.dispatch(reply).outcome == "conflict"

    # The held note hands the reply to agents, who will never see it without a helpdesk: it alarms.
    held = chat.item(f"{reply.outbox_id}-held")
    assert chat.dispatch(held).outcome == "dead"
    shown = chat.shown(conversation)
    assert shown["decision"]["reply"] is None and shown["decision"]["answered_by"] is None
    assert shown["status"] == "with_agent"  # as a held triage reply: the support team has it
    assert PROPOSAL_QUOTE not in json.dumps(shown)


# ------------------------------------------------------------------ only to its customer, once


def test_another_requester_tenant_or_conversation_never_sees_the_reply():
    chat = Chat()
    conversation = chat.start()
    assert chat.dispatch(chat.decide("approve")["public_reply"]).outcome == "delivered"
    assert chat.shown(conversation)["decision"]["answered_by"] == "agent"

    assert chat.unreadable_by_others(conversation)
    # The same customer's next conversation shows nothing of this one's answer.
    other = chat.intake.converse(chat.ctx, chat.config, text="Hello?", requester=X).body["conversation_id"]
    assert chat.shown(other)["decision"] is None and chat.shown(other)["status"] == "processing"
    assert chat.proposal not in json.dumps(chat.shown(other))


def test_a_repeated_or_retried_delivery_records_and_shows_the_reply_once():
    chat = Chat()
    conversation = chat.start()
    reply = chat.decide("edit", "We refunded 120 EUR. - Ann")["public_reply"]
    clock = Clock()

    # The first delivery records the effect, then the worker dies before its receipt is stored.
    with pytest.raises(Crash):
        chat.dispatch(reply, checkpoint=crash_once_sent, clock=clock)
    assert chat.shown(conversation)["decision"]["reply"] is None  # not delivered yet: not shown
    clock.later(timedelta(minutes=5))  # its claim's lease ran out: the queue's redelivery takes over
    assert chat.dispatch(reply, clock=clock).outcome == "delivered"
    assert chat.dispatch(reply, clock=clock).outcome == "already_handled"  # a duplicate queue message

    done = chat.item(reply.outbox_id)
    assert done.dispatches == 2 and done.receipt["effects"] == [f"conversation_api:{reply.outbox_id}"]
    assert len(chat.audited(conversation, "writeback.delivered")) == 1
    shown = chat.shown(conversation)
    assert shown["decision"]["reply"] == "We refunded 120 EUR. - Ann"
    # Once in the conversation's messages (and once as the decision's answer).
    assert [m["text"] for m in shown["messages"] if m["author"] == "agent"] == ["We refunded 120 EUR. - Ann"]
    assert json.dumps(shown).count("We refunded 120 EUR") == 2


# ------------------------------------------------------------------ the channel on its own

CONVERSATION = Ticket(tenant_id="acme", ticket_id="cnv_1", provider="api", external_id="cnv_1")


def _escalation_item(step: str, kind: str = "public_reply", execution: str = "esc-1") -> OutboxItem:
    item = outbox.new_item(CONVERSATION, kind, body="We refunded you.", caused_by=f"escalation:{execution}")
    return item.model_copy(update={"outbox_id": outbox_id_for(execution, step, kind)})


def test_the_channel_delivers_the_escalations_two_public_messages_and_records_its_notes_as_not_shown():
    channel = ConversationChannel("acme")
    decided = _escalation_item("writeback")
    acknowledged = _escalation_item("acknowledged")  # "a person will follow up": GET shows it while escalated

    for item in (decided, acknowledged):
        assert channel.send(item).effects == [f"conversation_api:{item.outbox_id}"]
    for item in (
        _escalation_item("writeback", "internal_note"),
        _escalation_item("review_expired", "internal_note"),
    ):
        assert channel.send(item).effects == ["conversation_api:not_shown"]
    # Another escalation's reply id (the item does not carry its own execution's): a public message nobody reads.
    with pytest.raises(HelpdeskNotConfigured):
        channel.send(decided.model_copy(update={"caused_by": "escalation:esc-2"}))
