"""Refusals of the agents' API (the real approval handler, moto, the escalation state machine): a signed-in agent is
told which permission is missing; without a token, or with one for an unknown tenant, nothing more than before; and
another tenant's task stays simply not found."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from deflect.domain.models import RequestedAction
from deflect.domain.tenancy import TenantContext
from deflect.triage.profile import TriageProfiles
from tests.integration.conftest_escalation import APPROVAL_FUNCTION, escalation_fixture  # noqa: F401

AGENT = ("agent",)
SUPERVISOR = ("agent", "supervisor")
FORBIDDEN = {"error": "forbidden", "message": "forbidden"}
NOT_FOUND = {"error": "not_found", "message": "not found"}
UNAUTHORIZED = {"error": "unauthorized", "message": "unauthorized"}


def _without_token(h: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """The request as API Gateway passes it when no authorizer ran (no claims at all)."""
    from infra.local import api
    from infra.local import template as tpl

    routes = api.compile_routes([r for r in tpl.routes() if r.function == APPROVAL_FUNCTION])
    route, params = api.match(routes, method, path)
    event = api.rest_event(
        route,
        method=method,
        path=path,
        query="",
        headers=[("content-type", "application/json")],
        body=json.dumps(body).encode() if body is not None else b"",
        path_parameters=params,
        claims=None,
        stage="local",
    )
    reply = h.functions.invoke(APPROVAL_FUNCTION, event)
    return reply["statusCode"], json.loads(reply["body"]) if reply.get("body") else None


def _task(h: Any, tenant: str, *, action: RequestedAction | None = None, area: str = "billing") -> dict:
    ticket = h.ticket(tenant)
    h.escalate(ticket, h.decision(ticket, action=action, product_area=area))
    return h.wait_task(tenant, ticket.ticket_id)


def test_an_agent_approving_a_large_refund_is_told_it_needs_approvers(escalation):
    h = escalation
    tenant = h.tenant("deny-refund", threshold=Decimal("500"))
    task = _task(h, tenant, action=RequestedAction(kind="refund", amount=Decimal("750"), currency="USD"))
    assert task["required_role"] == "approver"

    status, body = h.decide(tenant, task["task_id"], "approve", roles=AGENT, sub="al")

    assert status == 403
    assert body == {
        **FORBIDDEN,
        "detail": "this task needs an approver: a refund of 750 USD needs the approver role and a second, "
        "different approver",
    }
    status, body = h.decide(tenant, task["task_id"], "approve", roles=SUPERVISOR, sub="sue")
    assert (status, body["detail"]) == (
        403,
        "approving this task needs the approver role: a supervisor may reassign or reject it, not approve it",
    )
    # Refused means unchanged: the task still waits for an approver.
    _, detail = h.api("GET", f"/v1/tasks/{task['task_id']}", tenant_id=tenant, roles=SUPERVISOR)
    assert detail["task"]["status"] == "open" and "decision" not in detail


def test_an_agent_editing_a_refund_into_a_plain_task_is_told_the_refund_needs_an_approver(escalation):
    h = escalation
    tenant = h.tenant("deny-edit")
    task = _task(h, tenant, area="data")
    assert task["required_role"] == "agent"

    action = {"kind": "refund", "amount": "40", "currency": "EUR", "target": "inv-2025-0042"}
    status, body = h.decide(tenant, task["task_id"], "edit", roles=AGENT, sub="al", action=action)

    assert (status, body) == (403, {**FORBIDDEN, "detail": "a refund of 40 EUR needs the approver role"})
    assert "inv-2025-0042" not in json.dumps(body)  # an action's target is never echoed


def test_an_agent_running_a_tool_not_granted_to_them_is_told_which_grant_is_missing(escalation):
    h = escalation
    tenant = h.tenant("deny-tool")
    task = _task(h, tenant, area="data")
    path = f"/v1/tasks/{task['task_id']}/tools/recent_errors"
    ctx = TenantContext.system(tenant).model_copy(update={"actor": "admin:dana"})
    TriageProfiles(h.container.store).change(
        ctx, h.container.audit, {"tool_grants": [{"tool": "recent_errors", "roles": ["approver"]}]}
    )
    _, offered = h.api("GET", f"/v1/tasks/{task['task_id']}/tools", tenant_id=tenant, roles=AGENT)
    assert offered["tools"] == []

    status, body = h.api("POST", path, tenant_id=tenant, roles=AGENT)

    assert status == 403
    assert body == {
        **FORBIDDEN,
        "detail": f"tool recent_errors is not granted to role agent for product area {offered['product_area']} "
        "in this tenant's triage profile (tool_grants)",
    }
    status, body = h.api("POST", path, tenant_id=tenant, roles=("admin",))
    assert (status, body) == (
        403,
        {**FORBIDDEN, "detail": "this request needs one of the roles agent, approver, supervisor"},
    )


def test_what_is_not_found_or_not_signed_in_is_told_nothing_more(escalation):
    h = escalation
    tenant = h.tenant("deny-anon")
    other = h.tenant("deny-other")
    task = _task(h, tenant, area="data")
    tool = f"/v1/tasks/{task['task_id']}/tools/recent_errors"
    decision = f"/v1/tasks/{task['task_id']}/decision"
    body = {"decision_id": "d-anon-1", "outcome": "approve"}

    # Another tenant's agent: the task does not exist for them, whatever they call.
    assert h.api("POST", tool, tenant_id=other, roles=AGENT) == (404, NOT_FOUND)
    assert h.api("POST", decision, tenant_id=other, roles=AGENT, body=body) == (404, NOT_FOUND)
    # A tool this deployment does not have is not named back.
    unknown_tool = f"/v1/tasks/{task['task_id']}/tools/drop_tables"
    assert h.api("POST", unknown_tool, tenant_id=tenant, roles=AGENT) == (404, NOT_FOUND)
    # A token whose tenant does not exist, and no token at all.
    assert h.api("POST", tool, tenant_id="nobody-here", roles=AGENT) == (404, NOT_FOUND)
    assert h.api("POST", decision, tenant_id="nobody-here", roles=AGENT, body=body) == (404, NOT_FOUND)
    assert _without_token(h, "POST", tool) == (401, UNAUTHORIZED)
    assert _without_token(h, "POST", decision, body) == (401, UNAUTHORIZED)
