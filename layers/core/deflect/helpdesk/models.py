"""Credentials, receipts and the helpdesk's view of a ticket, as exchanged with connectors."""

from __future__ import annotations

import ipaddress
import json
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from deflect.helpdesk.errors import HelpdeskNotConfigured

ConnectorName = Literal["zendesk", "intercom", "freshdesk", "jira", "crm", "generic"]

# Fields each provider needs; checked when a secret is parsed so a bad secret fails before any request.
_REQUIRED: dict[str, tuple[str, ...]] = {
    "zendesk": ("bot_user_id",),
    "intercom": ("api_token", "bot_user_id"),
    "freshdesk": ("api_token", "bot_user_id"),
    "jira": ("email", "api_token", "bot_user_id"),
    "crm": ("signing_secret",),
    "generic": ("signing_secret",),
}
# Conservative defaults (requests per minute per tenant) when the tenant's secret does not say.
DEFAULT_RATE_PER_MINUTE: dict[str, int] = {
    "zendesk": 100,
    "intercom": 500,
    "freshdesk": 100,
    "jira": 300,
    "crm": 120,
    "generic": 120,
}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HelpdeskCredentials(BaseModel):
    """One tenant's connection to one provider, stored as JSON in the SecretStore under that provider's name.

    `bot_user_id` is who Deflect is on the helpdesk (Zendesk user id, Intercom admin id, Freshdesk agent id,
    Jira accountId): conflict detection tells our own edits from a human's by it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: ConnectorName
    base_url: str
    email: str | None = None
    api_token: SecretStr | None = None
    oauth_token: SecretStr | None = None
    bot_user_id: str | None = None
    signing_secret: SecretStr | None = None
    requests_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    timeout_s: float | None = Field(default=None, gt=0, le=60)
    # Deflect status word → provider status (Zendesk status, Freshdesk number, Jira status name, Intercom state).
    status_map: dict[str, str] = Field(default_factory=dict)
    snooze_hours: int = Field(default=24, ge=1, le=24 * 90)
    intercom_version: str = "2.11"

    @field_validator("base_url")
    @classmethod
    def _https_only(cls, value: str) -> str:
        # Credentials are sent with every request: only https, except to this machine (the local helpdesks).
        parts = urlsplit(value)
        if parts.scheme == "https" and parts.hostname:
            return value.rstrip("/")
        if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
            return value.rstrip("/")
        raise ValueError("base_url must be https (http is allowed only for loopback)")

    @model_validator(mode="after")
    def _complete(self) -> HelpdeskCredentials:
        missing = [name for name in _REQUIRED[self.provider] if not getattr(self, name)]
        if self.provider == "zendesk" and not self.oauth_token and not (self.email and self.api_token):
            missing.append("email+api_token or oauth_token")
        if missing:
            raise ValueError(f"{self.provider} credentials lack {', '.join(missing)}")
        return self

    @property
    def rate_per_minute(self) -> int:
        return self.requests_per_minute or DEFAULT_RATE_PER_MINUTE[self.provider]

    @classmethod
    def parse(cls, provider: str, secret: str) -> HelpdeskCredentials:
        """Parse a stored secret; never echo it (or pydantic's copy of it) into an error message."""
        try:
            raw = json.loads(secret)
            if not isinstance(raw, dict):
                raise ValueError("not an object")
            raw.setdefault("provider", provider)
            creds = cls.model_validate(raw)
        except (ValueError, ValidationError) as error:
            fields = (
                sorted({str(e["loc"][0]) if e["loc"] else "credentials" for e in error.errors()})
                if isinstance(error, ValidationError)
                else []
            )
            raise HelpdeskNotConfigured(f"{provider} credentials are invalid", fields=fields) from None
        if creds.provider != provider:
            raise HelpdeskNotConfigured(f"secret for {provider} names provider {creds.provider}")
        return creds


class HelpdeskReceipt(BaseModel):
    """Proof that an outbox item's effect exists on the helpdesk. Stored before the delivery is acknowledged."""

    model_config = ConfigDict(extra="forbid")

    outbox_id: str
    provider: ConnectorName
    external_ticket_id: str
    effects: list[str] = Field(default_factory=list)
    external_updated_at: datetime | None = None
    # True when an earlier attempt's effect was found on the helpdesk, so nothing was sent again.
    replayed: bool = False
    idempotency_key: str | None = None
    requests: int = 0
    delivered_at: datetime


class Activity(BaseModel):
    """One authored change on a helpdesk ticket (comment, note, status, assignment, audit)."""

    at: datetime
    author: str | None = None
    kind: str
    effect_id: str | None = None
    marker: str | None = None  # our outbox id, where the provider stores one with the change
    text: str | None = None  # normalised body, only to recognise our own comment; never stored


def activity_summary(activities: list[Activity]) -> list[dict[str, Any]]:
    """What a conflict records about other people's changes: who, what kind, when — never their text."""
    return [
        {"at": a.at.isoformat(), "author": a.author, "kind": a.kind, "id": a.effect_id}
        for a in activities[:10]
    ]
