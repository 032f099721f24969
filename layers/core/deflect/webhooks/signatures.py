"""Webhook signature verification over the RAW request body, one scheme per provider.

Rules shared by every scheme:
- the body is the exact bytes received; re-serialised JSON never verifies;
- every candidate secret is tried (current and previous during rotation) and every comparison is constant-time,
  with no early exit: the work done does not depend on which secret matched, or whether any did;
- the candidate list is padded with dummy secrets to a fixed size, so an unknown tenant (no secrets at all) costs
  the same HMAC work as a known one with a bad signature;
- timestamps outside the tolerance are rejected after the HMAC work, with the same error.

`sign()` produces the headers a genuine sender would, for tests, the load generator and the local demo.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from deflect.domain.errors import SignatureInvalid
from deflect.webhooks.inbound import loose_datetime

ZENDESK_SIGNATURE = "x-zendesk-webhook-signature"
ZENDESK_TIMESTAMP = "x-zendesk-webhook-signature-timestamp"
HUB_SIGNATURE = "x-hub-signature"
DEFLECT_SIGNATURE = "x-deflect-signature"
DEFLECT_DELIVERY = "x-deflect-delivery"
DEFAULT_FRESHDESK_HEADER = "x-deflect-freshdesk-secret"

# Two slots: current + previous. Fewer configured secrets are padded with random-looking dummies.
SECRET_SLOTS = 2
_DUMMY_SECRETS = ("deflect-dummy-secret-0-4f1c9a7e2b", "deflect-dummy-secret-1-8d3e6b0a5c")
# Unix seconds or milliseconds in ASCII digits: thirteen hold any millisecond time a sender will sign.
_UNIX_STAMP = re.compile(r"[0-9]{1,13}")


@dataclass(frozen=True)
class VerifyOptions:
    tolerance_s: int = 300
    now: float | None = None  # unix seconds; None = the current time
    freshdesk_header: str = DEFAULT_FRESHDESK_HEADER


def lower_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (headers or {}).items() if v is not None}


def _as_bytes(value: str) -> bytes:
    return value.encode("utf-8", "replace")


def _candidates(secrets: Sequence[str]) -> list[tuple[str, bool]]:
    real = [(s, True) for s in secrets if s][:SECRET_SLOTS]
    return real + [(d, False) for d in _DUMMY_SECRETS[: SECRET_SLOTS - len(real)]]


def _any_match(secrets: Sequence[str], expected_for: Callable[[str], bytes], presented: bytes) -> bool:
    matched = False
    for secret, genuine in _candidates(secrets):
        # `&` and `|` (not `and`/`or`) so every comparison runs whatever the earlier results were.
        matched |= hmac.compare_digest(expected_for(secret), presented) & genuine
    return matched


def _hmac(secret: str, message: bytes, digest: str) -> bytes:
    return hmac.new(_as_bytes(secret), message, digest).digest()


def _fresh(timestamp: datetime | None, options: VerifyOptions) -> bool:
    if timestamp is None:
        return False
    now = options.now if options.now is not None else time.time()
    return abs(now - timestamp.timestamp()) <= options.tolerance_s


# --------------------------------------------------------------------------- per provider


def verify_zendesk(
    headers: Mapping[str, str], body: bytes, secrets: Sequence[str], options: VerifyOptions
) -> None:
    """base64(HMAC-SHA256(secret, timestamp + body)); the timestamp header is ISO 8601."""
    presented = _as_bytes(headers.get(ZENDESK_SIGNATURE, ""))
    stamp = headers.get(ZENDESK_TIMESTAMP, "")
    signed = _as_bytes(stamp) + body
    ok = _any_match(secrets, lambda s: base64.b64encode(_hmac(s, signed, "sha256")), presented)
    if not (ok and _fresh(loose_datetime(stamp), options)):
        raise SignatureInvalid("zendesk signature or timestamp rejected")


def _hub(digest: str, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], provider: str) -> None:
    presented = _as_bytes(headers.get(HUB_SIGNATURE, ""))
    prefix = f"{digest}=".encode()
    ok = _any_match(
        secrets, lambda s: prefix + _as_bytes(hmac.new(_as_bytes(s), body, digest).hexdigest()), presented
    )
    if not ok:
        raise SignatureInvalid(f"{provider} signature rejected")


def verify_intercom(
    headers: Mapping[str, str], body: bytes, secrets: Sequence[str], options: VerifyOptions
) -> None:
    """X-Hub-Signature: sha1=<hex HMAC-SHA1(client secret, body)>. No timestamp: dedupe carries replay protection."""
    _hub("sha1", headers, body, secrets, "intercom")


def verify_jira(
    headers: Mapping[str, str], body: bytes, secrets: Sequence[str], options: VerifyOptions
) -> None:
    """X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, body)> (Jira admin webhooks with a secret)."""
    _hub("sha256", headers, body, secrets, "jira")


def verify_freshdesk(
    headers: Mapping[str, str], body: bytes, secrets: Sequence[str], options: VerifyOptions
) -> None:
    """Freshdesk automation webhooks are unsigned: the tenant's shared secret travels in a configured header.

    Both sides are HMAC'd with a fixed key first so the comparison is between equal-length digests and leaks
    nothing about the secret's length.
    """
    presented = _hmac(
        "freshdesk-header", _as_bytes(headers.get(options.freshdesk_header.lower(), "")), "sha256"
    )
    ok = _any_match(secrets, lambda s: _hmac("freshdesk-header", _as_bytes(s), "sha256"), presented)
    if not ok:
        raise SignatureInvalid("freshdesk shared secret rejected")


def parse_deflect_signature(value: str) -> tuple[str, list[str]]:
    """`t=<unix>,v1=<hex>[,v1=<hex>]` → (t, [v1...]). Unknown parts are ignored."""
    stamp, signatures = "", []
    for part in value.split(","):
        name, _, content = part.strip().partition("=")
        if name == "t":
            stamp = content
        elif name == "v1":
            signatures.append(content)
    return stamp, signatures


def verify_generic(
    headers: Mapping[str, str], body: bytes, secrets: Sequence[str], options: VerifyOptions
) -> None:
    """X-Deflect-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, t + "." + body)>."""
    stamp, presented_list = parse_deflect_signature(headers.get(DEFLECT_SIGNATURE, ""))
    signed = _as_bytes(stamp) + b"." + body
    ok = False
    # A sender mid-rotation may send one v1 per secret; at most two are considered so the work stays bounded.
    for presented in (presented_list or [""])[:SECRET_SLOTS]:
        ok |= _any_match(
            secrets,
            lambda s: _as_bytes(hmac.new(_as_bytes(s), signed, "sha256").hexdigest()),
            _as_bytes(presented),
        )
    # The timestamp is read only once the signature verified: until then it is attacker text, and int() of a
    # non-ASCII digit ('²') or of thousands of digits raises instead of refusing. Same error either way.
    if not (ok and _UNIX_STAMP.fullmatch(stamp) and _fresh(loose_datetime(int(stamp)), options)):
        raise SignatureInvalid("deflect signature or timestamp rejected")


def signed_timestamp(provider: str, headers: Mapping[str, str]) -> str | None:
    """The timestamp a request's signature covers, as the text that was signed (Zendesk's timestamp header, the `t`
    of X-Deflect-Signature), or None for schemes that sign none (Intercom, Jira, Freshdesk). Only a verified
    request's is worth anything: no one without the secret can change it on a captured delivery."""
    found = lower_headers(headers)
    if provider == "zendesk":
        return found.get(ZENDESK_TIMESTAMP) or None
    if provider == "generic":
        return parse_deflect_signature(found.get(DEFLECT_SIGNATURE, ""))[0] or None
    return None


