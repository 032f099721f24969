"""A customer's follow-up while the ticket's escalation is open joins that escalation: no AI reply, no second
workflow or proposal, the ticket stays escalated, its diagnostics are kept; the agent's task view shows the message
that escalated and what arrived since the summary. Once the escalation is decided or expired, triage decides again."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from deflect.domain import keys
from deflect.domain.errors import Conflict
from deflect.domain.models import (
    Classification,
    Decision,
    DecisionPolicy,
    Message,
    RequestedAction,
    SlaTier,
    Ticket,
    utcnow,
)
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemorySupportStore
from deflect.escalation import EscalationRequest, execution_name, start_escalation
from deflect.escalation.records import step_key
from deflect.escalation.summary import build_summary, render_markdown
from deflect.ports import Delete, Put
from deflect.repositories import Tickets
from tests.unit.triage_fakes import make_world

AUTO = DecisionPolicy(rollout_default="auto")
TIER = SlaTier(name="standard", first_response_minutes=240, review_timeout_seconds=3600)


def _events(world, ticket_id="tkt-1", kind=None):
    _, chain = world.audit.load(world.ctx, ticket_id)
    return [e for e in chain if e is not None and (kind is None or e.type == kind)]


def _close(world, ticket_id, step="completed"):
    """What the workflow's last step leaves: its step marker."""
    from deflect.escalation.records import OpenEscalations

    record = OpenEscalations(world.store).latest(world.ctx, ticket_id)
    pk, sk = step_key(world.ctx.tenant_id, ticket_id, record.data["execution"], step)
    world.store.put(
        world.ctx, Put(pk=pk, sk=sk, data={"result": {}, "at": utcnow().isoformat()}, expect="new")
    )


# ------------------------------------------------------------------ triage


def test_a_how_to_follow_up_while_escalated_gets_no_ai_reply_and_the_ticket_stays_escalated():
    world = make_world(policy=AUTO)
    first = world.triage("tkt-1", "Please refund my last invoice")
    assert first.escalated and len(world.started) == 1

    second = world.triage("tkt-1", "Also, how do I export a report?")

    assert Tickets(world.store).get(world.ctx, "tkt-1").status == "escalated"
    assert second.reply is None and second.outbox_ids == [] and world.sent == []
    assert second.attached_to and second.decision_id == first.decision_id and second.outcome == "escalate"
    assert len(world.started) == 1
    [joined] = _events(world, kind="escalation.follow_up_attached")
    assert (
        joined.payload["message_id"] == second.message_id
        and joined.payload["decision_id"] == first.decision_id
    )
    # The follow-up was not decided on its own: the ticket keeps one decision, the escalating one.
    assert [d.decision_id for d in Tickets(world.store).decisions(world.ctx, "tkt-1")] == [first.decision_id]


def test_a_reminder_about_the_refund_starts_no_second_escalation_or_proposal():
    world = make_world(policy=AUTO)
    world.triage("tkt-1", "Please refund my last invoice of 120 EUR")
    reminder = world.triage("tkt-1", "Any news? I am still waiting for the refund of my last invoice.")
    louder = world.triage("tkt-1", "I want to talk to a human, please refund it today")

    assert len(world.started) == 1
    joined = _events(world, kind="escalation.follow_up_attached")
    assert [e.payload["message_id"] for e in joined] == [reminder.message_id, louder.message_id]
    # Restating the refund under review is not a new action.
    assert [e.payload["new_action"] for e in joined] == [False, False]


def test_a_follow_up_asking_for_a_different_action_is_flagged_for_the_open_task():
    world = make_world(policy=AUTO)
    world.triage("tkt-1", "Please refund my last invoice of 120 EUR")
    other = world.triage("tkt-1", "And please also refund the 40 EUR setup fee")

    assert len(world.started) == 1 and other.attached_to
    [joined] = _events(world, kind="escalation.follow_up_attached")
    assert joined.payload["new_action"] is True
    assert joined.payload["requested_action"]["amount"] == "40"
    marker = world.store.get(world.ctx, keys.ticket_pk("acme", "tkt-1"), f"TRIAGED#{other.message_id}")
    assert marker.data["follow_up"]["new_action"] is True


def test_diagnostics_given_in_a_follow_up_are_stored_with_that_message():
    world = make_world(policy=AUTO)
    world.triage("tkt-1", "Please refund my last invoice")
    follow_up = world.triage("tkt-1", "Still waiting. App version 4.12.3 if that helps.")

    item = world.store.get(world.ctx, keys.ticket_pk("acme", "tkt-1"), "DIAG#app_version")
    assert item is not None
    assert (item.data["value"], item.data["message_id"]) == ("4.12.3", follow_up.message_id)


