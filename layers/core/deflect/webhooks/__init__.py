"""Helpdesk webhooks: signature schemes, delivery ids and payload parsers per provider → one InboundMessage.

    spec = provider("zendesk")
    verify("zendesk", headers, raw_body, secrets, options)    # raises SignatureInvalid
    payload = decode_json(raw_body)                           # raises MalformedPayload
    spec.delivery_id(headers, payload, raw_body)
    parse_payload("zendesk", tenant_id, payload)              # InboundMessage | Ignored, or MalformedPayload

Every parser failure surfaces as MalformedPayload with field locations only (never values: they may be PII).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from deflect.domain.errors import MalformedPayload, NotFound
from deflect.webhooks.inbound import Ignored, InboundMessage, ParseResult, Requester
from deflect.webhooks.signatures import VerifyOptions, lower_headers, sign, verify

__all__ = [
    "PROVIDERS",
    "Ignored",
    "InboundMessage",
    "ParseResult",
    "ProviderSpec",
    "Requester",
    "VerifyOptions",
    "decode_json",
    "lower_headers",
    "parse_payload",
    "provider",
    "sign",
    "verify",
]

MAX_JSON_DEPTH = 64


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    delivery_id: Callable[[Mapping[str, str], Mapping[str, Any], bytes], str]
    parse: Callable[[str, Mapping[str, Any]], ParseResult]


PROVIDERS: tuple[str, ...] = ("zendesk", "intercom", "freshdesk", "jira", "generic")
_loaded: dict[str, ProviderSpec] = {}


def provider(name: str) -> ProviderSpec:
    """The provider's spec. Parsers are imported on first use: each builds many pydantic models, and a cold
    start should pay only for the provider that actually called."""
    if name not in PROVIDERS:
        raise NotFound("unknown webhook provider")
    if name not in _loaded:
        module = importlib.import_module(f"deflect.webhooks.{name}")
        _loaded[name] = ProviderSpec(name, module.delivery_id, module.parse)
    return _loaded[name]


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_JSON_DEPTH:
            return level
        children = (
            current.values() if isinstance(current, dict) else current if isinstance(current, list) else ()
        )
        stack.extend((child, level + 1) for child in children)
    return deepest


def decode_json(body: bytes) -> dict[str, Any]:
    """The JSON object in `body`, or MalformedPayload (not JSON, not UTF-8, not an object, absurdly nested)."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise MalformedPayload("body is not valid UTF-8 JSON") from error
    if not isinstance(payload, dict):
        raise MalformedPayload("body must be a JSON object")
    if _depth(payload) > MAX_JSON_DEPTH:
        raise MalformedPayload("body is nested too deeply")
    return payload


def parse_payload(name: str, tenant_id: str, payload: Mapping[str, Any]) -> ParseResult:
    try:
        return provider(name).parse(tenant_id, payload)
    except ValidationError as error:
        where = sorted({".".join(str(p) for p in e.get("loc", ())) or "(root)" for e in error.errors()})[:10]
        raise MalformedPayload(
            f"{name} payload does not match the expected shape at: {', '.join(where)}"
        ) from error
