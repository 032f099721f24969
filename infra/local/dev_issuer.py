"""Local stand-in for the template's Cognito `AgentAuthorizer`: a dev issuer of HS256 JWTs.

The signing secret is created once per data dir (so printed tokens keep working across restarts) and never
leaves it. Claims mirror what a Cognito ID token puts in `requestContext.authorizer.claims`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

ISSUER = "deflect-local-dev-issuer"
AUDIENCE = "deflect-local"
TOKEN_LIFETIME_S = 7 * 24 * 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class InvalidToken(Exception):
    pass


# A JWT segment is unpadded base64url: anything else (padding, `+`, `/`, spaces, non-ASCII) is not a token we issued.
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")


def _json_object(segment: str) -> dict[str, Any]:
    """The JSON object a token segment encodes, else InvalidToken: a header or claims set that is a list, a number,
    null, not base64url, not UTF-8 or not JSON is a malformed token, never an error of the gateway."""
    try:
        value = json.loads(_unb64(segment))
    # binascii.Error, UnicodeDecodeError and JSONDecodeError are ValueErrors; `[[[[…` nests too deep for json.
    except (ValueError, RecursionError) as error:
        raise InvalidToken("malformed") from error
    if not isinstance(value, dict):
        raise InvalidToken("malformed")
    return value


class DevIssuer:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    @classmethod
    def in_dir(cls, data_dir: Path) -> DevIssuer:
        path = data_dir / "dev-issuer.key"
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
        return cls(bytes.fromhex(path.read_text().strip()))

    def issue(
        self, *, sub: str, email: str, tenant_id: str, groups: list[str], lifetime_s: int = TOKEN_LIFETIME_S
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "token_use": "id",
            "sub": sub,
            "email": email,
            "custom:tenant_id": tenant_id,
            "cognito:groups": groups,
            "iat": now,
            "exp": now + lifetime_s,
        }
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{header}.{body}.{self._sign(f'{header}.{body}')}"

    def verify(self, token: str) -> dict[str, Any]:
        """Claims of a valid token, else InvalidToken (the gateway answers 401 without calling the function)."""
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidToken("malformed")
        if not all(_SEGMENT.fullmatch(part) for part in parts):
            raise InvalidToken("malformed")
        header, body, signature = parts
        algorithm = _json_object(header).get("alg")
        claims = _json_object(body)
        # The algorithm is fixed: a token cannot choose `none` or another key type.
        if algorithm != "HS256" or not hmac.compare_digest(signature, self._sign(f"{header}.{body}")):
            raise InvalidToken("bad signature")
        if claims.get("iss") != ISSUER or claims.get("aud") != AUDIENCE:
            raise InvalidToken("wrong issuer")
        if not isinstance(claims.get("exp"), int) or claims["exp"] < time.time():
            raise InvalidToken("expired")
        return claims

    def _sign(self, signing_input: str) -> str:
        return _b64(hmac.new(self._secret, signing_input.encode(), hashlib.sha256).digest())


def gateway_claims(claims: dict[str, Any]) -> dict[str, str]:
    """Claims as API Gateway hands them to a REST proxy function: every value a string, groups comma-joined."""
    out: dict[str, str] = {}
    for name, value in claims.items():
        out[name] = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
    return out


def bearer(authorization: str | None) -> str | None:
    """Cognito authorizers accept the raw token or `Bearer <token>` in the Authorization header."""
    if not authorization:
        return None
    value = authorization.strip()
    return value[7:].strip() if value.lower().startswith("bearer ") else value
