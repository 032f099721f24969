"""Approval: the agent task queue and decision endpoint. Thin: parse → service → mapped errors."""

from __future__ import annotations

from typing import Any

from deflect import __version__
from deflect.http import build_resolver
from deflect.observability import logger, metrics

app = build_resolver()


@app.get("/v1/approval/ping")
def ping() -> dict[str, Any]:
    return {"status": "ok", "function": "approval", "version": __version__}


@logger().inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@metrics().log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
