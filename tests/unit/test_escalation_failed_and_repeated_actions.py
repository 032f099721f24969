"""The ticket's escalation closes when its workflow fails, or at the latest once it is older than any review of the
tenant can take, so the customer's next message is triaged again; and one account action is queued once per ticket,
even when two escalations of the ticket approve it one after the other. In memory: no sockets."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from deflect.domain.models import Classification, RequestedAction, SlaTier, TenantConfig, utcnow
from deflect.escalation.models import AppliedDecision, EscalationState, TaskDecision
from deflect.escalation.records import (
    REVIEW_MARGIN,
    OpenEscalations,
    TaskDecisions,
    longest_review,
    outbox_id_for,
)
from deflect.escalation.steps import EscalationSteps
from deflect.repositories import Outbox, TenantConfigs
from tests.unit.triage_fakes import make_world

REFUND = RequestedAction(kind="refund", amount=Decimal("120"), currency="EUR")


def _events(world, kind, ticket_id="tkt-1"):
    _, chain = world.audit.load(world.ctx, ticket_id)
    return [e for e in chain if e is not None and e.type == kind]


def _steps(world) -> EscalationSteps:
    return world.escalation_steps()


def _state(world, decision_id: str = "d-0", **update) -> EscalationState:
    return EscalationState(
        tenant_id=world.ctx.tenant_id,
        ticket_id="tkt-1",
        decision_id=decision_id,
        classification=Classification(intent="refund_request", intent_confidence=0.9),
        **update,
    )


def _escalated(world):
    """A refund request triage escalated: the ticket's open escalation record."""
    assert world.triage("tkt-1", "Please refund my last invoice of 120 EUR").escalated
    return OpenEscalations(world.store).current(world.ctx, "tkt-1")


# ------------------------------------------------------------------ a failed workflow closes the escalation


def test_a_failed_workflow_closes_the_escalation_once_and_the_next_message_is_triaged():
    world = make_world()
    opened = _escalated(world)
    state = _state(world, opened.decision_id, error={"Error": "RuntimeError", "Cause": "key disabled"})

    first = _steps(world).note_failed(world.ctx, state, opened.execution)
    again = _steps(world).note_failed(world.ctx, state, opened.execution)  # the step retried

    assert first == again == {"error": "RuntimeError"}
    [failed] = _events(world, "escalation.failed")
    assert failed.payload == {
        "decision_id": opened.decision_id,
        "execution": opened.execution,
        "error": "RuntimeError",
    }
    answered = world.triage("tkt-1", "How do I export a report?")
    assert answered.attached_to is None and answered.outcome == "deflect" and answered.reply


# ------------------------------------------------------------------ the age bound


def test_the_longest_review_is_two_windows_per_queue_of_the_longest_plan_in_the_slowest_tier():
    tiers = {
        "standard": SlaTier(name="standard", first_response_minutes=240, review_timeout_seconds=3600),
        "slow": SlaTier(name="slow", first_response_minutes=240, review_timeout_seconds=7200),
    }
    config = TenantConfig(
        tenant_id="acme",
        display_name="Acme",
        escalation_queues=["billing", "tier1", "tier2", "supervisor"],
        max_reassign_hops=2,
        sla_tiers=tiers,
    )
    # billing and tier1 (two hops), then the supervisor: three queues, each a review and a second approval.
    assert longest_review(config) == timedelta(seconds=3 * 2 * 7200) + REVIEW_MARGIN
    fewer = config.model_copy(update={"escalation_queues": ["tier1", "supervisor"]})
    assert longest_review(fewer) == timedelta(seconds=2 * 2 * 7200) + REVIEW_MARGIN


def _opened(world, age: timedelta) -> None:
    """Make the ticket's open escalation look started `age` ago (its workflow left no closing marker)."""
    escalations = OpenEscalations(world.store)
    item = escalations.latest(world.ctx, "tkt-1")
    record = escalations.current(world.ctx, "tkt-1", item)
    older = record.model_copy(update={"opened_at": utcnow() - age})
    world.store.put(world.ctx, OpenEscalations.write(world.ctx.tenant_id, "tkt-1", older, item))


def test_an_escalation_open_past_the_longest_review_no_longer_takes_follow_ups():
    world = make_world()
    _escalated(world)
    bound = longest_review(TenantConfigs(world.store).get(world.ctx))
    _opened(world, bound + timedelta(minutes=5))

    answered = world.triage("tkt-1", "How do I export a report?")

    assert answered.attached_to is None and answered.outcome == "deflect" and answered.reply
    assert _events(world, "escalation.follow_up_attached") == []


def test_an_escalation_still_within_the_longest_review_takes_the_follow_up():
    world = make_world()
    opened = _escalated(world)
    bound = longest_review(TenantConfigs(world.store).get(world.ctx))
    _opened(world, bound - timedelta(hours=1))

    follow_up = world.triage("tkt-1", "How do I export a report?")

    assert follow_up.attached_to == opened.execution and follow_up.reply is None


# ------------------------------------------------------------------ one account action per ticket


