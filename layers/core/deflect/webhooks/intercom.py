"""Intercom: `notification_event` webhooks for the topics conversation.user.created and conversation.user.replied.

The conversation item differs by API version: 2.x sends `source` + `contacts`, 1.x sends `conversation_message`
+ `user`; both are accepted. Delivery id: the notification's `id` (`notif_...`), stable across retries.
"""

from __future__ import annotations

from collections.abc import Mapping
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

HANDLED = {"conversation.user.created", "conversation.user.replied"}
CUSTOMER_AUTHORS = {"user", "lead", "contact"}
# A `user` is a contact the workspace itself identified (its app's logged-in user, with Identity Verification so
# that one user cannot impersonate another). A `lead` is an anonymous visitor: the email it typed is unverified.
VOUCHED_AUTHORS = {"user"}
_CHANNELS = {"conversation": "chat", "conversation_message": "chat", "": "chat"}


class Author(ProviderModel):
    type: LooseText = None
    id: LooseId | None = None
    name: LooseText = None
    email: LooseText = None


class Attachment(ProviderModel):
    name: LooseText = None
    url: LooseText = None
    content_type: LooseText = None
    filesize: int | None = None


class Source(ProviderModel):
    type: LooseText = None
    id: LooseId | None = None
    delivered_as: LooseText = None
    subject: LooseText = None
    body: LooseText = None
    author: Author = Field(default_factory=Author)
    attachments: list[Attachment] = Field(default_factory=list)


class Part(ProviderModel):
    id: LooseId | None = None
    part_type: LooseText = None
    body: LooseText = None
    created_at: LooseTime = None
    author: Author = Field(default_factory=Author)
    attachments: list[Attachment] = Field(default_factory=list)


class Parts(ProviderModel):
    conversation_parts: list[Part] = Field(default_factory=list)


class ContactRef(ProviderModel):
    id: LooseId | None = None
    external_id: LooseText = None


class Contacts(ProviderModel):
    contacts: list[ContactRef] = Field(default_factory=list)


class LegacyUser(ProviderModel):
    id: LooseId | None = None
    user_id: LooseText = None
    name: LooseText = None
    email: LooseText = None


class Conversation(ProviderModel):
    id: LooseId = Field(min_length=1)
    created_at: LooseTime = None
    updated_at: LooseTime = None
    title: LooseText = None
    source: Source | None = Field(
        default=None, validation_alias=AliasChoices("source", "conversation_message")
    )
    contacts: Contacts | None = None
    user: LegacyUser | None = None
    conversation_parts: Parts = Field(default_factory=Parts)
    custom_attributes: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, Any] | None = None


class NotificationData(ProviderModel):
    item: dict[str, Any]


class Notification(ProviderModel):
    type: str = "notification_event"
    id: LooseId | None = None
    topic: str
    app_id: LooseText = None
    created_at: LooseTime = None
    data: NotificationData


def delivery_id(headers: Mapping[str, str], payload: Mapping[str, Any], body: bytes) -> str:
    found = payload.get("id")
    return str(found) if isinstance(found, (str, int)) and str(found) else common.body_fingerprint(body)


def _attachments(found: list[Attachment]) -> list:
    return common.attachments(common.attachment(a.name, a.url, a.content_type, a.filesize) for a in found)


def _tags(conversation: Conversation) -> list[str]:
    listed = (conversation.tags or {}).get("tags")
    return common.split_tags(
        [t.get("name") for t in listed if isinstance(t, dict)] if isinstance(listed, list) else None
    )


def parse(tenant_id: str, payload: Mapping[str, Any]) -> ParseResult:
    note = Notification.model_validate(payload)
    if note.topic not in HANDLED:
        return Ignored(provider="intercom", event=note.topic, reason="topic not handled")
    conversation = Conversation.model_validate(note.data.item)
    source = conversation.source or Source()
    contact = (
        conversation.contacts.contacts[0]
        if conversation.contacts and conversation.contacts.contacts
        else None
    )
    author = source.author
    if note.topic == "conversation.user.created":
        body, message_id, files = source.body, source.id or "source", source.attachments
    else:
        replies = [
            p
            for p in conversation.conversation_parts.conversation_parts
            if (p.author.type or "").lower() in CUSTOMER_AUTHORS and p.body
        ]
        if not replies:
            return Ignored(
                provider="intercom", event=note.topic, reason="no customer reply in the conversation parts"
            )
        reply = replies[-1]
        body, message_id, files, author = reply.body, reply.id, reply.attachments, reply.author
    legacy = conversation.user or LegacyUser()
    return InboundMessage(
        tenant_id=tenant_id,
        provider="intercom",
        event=note.topic,
        is_new_ticket=note.topic == "conversation.user.created",
        external_ticket_id=conversation.id,
        external_message_id=message_id,
        requester=Requester(
            email=author.email or legacy.email or None,
            external_id=(contact.id if contact else None) or author.id or legacy.id or None,
            name=author.name or legacy.name or None,
            email_verified=(author.type or "").lower() in VOUCHED_AUTHORS,
        ),
        subject=common.subject_text(conversation.title or source.subject),
        body_text=common.body_text(body),
        attachments=_attachments(files),
        channel=_CHANNELS.get((source.type or "").lower(), (source.type or "chat").lower()[:40]),
        created_at=conversation.created_at,
        updated_at=conversation.updated_at or note.created_at,
        custom_fields=common.custom_fields(conversation.custom_attributes)
        | common.custom_fields({"contact_external_id": contact.external_id if contact else None}),
        tags=_tags(conversation),
    )
