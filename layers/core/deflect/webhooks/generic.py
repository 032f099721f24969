"""Generic: Deflect's own webhook format for helpdesks we do not integrate natively (or in-house tools).

POST /v1/webhooks/generic/{tenant}
X-Deflect-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, t + "." + body)>
X-Deflect-Delivery: <unique id, repeated on retries> (not signed: a message without `message.id` is known by it,
                    and by its body as signed at `t`, so a captured body with a changed header is no new message)
{"event": "ticket.created" | "message.created",
 "ticket": {"id", "subject", "channel", "locale", "tags", "custom_fields", "created_at", "updated_at"},
 "requester": {"email", "external_id", "name", "email_verified"},
 "message": {"id", "body" | "body_html", "attachments": [{"name", "url", "content_type", "size"}], "created_at"}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from deflect.domain.errors import MalformedPayload
from deflect.webhooks import common
from deflect.webhooks.inbound import (
    Ignored,
    InboundMessage,
    LooseId,
    LooseText,
    LooseTime,
    ParseResult,
    ProviderModel,
    Requester,
)
from deflect.webhooks.signatures import DEFLECT_DELIVERY


class GenericAttachment(ProviderModel):
    name: LooseText = None
    url: LooseText = None
    content_type: LooseText = None
    size: int | None = None


class GenericMessage(ProviderModel):
    id: LooseId | None = None
    body: LooseText = None
    body_html: LooseText = None
    attachments: list[GenericAttachment] = Field(default_factory=list)
    created_at: LooseTime = None


class GenericTicket(ProviderModel):
    id: LooseId = Field(min_length=1)
    subject: LooseText = None
    channel: LooseText = None
    locale: LooseText = None
    tags: list[str] | str | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    created_at: LooseTime = None
    updated_at: LooseTime = None


class GenericRequester(ProviderModel):
    email: LooseText = None
    external_id: LooseId | None = None
    name: LooseText = None
    # `true` only if your tool verified the requester owns the email (a signed-in user, not a typed address);
    # `false` says it did not, which no tenant setting overrides; leave it out when your tool cannot tell.
    email_verified: bool | None = None


class GenericPayload(ProviderModel):
    event: str
    ticket: GenericTicket
    requester: GenericRequester = Field(default_factory=GenericRequester)
    message: GenericMessage = Field(default_factory=GenericMessage)


def delivery_id(headers: Mapping[str, str], payload: Mapping[str, Any], body: bytes) -> str:
    found = headers.get(DEFLECT_DELIVERY, "").strip()
    if not found or len(found) > 200:
        raise MalformedPayload("X-Deflect-Delivery header is required (1..200 characters)")
    return found


def parse(tenant_id: str, payload: Mapping[str, Any]) -> ParseResult:
    hook = GenericPayload.model_validate(payload)
    if hook.event not in {"ticket.created", "message.created"}:
        return Ignored(provider="generic", event=hook.event[:100], reason="event type not handled")
    created = hook.event == "ticket.created"
    message = hook.message
    return InboundMessage(
        tenant_id=tenant_id,
        provider="generic",
        event=hook.event,
        is_new_ticket=created,
        external_ticket_id=hook.ticket.id,
        external_message_id=message.id or ("description" if created else None),
        requester=Requester(
            email=hook.requester.email or None,
            external_id=hook.requester.external_id or None,
            name=hook.requester.name or None,
            email_verified=hook.requester.email_verified is True,
            email_unverified=hook.requester.email_verified is False,
        ),
        subject=common.subject_text(hook.ticket.subject),
        body_text=common.body_text(message.body_html or message.body),
        attachments=common.attachments(
            common.attachment(a.name, a.url, a.content_type, a.size) for a in message.attachments
        ),
        channel=(hook.ticket.channel or "web").lower()[:40],
        locale=hook.ticket.locale or None,
        created_at=hook.ticket.created_at or message.created_at,
        updated_at=hook.ticket.updated_at or message.created_at,
        custom_fields=common.custom_fields(hook.ticket.custom_fields),
        tags=common.split_tags(hook.ticket.tags),
    )
