"""Diagnostics Deflect asked a customer for are read from the customer's later replies on the same ticket, even
when a reply alone is classified into another (or the general) product area: the values are stored as the
ticket's diagnostics, what is still missing stays listed, and nothing already given is asked for again."""

import json

from deflect.domain.models import AttachmentRef, DiagnosticsChecklist, Message
from deflect.escalation.models import EscalationRequest, EscalationState
from deflect.escalation.records import EscalationPorts
from deflect.escalation.steps import EscalationSteps
from deflect.ports import IntentPrediction
from deflect.repositories import Tickets, save
from tests.unit.triage_fakes import EXPORT_ARTICLE, Article, make_world

CRASH = IntentPrediction(
    intent="error_report", confidence=0.9, kind="problem", product_area="troubleshooting"
)
ASKING = "we need a few details"


def crash_world(*required: str):
    return make_world(
        articles=[EXPORT_ARTICLE],
        diagnostics=[DiagnosticsChecklist(product_area="troubleshooting", required=list(required))],
        rules=[("crash", CRASH)],
    )


def sync_world():
    """A help center that answers failing syncs, and a syncs checklist asked for alongside that answer."""
    syncs = Article(
        "ts-sync-errors",
        "Fix a failing sync",
        "# Fix a failing sync\n\nA sync that fails with an error usually lost its connection. Reconnect the source.\n",
        ("sync",),
        product_area="syncs",
    )
    return make_world(
        articles=[syncs],
        diagnostics=[DiagnosticsChecklist(product_area="syncs", required=["app_version", "run_id"])],
    )


def stored(world, ticket_id="tkt-1"):
    items = world.store.query(world.ctx, f"T#{world.ctx.tenant_id}#TICKET#{ticket_id}", "DIAG#")
    return {i.data["name"]: i.data["value"] for i in items}


def latest_decision(world, ticket_id="tkt-1"):
    return max(Tickets(world.store).decisions(world.ctx, ticket_id), key=lambda d: d.decided_at)


def test_the_version_given_in_reply_to_the_request_is_stored_and_not_asked_for_again():
    world = crash_world("app_version", "os")
    first = world.triage("tkt-1", "The app crashes when I open it on macOS 14")
    assert first.outcome == "ask_diagnostics" and first.missing_diagnostics == ["app_version"]

    again = world.triage("tkt-1", "It is app version 3.2.1")

    assert again.classification.product_area == "general"  # the reply alone names no product area
    assert stored(world) == {"os": "macOS 14", "app_version": "3.2.1"}
    assert again.missing_diagnostics == [] and latest_decision(world).missing_diagnostics == []
    assert again.outcome != "ask_diagnostics" and ASKING not in (again.reply or "")


def test_a_partial_answer_is_stored_and_only_the_rest_is_asked_for():
    world = crash_world("app_version", "os")
    first = world.triage("tkt-1", "The app crashes every time I open it")
    assert first.missing_diagnostics == ["app_version", "os"]

    partial = world.triage("tkt-1", "It is version 3.2.1")

    assert stored(world) == {"app_version": "3.2.1"}
    assert partial.outcome == "ask_diagnostics" and partial.missing_diagnostics == ["os"]
    assert "operating system" in partial.reply and "app version" not in partial.reply

    done = world.triage("tkt-1", "I am on Windows 11")

    assert stored(world) == {"app_version": "3.2.1", "os": "Windows 11"}
    assert done.missing_diagnostics == [] and latest_decision(world).missing_diagnostics == []
    assert done.outcome != "ask_diagnostics" and ASKING not in (done.reply or "")


