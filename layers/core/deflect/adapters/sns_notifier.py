"""Operational notifications on SNS (the template's SlaTopic). Subscribers filter on the message attributes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from deflect.adapters.aws_errors import translated
from deflect.domain.canonical import json_default
from deflect.domain.tenancy import TenantContext

SUBJECT_MAX = 100  # SNS rejects longer subjects


class SnsNotifier:
    def __init__(self, client: Any, topic_arn: str | None) -> None:
        self._client = client
        self._topic_arn = topic_arn

    def notify(self, ctx: TenantContext, event: str, detail: Mapping[str, Any]) -> None:
        if not self._topic_arn:
            raise RuntimeError("notification topic is not configured")
        message = {"tenant_id": ctx.tenant_id, "event": event, **detail}
        with translated("Publish"):
            self._client.publish(
                TopicArn=self._topic_arn,
                Subject=f"Deflect {event} ({ctx.tenant_id})"[:SUBJECT_MAX],
                Message=json.dumps(message, default=json_default, sort_keys=True),
                MessageAttributes={
                    "tenant_id": {"DataType": "String", "StringValue": ctx.tenant_id},
                    "event": {"DataType": "String", "StringValue": event},
                },
            )
