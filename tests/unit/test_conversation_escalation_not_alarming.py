"""An API-only tenant's escalated chat does not set off the writeback dead-letter alarm on normal traffic.

A tenant that answers through the conversation API alone (no `generic-writeback` connection): the escalation's
acknowledgement ("a person will follow up") is a message to the customer, so the conversation API delivers it
(`done`, effect `conversation_api:<outbox id>`) and `GET /v1/conversations/{id}` shows it while the conversation is
`escalated`: only once delivered, never when held back, never to anyone else. What that API has no reader for by
design (the decision's internal note, an assist-mode note, a held note) ends `done` with the receipt effect
`conversation_api:not_shown`, audited `writeback.not_shown`: no dead letter, not `dead`. An approved refund nobody can
carry out (no CRM connection) is still `dead` in the DLQ, and a helpdesk ticket's note without a connection ends as
before.

The real triage, escalation steps, approval service, writeback and helpdesk directory on the in-memory store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest

from deflect.domain.models import OutboxItem, Ticket
from deflect.domain.tenancy import TenantContext
from deflect.helpdesk.directory import HelpdeskDirectory
from deflect.helpdesk.errors import HelpdeskNotConfigured
from deflect.insight.timeline import TimelineService
from deflect.ports import DeadLetter
from deflect.repositories import TenantConfigs
from deflect.services import outbox
from deflect.services.outbox import ref
from deflect.services.writeback import Writeback
from tests.unit.conversation_chat import ADMIN, Chat, Clock, Crash, X, crash_once_sent
from tests.unit.intake_fakes import NoSecrets
from tests.unit.triage_fakes import REFUND_ARTICLE, RecordingQueue

NOT_SHOWN = "conversation_api:not_shown"
FOLLOW_UP = "will review your request personally"


class DeadLetters:
    """The WritebackDLQ (its depth is alarmed): what was sent, received back and deleted by `deflect outbox replay`."""

    def __init__(self) -> None:
        self.messages: dict[str, dict[str, Any]] = {}
        self._received: set[str] = set()

    def send(
        self,
        ctx: TenantContext,
        body: Mapping[str, Any],
        *,
        dedupe_id: str | None = None,
        group_id: str | None = None,
    ) -> str:
        handle = f"dl-{len(self.messages) + 1}"
        self.messages[handle] = {"tenant_id": ctx.tenant_id, **body}
        return handle

    def receive(self, max_messages: int = 10, wait_s: int = 0) -> list[DeadLetter]:
        ready = [h for h in self.messages if h not in self._received][:max_messages]
        self._received.update(ready)
        return [DeadLetter(handle=h, body=self.messages[h]) for h in ready]

    def delete(self, handle: str) -> None:
        self.messages.pop(handle, None)
        self._received.discard(handle)

    def release(self, handle: str) -> None:
        self._received.discard(handle)

    def outbox_ids(self) -> list[str]:
        return [m["outbox_id"] for m in self.messages.values()]


class Desk(Chat):
    """The chat of `Chat`, with writeback's dead-letter queue and work queue at hand."""

    def __init__(self) -> None:
        super().__init__()
        self.dlq = DeadLetters()
        self.queue = RecordingQueue()

    def writeback(self, **kw: Any) -> Writeback:
        kw.setdefault("connectors", HelpdeskDirectory(NoSecrets()))
        connectors = kw.pop("connectors")
        return Writeback(
            self.store, connectors, audit=self.audit, dead_letters=self.dlq, queue=self.queue, **kw
        )

    def ack(self) -> OutboxItem:
        [outbox_id] = self.acknowledged
        return self.item(outbox_id)

    def dead(self) -> list[str]:
        """What `deflect outbox list --status dead` lists for the tenant."""
        return [i.outbox_id for i in self.writeback().list(self.ctx, ("dead",))]

    def set_mode(self, mode: str) -> None:
        config = TenantConfigs(self.store).get(self.ctx)
        config.policy.rollout_default = mode
        self.store.put(self.ctx, TenantConfigs(self.store).save_write(config))
        self.config = TenantConfigs(self.store).get(self.ctx)


