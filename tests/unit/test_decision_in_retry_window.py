"""A decision sent while Step Functions is retrying the step that opened the task (the attempt timed out after storing
the task, so its token is dead, and the retry has not stored its new token yet) is answered 409 "the task is being
reopened; retry", not 410 "expired": the task is still open and due later, and the same request sent again once the
retry has stored its token resumes the workflow. A task past due still answers 410. In memory: no sockets."""

from __future__ import annotations

from datetime import timedelta

import pytest

from deflect.domain.errors import Conflict, Gone
from deflect.domain.tenancy import TenantContext
from deflect.escalation.approval import ApprovalService
from deflect.escalation.models import DecisionRequest
from deflect.http import error_response
from tests.unit.escalation_desk import Clock, escalation_desk

EXECUTION = "esc-window"
AGENT = TenantContext(tenant_id="acme", actor="agent:ann", roles=frozenset({"agent"}), via="jwt")


class RetryingWorkflow:
    """Step Functions during a retry: the timed-out attempt's token answers TaskTimedOut (the adapter's Gone); the
    retry's token resumes the workflow."""

    def __init__(self) -> None:
        self.dead: set[str] = set()
        self.resumed: list[tuple[str, dict]] = []

    def send_task_success(self, token, output):
        if token in self.dead:
            raise Gone("the workflow no longer waits for this task")
        self.resumed.append((token, dict(output)))

    def send_task_failure(self, token, error, cause):
        self.send_task_success(token, {"error": error})


def _desk():
    workflow = RetryingWorkflow()
    desk = escalation_desk(workflow=workflow, clock=Clock())
    # The first attempt stores the task with its token, then times out: Step Functions no longer takes that token.
    task_id = desk.tasks.open(desk.ctx, desk.state, EXECUTION, "token-attempt-1")["task_id"]
    workflow.dead.add("token-attempt-1")
    return desk.ctx, desk.ports, desk.tasks, workflow, desk.state, task_id


def _approve(ports, task_id):
    return ApprovalService(ports).decide(
        AGENT, task_id, DecisionRequest(decision_id="d-1", outcome="approve")
    )


def test_a_decision_sent_before_the_retry_stored_its_token_is_told_to_retry_and_then_resumes_the_workflow():
    ctx, ports, tasks, workflow, state, task_id = _desk()

    with pytest.raises(Conflict) as refused:
        _approve(ports, task_id)

    response = error_response(refused.value, explain=True)
    assert response.status_code == 409
    assert response.body["detail"] == "the task is being reopened; retry"
    task = ports.tasks.get(ctx, task_id)
    assert task.status == "open" and task.decided_outcome is None  # still the agent's to decide

    tasks.open(ctx, state, EXECUTION, "token-attempt-2")  # the retry stores its token with the same task
    answer = _approve(ports, task_id)  # the agent sends the same request again

    assert answer["outcome"] == "approve"
    assert [token for token, _ in workflow.resumed] == ["token-attempt-2"]
    assert ports.tasks.get(ctx, task_id).status == "decided"


def test_a_decision_refused_after_the_task_fell_due_is_still_told_it_expired():
    ctx, ports, _, workflow, _, task_id = _desk()
    task = ports.tasks.get(ctx, task_id)
    # Read just before the due time, refused just after it (the wait's own timeout): a real expiry.
    ports.now.at = task.due_at - timedelta(seconds=1)

    def past_due(token, output):
        ports.now.at = task.due_at + timedelta(seconds=1)
        raise Gone("the workflow no longer waits for this task")

    workflow.send_task_success = past_due

    with pytest.raises(Gone):
        _approve(ports, task_id)
    assert workflow.resumed == []
