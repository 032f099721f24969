"""Edge models and HTTP helpers of the intake function (request bodies validated by the resolver, raw bodies)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from pydantic import BaseModel, ConfigDict, Field

from deflect.services.tenant_admin import AccountUpdate, CustomerUpdate, TenantConfigUpdate
from deflect.webhooks import Requester

__all__ = [
    "AccountUpdate",
    "ConversationReply",
    "ConversationStart",
    "CustomerUpdate",
    "TenantConfigUpdate",
    "api_key_from",
    "json_response",
    "raw_body",
    "requester_from_headers",
]

FieldValue = str | int | float | bool | None


class RequesterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(default=None, max_length=320)
    external_id: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=200)


class ConversationReply(BaseModel):
    """A customer message in an existing conversation."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=20_000)
    requester: RequesterIn = Field(default_factory=RequesterIn)

    def as_arguments(self) -> dict[str, Any]:
        return {"text": self.message, "requester": Requester(**self.requester.model_dump())}


class ConversationStart(ConversationReply):
    """The first message of a conversation from a chat widget, app or API client."""

    subject: str = Field(default="", max_length=500)
    locale: str | None = Field(default=None, max_length=20)
    custom_fields: dict[str, FieldValue] = Field(default_factory=dict, max_length=50)

    def as_arguments(self) -> dict[str, Any]:
        return {
            **super().as_arguments(),
            "subject": self.subject,
            "locale": self.locale,
            "custom_fields": self.custom_fields,
        }


def requester_from_headers(email: str | None, external_id: str | None) -> Requester:
    """Who reads a conversation (GET has no body): the requester its messages named, from the X-Requester-Email /
    X-Requester-External-Id headers. Headers, not query parameters: an email in a URL ends up in access logs."""
    return Requester(**RequesterIn(email=email, external_id=external_id).model_dump())


def raw_body(event: Any) -> bytes:
    """The exact bytes the sender signed (API Gateway passes text as-is, binary base64-encoded)."""
    body = event.body or ""
    if event.is_base64_encoded:
        return base64.b64decode(body)
    return body.encode("utf-8")


def api_key_from(headers: Mapping[str, str] | None) -> str | None:
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    if lowered.get("x-api-key"):
        return lowered["x-api-key"]
    scheme, _, value = (lowered.get("authorization") or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def json_response(status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=dict(body),
        headers=dict(headers or {}),
    )
