"""Work queues on SQS. Messages carry the tenant so consumers resolve it before any read.

A FIFO queue (its URL ends in `.fifo`) gets a message group per tenant and group (the writeback queue groups by
ticket, so one ticket's effects go out in order) and a deduplication id, so a second send of the same message
within SQS's window is dropped. Both are hashed: SQS limits them to 128 characters of its own alphabet.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from deflect.adapters.aws_errors import translated
from deflect.domain.canonical import json_default, sha256_hex
from deflect.domain.tenancy import TenantContext


def _token(*parts: str) -> str:
    return sha256_hex("\x1f".join(parts).encode())


class SqsWorkQueue:
    def __init__(self, client: Any, queue_url: str | None) -> None:
        self._client = client
        self._url = queue_url

    @property
    def fifo(self) -> bool:
        return bool(self._url and self._url.endswith(".fifo"))

    def send(
        self,
        ctx: TenantContext,
        body: Mapping[str, Any],
        *,
        dedupe_id: str | None = None,
        group_id: str | None = None,
    ) -> str:
        if not self._url:
            raise RuntimeError("queue URL is not configured")
        message = {"tenant_id": ctx.tenant_id, **body}
        attributes = {"tenant_id": {"DataType": "String", "StringValue": ctx.tenant_id}}
        if dedupe_id:
            attributes["dedupe_id"] = {"DataType": "String", "StringValue": dedupe_id}
        request: dict[str, Any] = {
            "QueueUrl": self._url,
            "MessageBody": json.dumps(message, default=json_default),
            "MessageAttributes": attributes,
        }
        if self.fifo:
            request["MessageGroupId"] = _token(ctx.tenant_id, group_id or "")
            # Without an id of ours, the body is the id: an identical message is a duplicate.
            request["MessageDeduplicationId"] = _token(ctx.tenant_id, dedupe_id or request["MessageBody"])
        with translated("SendMessage"):
            response = self._client.send_message(**request)
        return response["MessageId"]