def test_a_redelivered_follow_up_is_answered_from_its_marker_without_a_second_event():
    world = make_world(policy=AUTO)
    world.triage("tkt-1", "Please refund my last invoice")
    follow_up = world.triage("tkt-1", "Any news on my refund?")

    again = world.service.triage(world.ctx, "tkt-1", follow_up.message_id)

    assert again.replayed and again.attached_to == follow_up.attached_to
    assert again.decision_id == follow_up.decision_id
    assert len(_events(world, kind="escalation.follow_up_attached")) == 1


@pytest.mark.parametrize("step", ["completed", "review_expired"])
def test_once_the_escalation_is_decided_or_expired_a_follow_up_is_triaged_again(step):
    world = make_world(policy=AUTO)
    world.triage("tkt-1", "Please refund my last invoice")
    _close(world, "tkt-1", step)

    answered = world.triage("tkt-1", "How do I export a report?")
    assert answered.attached_to is None and answered.outcome == "deflect" and answered.reply

    again = world.triage("tkt-1", "Please refund my last invoice again, it was charged twice")
    assert again.escalated and again.attached_to is None and len(world.started) == 2
    from deflect.escalation.records import OpenEscalations

    record = OpenEscalations(world.store).latest(world.ctx, "tkt-1")
    assert record.data["decision_id"] == again.decision_id


def test_an_escalation_started_before_the_open_record_existed_still_takes_follow_ups():
    world = make_world(policy=AUTO)
    first = world.triage("tkt-1", "Please refund my last invoice")
    world.store.delete(world.ctx, Delete(keys.ticket_pk("acme", "tkt-1"), "ESCALATION#OPEN"))

    follow_up = world.triage("tkt-1", "Any news on my refund?")

    assert follow_up.attached_to and follow_up.decision_id == first.decision_id and len(world.started) == 1


def test_two_escalating_messages_triaged_side_by_side_open_one_escalation(monkeypatch):
    from deflect.escalation.records import OpenEscalations

    world = make_world(policy=AUTO)
    world.triage("tkt-1", "Please refund my last invoice")
    # The second message's triage read the ticket before the first one committed: it saw no open escalation.
    service = world.service
    monkeypatch.setattr(service, "_open_escalation", lambda *a: None)
    monkeypatch.setattr(OpenEscalations, "latest", lambda self, ctx, ticket_id: None)
    message_id = world.ticket("tkt-1", "I want to talk to a human, refund it today")
    with pytest.raises(Conflict):
        service.triage(world.ctx, "tkt-1", message_id)
    assert len(world.started) == 1
    monkeypatch.undo()

    # The queue's retry of that message joins the escalation the first one opened.
    retried = service.triage(world.ctx, "tkt-1", message_id)
    assert retried.attached_to and len(world.started) == 1


def test_an_escalation_in_shadow_mode_starts_nothing_so_follow_ups_are_triaged():
    world = make_world(policy=DecisionPolicy(rollout_default="shadow"))
    world.triage("tkt-1", "Please refund my last invoice")
    follow_up = world.triage("tkt-1", "How do I export a report?")
    assert follow_up.attached_to is None and world.started == []


# ------------------------------------------------------------------ starting


class _Workflow:
    def __init__(self) -> None:
        self.started: list[str] = []

    def start(self, name, payload):
        self.started.append(name)
        return f"arn:aws:states:us-east-1:1:execution:esc:{name}"


class _Ports:
    def __init__(self) -> None:
        self.store = MemorySupportStore()
        self.workflow = _Workflow()


def _decision(ticket, action=None, message_id="m1"):
    return Decision(
        tenant_id=ticket.tenant_id,
        ticket_id=ticket.ticket_id,
        outcome="escalate",
        classification=Classification(
            intent="refund_request", intent_confidence=0.9, requested_action=action or RequestedAction()
        ),
        message_id=message_id,
    )


def test_a_second_decision_cannot_start_a_second_escalation_of_an_open_ticket():
    ports = _Ports()
    ticket = Ticket(tenant_id="acme", ticket_id="t1", provider="zendesk", external_id="1")
    refund = RequestedAction(kind="refund", amount=Decimal("120"), currency="EUR")
    first = _decision(ticket, refund)
    start_escalation(ports, first, ticket)
    start_escalation(ports, first, ticket)  # the same decision again: its own execution, a no-op by name

    with pytest.raises(Conflict):
        start_escalation(ports, _decision(ticket, refund, "m2"), ticket)
    assert len(set(ports.workflow.started)) == 1

    # Decided: the ticket may escalate again.
    ctx = TenantContext.system("acme")
    pk, sk = step_key("acme", "t1", ports.workflow.started[0], "completed")
    ports.store.put(ctx, Put(pk=pk, sk=sk, data={"result": {}}, expect="new"))
    start_escalation(ports, _decision(ticket, refund, "m3"), ticket)
    assert len(set(ports.workflow.started)) == 2


