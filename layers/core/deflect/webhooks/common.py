"""Helpers every provider parser shares: bounded text, safe attachment references, custom fields, fallbacks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from deflect.domain.canonical import sha256_hex
from deflect.domain.models import AttachmentRef
from deflect.webhooks.html_text import html_to_text

MAX_SUBJECT = 500
MAX_BODY = 100_000
# The message item (400 KB limit in DynamoDB) holds the body next to its attachment refs: 100k characters of CJK
# or emoji are 300-400 KB of UTF-8, so the stored text is bounded in bytes too. The full body is kept in the
# locked raw-request evidence.
MAX_BODY_BYTES = 128 * 1024
MAX_FIELDS = 50
MAX_ATTACHMENTS = 50
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def body_text(value: str | None) -> str:
    return bounded_text(html_to_text(value)[:MAX_BODY])


def bounded_text(text: str, max_bytes: int = MAX_BODY_BYTES) -> str:
    """`text` cut at a character boundary so that it takes at most `max_bytes` as a JSON string in UTF-8.

    JSON size, not UTF-8 size: quotes, backslashes and control characters are stored escaped. A lone surrogate
    (a JSON `\\ud800` escape) is not UTF-8 at all and becomes U+FFFD.
    """
    text = _LONE_SURROGATE.sub("\ufffd", text)
    if _json_size(text) <= max_bytes:
        return text
    short, long = 0, len(text)  # the longest prefix that fits lies in [short, long)
    while long - short > 1:
        middle = (short + long) // 2
        if _json_size(text[:middle]) <= max_bytes:
            short = middle
        else:
            long = middle
    return text[:short]


def _json_size(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode())


def subject_text(value: str | None) -> str:
    return html_to_text(value).replace("\n", " ")[:MAX_SUBJECT]


def body_fingerprint(body: bytes) -> str:
    """Delivery id of last resort: the same bytes retried are the same delivery."""
    return "sha256:" + sha256_hex(body)


def attachment(
    name: Any, url: Any = None, content_type: Any = None, size: Any = None
) -> AttachmentRef | None:
    if not isinstance(name, str) or not name.strip():
        return None
    safe_url = (
        url if isinstance(url, str) and url.startswith(("https://", "http://")) and len(url) <= 2048 else None
    )
    safe_size = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
    safe_type = content_type if isinstance(content_type, str) and len(content_type) <= 200 else None
    return AttachmentRef(name=name.strip()[:255], url=safe_url, content_type=safe_type, size=safe_size)


def attachments(found: Iterable[AttachmentRef | None]) -> list[AttachmentRef]:
    return [a for a in found if a is not None][:MAX_ATTACHMENTS]


def _field_value(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value[:2000] if isinstance(value, str) else value
    if isinstance(value, Mapping):
        # Select-list style fields carry their label in `value` or `name`.
        for key in ("value", "name", "displayName"):
            if isinstance(value.get(key), (str, int, float)):
                return _field_value(value[key])
        return None
    if isinstance(value, list):
        flat = [_field_value(v) for v in value[:20]]
        return [v for v in flat if v is not None and not isinstance(v, list)]
    return None


def custom_fields(found: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> dict[str, Any]:
    items = found.items() if isinstance(found, Mapping) else (found or [])
    result: dict[str, Any] = {}
    for key, value in items:
        cleaned = _field_value(value)
        if cleaned not in (None, "", []):
            result[str(key)[:100]] = cleaned
        if len(result) >= MAX_FIELDS:
            break
    return result


def split_tags(value: Any) -> list[str]:
    if isinstance(value, str):
        parts = value.replace(",", " ").split()
    elif isinstance(value, list):
        parts = [str(v) for v in value if isinstance(v, (str, int))]
    else:
        parts = []
    return [p.strip()[:100] for p in parts if p.strip()][:50]


def text_or_empty(value: Any) -> str:
    return value if isinstance(value, str) else ""
