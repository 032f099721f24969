"""Triage worker: classify, retrieve, draft and decide each queued message."""

from __future__ import annotations

from typing import Any

from deflect import __version__
from deflect.observability import logger, metrics


@logger().inject_lambda_context(clear_state=True)
@metrics().log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # The triage issue adds the SQS batch consumer.
    if event.get("task") == "ping":
        return {"status": "ok", "function": "triage", "version": __version__}
    return {"batchItemFailures": []}
