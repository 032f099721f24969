"""Escalation: the state machine's task functions. Each parses its input and calls a service.

A failure raises: the error type (Conflict, Throttled, TransientFailure, ...) is what the state machine's Retry and
Catch match on. The event carries the task token for `open_human_task`: events are never logged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deflect import __version__
from deflect.bootstrap import Container, container
from deflect.domain.errors import MalformedPayload
from deflect.domain.tenancy import TenantContext
from deflect.escalation.models import EscalationState, StepEvent
from deflect.insight.metering import metered
from deflect.observability import bind_tenant, logger, metrics

Step = Callable[[Container, TenantContext, EscalationState, StepEvent], Any]


def _open_human_task(c: Container, ctx: TenantContext, state: EscalationState, event: StepEvent) -> Any:
    if event.token is None:
        raise MalformedPayload("open_human_task needs the task token")
    return c.human_tasks.open(ctx, state, event.execution, event.token.get_secret_value())


STEPS: dict[str, Step] = {
    "summarize": lambda c, ctx, s, e: c.escalation_steps.summarize(ctx, s, e.execution),
    "route": lambda c, ctx, s, e: c.escalation_steps.route(ctx, s),
    "acknowledge": lambda c, ctx, s, e: c.escalation_steps.acknowledge(ctx, s, e.execution),
    "open_human_task": _open_human_task,
    "check_sla": lambda c, ctx, s, e: c.human_tasks.check_sla(ctx, s, e.execution),
    "reassign": lambda c, ctx, s, e: c.human_tasks.reassign(ctx, s, e.execution, reason="agent"),
    "apply_decision": lambda c, ctx, s, e: c.escalation_steps.apply_decision(ctx, s, e.execution),
    "enqueue_writeback": lambda c, ctx, s, e: c.escalation_steps.enqueue_writeback(ctx, s, e.execution),
    "record_outcome": lambda c, ctx, s, e: c.escalation_steps.record_outcome(ctx, s, e.execution),
    "note_review_expired": lambda c, ctx, s, e: c.escalation_steps.note_review_expired(ctx, s, e.execution),
    "note_failed": lambda c, ctx, s, e: c.escalation_steps.note_failed(ctx, s, e.execution),
}


def run(event: dict[str, Any], deps: Container | None = None) -> Any:
    step = StepEvent.model_validate(event)
    if step.task == "ping":
        return {"status": "ok", "function": "escalation", "version": __version__}
    if step.escalation is None or not step.execution:
        raise MalformedPayload("escalation state or execution name missing")
    ctx = TenantContext.system(step.escalation.tenant_id, actor="deflect:escalation")
    bind_tenant(ctx.tenant_id)
    # Thread-safe: on the local stack every function shares one process and one logger.
    logger().thread_safe_append_keys(ticket_id=step.escalation.ticket_id, execution=step.execution, step=step.task)
    result = STEPS[step.task](deps or container(), ctx, step.escalation, step)
    return result.model_dump(mode="json") if hasattr(result, "model_dump") else result


@logger().inject_lambda_context(clear_state=True)
@metrics().log_metrics
@metered
def handler(event: dict[str, Any], context: Any) -> Any:
    return run(event)
