"""A decision counts once the workflow has it: failures between storing a decision and the workflow's callback,
against the real escalation state machine. The agent's retry of the same decision_id delivers it; a decision that
never arrives is taken back and audited, never reported as done."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError

from deflect.domain.errors import DeflectError, Throttled
from deflect.domain.models import utcnow
from deflect.domain.tenancy import TenantContext
from deflect.escalation.models import DecisionRequest, TaskDecision
from tests.integration.conftest_escalation import decisions_meet_at_commit, escalation_fixture  # noqa: F401

APPROVER = ("agent", "approver")
REPLY = "We have reviewed your invoice."


class FunctionKilled(BaseException):
    """A Lambda timeout or crash: nothing after it runs, not even an `except Exception`."""


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "SendTaskSuccess",
    )


def _fail_first(monkeypatch, owner, method: str, error: BaseException) -> None:
    real = getattr(owner, method)
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, method, flaky)


def _escalated(h, prefix: str, **tenant):
    tenant_id = h.tenant(prefix, **tenant)
    ticket = h.ticket(tenant_id)
    arn = h.escalate(ticket, h.decision(ticket, reply=REPLY))
    return tenant_id, ticket, arn, h.wait_task(tenant_id, ticket.ticket_id)


def _replies(h, tenant_id: str) -> list[str | None]:
    return [i.body for i in h.outbox_items(tenant_id) if i.kind == "public_reply"]


@pytest.mark.parametrize(
    "code,status,answer", [("ThrottlingException", 400, 429), ("InternalServerError", 500, 503)]
)
def test_a_retry_after_a_failed_callback_delivers_the_decision(escalation, monkeypatch, code, status, answer):
    h = escalation
    tenant, ticket, arn, task = _escalated(h, "cbfail")
    _fail_first(
        monkeypatch,
        h.container.escalation_ports.workflow._callbacks,
        "send_task_success",
        _client_error(code, status),
    )
    path = f"/v1/tasks/{task['task_id']}/decision"
    body = {"decision_id": f"d-{code[:8]}", "outcome": "approve"}

    assert h.api("POST", path, tenant_id=tenant, roles=APPROVER, sub="ann", body=body)[0] == answer
    assert h.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
    retried = h.api("POST", path, tenant_id=tenant, roles=APPROVER, sub="ann", body=body)

    assert retried[0] == 200 and retried[1]["status"] == "decided"
    assert h.wait_execution(arn)["status"] == "SUCCEEDED"
    assert REPLY in _replies(h, tenant)
    assert h.audit_types(tenant, ticket.ticket_id)[-1] == "escalation.completed"
    # Once delivered, the same request again is the same answer and nothing new happens.
    assert h.api("POST", path, tenant_id=tenant, roles=APPROVER, sub="ann", body=body) == retried


def test_a_callback_that_landed_but_whose_answer_was_lost_is_not_taken_back(escalation, monkeypatch):
    """Step Functions took the decision; the answer never came back. Taken for a refusal, the decision would be
    deleted under a workflow that is applying it, and the escalation would fail."""
    from botocore.exceptions import ReadTimeoutError

    h = escalation
    tenant, ticket, arn, task = _escalated(h, "lostanswer")
    client = h.container.escalation_ports.workflow._callbacks
    real = client.send_task_success

    def landed_then_lost(**kwargs):
        real(**kwargs)
        raise ReadTimeoutError(endpoint_url="http://127.0.0.1/stepfunctions")

    monkeypatch.setattr(client, "send_task_success", landed_then_lost)
    path = f"/v1/tasks/{task['task_id']}/decision"
    body = {"decision_id": "d-lost", "outcome": "approve"}

    assert h.api("POST", path, tenant_id=tenant, roles=APPROVER, sub="ann", body=body)[0] == 503
    assert h.wait_execution(arn)["status"] == "SUCCEEDED"
    assert REPLY in _replies(h, tenant)
    again = h.api("POST", path, tenant_id=tenant, roles=APPROVER, sub="ann", body=body)
    assert again[0] == 200 and again[1]["status"] == "decided"
    assert "task.decision_undelivered" not in h.audit_types(tenant, ticket.ticket_id)


def test_a_retry_after_the_function_died_mid_decision_delivers_it(escalation, monkeypatch):
    h = escalation
    tenant, ticket, arn, task = _escalated(h, "cbcrash", review_timeout_s=600)
    ports = h.container.escalation_ports
    _fail_first(monkeypatch, ports.workflow, "send_task_success", FunctionKilled("timed out"))
    path = f"/v1/tasks/{task['task_id']}/decision"
    body = {"decision_id": "d-crash-1", "outcome": "approve"}
    with pytest.raises(FunctionKilled):
        h.api("POST", path, tenant_id=tenant, roles=APPROVER, sub="ann", body=body)

    # The first request may still be sending it: retry later, rather than a second sender or a hollow 200.
    assert h.api("POST", path, tenant_id=tenant, roles=APPROVER, sub="ann", body=body)[0] == 503
    assert h.decide(tenant, task["task_id"], "reject", roles=APPROVER, sub="bob", decision_id="d-crash-2")[0] == 409
    monkeypatch.setattr(ports, "now", lambda: utcnow() + timedelta(seconds=31))  # that request is long gone
    retried = h.api("POST", path, tenant_id=tenant, roles=APPROVER, sub="ann", body=body)

    assert retried[0] == 200, retried
    assert h.wait_execution(arn)["status"] == "SUCCEEDED"
    assert REPLY in _replies(h, tenant)
    assert h.audit_types(tenant, ticket.ticket_id).count("task.decided") == 1


def test_an_undelivered_decision_is_taken_back_at_the_sla_and_audited(escalation, monkeypatch):
    h = escalation
    tenant, ticket, arn, task = _escalated(h, "cbsla", review_timeout_s=4)
    _fail_first(
        monkeypatch,
        h.container.escalation_ports.workflow._callbacks,
        "send_task_success",
        _client_error("InternalServerError", 500),
    )
    path = f"/v1/tasks/{task['task_id']}/decision"
    body = {"decision_id": "d-sla-1", "outcome": "approve"}
    assert h.api("POST", path, tenant_id=tenant, roles=APPROVER, sub="ann", body=body)[0] == 503

    # Nobody retries before the SLA: the review moves to the next queue without the decision, in the open.
    moved = h.wait_task(tenant, ticket.ticket_id, exclude={task["task_id"]}, wait_s=20)
    ctx = TenantContext.system(tenant)
    ports = h.container.escalation_ports
    old = ports.tasks.get(ctx, task["task_id"])
    assert (moved["queue"], old.status, old.decided_outcome) == ("tier1", "reassigned", None)
    assert ports.decisions.by_id(ctx, "d-sla-1") is None
    types = h.audit_types(tenant, ticket.ticket_id)
    assert (
        types.index("task.decided")
        < types.index("task.decision_undelivered")
        < types.index("task.reassigned")
    )
    assert REPLY not in _replies(h, tenant)
    # The agent's late retry is told the task expired, not that the approval was done.
    assert h.api("POST", path, tenant_id=tenant, roles=APPROVER, sub="ann", body=body)[0] == 410
    assert h.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"


def test_the_same_decision_posted_twice_at_once_gets_the_same_answer(escalation, monkeypatch):
    h = escalation
    tenant, ticket, arn, task = _escalated(h, "dupdec")
    decisions_meet_at_commit(h.container.audit, monkeypatch)
    results: list[object] = []

    def double_click() -> None:
        ctx = TenantContext(tenant_id=tenant, actor="agent:ann", roles=frozenset({"agent"}), via="jwt")
        try:
            results.append(
                h.container.approvals.decide(
                    ctx, task["task_id"], DecisionRequest(decision_id="d-dbl", outcome="approve")
                )
            )
        except DeflectError as error:
            results.append(error)

    threads = [threading.Thread(target=double_click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)

    assert len(results) == 2 and results[0] == results[1], results
    assert isinstance(results[0], dict) and results[0]["status"] == "decided"
    assert h.wait_execution(arn)["status"] == "SUCCEEDED"
    assert h.audit_types(tenant, ticket.ticket_id).count("task.decided") == 1


def test_a_refused_callback_is_taken_back_even_when_the_rollback_is_throttled(escalation, monkeypatch):
    h = escalation
    tenant, ticket, arn, task = _escalated(h, "undothr")
    ports = h.container.escalation_ports
    _fail_first(monkeypatch, ports.workflow._callbacks, "send_task_success", _client_error("TaskTimedOut", 400))
    audit = h.container.audit
    original = audit.append
    throttled = {"n": 0}

    def throttled_once(ctx, ticket_id, type, payload, **kw):
        if type == "task.decision_undelivered" and not throttled["n"]:
            throttled["n"] += 1
            raise Throttled("TransactWriteItems: throttled")
        return original(ctx, ticket_id, type, payload, **kw)

    monkeypatch.setattr(audit, "append", throttled_once)

    status, _ = h.decide(tenant, task["task_id"], "approve", roles=APPROVER, sub="ann", decision_id="d-tto")

    ctx = TenantContext.system(tenant)
    # Refused while the task is open and not yet due (as in a retry of the step that stores its token): retry, not 410.
    assert (status, throttled["n"]) == (409, 1)
    assert ports.tasks.get(ctx, task["task_id"]).status == "open"
    assert ports.decisions.by_id(ctx, "d-tto") is None
    assert h.audit_types(tenant, ticket.ticket_id)[-2:] == ["task.decided", "task.decision_undelivered"]
    # (Step Functions here was still waiting: the next decision goes through.)
    assert h.decide(tenant, task["task_id"], "approve", roles=APPROVER, sub="ann")[0] == 200
    assert h.wait_execution(arn)["status"] == "SUCCEEDED"


def test_decisions_stored_before_delivery_was_tracked_still_load():
    stored = {
        "schema_version": 1,
        "tenant_id": "acme",
        "task_id": "task_1",
        "ticket_id": "t-1",
        "decision_id": "d-1",
        "outcome": "approve",
        "actor": "agent:ann",
        "decided_at": "2025-01-01T00:00:00+00:00",
    }
    assert TaskDecision.model_validate(stored).delivery == "delivered"
