"""Redaction of personal data and secrets from text that will reach a model or a log.

`redact(text)` returns the text with each finding replaced by a typed placeholder such as `[EMAIL]` or `[CARD]`.
Originals survive only in the locked, encrypted evidence objects.

Design: precise detectors first (checksummed or prefixed formats), broad ones last, each pass working on the
output of the previous one so a placeholder is never re-matched. Number-shaped findings are validated (Luhn for
cards, mod-97 for IBANs, area/group rules for SSNs, trunk/country-code/North American shapes for phones) so that
order numbers, versions, dates and amounts in ordinary support text stay readable for triage.
"""

from __future__ import annotations

import itertools
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
# `password: hunter2`, `api_key=...`, `"client_secret": "..."`: keep the name, drop the value. The name prefix is
# bounded: unbounded, every word boundary in a long `1-2-3-…` run rescanned the rest of it (quadratic time).
_ASSIGNED_SECRET = re.compile(
    r"(?i)\b((?:[a-z0-9_-]{0,100}[_-])?(?:password|passwd|pwd|passphrase|secret|api[_-]?key|apikey|access[_-]?key|"
    r"auth[_-]?token|access[_-]?token|refresh[_-]?token|client[_-]?secret|private[_-]?key|token))"
    r"([\"']?\s*[:=]\s*[\"']?)([^\s\"',;&]{4,})"
)
_URL_SECRET_PARAM = re.compile(
    r"(?i)([?&](?:token|access_token|api_key|apikey|key|secret|signature|sig|password|code)=)([^&#\s]{6,})"
)
# The local part is at most 64 characters (RFC 5321): unbounded, a long run such as "1/1/1/…" was rescanned from every
# position (30 s per 100 KB message).
_EMAIL = re.compile(
    r"(?<![\w.+-])[\w.!#$%&'*+/=?^`{|}~-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"(?<![\d.,])\d(?:[ -]?\d){12,18}(?![\d])")
_SSN = re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])")
_UK_NINO = re.compile(
    r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"
)
# Phones: the regex only finds a *run* of digit groups (optionally `+`-prefixed, with `(…)` groups, joined by one
# space, `-`, `.` or `/`, and an optional `x123` / `ext. 123` extension); `_phone_run` decides which part of the run
# is a phone. Digit groups and the run are possessive and everything else is bounded, so a failed attempt never
# re-splits digits, and `_phone_run` looks at most `_MAX_PHONE_GROUPS` groups ahead: linear time on any input.
_SPACES = " \u00a0\u2009\u202f"
_NUMBER_GROUP = r"(?:\([0-9]{1,6}+\)|[0-9]{1,15}+)"
_NUMBER_JOINER = rf"(?:[{_SPACES}]?[-./][{_SPACES}]?|[{_SPACES}]|(?<=\))|(?=\())"
_PHONE = re.compile(
    # Not the tail of a word, path, decimal, amount, time, code (ERR-40401) or another number. `)` and `]` too: a run
    # never starts where an earlier match (or its placeholder) ends, so redacting twice changes nothing.
    r"(?<![\w+/.,#$€£%@\\\-)\]])(?<![0-9)]:)"
    rf"(?P<run>\+?{_NUMBER_GROUP}(?:{_NUMBER_JOINER}{_NUMBER_GROUP})*+)"
    rf"(?P<ext>[{_SPACES}]?,?[{_SPACES}]?(?i:ext(?:ension)?\.?|x)[{_SPACES}]?[0-9]{{1,6}}+)?"
)
_RUN_GROUP = re.compile(r"\(([0-9]+)\)|([0-9]+)")
# "call me on", "Tel.:", "my mobile number is": a phone cue right before a run admits formats that are ambiguous
# on their own (bare `4155550132`, `555-0199`, `2345 6789`).
_PHONE_CUE = re.compile(
    r"(?i)(?:\b(?:phone|telephone|tel|mobile|mob|cell|cellphone|fax|whatsapp|sms|handy|telefon|mobil|tél|téléphone|"
    r"portable|teléfono|telefono|móvil|cellulare)\b\.?(?:\s*(?:number|no\.?|nr\.?|nummer|numéro|número|numero|#))?"
    r"|\b(?:call|ring|reach|text|contact|dial)\s+(?:me|us|him|her|them)(?:\s+back)?)"
    r"\s*(?:(?:is|was|on|at|under|unter|via|:|-|=)\s*){0,2}$"
)
_MAX_PHONE_GROUPS = 8  # `00 33 6 12 34 56 78` is 7; a window this size keeps the search per run linear
_DATE_PARTS = re.compile(r"^(?:\d{4} \d{1,2} \d{1,2}|\d{1,2} \d{1,2} \d{2}(?:\d{2})?)$")