def _assert_not_shown(desk: Desk, conversation: str, item: OutboxItem) -> dict[str, Any]:
    """`done` by design: receipt effect `conversation_api:not_shown`, audited once, no dead letter."""
    done = desk.item(item.outbox_id)
    assert (done.status, done.last_error) == ("done", None)
    assert done.receipt["effects"] == [NOT_SHOWN]
    [audited] = [
        p for p in desk.audited(conversation, "writeback.not_shown") if p["outbox_id"] == item.outbox_id
    ]
    assert (audited["kind"], audited["effects"]) == (item.kind, [NOT_SHOWN])
    assert item.outbox_id not in [p["outbox_id"] for p in desk.audited(conversation, "writeback.dead")]
    assert item.outbox_id not in [p["outbox_id"] for p in desk.audited(conversation, "writeback.delivered")]
    assert item.outbox_id not in desk.dlq.outbox_ids() and item.outbox_id not in desk.dead()
    return audited


# ------------------------------------------------------------------ the acknowledgement: delivered and shown


def test_the_acknowledgement_is_delivered_by_the_conversation_api_and_shown_while_the_chat_is_escalated():
    desk = Desk()
    conversation = desk.start()
    ack = desk.ack()
    assert FOLLOW_UP in ack.body
    # Queued, not delivered yet: nothing to show.
    assert desk.shown(conversation)["decision"]["acknowledgement"] is None

    result = desk.dispatch(ack)

    assert (result.outcome, result.detail) == ("delivered", f"conversation_api:{ack.outbox_id}")
    done = desk.item(ack.outbox_id)
    assert done.status == "done" and done.receipt["effects"] == [f"conversation_api:{ack.outbox_id}"]
    assert desk.dlq.messages == {} and desk.dead() == []
    shown = desk.shown(conversation)
    assert shown["status"] == "escalated"  # the status word is unchanged: a person takes it
    assert shown["decision"]["acknowledgement"] == {"text": ack.body, "sent_at": done.updated_at.isoformat()}
    assert (shown["decision"]["reply"], shown["decision"]["answered_by"]) == (None, None)
    assert desk.audited(conversation, "writeback.delivered")[0]["effects"] == [
        f"conversation_api:{ack.outbox_id}"
    ]

    # Once the person's reply is delivered, it answers: the conversation is no longer waiting on anyone.
    assert desk.dispatch(desk.decide("approve")["public_reply"]).outcome == "delivered"
    answered = desk.shown(conversation)
    assert (answered["status"], answered["decision"]["answered_by"]) == ("resolved", "agent")
    assert answered["decision"]["acknowledgement"] is None


def test_the_acknowledgement_is_shown_to_no_other_requester_tenant_or_conversation():
    desk = Desk()
    conversation = desk.start()
    ack = desk.ack()
    assert desk.dispatch(ack).outcome == "delivered"
    assert desk.shown(conversation)["decision"]["acknowledgement"]["text"] == ack.body

    assert desk.unreadable_by_others(conversation)
    # The same customer's next conversation (escalated too, its own acknowledgement not delivered yet) shows none.
    other = desk.start()
    assert other != conversation
    shown = desk.shown(other)
    assert shown["status"] == "escalated" and shown["decision"]["acknowledgement"] is None
    assert ack.body not in json.dumps(shown)


def test_an_acknowledgement_held_back_by_the_kill_switch_is_not_shown():
    desk = Desk()
    conversation = desk.start()
    desk.set_mode("shadow")  # the tenant switched to shadow after the acknowledgement was queued

    assert desk.dispatch(desk.ack()).outcome == "suppressed"

    shown = desk.shown(conversation)
    assert shown["decision"]["acknowledgement"] is None
    assert FOLLOW_UP not in json.dumps(shown)


# ------------------------------------------------------------------ no reader by design: done, audited, not dead


