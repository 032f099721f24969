"""Work queues on SQS. Messages carry the tenant so consumers resolve it before any read."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from deflect.adapters.aws_errors import translated
from deflect.domain.canonical import json_default
from deflect.domain.tenancy import TenantContext


class SqsWorkQueue:
    def __init__(self, client: Any, queue_url: str | None) -> None:
        self._client = client
        self._url = queue_url

    def send(self, ctx: TenantContext, body: Mapping[str, Any], *, dedupe_id: str | None = None) -> str:
        if not self._url:
            raise RuntimeError("queue URL is not configured")
        message = {"tenant_id": ctx.tenant_id, **body}
        attributes = {"tenant_id": {"DataType": "String", "StringValue": ctx.tenant_id}}
        if dedupe_id:
            attributes["dedupe_id"] = {"DataType": "String", "StringValue": dedupe_id}
        with translated("SendMessage"):
            response = self._client.send_message(
                QueueUrl=self._url,
                MessageBody=json.dumps(message, default=json_default),
                MessageAttributes=attributes,
            )
        return response["MessageId"]
