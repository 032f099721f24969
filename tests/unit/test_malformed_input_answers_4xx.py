"""Malformed input from an unauthenticated caller is refused with a clear 4xx, never an unhandled error (a 502 from
API Gateway): a webhook timestamp that is not plain digits is a bad signature (401), and a JSON body Python cannot
read (nested too deep, not UTF-8, multipart with no boundary) is a 400 once the caller is authenticated, a 401
before. The route never runs for such a request, so nothing is stored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Annotated, Any

import pytest
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel

from deflect.domain import errors
from deflect.http import build_resolver
from deflect.webhooks.signatures import sign, verify

SECRET = "whsec-acme"
PAYLOAD = b'{"event": "ticket.created"}'


def _signed_with_stamp(stamp: str) -> dict[str, str]:
    """Headers a secret holder would send with this exact `t` (sign() only writes integers)."""
    v1 = hmac.new(SECRET.encode(), stamp.encode() + b"." + PAYLOAD, hashlib.sha256).hexdigest()
    return {"X-Deflect-Signature": f"t={stamp},v1={v1}"}


ODD_STAMPS = ["\u00b2", "9" * 5000, "\u0661\u0662\u0663", "1" * 14, " 1700000000", "+1700000000", ""]
STAMP_IDS = [
    "superscript-two",
    "5000-digits",
    "arabic-indic",
    "14-digits",
    "leading-space",
    "plus-sign",
    "empty",
]


@pytest.mark.parametrize("stamp", ODD_STAMPS, ids=STAMP_IDS)
@pytest.mark.parametrize("secrets", [[SECRET], []], ids=["known-tenant", "unknown-tenant"])
def test_an_odd_generic_timestamp_with_a_bad_signature_is_the_usual_refusal(stamp, secrets):
    headers = {"X-Deflect-Signature": f"t={stamp},v1=00"}
    with pytest.raises(errors.SignatureInvalid) as refused:
        verify("generic", headers, PAYLOAD, secrets)
    assert str(refused.value) == "deflect signature or timestamp rejected"


@pytest.mark.parametrize("stamp", ODD_STAMPS, ids=STAMP_IDS)
def test_an_odd_generic_timestamp_is_refused_even_when_correctly_signed(stamp):
    with pytest.raises(errors.SignatureInvalid):
        verify("generic", _signed_with_stamp(stamp), PAYLOAD, [SECRET])


def test_a_generic_delivery_signed_with_milliseconds_verifies():
    # Senders signing with Date.now() send 13 digits; loose_datetime reads them as milliseconds.
    now_ms = str(int(time.time() * 1000))
    verify("generic", _signed_with_stamp(now_ms), PAYLOAD, [SECRET])


def test_a_genuine_generic_delivery_still_verifies_and_a_stale_one_does_not():
    verify("generic", sign("generic", SECRET, PAYLOAD), PAYLOAD, [SECRET])
    verify("generic", _signed_with_stamp(str(int(time.time()))), PAYLOAD, [SECRET])
    with pytest.raises(errors.SignatureInvalid):
        verify("generic", sign("generic", SECRET, PAYLOAD, timestamp=time.time() - 3600), PAYLOAD, [SECRET])


# --------------------------------------------------------------------------- JSON routes


class Message(BaseModel):
    message: str


API_KEY = "key-acme"


def _app(stored: list[str]) -> Any:
    def needs_key(resolver: Any) -> None:
        if resolver.current_event.headers.get("x-api-key") != API_KEY:
            raise errors.Unauthorized("no valid API key")

    app = build_resolver(caller_check=needs_key)

    @app.post("/v1/conversations")
    def start(body: Annotated[Message, Body()]) -> dict[str, Any]:
        stored.append(body.message)
        return {"ok": True}

    @app.post("/v1/faulty")
    def faulty(body: Annotated[Message, Body()]) -> dict[str, Any]:
        raise ValueError("a bug in the route, not the caller's input")

    return app


def _post(
    app: Any,
    body: bytes,
    *,
    key: str | None = API_KEY,
    content_type: str = "application/json",
    path: str = "",
) -> tuple[int, dict[str, Any]]:
    text = body.decode("utf-8", "strict") if body.isascii() else None
    headers = {"content-type": content_type, **({"x-api-key": key} if key else {})}
    event = {
        "httpMethod": "POST",
        "path": path or "/v1/conversations",
        "resource": path or "/v1/conversations",
        "headers": headers,
        # API Gateway passes a body that is not UTF-8 base64-encoded.
        "body": text if text is not None else base64.b64encode(body).decode(),
        "isBase64Encoded": text is None,
        "requestContext": {"requestId": "r", "stage": "test"},
    }
    answer = app.resolve(event, None)
    return answer["statusCode"], json.loads(answer["body"])


DEEP = b'{"message": ' + b"[" * 3000 + b"]" * 3000 + b"}"  # 6 KB: under every size limit
NOT_UTF8 = b'{"message": "caf\xe9"}'  # Latin-1

UNREADABLE = [
    (DEEP, "application/json"),
    (NOT_UTF8, "application/json"),
    (b'{"message": "\xff"}', "application/json; charset=latin-1"),
    (b"garbage", "multipart/form-data"),
]
IDS = ["nested-6KB", "latin-1", "latin-1-declared", "multipart-no-boundary"]
MALFORMED = {"error": "malformed_body", "message": "the body could not be read; send it as UTF-8 JSON"}


@pytest.mark.parametrize("body,content_type", UNREADABLE, ids=IDS)
def test_an_unreadable_body_from_a_key_holder_is_a_400_and_nothing_is_stored(body, content_type):
    stored: list[str] = []
    assert _post(_app(stored), body, content_type=content_type) == (400, MALFORMED)
    assert stored == []


@pytest.mark.parametrize("body,content_type", UNREADABLE, ids=IDS)
@pytest.mark.parametrize("key", [None, "wrong-key"], ids=["no-key", "wrong-key"])
def test_an_unreadable_body_without_a_valid_key_is_a_401_first(body, content_type, key):
    stored: list[str] = []
    status, answer = _post(_app(stored), body, key=key, content_type=content_type)
    assert (status, answer) == (401, {"error": "unauthorized", "message": "unauthorized"})
    assert stored == []


def test_a_readable_body_still_reaches_the_route():
    stored: list[str] = []
    assert _post(_app(stored), '{"message": "café"}'.encode()) == (200, {"ok": True})
    assert stored == ["café"]


def test_a_value_error_raised_by_the_route_itself_is_not_blamed_on_the_body():
    with pytest.raises(ValueError, match="a bug in the route"):
        _post(_app([]), b'{"message": "hi"}', path="/v1/faulty")


@pytest.mark.parametrize("stamp", ["²", "١٢٣٤٥٦٧٨٩٠", "12³4"])
def test_a_signed_body_with_an_odd_timestamp_is_still_accepted_without_it(stamp):
    # Timestamps are context, never identity: a helpdesk that sends a non-ASCII digit must not lose the message.
    from deflect.webhooks import parse_payload

    body = {
        "event": "ticket.created",
        "ticket": {"id": "HD-odd-1", "subject": "Export", "created_at": stamp, "updated_at": stamp},
        "requester": {"email": "ana@example.com"},
        "message": {"id": "m-1", "body": "Export fails", "created_at": stamp},
    }
    parsed = parse_payload("generic", "acme", body)
    assert parsed.body_text == "Export fails"
