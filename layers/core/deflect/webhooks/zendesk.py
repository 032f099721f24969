"""Zendesk: trigger/automation webhooks (the JSON body Deflect documents) and event-subscribed ticket webhooks.

Ticket activity reaches webhooks in two documented ways:
- a trigger or automation with a JSON body built from placeholders. Deflect's template (README, `events/zendesk/`)
  sends `{"event": "ticket.created" | "comment.created", "ticket": {...}, "current_user": {...}}`;
- event subscriptions (`zen:event-type:ticket.created`, `zen:event-type:ticket.comment_added`) whose payload has
  `type`, `id`, `detail` (the ticket) and `event` (the change).
Delivery id: the `X-Zendesk-Webhook-Invocation-Id` header (stable across retries of one invocation, which are signed
again). The signature does not cover it. A trigger comment has no comment id, so it is known by its invocation id,
and intake also records its body with the signed `X-Zendesk-Webhook-Signature-Timestamp`
(`intake.signed_receipt_sk`): a captured body sent again with a new invocation id is not a new message, while the
same text commented again later is.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import AliasChoices, Field

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

INVOCATION_HEADER = "x-zendesk-webhook-invocation-id"
DESCRIPTION = "description"  # message id of a ticket's first comment, whichever webhook reports it


class ZendeskUser(ProviderModel):
    id: LooseId | None = None
    email: LooseText = None
    name: LooseText = None
    external_id: LooseText = None
    language: LooseText = Field(default=None, validation_alias=AliasChoices("language", "locale"))
    role: LooseText = None
    # The Users API's `verified` (the user proved an identity). An anonymous web-form requester has not; a body
    # without it vouches for nothing, and the requester is then known by Zendesk user id, not by the email typed.
    verified: bool | str | None = None

    def email_verified(self) -> bool:
        return self.verified is True or (isinstance(self.verified, str) and self.verified.strip().lower() == "true")

    def email_unverified(self) -> bool:
        return self.verified is False or (isinstance(self.verified, str) and self.verified.strip().lower() == "false")


class ZendeskAttachment(ProviderModel):
    file_name: LooseText = Field(default=None, validation_alias=AliasChoices("file_name", "filename", "name"))
    content_url: LooseText = Field(default=None, validation_alias=AliasChoices("content_url", "url"))
    content_type: LooseText = None
    size: int | None = None


class TriggerTicket(ProviderModel):
    id: LooseId = Field(min_length=1)
    subject: LooseText = Field(default=None, validation_alias=AliasChoices("subject", "title"))
    description: LooseText = None
    latest_comment_html: LooseText = None
    latest_comment: LooseText = None
    status: LooseText = None
    priority: LooseText = None
    via: LooseText = None
    tags: str | list[str] | None = None
    locale: LooseText = None
    created_at: LooseTime = None
    updated_at: LooseTime = None
    organization_id: LooseId | None = None
    requester: ZendeskUser = Field(default_factory=ZendeskUser)
    custom_fields: dict[str, Any] | list[dict[str, Any]] | None = None
    attachments: list[ZendeskAttachment] = Field(default_factory=list)


class TriggerPayload(ProviderModel):
    event: str = "ticket.created"
    ticket: TriggerTicket
    current_user: ZendeskUser | None = None


class EventVia(ProviderModel):
    channel: LooseText = None


class EventDetail(ProviderModel):
    id: LooseId = Field(min_length=1)
    subject: LooseText = None
    description: LooseText = None
    requester_id: LooseId | None = None
    organization_id: LooseId | None = None
    external_id: LooseText = None
    via: EventVia | None = None
    tags: list[str] | None = None
    created_at: LooseTime = None
    updated_at: LooseTime = None
    priority: LooseText = None
    type: LooseText = None


class CommentAuthor(ProviderModel):
    id: LooseId | None = None
    is_staff: bool = False
    name: LooseText = None


class EventComment(ProviderModel):
    id: LooseId | None = None
    body: LooseText = None
    is_public: bool = True
    author: CommentAuthor = Field(default_factory=CommentAuthor)


class EventChange(ProviderModel):
    comment: EventComment | None = None


class EventPayload(ProviderModel):
    type: str
    id: LooseId | None = None
    account_id: LooseId | None = None
    time: LooseTime = None
    detail: EventDetail
    event: EventChange = Field(default_factory=EventChange)


def delivery_id(headers: Mapping[str, str], payload: Mapping[str, Any], body: bytes) -> str:
    found = headers.get(INVOCATION_HEADER) or payload.get("id")
    return str(found) if isinstance(found, (str, int)) and str(found) else common.body_fingerprint(body)


def _custom_fields(value: dict[str, Any] | list[dict[str, Any]] | None) -> dict[str, Any]:
    if isinstance(value, list):  # the API's [{"id": 123, "value": "x"}] form
        return common.custom_fields((str(f.get("id")), f.get("value")) for f in value if isinstance(f, dict))
    return common.custom_fields(value)


def _end_of_minute(stamp: datetime | None) -> datetime | None:
    """A trigger's date placeholders (`{{ticket.updated_at_with_timestamp}}`) stop at minutes: 05:35 may be
    05:35:27. Taken as 05:35:00, the customer's own update that fired the trigger would look newer than what was
    read, and every reply written back would be held as a conflict. Taken as the minute's end, only a change
    in the same minute can go unseen."""
    if stamp is None or stamp.second or stamp.microsecond:
        return stamp
    return stamp + timedelta(seconds=59, microseconds=999_000)


def _from_trigger(tenant_id: str, payload: TriggerPayload) -> ParseResult:
    ticket = payload.ticket
    role = (payload.current_user.role or "").lower() if payload.current_user else ""
    if payload.event not in {"ticket.created", "comment.created"}:
        return Ignored(provider="zendesk", event=payload.event, reason="event type not handled")
    if role in {"agent", "admin"}:
        return Ignored(provider="zendesk", event=payload.event, reason="comment written by an agent")
    created = payload.event == "ticket.created"
    raw_body = ticket.description if created else (ticket.latest_comment_html or ticket.latest_comment)
    return InboundMessage(
        tenant_id=tenant_id,
        provider="zendesk",
        event=payload.event,
        is_new_ticket=created,
        external_ticket_id=ticket.id,
        external_message_id=DESCRIPTION if created else None,
        requester=Requester(
            email=ticket.requester.email or None,
            external_id=ticket.requester.id or None,
            name=ticket.requester.name or None,
            email_verified=ticket.requester.email_verified(),
            email_unverified=ticket.requester.email_unverified(),
        ),
        subject=common.subject_text(ticket.subject),
        body_text=common.body_text(raw_body),
        attachments=common.attachments(
            common.attachment(a.file_name, a.content_url, a.content_type, a.size) for a in ticket.attachments
        ),
        channel=(ticket.via or "web").lower()[:40],
        locale=ticket.locale or ticket.requester.language or None,
        created_at=ticket.created_at,
        updated_at=_end_of_minute(ticket.updated_at),
        custom_fields=_custom_fields(ticket.custom_fields)
        | common.custom_fields(
            {"status": ticket.status, "priority": ticket.priority, "organization_id": ticket.organization_id}
        ),
        tags=common.split_tags(ticket.tags),
    )


def _from_event(tenant_id: str, payload: EventPayload) -> ParseResult:
    detail = payload.detail
    kind = payload.type.removeprefix("zen:event-type:")
    if kind == "ticket.created":
        body, message_id = detail.description, DESCRIPTION
    elif kind == "ticket.comment_added":
        comment = payload.event.comment
        if comment is None:
            return Ignored(provider="zendesk", event=kind, reason="comment event without a comment")
        if comment.author.is_staff:
            return Ignored(provider="zendesk", event=kind, reason="comment written by an agent")
        if not comment.is_public:
            return Ignored(provider="zendesk", event=kind, reason="private comment")
        # The first comment of a ticket is its description: map both events onto one message.
        same_as_description = (comment.body or "").strip() == (detail.description or "").strip()
        body, message_id = comment.body, DESCRIPTION if same_as_description else comment.id
    else:
        return Ignored(provider="zendesk", event=kind, reason="event type not handled")
    return InboundMessage(
        tenant_id=tenant_id,
        provider="zendesk",
        event=kind,
        is_new_ticket=kind == "ticket.created",
        external_ticket_id=detail.id,
        external_message_id=message_id,
        requester=Requester(external_id=detail.requester_id or None),
        subject=common.subject_text(detail.subject),
        body_text=common.body_text(body),
        channel=((detail.via.channel if detail.via else None) or "web").lower()[:40],
        created_at=detail.created_at,
        updated_at=detail.updated_at or payload.time,
        custom_fields=common.custom_fields(
            {"priority": detail.priority, "type": detail.type, "organization_id": detail.organization_id}
        ),
        tags=common.split_tags(detail.tags),
    )


def parse(tenant_id: str, payload: Mapping[str, Any]) -> ParseResult:
    kind = payload.get("type")
    if isinstance(kind, str) and kind.startswith("zen:event-type:"):
        return _from_event(tenant_id, EventPayload.model_validate(payload))
    return _from_trigger(tenant_id, TriggerPayload.model_validate(payload))
