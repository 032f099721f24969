"""The canonical shape every provider payload is parsed into, and the lenient field types the parsers share."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError

from deflect.domain.models import AttachmentRef, Provider
from deflect.domain.tenancy import TenantId

_DATETIME = TypeAdapter(datetime)
_COMPACT_OFFSET = re.compile(r"([+-]\d{2})(\d{2})$")


def loose_datetime(value: Any) -> datetime | None:
    """Parse ISO 8601 (also Jira's `+0100` offsets) or unix seconds/millis; anything else is unknown, not an error.

    Timestamps are context, never identity, so a provider sending an odd format must not fail the delivery.
    """
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = value / 1000 if value > 10**11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or len(value) > 64:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():  # "²" is a digit to isdigit(), and int() refuses it
        return loose_datetime(int(text))
    try:
        parsed = _DATETIME.validate_python(_COMPACT_OFFSET.sub(r"\1:\2", text))
    except ValidationError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _id_text(value: Any) -> Any:
    # Providers send ids as numbers or strings depending on the channel; we keep them as text.
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return str(int(value)) if float(value).is_integer() else str(value)
    if isinstance(value, str):
        return value.strip()
    return value


LooseId = Annotated[str, BeforeValidator(_id_text)]
LooseTime = Annotated[datetime | None, BeforeValidator(loose_datetime)]


def _text_or_none(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


LooseText = Annotated[str | None, BeforeValidator(_text_or_none)]


class ProviderModel(BaseModel):
    """Base of provider payload models: unknown fields are ignored (providers add fields without notice)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Requester(BaseModel):
    email: str | None = None
    external_id: str | None = None
    name: str | None = None
    # Whether the channel vouches that the email is the requester's (an Intercom user, a verified Zendesk user).
    # An address typed by a website visitor or into a web form may be anyone's: it never names a CRM-verified
    # customer, unless the tenant trusts that helpdesk's requester emails (TenantConfig.email_vouching_providers;
    # never an Intercom lead). Not part of what a client sent (excluded from dumps, so fingerprints stay as they were).
    email_verified: bool = Field(default=False, exclude=True)
    # The channel said outright that the email is NOT verified (Zendesk `"verified": false`): a tenant's trust in
    # that helpdesk's emails is for bodies that do not say, never against one that says no.
    email_unverified: bool = Field(default=False, exclude=True)

    def identities(self, provider: str) -> list[tuple[str, str]]:
        """Lookup keys for the customer index, most specific first (compared as `Customers.identity_value` says)."""
        found: list[tuple[str, str]] = []
        if self.external_id:
            found.append((f"ext:{provider}", self.external_id))
        if self.email and self.email.strip():
            found.append(("email", self.email.strip()))
        return found


class InboundMessage(BaseModel):
    """One customer message, whatever channel it came through. Text here is NOT yet redacted."""

    model_config = ConfigDict(frozen=True)

    tenant_id: TenantId
    provider: Provider
    event: str
    is_new_ticket: bool
    external_ticket_id: str = Field(min_length=1, max_length=200)
    external_message_id: str | None = None
    requester: Requester = Field(default_factory=Requester)
    subject: str = ""
    body_text: str = ""
    attachments: list[AttachmentRef] = Field(default_factory=list)
    channel: str = "web"
    locale: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    # The payload cannot tell whether its author is a customer or an agent (a Jira comment by an Atlassian account
    # on an admin webhook): act on it only when the author is the ticket's requester. Intake knows the ticket.
    requester_only: bool = False


class Ignored(BaseModel):
    """A genuine delivery we do not act on (agent replies, status changes...). Answered 202 with the reason."""

    model_config = ConfigDict(frozen=True)

    status: Literal["ignored"] = "ignored"
    provider: Provider
    event: str
    reason: str


ParseResult = InboundMessage | Ignored
