"""An escalation whose workflow never started (the start failed on every delivery and the message went to the DLQ)
is started again by the customer's next message, under its original execution name, before that message joins it;
while the start keeps failing, the follow-up fails too so the queue retries it instead of attaching it to nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from deflect.domain import keys
from deflect.domain.errors import TransientFailure
from deflect.domain.models import DecisionPolicy
from deflect.escalation.records import OpenEscalations
from deflect.escalation.start import execution_name_for
from deflect.ports import Put
from deflect.repositories import Tickets
from deflect.triage.service import escalation_starter
from tests.unit.triage_fakes import make_world

SQS_ATTEMPTS = 5  # the triage queue's maxReceiveCount, then the TriageDLQ


class FlakyWorkflow:
    """Step Functions stand-in: fails the first `failures` starts, then starts each execution name once (a start of
    a name already running is a no-op, as the SFN adapter answers ExecutionAlreadyExists)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.executions: dict[str, Any] = {}

    def start(self, name: str, payload: Any) -> str:
        if self.failures:
            self.failures -= 1
            raise TransientFailure("states:StartExecution throttled")
        self.executions.setdefault(name, payload)
        return f"arn:aws:states:us-east-1:1:execution:esc:{name}"


@dataclass
class Ports:
    store: Any
    workflow: FlakyWorkflow


def _world(failures: int):
    world = make_world(policy=DecisionPolicy(rollout_default="auto"))
    workflow = FlakyWorkflow(failures)
    world.service.handoffs.start_escalation = escalation_starter(Ports(world.store, workflow))
    return world, workflow


def _escalate_until_dead_lettered(world) -> str:
    """The escalating message: decided and committed on the first delivery, its start failing on every one."""
    for _ in range(SQS_ATTEMPTS):
        with pytest.raises(TransientFailure):
            world.triage("tkt-1", "Please refund my last invoice", message_id="m1")
    [decision] = Tickets(world.store).decisions(world.ctx, "tkt-1")
    return execution_name_for(world.ctx.tenant_id, "tkt-1", decision.decision_id)


def _joined(world) -> list[str]:
    _, chain = world.audit.load(world.ctx, "tkt-1")
    return [
        e.payload["message_id"] for e in chain if e is not None and e.type == "escalation.follow_up_attached"
    ]


def test_a_follow_up_starts_the_escalation_that_never_started_and_joins_it():
    world, workflow = _world(failures=SQS_ATTEMPTS)
    original = _escalate_until_dead_lettered(world)
    assert workflow.executions == {}

    follow_up = world.triage("tkt-1", "Hello? How do I export a report?", message_id="m2")

    # Exactly one workflow, under the name the open escalation records, and the follow-up joined it.
    assert list(workflow.executions) == [original]
    assert OpenEscalations(world.store).latest(world.ctx, "tkt-1").data["execution"] == original
    assert follow_up.attached_to == original and follow_up.reply is None
    assert _joined(world) == ["m2"]
    assert Tickets(world.store).get(world.ctx, "tkt-1").status == "escalated"

    # Later messages join the running escalation; nothing starts a second execution.
    world.triage("tkt-1", "Any news on my refund?", message_id="m3")
    assert list(workflow.executions) == [original] and _joined(world) == ["m2", "m3"]


def test_a_follow_up_fails_while_the_start_keeps_failing_and_joins_once_the_queue_retries_it():
    world, workflow = _world(failures=SQS_ATTEMPTS + 2)
    original = _escalate_until_dead_lettered(world)

    for _ in range(2):
        with pytest.raises(TransientFailure):
            world.triage("tkt-1", "Hello? How do I export a report?", message_id="m2")
    # Not attached to an execution that does not exist: no marker, no event, so its retry is triaged again.
    marker = world.store.get(world.ctx, keys.ticket_pk(world.ctx.tenant_id, "tkt-1"), "TRIAGED#m2")
    assert marker is None and _joined(world) == [] and workflow.executions == {}

    retried = world.service.triage(world.ctx, "tkt-1", "m2")
    assert retried.attached_to == original and list(workflow.executions) == [original]
    assert _joined(world) == ["m2"]


def test_a_follow_up_does_not_start_an_escalation_that_started_but_has_not_run_a_step_yet():
    world, workflow = _world(failures=0)
    first = world.triage("tkt-1", "Please refund my last invoice", message_id="m1")
    assert first.escalated and len(workflow.executions) == 1
    calls = []
    start = world.service.handoffs.start_escalation
    world.service.handoffs.start_escalation = lambda *a: calls.append(a) or start(*a)

    follow_up = world.triage("tkt-1", "Any news on my refund?", message_id="m2")

    assert follow_up.attached_to and calls == [] and len(workflow.executions) == 1


def test_an_escalation_marked_before_starts_were_recorded_is_started_again_as_a_no_op():
    world, workflow = _world(failures=0)
    world.triage("tkt-1", "Please refund my last invoice", message_id="m1")
    pk = keys.ticket_pk(world.ctx.tenant_id, "tkt-1")
    marker = world.store.get(world.ctx, pk, "TRIAGED#m1")
    world.store.put(
        world.ctx, Put(pk=pk, sk="TRIAGED#m1", data={k: v for k, v in marker.data.items() if k != "started"})
    )
    starts = []
    start = world.service.handoffs.start_escalation
    world.service.handoffs.start_escalation = lambda *a: starts.append(a) or start(*a)

    follow_up = world.triage("tkt-1", "Any news on my refund?", message_id="m2")

    # Started again (no step recorded, no record that it started): the same name, so still one execution.
    assert len(starts) == 1 and follow_up.attached_to and len(workflow.executions) == 1