_HEX_SECRET = re.compile(r"\b[0-9a-fA-F]{32,}\b")
_B64_SECRET = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{32,}={0,2}(?![A-Za-z0-9+/_=-])")


def _glued(text: str, pos: int) -> bool:
    """Whether the number ending at `pos` runs on into a word, path, decimal or code (`…0199.txt`, `…123abc`)."""
    if pos >= len(text):
        return False
    char, following = text[pos], text[pos + 1 : pos + 2]
    if char.isalnum() or char in "_/@%\\":
        return True
    return char in ".,:-+" and (following.isdigit() or following.islower() or following == "_")


def _odd_word(parts: list[str], marks: set[str]) -> bool:
    """Dates, IPv4 addresses and MAC-like pairs: punctuated numbers that are never part of a phone."""
    if len(marks) != 1 or not marks <= {".", "-", "/"}:
        return False
    if len(parts) == 3:
        return bool(_DATE_PARTS.match(" ".join(parts)))
    if len(parts) == 4 and marks == {"."}:
        return all(len(p) <= 3 and int(p) <= 255 for p in parts)
    return len(parts) == 6 and marks == {"-"} and all(len(p) == 2 for p in parts)


class _Run:
    """The digit groups of one regex run, with per-group facts computed once so the search over it stays linear."""

    def __init__(self, text: str, spans: list[tuple[int, int]]) -> None:
        self.digits = [text[s:e].strip("()") for s, e in spans]
        self.paren = [text[s] == "(" for s, _ in spans]
        joiners = [text[spans[k - 1][1] : spans[k][0]] for k in range(1, len(spans))]
        # The separator before group k+1: "-", ".", "/", or "" for a plain space or a parenthesis boundary.
        self.marks = [joiner.strip(_SPACES) for joiner in joiners]
        # Words are what plain spaces separate: `0151 23456789` is two words, `415-555-0132` one.
        self.word_start = [True] + [bool(j) and not m for j, m in zip(joiners, self.marks, strict=True)]
        self.count = [0]  # digits before group k
        for digits in self.digits:
            self.count.append(self.count[-1] + len(digits))
        self.odd = [False] * len(spans)  # group belongs to a date, IPv4 or MAC-like word
        starts = [k for k, start in enumerate(self.word_start) if start] + [len(spans)]
        for a, b in itertools.pairwise(starts):
            if b - a in (3, 4, 6) and _odd_word(self.digits[a:b], set(self.marks[a : b - 1])):
                self.odd[a:b] = [True] * (b - a)


def _nanp(run: _Run, i: int, j: int) -> bool:
    """`(415) 555-0132`, `415.555.0132`, `1-800-555-0199`, `1 (800) 555 0199`: area and exchange start 2-9."""
    if j - i == 4 and run.digits[i] == "1" and not run.paren[i]:
        i += 1
    if j - i != 3:
        return False
    area, exchange, line = run.digits[i:j]
    return (
        len(area) == 3
        and area[0] in "23456789"
        and len(exchange) == 3
        and exchange[0] in "23456789"
        and len(line) == 4
        and not run.paren[i + 1]
        and not run.paren[i + 2]
        and run.marks[i + 1] != "/"
    )


def _national_with_trunk(run: _Run, i: int, j: int, digits: str) -> bool:
    """`07700 900123`, `0151/23456789`, `(0151) 2345 6789`, `06 12 34 56 78`, `07700900123`, `0044 20 7946 0958`."""
    n = len(digits)
    if digits.startswith("00"):  # international call prefix instead of `+` (a bare `00…` is a padded id)
        return j - i >= 2 and digits[2] != "0" and 10 <= n <= 17
    if digits[1] == "0":
        return False
    if j - i == 1:
        return 10 <= n <= 12
    lead = len(run.digits[i])
    if run.digits[i] == "0" and run.paren[i]:  # (0)151 …
        lead += len(run.digits[i + 1])
    groups_ok = all(2 <= len(d) <= 9 for d in run.digits[i + 1 : j] if d != "0")  # `(0)` aside
    return 2 <= lead <= 6 and 9 <= n <= 13 and groups_ok


