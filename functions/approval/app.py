"""Approval: the agent task queue and decision endpoint. Thin: parse → service → mapped errors.

The caller's tenant and roles come from the authorizer's claims only. No response ever carries a task token.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Query

from deflect import __version__
from deflect.bootstrap import container
from deflect.domain.errors import DeflectError, Forbidden
from deflect.domain.models import TaskStatus
from deflect.domain.tenancy import TenantContext
from deflect.escalation.models import DecisionRequest
from deflect.escalation.policy import WORKING_ROLES
from deflect.http import agent_context, build_resolver, require_role
from deflect.insight.metering import metered
from deflect.observability import logger, metrics

app = build_resolver()


@app.get("/v1/approval/ping")
def ping() -> dict[str, Any]:
    return {"status": "ok", "function": "approval", "version": __version__}


@app.get("/v1/tasks")
def list_tasks(
    queue: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[TaskStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    ctx = agent_context(app)
    tasks = container().approvals.list_tasks(ctx, queue, status, limit)
    return {"tasks": tasks, "count": len(tasks)}


@app.get("/v1/tasks/<task_id>")
def get_task(task_id: str) -> dict[str, Any]:
    ctx = agent_context(app)
    return container().approvals.task_detail(ctx, task_id)


@app.post("/v1/tasks/<task_id>/claim")
def claim_task(task_id: str) -> dict[str, Any]:
    ctx = agent_context(app)
    return container().approvals.claim(ctx, task_id)


@app.post("/v1/tasks/<task_id>/decision")
def decide_task(task_id: str, decision: DecisionRequest) -> dict[str, Any]:
    ctx = agent_context(app)
    return container().approvals.decide(ctx, task_id, decision)


@app.get("/v1/tasks/<task_id>/tools")
def task_tools(task_id: str) -> dict[str, Any]:
    ctx = agent_context(app)
    return container().agent_diagnostics.available(ctx, task_id)


@app.post("/v1/tasks/<task_id>/tools/<tool>")
def run_task_tool(task_id: str, tool: str) -> dict[str, Any]:
    # Granted per tenant, role and product area (the triage profile's tool_grants); output kept as evidence.
    ctx = agent_context(app)
    diagnostics = container().agent_diagnostics
    try:
        return diagnostics.run(ctx, task_id, tool)
    except Forbidden as refused:
        explained = _not_granted(diagnostics, ctx, task_id, tool)
        if explained is None:
            raise
        raise explained from refused


def _not_granted(diagnostics: Any, ctx: TenantContext, task_id: str, tool: str) -> Forbidden | None:
    """Which grant is missing, when the refusal was the grants' (the registry's own refusal names neither the tool
    nor the roles). Only a tool this deployment has is named; the caller's tenant's profile is the only one read."""
    if tool not in diagnostics.tools.names() or not ctx.roles & WORKING_ROLES:
        return None
    try:
        offered = diagnostics.available(ctx, task_id)
    except DeflectError:
        return None
    if tool in offered["tools"]:
        return None
    held = sorted(ctx.roles)
    roles = f"role {held[0]}" if len(held) == 1 else "roles " + ", ".join(held)
    return Forbidden(
        f"tool {tool} is not granted to {roles} for product area {offered['product_area']} in this tenant's "
        "triage profile (tool_grants)"
    )


# ------------------------------------------------------------------ accountability (issue 8)


@app.get("/v1/tickets/<ticket_id>/timeline")
def ticket_timeline(ticket_id: str) -> dict[str, Any]:
    ctx = agent_context(app)
    require_role(ctx, "agent", "approver", "supervisor", "admin")
    return container().timeline.timeline(ctx, ticket_id).model_dump(mode="json")


@app.get("/v1/analytics/summary")
def analytics_summary(
    date_from: Annotated[str, Query(alias="from", max_length=32)],
    date_to: Annotated[str, Query(alias="to", max_length=32)],
    reopen_window_days: Annotated[int, Query(ge=1, le=90)] = 7,
) -> dict[str, Any]:
    ctx = agent_context(app)
    require_role(ctx, "supervisor", "admin")
    return container().analytics.summary(ctx, date_from, date_to, reopen_window_days).model_dump(mode="json")


@logger().inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@metrics().log_metrics
@metered
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
