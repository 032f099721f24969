"""The redactor on generated support tickets: structured PII is caught, ordinary words survive.

Tickets are built from realistic filler (versions, dates, amounts, order numbers, URLs, request ids, error codes)
with PII values of many formats spliced in; we measure recall per type and the share of ordinary words altered.
"""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from deflect.pii import iban_valid, luhn_valid, redact, redact_value, redact_with_counts

# --------------------------------------------------------------------------- generators (faker-like, seeded)

FIRST = ["jane", "omar", "li", "sofia", "mateo", "aisha", "kenji", "olga", "pierre", "zoe", "raj", "nina"]
LAST = ["doe", "haddad", "wang", "rossi", "garcia", "okafor", "tanaka", "ivanova", "martin", "smith"]
DOMAINS = [
    "example.com",
    "mail.example.org",
    "acme-corp.io",
    "example.co.uk",
    "startup.dev",
    "uni.example.edu",
]


def gen_email(r: random.Random) -> str:
    sep = r.choice([".", "_", "", "-"])
    tag = r.choice(["", "", "+billing", "+support"])
    return f"{r.choice(FIRST)}{sep}{r.choice(LAST)}{r.randint(1, 99) if r.random() < 0.4 else ''}{tag}@{r.choice(DOMAINS)}"


def _luhn_complete(prefix: str, length: int, r: random.Random) -> str:
    body = prefix + "".join(r.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable")


def gen_card(r: random.Random) -> str:
    kind = r.choice(["visa", "mc", "amex", "disc"])
    if kind == "amex":
        number = _luhn_complete(r.choice(["34", "37"]), 15, r)
        groups = [number[:4], number[4:10], number[10:]]
    else:
        prefix = {"visa": "4", "mc": r.choice(["51", "55", "2221"]), "disc": "6011"}[kind]
        number = _luhn_complete(prefix, 16, r)
        groups = [number[i : i + 4] for i in range(0, 16, 4)]
    return r.choice([" ", "-", ""]).join(groups)


def gen_phone(r: random.Random) -> str:
    a, b, c = r.randint(201, 989), r.randint(200, 999), r.randint(0, 9999)
    return r.choice(
        [
            f"+1 {a} {b} {c:04d}",
            f"({a}) {b}-{c:04d}",
            f"{a}-{b}-{c:04d}",
            f"{a}.{b}.{c:04d}",
            f"+44 20 {r.randint(7000, 8999)} {r.randint(1000, 9999)}",
            f"020 {r.randint(7000, 8999)} {r.randint(1000, 9999)}",
            f"+49 30 {r.randint(100000, 999999)}",
            f"+33 6 {r.randint(10, 99)} {r.randint(10, 99)} {r.randint(10, 99)} {r.randint(10, 99)}",
            f"+91{r.randint(7000000000, 9999999999)}",
        ]
    )


def gen_iban(r: random.Random) -> str:
    country, length = r.choice([("DE", 22), ("GB", 22), ("FR", 27), ("NL", 18), ("ES", 24), ("IT", 27)])
    for _ in range(1000):
        bban = "".join(r.choice(string.digits) for _ in range(length - 4))
        if country == "GB":
            bban = "".join(r.choice(string.ascii_uppercase) for _ in range(4)) + bban[4:]
        if country == "NL":
            bban = "ABNA" + bban[4:]
        for check in range(2, 99):
            candidate = f"{country}{check:02d}{bban}"
            if iban_valid(candidate):
                if r.random() < 0.5:
                    return " ".join(candidate[i : i + 4] for i in range(0, len(candidate), 4))
                return candidate
    raise AssertionError("no IBAN generated")


def gen_ssn(r: random.Random) -> str:
    return f"{r.randint(1, 665):03d}-{r.randint(1, 99):02d}-{r.randint(1, 9999):04d}"


def _rand(r: random.Random, alphabet: str, n: int) -> str:
    return "".join(r.choice(alphabet) for _ in range(n))


def gen_secret(r: random.Random) -> str:
    alnum = string.ascii_letters + string.digits
    return r.choice(
        [
            lambda: "AKIA" + _rand(r, string.ascii_uppercase + string.digits, 16),
            lambda: "sk_live_" + _rand(r, alnum, 24),
            lambda: "ghp_" + _rand(r, alnum, 36),
            lambda: "xoxb-" + _rand(r, string.digits, 12) + "-" + _rand(r, alnum, 24),
            lambda: "Bearer " + _rand(r, alnum + "-_.", 40),
            lambda: _rand(r, "0123456789abcdef", r.choice([32, 40, 64])),
            lambda: _rand(r, alnum + "/+", 40),
            lambda: (
                "eyJ" + _rand(r, alnum, 20) + ".eyJ" + _rand(r, alnum, 30) + "." + _rand(r, alnum + "_-", 43)
            ),
            lambda: "AIza" + _rand(r, alnum + "_-", 35),
        ]
    )()


GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "EMAIL": gen_email,
    "CARD": gen_card,
    "PHONE": gen_phone,
    "IBAN": gen_iban,
    "NATIONAL_ID": gen_ssn,
    "SECRET": gen_secret,
}