def _is_phone(run: _Run, i: int, j: int, *, plus: bool, cue: bool) -> bool:
    """Whether groups i..j-1 of the run are one phone number (international, NANP, national with trunk 0, or cued)."""
    digits = "".join(run.digits[i:j])
    n = len(digits)
    # Cheap first: a shape this could be at all (most runs are short numbers, versions, dates, amounts).
    if not 7 <= n <= 17 or not (plus or cue or digits[0] == "0" or (j - i in (3, 4) and 10 <= n <= 11)):
        return False
    marks = set(run.marks[i : j - 1]) - {""}
    if len(marks) > 1 or any(run.odd[i:j]):  # `2025-03-14.1`, `4.12-3`, dates, IPs: never phones
        return False
    spaced = j - i == 3 and run.word_start[i + 1] and run.word_start[i + 2]
    if spaced and _DATE_PARTS.match(" ".join(run.digits[i:j])):  # "14 03 2025"
        return False
    trunk = not plus and digits[0] == "0"
    for k in range(i, j - 1):
        # A 6+ digit group is the subscriber number and ends the phone (`0151 23456789 2024` is a phone and a year).
        if len(run.digits[k]) >= 6 and not (k == i and trunk and len(run.digits[k]) == 6):
            return False
    if plus:
        national = n - sum(1 for k in range(i, j) if run.paren[k] and run.digits[k] == "0")  # +44 (0) 20 …
        return digits[0] != "0" and 8 <= national <= 15
    if _nanp(run, i, j) or (trunk and _national_with_trunk(run, i, j, digits)):
        return True
    return cue and marks <= {"-"} and n <= 15


def _phone_run(match: re.Match[str]) -> str | None:
    """Replace the phones inside one run of digit groups; None when the run holds none."""
    text = match.string
    run_start, run_end = match.span("run")
    if run_end - run_start < 7:  # most runs are short numbers; a phone has 7+ digits
        return None
    spans = [m.span() for m in _RUN_GROUP.finditer(text, run_start, run_end)]
    run = _Run(text, spans)
    ext_start, ext_end = match.span("ext")
    if ext_start >= 0 and _glued(text, ext_end):  # `1920x1080p`: not an extension
        ext_start = -1
        clean_end = text[run_end] in _SPACES + ","
    else:
        clean_end = ext_start >= 0 or not _glued(text, run_end)
    starts = [k for k, start in enumerate(run.word_start) if start]
    usable = len(spans)
    if not clean_end:  # the last word runs on into something else: it is not part of a phone
        usable = starts.pop()
    plus = text[run_start] == "+"
    cue = run.count[-1] >= 7 and bool(_PHONE_CUE.search(text, max(0, run_start - 48), run_start))

    pieces: list[str] = []
    copied = run_start
    previous = -1  # start of the previous word when it was not part of a phone
    w = 0
    while w < len(starts):
        i = starts[w]
        this_end = starts[w + 1] if w + 1 < len(starts) else usable
        may_start = (
            i == 0
            or previous < 0  # right after a phone
            # after a date, version or short count (`2025-03-14 07700 900123`, `2 0151 …`), or when this word is
            # itself punctuated (`12345 415-555-0132`); never inside a block-grouped number like `3704 0044 0532`
            or i - previous > 1
            or run.paren[previous]
            or len(run.digits[previous]) <= 3
            or this_end - i > 1
            or run.paren[i]
        )
        found = 0
        if may_start:
            for j in range(min(usable, i + _MAX_PHONE_GROUPS), i, -1):
                if j < usable and not run.word_start[j]:
                    continue
                if run.count[j] - run.count[i] < 7:
                    break
                if _is_phone(run, i, j, plus=plus and i == 0, cue=cue and i == 0):
                    found = j
                    break
        if found:
            start = run_start if i == 0 else spans[i][0]
            end = ext_end if found == len(spans) and ext_start >= 0 else spans[found - 1][1]
            pieces += [text[copied:start], "[PHONE]"]
            copied = end
            previous = -1
            while w < len(starts) and starts[w] < found:
                w += 1
        else:
            previous = i
            w += 1
    if not pieces:
        return None
    return "".join(pieces) + text[copied : match.end()]


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
    (_PHONE, _phone_run, "PHONE"),
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
            # One finding per match, except a run of numbers that holds several phones.
            result.counts[_label] += max(1, replacement.count(f"[{_label}]"))
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
