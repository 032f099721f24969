"""Diagnostic tools from a task (the real approval handler, moto, the escalation state machine) follow the task's own
rules: only a caller whose roles may work the task may list or run its tools (the task view withholds their output
from anyone else), and only while it is open. A refused run leaves nothing behind: no tool call, no evidence object,
no audit event."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from deflect.domain.models import RequestedAction, utcnow
from deflect.domain.tenancy import TenantContext
from deflect.triage.profile import TriageProfiles
from tests.integration.conftest_escalation import escalation_fixture  # noqa: F401

AGENT = ("agent",)
APPROVER = ("approver",)
TOOL = "recent_errors"


def _tenant_granting_the_tool(h: Any, prefix: str) -> str:
    """The README's example grant, to agents and approvers in every product area."""
    tenant = h.tenant(prefix)
    ctx = TenantContext.system(tenant).model_copy(update={"actor": "admin:dana"})
    TriageProfiles(h.container.store).change(
        ctx, h.container.audit, {"tool_grants": [{"tool": TOOL, "roles": ["agent", "approver"]}]}
    )
    return tenant


def _task(h: Any, tenant: str, action: RequestedAction | None = None) -> dict[str, Any]:
    ticket = h.ticket(tenant)
    h.escalate(ticket, h.decision(ticket, action=action, product_area="data"))
    return h.wait_task(tenant, ticket.ticket_id)


def _left_behind(h: Any, tenant: str, ticket_id: str) -> tuple[list[str], int]:
    """Evidence objects kept for the ticket, and its diagnostics audit events."""
    s3 = h.session.client("s3")
    listed = s3.list_objects_v2(
        Bucket=h.resources.buckets["EvidenceBucket"], Prefix=f"tenant={tenant}/tickets/{ticket_id}/evidence/"
    )
    return [o["Key"] for o in listed.get("Contents", [])], h.audit_types(tenant, ticket_id).count(
        "diagnostics.collected"
    )


@pytest.fixture
def tool_calls(escalation, monkeypatch) -> list[str]:
    """Every tool run the registry is asked for, in the process the approval handler runs in."""
    tools = escalation.container.agent_diagnostics.tools
    calls: list[str] = []
    original = tools.run

    def recorded(ctx, name, *args, **kwargs):
        calls.append(name)
        return original(ctx, name, *args, **kwargs)

    monkeypatch.setattr(tools, "run", recorded)
    return calls


def test_an_agent_may_not_list_or_run_tools_on_a_task_only_approvers_may_work(escalation, tool_calls):
    h = escalation
    tenant = _tenant_granting_the_tool(h, "tools-role")
    task = _task(h, tenant, RequestedAction(kind="reset_mfa", target="acct-9"))
    assert task["required_role"] == "approver"
    tools, run = f"/v1/tasks/{task['task_id']}/tools", f"/v1/tasks/{task['task_id']}/tools/{TOOL}"
    before = _left_behind(h, tenant, task["ticket_id"])

    claimed = h.api("POST", f"/v1/tasks/{task['task_id']}/claim", tenant_id=tenant, roles=AGENT)
    assert claimed[0] == 403
    # The same refusal, in the same words, as claiming the task.
    assert h.api("POST", run, tenant_id=tenant, roles=AGENT) == claimed
    assert h.api("GET", tools, tenant_id=tenant, roles=AGENT) == claimed
    assert tool_calls == [] and _left_behind(h, tenant, task["ticket_id"]) == before

    # An approver may work it, so may run the tool: the output is kept and the run audited.
    assert h.api("GET", tools, tenant_id=tenant, roles=APPROVER)[1]["tools"] == [TOOL]
    status, ran = h.api("POST", run, tenant_id=tenant, roles=APPROVER, sub="ann")
    assert (status, ran["tool"], len(ran["evidence"])) == (200, TOOL, 1)
    assert tool_calls == [TOOL]
    evidence, audited = _left_behind(h, tenant, task["ticket_id"])
    assert (len(evidence), audited) == (len(before[0]) + 1, before[1] + 1)


def test_no_tool_runs_on_a_decided_or_expired_task(escalation, tool_calls):
    h = escalation
    tenant = _tenant_granting_the_tool(h, "tools-closed")
    decided, expired = _task(h, tenant), _task(h, tenant)
    assert h.decide(tenant, decided["task_id"], "reject", roles=AGENT, sub="al")[0] == 200
    ctx = TenantContext.system(tenant)
    ports = h.container.escalation_ports
    stored = ports.tasks.get(ctx, expired["task_id"])
    ports.store.put(
        ctx, ports.tasks.save_write(stored.model_copy(update={"due_at": utcnow() - timedelta(seconds=5)}))
    )

    for task, status, error in ((decided, 409, "conflict"), (expired, 410, "gone")):
        before = _left_behind(h, tenant, task["ticket_id"])
        claimed = h.api("POST", f"/v1/tasks/{task['task_id']}/claim", tenant_id=tenant, roles=AGENT)
        assert (claimed[0], claimed[1]["error"]) == (status, error)

        assert (
            h.api("POST", f"/v1/tasks/{task['task_id']}/tools/{TOOL}", tenant_id=tenant, roles=AGENT)
            == claimed
        )
        # Listing offers nothing to run on work that is over; the task itself is still found.
        listed = h.api("GET", f"/v1/tasks/{task['task_id']}/tools", tenant_id=tenant, roles=AGENT)
        assert (listed[0], listed[1]["tools"]) == (200, [])
        assert _left_behind(h, tenant, task["ticket_id"]) == before
    assert tool_calls == []


def test_a_task_id_that_is_not_one_is_not_found(escalation, tool_calls):
    h = escalation
    tenant = _tenant_granting_the_tool(h, "tools-id")
    for task_id in ("ticket_1", "TASK", "nothing-here"):
        assert h.api("POST", f"/v1/tasks/{task_id}/tools/{TOOL}", tenant_id=tenant, roles=AGENT)[0] == 404
        assert h.api("GET", f"/v1/tasks/{task_id}/tools", tenant_id=tenant, roles=AGENT)[0] == 404
    assert tool_calls == []