FILLER = [
    "Hi team, since upgrading to version {ver} the export button does nothing.",
    "I was charged ${amt} twice on {date} for order #{order}.",
    "The dashboard shows error {err} (HTTP {http}) when I open the billing page.",
    "Our request id was {uuid} and it happened at {time} UTC.",
    "I followed https://help.example.com/articles/{art}-how-to-reset-your-password but it still fails.",
    "We have {n} users on the Business plan and about {pct}% cannot log in.",
    "Attached is crash_log_{year}.txt from the Android app build {build}.",
    "Please cancel invoice INV-{year}-{order} and refund the difference.",
    "The password reset link expired after {n} minutes, which seems too short.",
    "Our admin token expired yesterday and the SSO login loops back to the start page.",
    "Running macOS {mac} with Chrome {chrome}; Safari works fine.",
    "Server 10.0.{o1}.{o2} responds slowly between {time} and midnight.",
    "Could someone call me back? I prefer email though.",
    "Thanks so much, the workaround from ticket {order} helped our warehouse team.",
    "Sync stopped on {date2} after we renamed the workspace to Acme-Operations.",
    "Our API integration returns 429 Too Many Requests after {n} calls per minute.",
    "Import of {big} rows finished at {date}T{time}:00Z with {n} warnings.",
    "Tracking number 1Z999AA1{order} shows the parcel stuck in Rotterdam.",
    "See docs at https://docs.example.com/Guides/Sync/Troubleshooting-Offline-Mode#Step-{n} for details.",
    "Commit {sha} broke the webhook; reverting to build {build} fixed it.",
    "Licence key field says INVALID, our seat count is {n} and plan renews {date}.",
    "Ext. {n} at the front desk forwards to voicemail between 9 and 5.",
    "The CSV column customer_id contains values like CUS-{order} and ACC-{build}.",
    "Total was EUR {amt} incl. VAT {pct}% for {n} seats, see invoice {year}/{order}.",
    "Our password manager reports the saved login is fine, so please check the SAML settings.",
]


def filler_sentence(r: random.Random) -> str:
    return r.choice(FILLER).format(
        ver=f"{r.randint(1, 12)}.{r.randint(0, 30)}.{r.randint(0, 9)}",
        amt=f"{r.randint(5, 2000)}.{r.randint(0, 99):02d}",
        date=f"{r.randint(2019, 2026)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
        date2=f"{r.randint(1, 28)}/{r.randint(1, 12)}/{r.randint(2019, 2026)}",
        order=r.randint(10000, 99999999),
        err=f"E{r.randint(100, 9999)}",
        http=r.choice([400, 403, 404, 500, 502, 503]),
        uuid=f"{_rand(r, '0123456789abcdef', 8)}-{_rand(r, '0123456789abcdef', 4)}-4{_rand(r, '0123456789abcdef', 3)}-"
        f"a{_rand(r, '0123456789abcdef', 3)}-{_rand(r, '0123456789abcdef', 12)}",
        time=f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}",
        art=r.randint(100000000, 999999999999),
        n=r.randint(2, 500),
        pct=r.randint(1, 99),
        year=r.randint(2019, 2026),
        build=r.randint(1000, 99999),
        mac=f"{r.randint(11, 15)}.{r.randint(0, 7)}",
        chrome=f"{r.randint(100, 130)}.0.{r.randint(1000, 9999)}.{r.randint(10, 200)}",
        o1=r.randint(0, 255),
        o2=r.randint(1, 254),
        big=f"{r.randint(1, 999)},{r.randint(0, 999):03d},{r.randint(0, 999):03d}",
        sha=_rand(r, "0123456789abcdef", 7),
    )


PII_LEADS = {
    "EMAIL": ["My email is {v}.", "Reply to {v} please.", "Account owner: {v}"],
    "CARD": ["The card used was {v}.", "Card number {v}, exp 09/27."],
    "PHONE": ["Call me on {v}.", "My number is {v} if that helps.", "Phone: {v}"],
    "IBAN": ["Refund to IBAN {v} please.", "Our bank account is {v}."],
    "NATIONAL_ID": ["For verification my SSN is {v}.", "SSN {v}"],
    "SECRET": ["Here is our key {v} for debugging.", "Header was {v}", "I pasted {v} into the config."],
}