Verifier = Callable[[Mapping[str, str], bytes, Sequence[str], VerifyOptions], None]

VERIFIERS: dict[str, Verifier] = {
    "zendesk": verify_zendesk,
    "intercom": verify_intercom,
    "jira": verify_jira,
    "freshdesk": verify_freshdesk,
    "generic": verify_generic,
}


def verify(
    provider: str,
    headers: Mapping[str, str] | None,
    body: bytes,
    secrets: Sequence[str],
    options: VerifyOptions | None = None,
) -> None:
    """Raise SignatureInvalid unless `body` was signed by one of `secrets` (and, where timed, recently)."""
    verifier = VERIFIERS.get(provider)
    if verifier is None:
        raise SignatureInvalid("unknown provider")
    verifier(lower_headers(headers), body, secrets, options or VerifyOptions())


# --------------------------------------------------------------------------- signing (tests, load, demo)


def sign(
    provider: str,
    secret: str,
    body: bytes,
    *,
    timestamp: float | None = None,
    delivery_id: str | None = None,
    freshdesk_header: str = DEFAULT_FRESHDESK_HEADER,
) -> dict[str, str]:
    """Headers a genuine sender attaches, computed from each provider's documented algorithm."""
    stamp = time.time() if timestamp is None else timestamp
    if provider == "zendesk":
        iso_text = _utc_iso(int(stamp))
        signature = base64.b64encode(_hmac(secret, iso_text.encode() + body, "sha256")).decode()
        headers = {
            "X-Zendesk-Webhook-Signature": signature,
            "X-Zendesk-Webhook-Signature-Timestamp": iso_text,
        }
        if delivery_id:
            headers["X-Zendesk-Webhook-Invocation-Id"] = delivery_id
        return headers
    if provider == "intercom":
        return {"X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()}
    if provider == "jira":
        headers = {"X-Hub-Signature": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}
        if delivery_id:
            headers["X-Atlassian-Webhook-Identifier"] = delivery_id
        return headers
    if provider == "freshdesk":
        return {freshdesk_header: secret}
    if provider == "generic":
        t = str(int(stamp))
        v1 = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
        headers = {"X-Deflect-Signature": f"t={t},v1={v1}"}
        if delivery_id:
            headers["X-Deflect-Delivery"] = delivery_id
        return headers
    raise ValueError(f"unknown provider {provider}")


def _utc_iso(unix: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))
