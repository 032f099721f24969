"""A chat customer never loses a reply they were sent: `GET /v1/conversations/{id}` lists it in `messages`.

A tenant that answers through the conversation API alone (no `generic-writeback` connection) has no other copy of
what it sent its customer. `messages` is the whole conversation in time order: the customer's messages
(`author: customer`) and every reply writeback delivered (or the answer to the POST carried), whichever triage
decision it followed: triage's replies and the escalation's "a person will follow up" (`author: triage`), and the
reply a person decided (`author: agent`). A follow-up message, decided on its own once the escalation closed, hides
none of them, even when the person's reply is delivered after the follow-up was decided. Never a reply held back, a
note for agents, or a proposal the agent rejected; each reply once however often it is delivered; never to another
requester, tenant or conversation. `decision` describes the latest triage decision, and `status` does not fall
back to `escalated` when the newest thing the customer got is the person's reply.

The real triage, escalation steps, approval service, writeback and helpdesk directory on the in-memory store.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from deflect.knowledge.models import ArticleInput
from deflect.repositories import TenantConfigs
from tests.unit.conversation_chat import (
    ADMIN,
    PROPOSAL_QUOTE,
    REFUND,
    Chat,
    Clock,
    Crash,
    X,
    crash_once_sent,
)
from tests.unit.triage_fakes import EXPORT_ARTICLE, REFUND_ARTICLE

ANY_NEWS = "Hello? Any news on my refund of the last invoice?"
FEBRUARY = "Thanks. Can you also refund the February invoice of 120 EUR?"
HOW_TO = "How do I export a report?"
FOLLOW_UP = "will review your request personally"


def _chat(*, sync_triage: bool = False) -> Chat:
    """The chat, with the export article triage answers HOW_TO from in the knowledge base writeback checks."""
    chat = Chat(sync_triage=sync_triage)
    chat.kb.put(
        ADMIN, EXPORT_ARTICLE.article_id, ArticleInput(title=EXPORT_ARTICLE.title, body=EXPORT_ARTICLE.text)
    )
    return chat


def _said(shown: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["author"], m["text"]) for m in shown["messages"]]


def _in_time_order(shown: dict[str, Any]) -> bool:
    times = [m["at"] for m in shown["messages"]]
    return times == sorted(times)


def _deliver_acknowledgement(chat: Chat) -> str:
    [outbox_id] = chat.acknowledged
    assert chat.dispatch(chat.item(outbox_id)).outcome == "delivered"
    return chat.item(outbox_id).body


# ------------------------------------------------------------------ the reviewer's two chats


def test_a_reply_delivered_after_the_customer_wrote_again_is_shown_while_the_new_request_stays_escalated():
    chat = _chat()
    conversation = chat.start()
    reply = chat.decide("approve")["public_reply"]
    # The customer writes before writeback delivered the approved reply: the escalation is closed, so the
    # follow-up is decided on its own (a refund again: escalated).
    follow_up = chat.write(conversation, ANY_NEWS)
    assert follow_up.escalated and follow_up.attached_to is None

    assert chat.dispatch(reply).outcome == "delivered"

    shown = chat.shown(conversation)
    assert _said(shown) == [("customer", REFUND), ("customer", ANY_NEWS), ("agent", chat.proposal)]
    delivered = chat.item(reply.outbox_id)
    assert shown["messages"][-1] == {
        "message_id": reply.outbox_id,
        "author": "agent",
        "text": chat.proposal,
        "at": delivered.updated_at.isoformat(),
    }
    # The follow-up's own review still waits on a person, and so does the customer: `escalated`, though the
    # first request's answer is there to read.
    assert shown["status"] == "escalated"
    # `decision` still describes the latest triage decision: the follow-up's.
    assert shown["decision"]["outcome"] == "escalate"
    assert shown["decision"]["decided_at"] > shown["messages"][1]["at"]
    assert shown["decision"]["answered_by"] is None

    # The follow-up's own escalation then says "a person will follow up", and the chat is still escalated.
    chat.run_escalation(conversation)
    acknowledged = _deliver_acknowledgement(chat)
    again = chat.shown(conversation)
    assert _said(again)[-2:] == [("agent", chat.proposal), ("triage", acknowledged)]
    assert again["status"] == "escalated" and _in_time_order(again)


def test_the_agents_reply_stays_in_the_conversation_after_the_customer_writes_again():
    chat = _chat()
    conversation = chat.start()
    acknowledged = _deliver_acknowledgement(chat)
    assert chat.dispatch(chat.decide("approve")["public_reply"]).outcome == "delivered"
    assert chat.shown(conversation)["status"] == "resolved"

    assert chat.write(conversation, FEBRUARY).escalated

    shown = chat.shown(conversation)
    assert _said(shown) == [
        ("customer", REFUND),
        ("triage", acknowledged),
        ("agent", chat.proposal),
        ("customer", FEBRUARY),
    ]
    assert _in_time_order(shown)
    # The follow-up came after the reply: the conversation is what its decision made it.
    assert shown["status"] == "escalated"
    assert (shown["decision"]["outcome"], shown["decision"]["answered_by"]) == ("escalate", None)


def test_every_reply_of_a_longer_chat_is_shown_in_the_order_it_was_sent():
    chat = _chat()
    conversation = chat.start()
    acknowledged = _deliver_acknowledgement(chat)
    edited = "We refunded 120 EUR to your card today. - Ann"
    assert chat.dispatch(chat.decide("edit", edited)["public_reply"]).outcome == "delivered"

    answered = chat.write(conversation, HOW_TO)  # answered by triage in auto mode
    [outbox_id] = answered.outbox_ids
    assert answered.outcome == "deflect" and chat.item(outbox_id).kind == "public_reply"
    assert chat.dispatch(chat.item(outbox_id)).outcome == "delivered"

    shown = chat.shown(conversation)
    assert _said(shown) == [
        ("customer", REFUND),
        ("triage", acknowledged),
        ("agent", edited),
        ("customer", HOW_TO),
        ("triage", answered.reply),
    ]
    assert _in_time_order(shown)
    # Triage's reply is shown at its decision's time, as `answered_at` has it.
    assert shown["messages"][-1]["at"] == shown["decision"]["answered_at"]
    assert (shown["status"], shown["decision"]["answered_by"]) == ("answered", "triage")
    # The customer's own messages keep the fields they had.
    assert set(shown["messages"][0]) == {"message_id", "author", "text", "received_at", "at"}


# ------------------------------------------------------------------ what is never shown


def test_held_back_replies_notes_and_the_rejected_proposal_never_appear_however_the_chat_goes_on():
    chat = _chat()
    conversation = chat.start()
    acknowledged = _deliver_acknowledgement(chat)
    reply = chat.decide("approve")["public_reply"]
    chat.kb.delete(ADMIN, REFUND_ARTICLE.article_id)  # the article the approved proposal quotes is withdrawn
    assert chat.dispatch(reply).outcome == "conflict"
    assert chat.dispatch(chat.item(f"{reply.outbox_id}-held")).outcome == "dead"  # alarmed

    # The customer writes again: a new escalation, which the agent rejects without a reply.
    assert chat.write(conversation, FEBRUARY).escalated
    chat.run_escalation(conversation)
    second = _deliver_acknowledgement(chat)
    items = chat.decide("reject")
    assert set(items) == {"internal_note"}
    assert chat.dispatch(items["internal_note"]).outcome == "not_shown"

    shown = chat.shown(conversation)
    assert _said(shown) == [
        ("customer", REFUND),
        ("triage", acknowledged),
        ("customer", FEBRUARY),
        ("triage", second),
    ]
    text = json.dumps(shown)
    assert PROPOSAL_QUOTE not in text and "Deflect escalation" not in text and "agent:ann" not in text


def test_a_triage_reply_is_shown_once_delivered_and_never_when_the_kill_switch_held_it_back():
    chat = _chat()
    conversation = chat.start()
    _deliver_acknowledgement(chat)
    assert chat.dispatch(chat.decide("approve")["public_reply"]).outcome == "delivered"
    answered = chat.write(conversation, HOW_TO)
    [outbox_id] = answered.outbox_ids

    # Queued, not delivered yet (and the answer to a 202 carried nothing): not in the conversation.
    assert answered.reply not in [m["text"] for m in chat.shown(conversation)["messages"]]

    config = TenantConfigs(chat.store).get(chat.ctx)
    config.policy.rollout_default = "shadow"  # the tenant switched to shadow before writeback sent it
    chat.store.put(chat.ctx, TenantConfigs(chat.store).save_write(config))
    assert chat.dispatch(chat.item(outbox_id)).outcome == "suppressed"

    shown = chat.shown(conversation)
    assert [m["author"] for m in shown["messages"]] == ["customer", "triage", "agent", "customer"]
    assert answered.reply not in json.dumps(shown)


def test_the_reply_the_answer_to_the_post_carried_is_shown_before_writeback_delivers_it():
    chat = _chat(sync_triage=True)
    started = chat.intake.converse(chat.ctx, chat.config, text=HOW_TO, requester=X)
    assert started.status_code == 200 and started.body["status"] == "answered"
    conversation, reply = started.body["conversation_id"], started.body["triage"]["reply"]

    assert _said(chat.shown(conversation)) == [("customer", HOW_TO), ("triage", reply)]
    [outbox_id] = started.body["triage"]["outbox_ids"]
    assert chat.dispatch(chat.item(outbox_id)).outcome == "delivered"
    assert _said(chat.shown(conversation)) == [("customer", HOW_TO), ("triage", reply)]


# ------------------------------------------------------------------ once, and only to its customer


def test_a_redelivered_reply_appears_once():
    chat = _chat()
    conversation = chat.start()
    reply = chat.decide("edit", "We refunded 120 EUR. - Ann")["public_reply"]
    clock = Clock()

    with pytest.raises(Crash):  # the worker dies between the channel's answer and the stored outcome
        chat.dispatch(reply, checkpoint=crash_once_sent, clock=clock)
    assert ("agent", "We refunded 120 EUR. - Ann") not in _said(chat.shown(conversation))
    clock.later(timedelta(minutes=5))  # its claim's lease ran out: the queue's redelivery takes over
    assert chat.dispatch(reply, clock=clock).outcome == "delivered"
    first = chat.shown(conversation)["messages"]
    assert chat.dispatch(reply, clock=clock).outcome == "already_handled"  # a duplicate queue message
    for outbox_id in chat.acknowledged:  # the acknowledgement twice as well
        chat.dispatch(chat.item(outbox_id))
        assert chat.dispatch(chat.item(outbox_id)).outcome == "already_handled"
    chat.write(conversation, FEBRUARY)

    messages = chat.shown(conversation)["messages"]
    assert [m for m in messages if m["author"] == "agent"] == [m for m in first if m["author"] == "agent"]
    assert [m["message_id"] for m in messages].count(reply.outbox_id) == 1
    assert sum(FOLLOW_UP in m["text"] for m in messages) == 1


def test_another_requester_tenant_or_conversation_never_gets_the_replies():
    chat = _chat()
    conversation = chat.start()
    _deliver_acknowledgement(chat)
    assert chat.dispatch(chat.decide("approve")["public_reply"]).outcome == "delivered"
    chat.write(conversation, FEBRUARY)
    assert ("agent", chat.proposal) in _said(chat.shown(conversation))

    assert chat.unreadable_by_others(conversation)
    # The same customer's next conversation shows only its own message.
    other = chat.intake.converse(chat.ctx, chat.config, text="Hello?", requester=X).body["conversation_id"]
    assert _said(chat.shown(other)) == [("customer", "Hello?")]


def test_a_first_requests_reply_delivered_after_the_second_was_acknowledged_leaves_the_chat_escalated():
    chat = _chat()
    conversation = chat.start()
    reply = chat.decide("approve")["public_reply"]  # the first request's answer, queued
    assert chat.write(conversation, FEBRUARY).escalated  # a second request, decided on its own
    chat.run_escalation(conversation)
    acknowledged = _deliver_acknowledgement(chat)  # "a person will follow up" about the second one

    assert chat.dispatch(reply).outcome == "delivered"  # then the first answer goes out

    shown = chat.shown(conversation)
    # A person still owes the customer the second answer, as the acknowledgement on show says.
    assert shown["status"] == "escalated"
    assert shown["decision"]["acknowledgement"]["text"] == acknowledged
    assert _said(shown)[-1] == ("agent", reply.body) and _in_time_order(shown)
