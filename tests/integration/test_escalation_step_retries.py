"""A Lambda timeout (`Sandbox.Timedout`) in the steps that open a human task, or in the step that closes a failed
escalation, is retried like every other step's (the real ASL on moto's Step Functions, the real task handlers and
approval API). A retry of a `waitForTaskToken` step invokes the task function again with a new token; the task the
timed-out attempt stored keeps its id and gets that token, so the agent's decision still reaches the workflow."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from deflect.domain.models import RequestedAction
from deflect.domain.tenancy import TenantContext
from tests.integration.conftest_escalation import POLL_S, WAIT_S, escalation_fixture  # noqa: F401

APPROVER = ("agent", "approver")

# What Lambda reports to Step Functions when a function runs out of time (no Python exception reaches it).
SandboxTimedout = type("Sandbox.Timedout", (Exception,), {})


def _time_out_after_opening(h: Any, monkeypatch: Any, tenant: str, kind: str) -> list[str]:
    """The first `kind` task of `tenant` is stored (with the attempt's token), then the function times out.
    Returns the timed-out attempt's token hash, once stored."""
    audit, original = h.container.audit, h.container.audit.append
    left = [1]
    dead_tokens: list[str] = []

    def append(ctx, ticket_id, type, payload, **kw):
        event = original(ctx, ticket_id, type, payload, **kw)
        if type == "task.opened" and ctx.tenant_id == tenant and payload["kind"] == kind and left[0]:
            left[0] -= 1
            dead_tokens.append(h.container.escalation_ports.tasks.get(ctx, payload["task_id"]).token_sha256)
            raise SandboxTimedout("Task timed out after 29.00 seconds")
        return event

    monkeypatch.setattr(audit, "append", append)
    return dead_tokens


def _stored_token(h: Any, tenant: str, task_id: str) -> str:
    return h.container.escalation_ports.tasks.get(TenantContext.system(tenant), task_id).token_sha256


def _wait_for_retried_wait(h: Any, arn: str, state: str) -> None:
    """`state` timed out opening its task, was retried, and now waits for the decision. A decision sent before the
    retry stored its token would go to the failed attempt, which nobody waits for any more."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        events = h.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        entered = [
            i for i, e in enumerate(events) if e.get("stateEnteredEventDetails", {}).get("name") == state
        ]
        since = events[entered[-1] :] if entered else []
        timed_out = [
            i
            for i, e in enumerate(since)
            if e["type"] == "TaskFailed" and e["taskFailedEventDetails"]["error"] == "Sandbox.Timedout"
        ]
        if timed_out and any(e["type"] == "TaskSubmitted" for e in since[timed_out[0] :]):
            return
        if h.sfn.describe_execution(executionArn=arn)["status"] != "RUNNING":
            raise AssertionError(f"{state} was not retried after its timeout: {h.states_entered(arn)}")
        time.sleep(POLL_S)
    raise AssertionError(f"{state} is not waiting for a decision after its retry within {WAIT_S}s")


def test_a_review_task_that_timed_out_while_opening_is_retried_and_its_decision_resumes_the_workflow(
    escalation, monkeypatch
):
    h = escalation
    tenant = h.tenant("reviewtimeout")
    dead_tokens = _time_out_after_opening(h, monkeypatch, tenant, "review")
    ticket = h.ticket(tenant)
    arn = h.escalate(ticket, h.decision(ticket))

    task = h.wait_task(tenant, ticket.ticket_id)
    # The agent works the task the timed-out attempt stored, once the retry has given it the live token (the
    # timed-out attempt's token is refused, as on AWS: infra.local.moto_patches.sfn_token_per_attempt).
    _wait_for_retried_wait(h, arn, "HumanReview")
    assert dead_tokens and _stored_token(h, tenant, task["task_id"]) != dead_tokens[0]
    assert h.decide(tenant, task["task_id"], "approve", roles=APPROVER, sub="ann")[0] == 200

    assert h.wait_execution(arn)["status"] == "SUCCEEDED"
    replies = [i.body for i in h.outbox_items(tenant) if i.kind == "public_reply"]
    assert replies.count("We have reviewed your invoice.") == 1
    assert h.audit_types(tenant, ticket.ticket_id).count("task.opened") == 1  # one task, not two


def test_a_second_approval_that_timed_out_while_opening_is_retried(escalation, monkeypatch):
    h = escalation
    tenant = h.tenant("secondtimeout", threshold=Decimal("500"))
    dead_tokens = _time_out_after_opening(h, monkeypatch, tenant, "second_approval")
    ticket = h.ticket(tenant)
    big = RequestedAction(kind="refund", amount=Decimal("900"), currency="USD", target="inv-1")
    arn = h.escalate(ticket, h.decision(ticket, action=big))

    first = h.wait_task(tenant, ticket.ticket_id)
    status, body = h.decide(tenant, first["task_id"], "approve", roles=APPROVER, sub="ann")
    assert status == 200 and body["awaiting_second_approval"] is True
    second = h.wait_task(tenant, ticket.ticket_id, exclude={first["task_id"]})
    _wait_for_retried_wait(h, arn, "SecondApproval")
    assert dead_tokens and _stored_token(h, tenant, second["task_id"]) != dead_tokens[0]
    assert h.decide(tenant, second["task_id"], "approve", roles=APPROVER, sub="bob")[0] == 200

    assert h.wait_execution(arn)["status"] == "SUCCEEDED"
    assert [i.action for i in h.outbox_items(tenant) if i.kind == "account_action"] == [big]


class _KeyDisabled:
    """KMS refusing to encrypt for one tenant: the human task cannot be stored, the workflow fails."""

    def __init__(self, tenant_id: str, inner: Any) -> None:
        self.tenant_id, self.inner = tenant_id, inner

    def encrypt(self, tenant_id: str, plaintext: Any) -> Any:
        if tenant_id == self.tenant_id:
            raise RuntimeError("key disabled")
        return self.inner.encrypt(tenant_id, plaintext)

    def decrypt(self, tenant_id: str, ciphertext: Any) -> Any:
        return self.inner.decrypt(tenant_id, ciphertext)


def test_closing_a_failed_escalation_is_retried_after_a_timeout(escalation, monkeypatch):
    h = escalation
    tenant = h.tenant("closetimeout")
    steps, original = h.container.escalation_steps, h.container.escalation_steps.note_failed
    left = [1]

    def note_failed(ctx, state, execution):
        if left[0]:
            left[0] -= 1
            raise SandboxTimedout("Task timed out after 29.00 seconds")
        return original(ctx, state, execution)

    monkeypatch.setattr(steps, "note_failed", note_failed)
    ports = h.container.escalation_ports
    cipher = ports.cipher
    ports.cipher = _KeyDisabled(tenant, cipher)
    try:
        ticket = h.ticket(tenant)
        arn = h.escalate(ticket, h.decision(ticket))
        assert h.wait_execution(arn)["status"] == "FAILED"
    finally:
        ports.cipher = cipher

    # The escalation is closed (the customer's next message is triaged again) and the failure queue still hears.
    assert "escalation.failed" in h.audit_types(tenant, ticket.ticket_id)
    [failure] = [m for m in h.drain("HumanFailureQueue") if m["escalation"]["ticket_id"] == ticket.ticket_id]
    assert (
        failure["escalation"]["error"]["Error"] == "RuntimeError"
        and "close_error" not in failure["escalation"]
    )
