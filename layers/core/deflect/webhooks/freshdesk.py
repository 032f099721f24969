"""Freshdesk: automation-rule webhooks ("Trigger webhook" action).

Freshdesk's Simple content sends `{"freshdesk_webhook": {"ticket_id": ..., "ticket_subject": ..., ...,
"triggered_event": "{ticket_action:created}"}}`; the Advanced content Deflect documents uses the same keys plus
`ticket_updated_at` ({{ticket.updated_at}}) and an explicit `deflect_event` for the customer-reply rule.
Freshdesk does not sign webhooks: the shared secret travels in a configured header (see signatures.py).
Delivery id: ticket id + updated time (a retry repeats both); without an updated time, the body's fingerprint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import AliasChoices, ConfigDict, Field

from deflect.domain.canonical import sha256_hex
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


class Fields(ProviderModel):
    model_config = ConfigDict(extra="allow")  # custom fields arrive as ticket_cf_* keys

    ticket_id: LooseId = Field(min_length=1)
    ticket_subject: LooseText = None
    ticket_description: LooseText = None
    ticket_latest_public_comment: LooseText = None
    ticket_status: LooseText = None
    ticket_priority: LooseText = None
    ticket_source: LooseText = None
    ticket_type: LooseText = None
    ticket_url: LooseText = None
    ticket_tags: LooseText = None
    ticket_created_at: LooseTime = None
    ticket_updated_at: LooseTime = None
    requester_email: LooseText = Field(
        default=None,
        validation_alias=AliasChoices("requester_email", "ticket_contact_email", "ticket_requester_email"),
    )
    requester_name: LooseText = Field(
        default=None,
        validation_alias=AliasChoices("requester_name", "ticket_contact_name", "ticket_requester_name"),
    )
    requester_id: LooseText = Field(
        default=None,
        validation_alias=AliasChoices(
            "ticket_contact_unique_external_id", "requester_id", "ticket_requester_id"
        ),
    )
    requester_language: LooseText = None
    triggered_event: LooseText = None
    deflect_event: LooseText = None


class Payload(ProviderModel):
    freshdesk_webhook: Fields


def delivery_id(headers: Mapping[str, str], payload: Mapping[str, Any], body: bytes) -> str:
    fields = payload.get("freshdesk_webhook")
    if isinstance(fields, Mapping) and isinstance(fields.get("ticket_id"), (str, int)):
        updated = fields.get("ticket_updated_at")
        if isinstance(updated, (str, int)) and str(updated):
            return f"{fields['ticket_id']}@{updated}"
        return f"{fields['ticket_id']}@{sha256_hex(body)[:32]}"
    return common.body_fingerprint(body)


def _event(fields: Fields) -> tuple[str, str | None]:
    """(event, reason to ignore or None)."""
    explicit = (fields.deflect_event or "").strip()
    if explicit:
        if explicit in {"ticket.created", "customer.replied"}:
            return explicit, None
        return explicit, "event type not handled"
    triggered = (fields.triggered_event or "").strip()
    if not triggered or "ticket_action:created" in triggered:
        return "ticket.created", None
    if "note_type" in triggered:
        return triggered, "agent note"
    return triggered, "event type not handled"


def _without_author_prefix(comment: str | None, name: str | None) -> str | None:
    # Freshdesk renders the latest comment as "<author name> : <html>"; the name is not part of the message.
    if comment and name:
        return re.sub(rf"^\s*{re.escape(name)}\s*:\s*", "", comment, count=1)
    return comment


def parse(tenant_id: str, payload: Mapping[str, Any]) -> ParseResult:
    fields = Payload.model_validate(payload).freshdesk_webhook
    event, ignore_reason = _event(fields)
    if ignore_reason:
        return Ignored(provider="freshdesk", event=event[:100], reason=ignore_reason)
    created = event == "ticket.created"
    body = (
        fields.ticket_description
        if created
        else _without_author_prefix(fields.ticket_latest_public_comment, fields.requester_name)
    )
    custom = {k: v for k, v in (fields.model_extra or {}).items() if k.startswith(("ticket_cf_", "cf_"))}
    return InboundMessage(
        tenant_id=tenant_id,
        provider="freshdesk",
        event=event,
        is_new_ticket=created,
        external_ticket_id=fields.ticket_id,
        external_message_id="description" if created else None,
        requester=Requester(
            email=fields.requester_email or None,
            external_id=fields.requester_id or None,
            name=fields.requester_name or None,
        ),
        subject=common.subject_text(fields.ticket_subject),
        body_text=common.body_text(body),
        channel=(fields.ticket_source or "email").lower()[:40],
        locale=fields.requester_language or None,
        created_at=fields.ticket_created_at,
        updated_at=fields.ticket_updated_at,
        custom_fields=common.custom_fields(custom)
        | common.custom_fields(
            {
                "status": fields.ticket_status,
                "priority": fields.ticket_priority,
                "type": fields.ticket_type,
                "url": fields.ticket_url,
            }
        ),
        tags=common.split_tags(fields.ticket_tags),
    )
