"""Redaction of personal data and secrets from text that will reach a model or a log.

`redact(text)` returns the text with each finding replaced by a typed placeholder such as `[EMAIL]` or `[CARD]`.
Originals survive only in the locked, encrypted evidence objects.

Design: precise detectors first (checksummed or prefixed formats), broad ones last, each pass working on the
output of the previous one so a placeholder is never re-matched. Number-shaped findings are validated (Luhn for
cards, mod-97 for IBANs, area/group rules for SSNs, digit counts for phones) so that order numbers, versions,
dates and amounts in ordinary support text stay readable for triage.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

PLACEHOLDERS = ("EMAIL", "PHONE", "CARD", "IBAN", "NATIONAL_ID", "SECRET", "TOKEN", "PRIVATE_KEY")


@dataclass
class Redaction:
    text: str
    counts: Counter[str] = field(default_factory=Counter)


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


# IBAN lengths per country (ISO 13616 registry); an unknown country falls back to the generic 15..34 bound.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AT": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21, "CY": 28, "CZ": 24,
    "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31,
    "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "TR": 26,
}  # fmt: skip


def iban_valid(candidate: str) -> bool:
    iban = candidate.replace(" ", "").upper()
    expected = _IBAN_LENGTHS.get(iban[:2])
    if (expected and len(iban) != expected) or not 15 <= len(iban) <= 34:
        return False
    rearranged = iban[4:] + iban[:4]
    numeric = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(numeric) % 97 == 1


def ssn_valid(candidate: str) -> bool:
    area, group, serial = candidate[0:3], candidate[4:6], candidate[7:11]
    return area not in {"000", "666"} and not area.startswith("9") and group != "00" and serial != "0000"


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _shannon_bits(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


# --------------------------------------------------------------------------- patterns (most specific first)

_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)", re.S
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")
_BEARER = re.compile(r"(?i)\b(bearer|basic|token)(\s+)([A-Za-z0-9._~+/=-]{16,})")
_PREFIXED_SECRET = re.compile(
    r"\b(?:"
    r"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}"  # AWS access key ids
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,}"  # Stripe-style keys
    r"|whsec_[A-Za-z0-9+/=]{16,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"  # GitHub tokens
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API keys
    r"|sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"  # OpenAI / Anthropic style
    r"|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"  # SendGrid
    r")"
)
# `password: hunter2`, `api_key=...`, `"client_secret": "..."`: keep the name, drop the value.
_ASSIGNED_SECRET = re.compile(
    r"(?i)\b((?:[a-z0-9_-]*[_-])?(?:password|passwd|pwd|passphrase|secret|api[_-]?key|apikey|access[_-]?key|"
    r"auth[_-]?token|access[_-]?token|refresh[_-]?token|client[_-]?secret|private[_-]?key|token))"
    r"([\"']?\s*[:=]\s*[\"']?)([^\s\"',;&]{4,})"
)
_URL_SECRET_PARAM = re.compile(
    r"(?i)([?&](?:token|access_token|api_key|apikey|key|secret|signature|sig|password|code)=)([^&#\s]{6,})"
)
_EMAIL = re.compile(
    r"(?<![\w.+-])[\w.!#$%&'*+/=?^`{|}~-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"(?<![\d.,])\d(?:[ -]?\d){12,18}(?![\d])")
_SSN = re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])")
_UK_NINO = re.compile(
    r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"
)
_PHONE = re.compile(
    r"(?<![\w+/.-])(?:"
    r"\+\d{1,3}(?:[ .-]?\(?\d{1,5}\)?){1,6}"  # international: +CC then 1..6 groups
    r"|(?:\(\d{2,5}\)[ .-]?|\d{2,5}[ .-])\d{2,5}(?:[ .-]\d{2,5}){0,3}"  # national: (AC) or lead group
    r")(?![\w/-]|\.\d)"
)
_SSN_SHAPE = re.compile(r"^\d{3}-\d{2}-\d{4}$")
_IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_DATE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")
_HEX_SECRET = re.compile(r"\b[0-9a-fA-F]{32,}\b")
_B64_SECRET = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{32,}={0,2}(?![A-Za-z0-9+/_=-])")


def _phone(match: re.Match[str]) -> str | None:
    text = match.group(0)
    digits = _digits(text)
    if not 9 <= len(digits) <= 15:
        return None
    if _IPV4.match(text) or _DATE.match(text) or _SSN_SHAPE.match(text):
        return None
    if not text.startswith("+") and "(" not in text:
        groups = re.split(r"[ .-]", text)
        # Real national numbers have a short lead group; "2024 10 12" or "10.4.1234" are not phones.
        if len(groups) < 2 or len(groups[0]) > 4 or (text.count(".") and len(digits) < 10):
            return None
    return "[PHONE]"


def _b64_secret(match: re.Match[str]) -> str | None:
    token = match.group(0)
    has_mix = (
        any(c.isdigit() for c in token)
        and any(c.islower() for c in token)
        and any(c.isupper() for c in token)
    )
    # Slugs and paths have low entropy and word-like segments; keys are dense and mixed.
    if not has_mix or token.count("-") > 3 or _shannon_bits(token) < 4.0 or _looks_like_path(token):
        return None
    return "[SECRET]"


_WORDY = re.compile(r"^(?:[a-z0-9._-]*|[A-Z]?[a-z]+(?:[-_.][A-Za-z0-9]+)*)$")


def _looks_like_path(token: str) -> bool:
    segments = [s for s in token.split("/") if s]
    if len(segments) < 2:
        return False
    return sum(bool(_WORDY.match(s)) for s in segments) / len(segments) >= 0.7


Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str | None], str]


def _const(label: str) -> Callable[[re.Match[str]], str]:
    return lambda _match: f"[{label}]"


_RULES: list[Rule] = [
    (_PRIVATE_KEY, _const("PRIVATE_KEY"), "PRIVATE_KEY"),
    (_JWT, _const("TOKEN"), "TOKEN"),
    (_BEARER, lambda m: f"{m.group(1)}{m.group(2)}[TOKEN]", "TOKEN"),
    (_PREFIXED_SECRET, _const("SECRET"), "SECRET"),
    (_URL_SECRET_PARAM, lambda m: f"{m.group(1)}[SECRET]", "SECRET"),
    (_ASSIGNED_SECRET, lambda m: f"{m.group(1)}{m.group(2)}[SECRET]", "SECRET"),
    (_EMAIL, _const("EMAIL"), "EMAIL"),
    (_IBAN, lambda m: "[IBAN]" if iban_valid(m.group(0)) else None, "IBAN"),
    (_CARD, lambda m: "[CARD]" if luhn_valid(_digits(m.group(0))) else None, "CARD"),
    (_SSN, lambda m: "[NATIONAL_ID]" if ssn_valid(m.group(0)) else None, "NATIONAL_ID"),
    (_UK_NINO, _const("NATIONAL_ID"), "NATIONAL_ID"),
    (_PHONE, _phone, "PHONE"),
    (_HEX_SECRET, _const("SECRET"), "SECRET"),
    (_B64_SECRET, _b64_secret, "SECRET"),
]


def redact_with_counts(text: str) -> Redaction:
    """Redact and count findings per placeholder type (counts go to metrics, never the values)."""
    result = Redaction(text=text or "")
    for pattern, replace, label in _RULES:

        def substitute(match: re.Match[str], _replace=replace, _label=label) -> str:
            replacement = _replace(match)
            if replacement is None:
                return match.group(0)
            result.counts[_label] += 1
            return replacement

        result.text = pattern.sub(substitute, result.text)
    return result


def redact(text: str) -> str:
    """The text with emails, phones, cards, IBANs, national ids, keys and tokens replaced by placeholders."""
    return redact_with_counts(text).text


def redact_value(value: object) -> object:
    """Redact every string inside a JSON-like value (custom fields, headers)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    return value