def generate_ticket(r: random.Random) -> tuple[str, list[str], list[tuple[str, str]]]:
    """Return (text, filler words, [(type, value)])."""
    parts: list[str] = []
    filler_words: list[str] = []
    pii: list[tuple[str, str]] = []
    for _ in range(r.randint(4, 9)):
        sentence = filler_sentence(r)
        parts.append(sentence)
        filler_words += sentence.split()
    for _ in range(r.randint(1, 4)):
        kind = r.choice(list(GENERATORS))
        value = GENERATORS[kind](r)
        pii.append((kind, value))
        parts.insert(r.randint(0, len(parts)), r.choice(PII_LEADS[kind]).format(v=value))
    return " ".join(parts), filler_words, pii


def _leaked(value: str, output: str) -> bool:
    if value in output:
        return True
    core = value.removeprefix("Bearer ")
    digits = re.sub(r"\D", "", value)
    # A leak is any 6+ digit run of a number-shaped value surviving, or the secret body itself.
    if (
        len(digits) >= 9
        and "@" not in value
        and any(run in re.sub(r"\D", " ", output).split() for run in [digits])
    ):
        return True
    return core in output


def measure(n_tickets: int = 600, seed: int = 7) -> dict[str, float]:
    r = random.Random(seed)
    caught: Counter[str] = Counter()
    total: Counter[str] = Counter()
    words = 0
    altered = 0
    for _ in range(n_tickets):
        text, filler_words, pii = generate_ticket(r)
        output = redact(text)
        for kind, value in pii:
            total[kind] += 1
            caught[kind] += not _leaked(value, output)
        expected = Counter(filler_words)
        words += sum(expected.values())
        # Multiset difference: filler words that no longer occur verbatim in the output were altered.
        altered += sum((expected - Counter(output.split())).values())
    result = {f"recall_{k.lower()}": caught[k] / total[k] for k in total}
    result["recall"] = sum(caught.values()) / sum(total.values())
    result["pii_items"] = sum(total.values())
    result["words"] = words
    result["altered_word_rate"] = altered / words
    return result


def test_structured_pii_recall_and_ordinary_words_untouched():
    m = measure()
    summary = ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(m.items()))
    assert m["recall"] >= 0.99, f"recall too low: {summary}"
    assert all(m[k] >= 0.97 for k in m if k.startswith("recall_")), f"a PII type lags: {summary}"
    assert m["altered_word_rate"] <= 0.01, f"too many ordinary words altered: {summary}"
    print(f"\nPII redaction measured on generated tickets: {summary}")


# --------------------------------------------------------------------------- behaviour a reader notices


def test_typed_placeholders_replace_each_kind():
    text = (
        "Mail jane.doe@example.com, call +1 (415) 555-0132, card 4111 1111 1111 1111, "
        "IBAN DE89 3704 0044 0532 0130 00, SSN 123-45-6789, NINO AB 12 34 56 C, key AKIAIOSFODNN7EXAMPLE, "
        "Authorization: Bearer abcdefghijklmnop1234567890"
    )
    out = redact(text)
    for placeholder in ["[EMAIL]", "[PHONE]", "[CARD]", "[IBAN]", "[NATIONAL_ID]", "[SECRET]", "[TOKEN]"]:
        assert placeholder in out, out
    assert "example.com" not in out and "4111" not in out and "AKIA" not in out


def test_numbers_that_fail_their_checksum_stay_readable():
    out = redact(
        "Order 4111 1111 1111 1112 and IBAN-like DE00 3704 0044 0532 0130 00 and SSN-like 000-12-3456"
    )
    assert "4111 1111 1111 1112" in out
    assert "DE00 3704 0044 0532 0130 00" in out
    assert "000-12-3456" in out


def test_assignment_keeps_the_name_and_drops_the_value():
    out = redact('config: password=hunter2x "client_secret": "abcd1234" api_key: zz99yy88')
    assert "password=[SECRET]" in out and "hunter2x" not in out
    assert "abcd1234" not in out and "zz99yy88" not in out


def test_private_key_blocks_are_removed_whole():
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc\n-----END RSA PRIVATE KEY-----"
    assert redact(f"see {key} thanks") == "see [PRIVATE_KEY] thanks"


def test_counts_report_types_not_values():
    result = redact_with_counts("a@example.com b@example.com 4111111111111111")
    assert result.counts == {"EMAIL": 2, "CARD": 1}


def test_nested_values_are_redacted():
    assert redact_value({"note": ["mail a@example.com"], "n": 3}) == {"note": ["mail [EMAIL]"], "n": 3}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_redact_never_fails_and_is_stable(text):
    once = redact(text)
    assert redact(once) == once


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=0, max_value=10**6), st.sampled_from([" ", "-", ""]))
def test_every_luhn_valid_card_is_caught_in_any_format(seed, sep):
    number = gen_card(random.Random(seed)).replace(" ", "").replace("-", "")
    formatted = sep.join(number[i : i + 4] for i in range(0, len(number), 4))
    assert "[CARD]" in redact(f"paid with {formatted} yesterday")
