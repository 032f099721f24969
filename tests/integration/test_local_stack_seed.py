"""The demo users `make run` seeds can finish every approval the demo tenant asks for: a refund above the tenant's
two-person threshold needs two different approvers, so two of them get tokens (approver and approver2)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from deflect.domain.models import RequestedAction
from infra.local import api
from infra.local import template as tpl
from infra.local.dev_issuer import DevIssuer, gateway_claims
from infra.local.seed import DEMO_TENANT, seed_demo_tenant
from tests.integration.conftest_escalation import APPROVAL_FUNCTION, escalation_fixture  # noqa: F401


def _as_demo_user(h: Any, issuer: DevIssuer, token: str, method: str, path: str, body: Any = None):
    """Call the approval API as API Gateway would after the local dev issuer accepted this seeded token."""
    routes = api.compile_routes([r for r in tpl.routes() if r.function == APPROVAL_FUNCTION])
    found = api.match(routes, method, path)
    assert found is not None
    route, params = found
    event = api.rest_event(
        route,
        method=method,
        path=path,
        query="",
        headers=[("content-type", "application/json")],
        body=json.dumps(body).encode() if body is not None else b"",
        path_parameters=params,
        claims=gateway_claims(issuer.verify(token)),
        stage="local",
    )
    reply = h.functions.invoke(APPROVAL_FUNCTION, event)
    return reply["statusCode"], json.loads(reply["body"]) if reply.get("body") else None


def _approve(h: Any, issuer: DevIssuer, token: str, task_id: str, decision_id: str):
    body = {"decision_id": decision_id, "outcome": "approve", "note": "duplicate charge confirmed"}
    return _as_demo_user(h, issuer, token, "POST", f"/v1/tasks/{task_id}/decision", body)


def test_two_seeded_approvers_finish_a_two_person_refund(escalation, tmp_path):
    h = escalation
    issuer = DevIssuer.in_dir(tmp_path)
    tokens, _ = seed_demo_tenant(h.container, tmp_path, issuer)
    saved = json.loads((tmp_path / "tokens.json").read_text())
    assert saved["tokens"] == tokens
    approvers = [role for role, user in saved["users"].items() if "approver" in user["groups"]]
    assert len(approvers) >= 2, f"only {approvers} may approve: a two-person approval cannot be finished"
    assert len({saved["users"][role]["sub"] for role in approvers}) == len(approvers)
    first_approver, second_approver = approvers[:2]

    ticket = h.ticket(DEMO_TENANT)
    big = RequestedAction(kind="refund", amount=Decimal("900"), currency="EUR")  # the default line is 500
    arn = h.escalate(ticket, h.decision(ticket, action=big))

    first = h.wait_task(DEMO_TENANT, ticket.ticket_id)
    status, body = _approve(h, issuer, tokens[first_approver], first["task_id"], "d-first")
    assert status == 200 and body["awaiting_second_approval"] is True, body
    second = h.wait_task(DEMO_TENANT, ticket.ticket_id, exclude={first["task_id"]})
    assert second["second_approval"] is True
    status, _ = _approve(h, issuer, tokens[first_approver], second["task_id"], "d-again")
    assert status == 403  # the same person cannot give both approvals
    status, body = _approve(h, issuer, tokens[second_approver], second["task_id"], "d-second")
    assert status == 200 and body["approvals"] == 2, body

    assert h.wait_execution(arn)["status"] == "SUCCEEDED"
    assert h.audit_types(DEMO_TENANT, ticket.ticket_id).count("task.decided") == 2
