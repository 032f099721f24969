"""A decision the workflow refused because its wait had timed out is taken back by the deciding request. Whichever
runs first, that rollback or the workflow's SLA check, the review moves to the next queue and the audit log says so
once (`task.reassigned`: what insight counts as a review that timed out). In memory: no sockets."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from deflect.domain.errors import Gone
from deflect.domain.tenancy import TenantContext
from deflect.escalation.approval import ApprovalService
from deflect.escalation.models import DecisionRequest
from tests.unit.escalation_desk import Clock, Notifier, escalation_desk

EXECUTION = "esc-late"


class TimedOutWorkflow:
    """Step Functions after the wait's timeout: the token is refused (TaskTimedOut), and by then the task is due."""

    def __init__(self, clock: Clock, due: list[datetime]) -> None:
        self.clock, self.due = clock, due

    def send_task_success(self, token, output):
        self.clock.at = self.due[0] + timedelta(seconds=1)
        raise Gone("TaskTimedOut")

    send_task_failure = send_task_success


def _desk():
    clock, due = Clock(), []
    sns = Notifier()
    desk = escalation_desk(workflow=TimedOutWorkflow(clock, due), notifier=sns, clock=clock)
    opened = desk.tasks.open(desk.ctx, desk.state, EXECUTION, "token-1")
    due.append(datetime.fromisoformat(opened["due_at"]))
    return desk.ctx, desk.ports, desk.tasks, sns, desk.state, opened["task_id"]


def _late_decision(ports, task_id):
    agent = TenantContext(tenant_id="acme", actor="agent:ann", roles=frozenset({"agent"}), via="jwt")
    with pytest.raises(Gone):
        ApprovalService(ports).decide(
            agent, task_id, DecisionRequest(decision_id="d-late", outcome="approve")
        )


def _types(ports, ctx):
    return [e.type for e in ports.audit.entries(ctx, "t-1")]


def test_a_review_whose_late_decision_was_taken_back_first_is_reassigned_on_the_record():
    ctx, ports, tasks, sns, state, task_id = _desk()
    _late_decision(ports, task_id)  # the deciding request takes its decision back before the SLA check runs

    after = tasks.check_sla(ctx, state, EXECUTION)
    tasks.check_sla(ctx, state, EXECUTION)  # Step Functions retrying the step

    assert not after.exhausted
    assert ports.tasks.get(ctx, task_id).status == "reassigned"
    types = _types(ports, ctx)
    assert types.count("task.decision_undelivered") == 1
    assert types.count("task.reassigned") == 1, types
    assert types.index("task.decision_undelivered") < types.index("task.reassigned")
    assert sns.sent[-1] == "reassigned"


def test_a_late_decision_after_the_sla_check_moved_the_review_is_not_audited_twice():
    ctx, ports, tasks, _, state, task_id = _desk()
    ports.now.at = ports.tasks.get(ctx, task_id).due_at + timedelta(seconds=1)
    tasks.check_sla(ctx, state, EXECUTION)  # the SLA check first: the review moves on

    agent = TenantContext(tenant_id="acme", actor="agent:ann", roles=frozenset({"agent"}), via="jwt")
    with pytest.raises(Gone):  # the agent's decision arrives after: told the task expired
        ApprovalService(ports).decide(
            agent, task_id, DecisionRequest(decision_id="d-late", outcome="approve")
        )

    types = _types(ports, ctx)
    assert types.count("task.reassigned") == 1 and "task.decided" not in types
