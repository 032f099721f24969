"""Escalation: the state machine's task functions. Each parses its input and calls a service."""

from __future__ import annotations

from typing import Any

from deflect import __version__
from deflect.observability import logger, metrics


@logger().inject_lambda_context(clear_state=True)
@metrics().log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # The escalation issue adds the tasks (summarize, open human task, reassign, apply decision).
    if event.get("task") == "ping":
        return {"status": "ok", "function": "escalation", "version": __version__}
    raise ValueError(f"unknown escalation task: {event.get('task')!r}")