def test_the_decisions_internal_note_ends_not_shown_audited_and_never_in_the_dlq():
    desk = Desk()
    conversation = desk.start()
    assert desk.dispatch(desk.ack()).outcome == "delivered"

    note = desk.decide("reject")["internal_note"]
    result = desk.dispatch(note)

    assert (result.outcome, result.detail) == ("not_shown", NOT_SHOWN)
    _assert_not_shown(desk, conversation, note)
    assert desk.audited(conversation, "writeback.dead") == []
    shown = desk.shown(conversation)
    assert "Deflect escalation" not in json.dumps(shown) and "agent:ann" not in json.dumps(shown)
    # Nothing the customer waits on changed: a person took it, and said so.
    assert shown["status"] == "escalated" and shown["decision"]["acknowledgement"]["text"] == desk.ack().body
    assert desk.audit.verify(desk.ctx, conversation).ok
    # The ticket's history tells what became of it, as it does for a suppressed reply.
    history = TimelineService(desk.audit, desk.world.evidence).rebuild_from_audit(desk.ctx, conversation)
    assert note.outbox_id in [
        w["outbox_id"] for w in history.writebacks if w["type"] == "writeback.not_shown"
    ]


def _assert_dead(desk: Desk, conversation: str, item: OutboxItem) -> None:
    """Nobody will read it and it asks a person for work: `dead`, in the alarmed DLQ, audited."""
    assert desk.item(item.outbox_id).status == "dead"
    assert item.outbox_id in desk.dlq.outbox_ids() and item.outbox_id in desk.dead()
    assert item.outbox_id in [p["outbox_id"] for p in desk.audited(conversation, "writeback.dead")]
    assert desk.audited(conversation, "writeback.not_shown") == []


def test_a_triage_assist_note_a_chat_only_tenant_cannot_read_ends_dead_and_alarms():
    desk = Desk()
    desk.set_mode("assist")
    started = desk.intake.converse(desk.ctx, desk.config, text="How do I export a report?", requester=X)
    conversation, message = started.body["conversation_id"], started.body["message_id"]
    [outbox_id] = desk.world.service.triage(desk.ctx, conversation, message).outbox_ids
    note = desk.item(outbox_id)
    assert note.kind == "internal_note"  # the suggested reply, for agents

    assert desk.dispatch(note).outcome == "dead"

    _assert_dead(desk, conversation, note)
    shown = desk.shown(conversation)
    assert (shown["status"], shown["decision"]["reply"]) == ("with_agent", None)


def test_a_reply_assist_turned_into_a_note_at_send_time_ends_dead_and_alarms():
    desk = Desk()
    started = desk.intake.converse(desk.ctx, desk.config, text="How do I export a report?", requester=X)
    conversation, message = started.body["conversation_id"], started.body["message_id"]
    [outbox_id] = desk.world.service.triage(desk.ctx, conversation, message).outbox_ids
    reply = desk.item(outbox_id)
    assert reply.kind == "public_reply"
    desk.set_mode("assist")  # before writeback sends it

    assert desk.dispatch(reply).outcome == "dead"

    _assert_dead(desk, conversation, reply)
    assert desk.shown(conversation)["decision"]["reply"] is None


def test_a_held_reply_s_note_ends_dead_and_alarms_and_the_held_reply_is_not_shown():
    desk = Desk()
    conversation = desk.start()
    reply = desk.decide("approve")["public_reply"]
    desk.kb.delete(ADMIN, REFUND_ARTICLE.article_id)  # the article the approved proposal quotes is withdrawn
    assert desk.dispatch(reply).outcome == "conflict"
    held = desk.item(f"{reply.outbox_id}-held")

    assert desk.dispatch(held).outcome == "dead"

    _assert_dead(desk, conversation, held)
    shown = desk.shown(conversation)
    assert (shown["status"], shown["decision"]["reply"]) == ("with_agent", None)


# ------------------------------------------------------------------ still dead, still alarmed


def test_a_refund_approved_without_a_crm_connection_still_ends_dead_in_the_dlq():
    desk = Desk()
    conversation = desk.start()
    items = desk.decide("approve")
    refund = items["account_action"]
    assert refund.action.kind == "refund"

    outcomes = {kind: desk.dispatch(item) for kind, item in items.items()}

    assert (outcomes["account_action"].outcome, outcomes["account_action"].detail) == (
        "dead",
        "no crm connection for this tenant",
    )
    assert desk.item(refund.outbox_id).status == "dead"
    assert desk.dlq.outbox_ids() == [refund.outbox_id] and desk.dead() == [refund.outbox_id]
    assert [p["outbox_id"] for p in desk.audited(conversation, "writeback.dead")] == [refund.outbox_id]
    # The rest of the decision went its way: the reply to the customer, the note nowhere (by design).
    assert (outcomes["public_reply"].outcome, outcomes["internal_note"].outcome) == ("delivered", "not_shown")


