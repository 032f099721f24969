"""Signed outbound webhooks: approved account actions to the tenant's CRM/billing system (`crm`), and ticket
updates for tenants without a supported helpdesk (`generic`).

Contract (documented for receivers in the README):
- `POST {base_url}` with a canonical JSON body (sorted keys, no spaces) that is identical on every retry;
- `X-Deflect-Timestamp: <unix seconds>` and `X-Deflect-Signature: v1=<hex HMAC-SHA256(secret, "<ts>." + body)>`;
  receivers reject stale timestamps (we suggest 5 minutes) and compare signatures in constant time;
- `Idempotency-Key: <outbox id>`: the receiver applies each key once and answers repeats with the first result.
  That promise is what makes every retry here safe. A 409 means the key was reused with a different body.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Collection
from typing import Any

from deflect.domain.canonical import canonical_json
from deflect.domain.models import OutboxItem
from deflect.helpdesk.base import Connector
from deflect.helpdesk.errors import PermanentFailure
from deflect.helpdesk.http import HelpdeskHttp
from deflect.helpdesk.models import HelpdeskCredentials, HelpdeskReceipt

SIGNATURE_HEADER = "X-Deflect-Signature"
TIMESTAMP_HEADER = "X-Deflect-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify(
    secret: str, timestamp: str, body: bytes, signature: str, *, now: float, tolerance_s: int = 300
) -> bool:
    """For receivers (and the local CRM server): fresh timestamp and matching signature."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature or "")


class SignedWebhookConnector(Connector):
    def __init__(
        self,
        tenant_id: str,
        credentials: HelpdeskCredentials,
        http: HelpdeskHttp,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(tenant_id, credentials, http)
        self.provider = credentials.provider
        self._clock = clock

    def auth_headers(self) -> dict[str, str]:
        return {}  # the signature is computed per request in send()

    def payload(self, item: OutboxItem) -> dict[str, Any]:
        # No send time in the body: a retry must carry the very same bytes for the idempotency key.
        return {
            "event": "account_action" if item.kind == "account_action" else "ticket_update",
            "outbox_id": item.outbox_id,
            "tenant_id": item.tenant_id,
            "ticket_id": item.ticket_id,
            "external_ticket_id": item.external_ticket_id,
            "kind": item.kind,
            "action": item.action.model_dump(mode="json") if item.action else None,
            "body": item.body,
            "tags": item.tags,
            "status": item.status_value,
            "custom_fields": item.custom_fields,
            "approved_by": item.caused_by,
        }

    def send(self, item: OutboxItem, *, others: Collection[str] = frozenset()) -> HelpdeskReceipt:
        # `others` is not needed: the receiver keys each effect on the outbox id (Idempotency-Key).
        if self.provider == "crm" and (item.action is None or item.action.kind == "none"):
            raise PermanentFailure("an account action item without an action")
        body = canonical_json(self.payload(item))
        assert self.credentials.signing_secret
        secret = self.credentials.signing_secret.get_secret_value()

        ts = int(self._clock())
        headers = {
            TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: sign(secret, ts, body),
            IDEMPOTENCY_HEADER: item.outbox_id,
        }
        response = self.call("POST", "", item, raw_body=body, headers=headers, safe=True, accept=(409,))
        if response.status == 409:
            raise PermanentFailure("the receiver saw this idempotency key with a different body", status=409)
        answer = response.json() if response.body else {}
        effect = str(answer.get("id") or answer.get("action_id") or "accepted")
        return self.receipt(
            item,
            [f"{self.provider}:{effect}"],
            replayed=bool(answer.get("replayed")),
            idempotency_key=item.outbox_id,
        )
