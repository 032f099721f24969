"""Writeback: outbox items → helpdesk/CRM connectors. Batch with partial failures."""

from __future__ import annotations

from typing import Any

from deflect import __version__
from deflect.observability import logger, metrics


@logger().inject_lambda_context(clear_state=True)
@metrics().log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # The writeback issue adds the SQS batch and DynamoDB stream consumers.
    if event.get("task") == "ping":
        return {"status": "ok", "function": "writeback", "version": __version__}
    return {"batchItemFailures": []}