@pytest.mark.parametrize("provider", ["zendesk", "intercom", "generic"])
def test_a_helpdesk_tickets_note_without_a_connection_ends_dead_as_before(provider):
    desk = Desk()
    ticket = Ticket(tenant_id="acme", ticket_id=f"tkt-{provider}", provider=provider, external_id="77")
    note = outbox.reply(
        ticket, "Deflect escalation: approve by agent:ann.", public=False, caused_by="escalation:e"
    )
    desk.store.transact(desk.ctx, outbox.writes([note]))

    result = desk.dispatch(note)

    assert (result.outcome, result.detail) == ("dead", f"no {provider} connection for this tenant")
    assert desk.item(note.outbox_id).status == "dead"
    assert desk.dlq.outbox_ids() == [note.outbox_id] and desk.dead() == [note.outbox_id]
    assert desk.audited(ticket.ticket_id, "writeback.not_shown") == []


# ------------------------------------------------------------------ once, and what an earlier release left behind


def test_a_duplicate_or_retried_delivery_of_a_note_records_one_outcome():
    desk = Desk()
    conversation = desk.start()
    note = desk.decide("reject")["internal_note"]
    clock = Clock()

    with pytest.raises(Crash):  # the worker dies between the channel's answer and the stored outcome
        desk.dispatch(note, checkpoint=crash_once_sent, clock=clock)
    clock.later(timedelta(minutes=5))  # its claim's lease ran out: the queue's redelivery takes over
    assert desk.dispatch(note, clock=clock).outcome == "not_shown"
    assert desk.dispatch(note, clock=clock).outcome == "already_handled"  # a duplicate queue message

    assert desk.item(note.outbox_id).dispatches == 2
    assert len(desk.audited(conversation, "writeback.not_shown")) == 1
    _assert_not_shown(desk, conversation, note)


def test_a_duplicate_delivery_of_the_acknowledgement_records_and_shows_it_once():
    desk = Desk()
    conversation = desk.start()
    ack = desk.ack()

    assert desk.dispatch(ack).outcome == "delivered"
    assert desk.dispatch(ack).outcome == "already_handled"

    assert len(desk.audited(conversation, "writeback.delivered")) == 1
    shown = desk.shown(conversation)
    # Once in the conversation's messages (and once as what the escalated decision is waiting on).
    assert [m["text"] for m in shown["messages"] if m["author"] == "triage"] == [ack.body]
    assert json.dumps(shown).count(FOLLOW_UP) == 2


class Undeliverable:
    """The directory as an earlier release had it for these items: the conversation API refused them."""

    def connector(self, tenant_id: str, item: OutboxItem) -> Any:
        raise HelpdeskNotConfigured(
            "no generic connection for this tenant, and the conversation API does not show"
        )


def test_replaying_notes_that_died_before_finishes_them_not_shown_and_clears_their_dead_letters():
    desk = Desk()
    conversation = desk.start()
    note = desk.decide("reject")["internal_note"]
    for item in (desk.ack(), note):
        assert desk.writeback(connectors=Undeliverable()).dispatch(ref(item)).outcome == "dead"
    assert (
        sorted(desk.dlq.outbox_ids()) == sorted(desk.dead()) == sorted([desk.ack().outbox_id, note.outbox_id])
    )

    # `deflect outbox replay --tenant acme`: revive the dead items, deliver them again, drain the DLQ.
    writeback = desk.writeback()
    replayed = writeback.replay(desk.ctx)
    assert sorted(replayed) == sorted([desk.ack().outbox_id, note.outbox_id])
    results = {r["outbox_id"]: writeback.dispatch(outbox.ref_from_message(r)) for r in desk.queue.sent}
    drained = writeback.drain_dead_letters(desk.ctx, replayed)

    assert (results[note.outbox_id].outcome, results[desk.ack().outbox_id].outcome) == (
        "not_shown",
        "delivered",
    )
    assert drained.removed == 2 and desk.dlq.messages == {} and desk.dead() == []
    assert desk.shown(conversation)["decision"]["acknowledgement"]["text"] == desk.ack().body