def _approved(world, execution: str, action: RequestedAction, decision_id: str) -> EscalationState:
    """An approval of `action` stored for the escalation `execution`; its state as EnqueueWriteback gets it."""
    record = TaskDecision(
        tenant_id=world.ctx.tenant_id,
        task_id=f"task-{execution}",
        ticket_id="tkt-1",
        decision_id=decision_id,
        outcome="approve",
        actor="agent:ann",
        actor_roles=["agent", "approver"],
        reply="We refunded your invoice.",
        action=action,
        approvals=["agent:ann"],
    )
    world.audit.append(
        world.ctx, "tkt-1", "task.decided", {"task_id": record.task_id}, writes=TaskDecisions.writes(record)
    )
    applied = AppliedDecision(
        next="writeback", task_id=record.task_id, decision_id=decision_id, outcome="approve"
    )
    return _state(world, decision_id, applied=applied)


def _queued(world, result, kind):
    found = [Outbox(world.store).get(world.ctx, i) for i in result["outbox_ids"]]
    return [i for i in found if i.kind == kind]


def test_a_second_escalation_approving_the_same_refund_does_not_queue_it_again():
    world = make_world()
    world.ticket("tkt-1", "Please refund my last invoice of 120 EUR")
    steps = _steps(world)
    first = steps.enqueue_writeback(world.ctx, _approved(world, "esc-1", REFUND, "d-1"), "esc-1")
    [action] = _queued(world, first, "account_action")
    # The same refund, written differently (120.00, lower-case currency), approved in a later escalation.
    same = RequestedAction(kind="refund", amount=Decimal("120.00"), currency="eur")

    second = steps.enqueue_writeback(world.ctx, _approved(world, "esc-2", same, "d-2"), "esc-2")

    assert _queued(world, second, "account_action") == []
    [note] = _queued(world, second, "internal_note")
    assert f"Identical refund already queued as {action.outbox_id} (pending): not queued again." in note.body
    assert len(_queued(world, second, "public_reply")) == 1  # the agent's reply still goes out
    [_, enqueued] = _events(world, "escalation.writeback_enqueued")
    dropped = outbox_id_for("esc-2", "writeback", "account_action")
    assert enqueued.payload["already_queued"] == [
        {"kind": "refund", "outbox_id": dropped, "queued_as": action.outbox_id, "status": "pending"}
    ]
    assert dropped not in enqueued.payload["outbox_ids"]
    refunds = [i for i in Outbox(world.store).by_status(world.ctx, "pending") if i.kind == "account_action"]
    assert [i.outbox_id for i in refunds] == [action.outbox_id]


def test_a_retried_writeback_step_and_a_different_action_are_queued_as_before():
    world = make_world()
    world.ticket("tkt-1", "Please refund my last invoice of 120 EUR")
    steps = _steps(world)
    state = _approved(world, "esc-1", REFUND, "d-1")
    first = steps.enqueue_writeback(world.ctx, state, "esc-1")
    assert steps.enqueue_writeback(world.ctx, state, "esc-1") == first  # a retry of the same execution

    other = RequestedAction(kind="refund", amount=Decimal("40"), currency="EUR")
    second = steps.enqueue_writeback(world.ctx, _approved(world, "esc-2", other, "d-2"), "esc-2")

    assert [i.action.amount for i in _queued(world, second, "account_action")] == [Decimal("40")]
    assert "already queued" not in _queued(world, second, "internal_note")[0].body


def test_two_escalations_queueing_the_same_refund_at_once_queue_it_once(monkeypatch):
    world = make_world()
    world.ticket("tkt-1", "Please refund my last invoice of 120 EUR")
    steps = _steps(world)
    first = steps.enqueue_writeback(world.ctx, _approved(world, "esc-1", REFUND, "d-1"), "esc-1")
    state = _approved(world, "esc-2", REFUND, "d-2")
    # The second escalation read the ticket before the first committed: it finds no guard on its first look.
    original, hidden = world.store.get, [True]

    def get(ctx, pk, sk):
        if sk.startswith("ACTION#") and hidden[0]:
            hidden[0] = False
            return None
        return original(ctx, pk, sk)

    monkeypatch.setattr(world.store, "get", get)
    second = steps.enqueue_writeback(world.ctx, state, "esc-2")

    assert hidden == [False] and _queued(world, second, "account_action") == []
    [action] = _queued(world, first, "account_action")
    assert action.outbox_id in _queued(world, second, "internal_note")[0].body


def test_an_escalation_from_before_the_open_record_also_stops_taking_follow_ups_past_the_longest_review():
    # Started by an earlier release: no ESCALATION#OPEN record, only the escalating decision, long ago.
    from deflect.domain import keys
    from deflect.ports import Delete

    world = make_world()
    opened = _escalated(world)
    pk = keys.ticket_pk(world.ctx.tenant_id, "tkt-1")
    record = OpenEscalations(world.store).latest(world.ctx, "tkt-1")
    world.store.delete(world.ctx, Delete(pk=record.pk, sk=record.sk))
    bound = longest_review(TenantConfigs(world.store).get(world.ctx))
    for item in world.store.query(world.ctx, pk, "DECISION#"):
        item.data["decided_at"] = (utcnow() - bound - timedelta(minutes=5)).isoformat()
        world.store._items[(item.pk, item.sk)] = item

    answered = world.triage("tkt-1", "How do I export a report?")

    assert opened is not None
    assert answered.attached_to is None and answered.outcome == "deflect" and answered.reply