def test_the_escalation_request_names_the_message_that_escalated():
    ticket = Ticket(tenant_id="acme", ticket_id="t1", provider="zendesk", external_id="1")
    request = EscalationRequest.from_decision(_decision(ticket, message_id="m7"), ticket)
    assert request.message_id == "m7" and execution_name(request).startswith("esc-")


# ------------------------------------------------------------------ the summary and the task view


def _messages(*texts, start=None):
    at = start or utcnow() - timedelta(hours=1)
    return [
        Message(
            tenant_id="acme",
            ticket_id="t1",
            message_id=f"m{i}",
            body_redacted=text,
            received_at=at + timedelta(minutes=i),
        )
        for i, text in enumerate(texts, 1)
    ]


def _request(message_id, escalated_at):
    return EscalationRequest(
        tenant_id="acme",
        ticket_id="t1",
        decision_id="dec_1",
        classification=Classification(intent="bug_report", intent_confidence=0.8),
        escalated_at=escalated_at,
        message_id=message_id,
    )


def test_the_summary_problem_is_the_message_that_escalated_with_earlier_ones_as_context():
    ticket = Ticket(tenant_id="acme", ticket_id="t1", provider="zendesk", external_id="1")
    messages = _messages(
        "How do I export a report?", "The export deleted my data (DATA-LOSS-42). A person now."
    )
    summary = build_summary(_request("m2", utcnow()), ticket, messages, None, None, TIER, [])

    assert "DATA-LOSS-42" in summary.problem and summary.problem_message_id == "m2"
    assert [m.message_id for m in summary.earlier_messages] == ["m1"]
    markdown = render_markdown(summary)
    assert "DATA-LOSS-42" in markdown and "How do I export a report?" in markdown


def test_a_request_without_a_message_id_takes_the_latest_message_by_the_time_it_escalated():
    ticket = Ticket(tenant_id="acme", ticket_id="t1", provider="zendesk", external_id="1")
    messages = _messages("How do I export a report?", "It deleted my data (DATA-LOSS-42).", "Hello?")
    escalated_at = messages[1].received_at + timedelta(seconds=5)
    summary = build_summary(_request(None, escalated_at), ticket, messages, None, None, TIER, [])
    assert "DATA-LOSS-42" in summary.problem


def test_the_task_view_adds_what_arrived_after_the_summary():
    from deflect.escalation.summary import since_summary

    ticket = Ticket(tenant_id="acme", ticket_id="t1", provider="zendesk", external_id="1")
    messages = _messages("The app crashes on sync.")
    summary = build_summary(_request("m1", utcnow()), ticket, messages, None, None, TIER, [])
    later = _messages(
        "The app crashes on sync.", "Version 4.12.3, now it deletes FOLLOWUP-FILES. Refund 40 EUR."
    )
    diag = [{"name": "app_version", "value": "4.12.3", "message_id": "m2"}]
    recorded = {
        "m2": {
            "intent": "refund_request",
            "sensitive_flags": ["refund"],
            "requested_action": {"kind": "refund", "amount": "40", "currency": "EUR"},
            "new_action": True,
        }
    }

    since = since_summary(summary, later, diag, recorded.get)

    [follow_up] = since.messages
    assert "FOLLOWUP-FILES" in follow_up.text and follow_up.new_action
    assert [(d.name, d.value) for d in since.diagnostics] == [("app_version", "4.12.3")]
    markdown = render_markdown(summary, since=since)
    assert "New since this summary" in markdown and "FOLLOWUP-FILES" in markdown
    assert "NOT in the proposal" in markdown and "app_version: 4.12.3" in markdown
    # Nothing new: an empty section, and the summary's own diagnostics are not repeated.
    assert since_summary(summary, messages, []).messages == []


def test_a_message_after_the_one_that_escalated_is_listed_as_new_even_if_it_came_before_the_summary():
    from deflect.escalation.summary import since_summary

    ticket = Ticket(tenant_id="acme", ticket_id="t1", provider="zendesk", external_id="1")
    messages = _messages("Refund my invoice please.", "Also my data is gone (LATE-BUT-BEFORE-SUMMARY).")
    summary = build_summary(_request("m1", utcnow()), ticket, messages, None, None, TIER, [])

    assert "LATE-BUT-BEFORE-SUMMARY" not in render_markdown(summary)
    assert [m.message_id for m in since_summary(summary, messages, []).messages] == ["m2"]