def test_an_escalating_reply_gives_the_escalation_the_value_and_what_is_still_missing():
    world = crash_world("app_version", "os", "error_code")
    first = world.triage("tkt-1", "The app crashes when I open it on macOS 14")
    assert first.missing_diagnostics == ["app_version", "error_code"]

    second = world.triage("tkt-1", "It is app version 3.2.1. Can I talk to a person please?")

    assert second.outcome == "escalate" and "wants_human" in second.reasons
    assert second.missing_diagnostics == ["error_code"]
    assert stored(world) == {"os": "macOS 14", "app_version": "3.2.1"}
    # The escalation started from this decision summarizes what the ticket holds and what it still lacks.
    decision, ticket, refs = world.started[-1]
    assert decision.missing_diagnostics == ["error_code"]
    state = EscalationState.model_validate(
        EscalationRequest.from_decision(decision, ticket, evidence=refs).model_dump()
    )
    ports = EscalationPorts(world.store, world.evidence, world.audit, None, None, None, None)
    result = EscalationSteps(ports).summarize(world.ctx, state, "esc-1")
    summary = json.loads(world.evidence.read(world.ctx, result.ref))["summary"]
    assert sorted(summary["diagnostics_collected"]) == ["app_version", "os"]
    assert summary["diagnostics_missing"] == ["error_code"]


def test_asked_diagnostics_are_read_from_a_log_attached_to_the_reply():
    class Reader:
        def read_text(self, ctx, ticket, attachment):
            return "2024-05-02 10:00:01 ERROR client version 3.2.1 failed to start\n"

    world = crash_world("app_version", "logs")
    world.service.attachments = Reader()
    first = world.triage("tkt-1", "The app crashes on start")
    assert first.missing_diagnostics == ["app_version", "logs"]

    reply = Message(
        tenant_id="acme",
        ticket_id="tkt-1",
        message_id="m-2",
        body_redacted="Here you go",
        attachments=[
            AttachmentRef(name="app.log", url="https://acme.zendesk.com/a/1", content_type="text/plain")
        ],
    )
    save(world.store, world.ctx, [Tickets.message_write(reply)])
    result = world.service.triage(world.ctx, "tkt-1", "m-2")

    assert stored(world) == {"app_version": "3.2.1", "logs": "attachment:app.log"}
    assert result.missing_diagnostics == [] and result.outcome != "ask_diagnostics"


def test_diagnostics_requested_after_an_answer_are_read_from_the_reply():
    world = sync_world()
    first = world.triage("tkt-1", "My sync fails with an error since this morning")
    assert first.outcome == "deflect" and "If this does not solve it" in first.reply

    reply = world.triage("tkt-1", "Still broken. Run ID run_ab12cd on version 4.2.0")

    assert stored(world) == {"run_id": "run_ab12cd", "app_version": "4.2.0"}
    assert reply.missing_diagnostics == [] and ASKING not in (reply.reply or "")


def test_a_checklist_that_was_never_asked_for_does_not_follow_the_ticket():
    how_to = IntentPrediction(
        intent="how_to", confidence=0.9, kind="question", product_area="troubleshooting"
    )
    world = make_world(
        articles=[EXPORT_ARTICLE],
        diagnostics=[DiagnosticsChecklist(product_area="troubleshooting", required=["app_version", "os"])],
        rules=[("cache", how_to)],
    )
    # A question, not a problem report: the area's checklist is listed for agents but the customer is not asked.
    first = world.triage("tkt-1", "Where does the app keep its cache?")
    assert first.outcome != "ask_diagnostics" and ASKING not in (first.reply or "")

    follow_up = world.triage("tkt-1", "Thanks, one more thing")

    assert follow_up.missing_diagnostics == [] and follow_up.outcome != "ask_diagnostics"


def test_a_customer_whose_problem_the_answer_solved_is_not_asked_for_diagnostics_again():
    world = sync_world()
    first = world.triage("tkt-1", "My sync fails with an error since this morning")
    assert first.outcome == "deflect" and "If this does not solve it" in first.reply

    thanks = world.triage("tkt-1", "Thanks, reconnecting fixed it!")

    assert thanks.outcome != "ask_diagnostics" and ASKING not in (thanks.reply or "")
