"""Deterministic detectors over a (redacted) customer message: requested action, sensitivity, wants-a-human,
sentiment, language, problem report, outage and impact language, and instruction-like text (prompt injection).

These run for every message whatever the model backend: policy relies on them, so a model can only ADD flags,
never remove one. They lean towards flagging: a false flag costs an agent a minute, a missed one can cost a
customer their money or data. Informational questions ("how do I download an invoice?") are not flagged;
requests and incidents are ("you charged me twice", "please downgrade us").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from deflect.domain.models import RequestedAction, bounded_amount


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# --------------------------------------------------------------------------- requested actions

# Each action: the patterns that express it. Order matters: the first kind found is the structured action
# (a message asking to delete the account and refund is a deletion first; both flags are raised).
_ACTIONS: list[tuple[str, list[re.Pattern[str]]]] = [
    (
        "delete_account",
        [
            _rx(
                r"\b(?:delete|close|remove|terminate|erase|deactivate|wipe)\b[^.?!\n]{0,40}\b(?:account|profile|workspace|organi[sz]ation|org)\b"
            ),
            _rx(
                r"\b(?:account|profile|workspace)\b[^.?!\n]{0,20}\b(?:deleted|closed|removed|erased|deactivated|terminated)\b"
            ),
            _rx(
                r"\b(?:delete|erase|remove|wipe|purge)\b[^.?!\n]{0,30}\b(?:all|every(?:thing)?)?\b[^.?!\n]{0,15}\b(?:my|our)\b[^.?!\n]{0,20}\b(?:data|information|records|details)\b"
            ),
            _rx(r"\bright to (?:be forgotten|erasure)\b"),
        ],
    ),
    (
        "refund",
        [
            _rx(r"\brefund(?:s|ed|ing)?\b"),
            _rx(r"\b(?:money|cash)\s+back\b"),
            _rx(r"\bcharge\s?-?backs?\b"),
            _rx(r"\breimburse(?:ment|d)?\b"),
            _rx(r"\b(?:reverse|revert|void|undo)\b[^.?!\n]{0,20}\b(?:charge|payment|transaction|invoice)\b"),
            _rx(
                r"\b(?:give|pay|send|return)\b[^.?!\n]{0,12}\b(?:me|us)\b[^.?!\n]{0,12}\b(?:back|my money|our money)\b"
            ),
            _rx(r"\bcredit\b[^.?!\n]{0,20}\b(?:back|to my card|to our card|my account|our account)\b"),
            _rx(r"\b(?:dispute|disputing)\b[^.?!\n]{0,20}\b(?:charge|payment|transaction|invoice)\b"),
        ],
    ),
    (
        "cancel_subscription",
        [
            _rx(
                r"\b(?:cancel+(?:ing|ed|ation)?|terminat(?:e|ing|ion)|end(?:ing)?|stop(?:ping)?|discontinu(?:e|ing))\b[^.?!\n]{0,40}\b(?:subscription|plan|membership|contract|account|renewal|service|billing|trial)\b"
            ),
            _rx(
                r"\b(?:subscription|plan|membership|contract|renewal)\b[^.?!\n]{0,25}\bcancel+(?:ed|led|ation)?\b"
            ),
            _rx(r"\b(?:unsubscribe|cancel+ation)\b"),
            _rx(r"\b(?:turn off|disable|stop)\b[^.?!\n]{0,15}\bauto-?\s?renew(?:al)?\b"),
            _rx(r"\bdo(?:n't| not) (?:want to )?renew\b"),
        ],
    ),
    (
        "reset_mfa",
        [
            _rx(
                r"\b(?:reset|remove|disable|turn off|bypass|recover|switch off)\b[^.?!\n]{0,30}\b(?:2fa|mfa|two[- ]factor|multi[- ]factor|two[- ]step|authenticator|otp)\b"
            ),
            _rx(
                r"\b(?:2fa|mfa|two[- ]factor|multi[- ]factor|two[- ]step|authenticator)\b[^.?!\n]{0,40}\b(?:reset|removed|disabled|lost|new phone|broken|locked)\b"
            ),
            _rx(
                r"\b(?:lost|broke|replaced|changed|new)\b[^.?!\n]{0,15}\b(?:phone|device)\b[^.?!\n]{0,60}\b(?:code|codes|2fa|mfa|authenticator|log ?in)\b"
            ),
            _rx(r"\b(?:lost|no longer have|don't have)\b[^.?!\n]{0,20}\b(?:recovery|backup) codes?\b"),
        ],
    ),
    (
        "change_email",
        [
            _rx(
                r"\b(?:change|update|switch|move|replace|transfer)\b[^.?!\n]{0,30}\b(?:e-?mail|login|username)\b(?:\s+address)?"
            ),
            _rx(r"\b(?:e-?mail|login)(?:\s+address)?\b[^.?!\n]{0,30}\b(?:changed|updated|switched|moved)\b"),
            _rx(r"\btransfer\b[^.?!\n]{0,30}\b(?:ownership|owner|account)\b"),
            _rx(r"\b(?:new|different)\b[^.?!\n]{0,10}\b(?:account )?owner\b"),
            _rx(r"\bmake\b[^.?!\n]{0,30}\b(?:the )?(?:account )?owner\b"),
        ],
    ),
    (
        "change_plan",
        [
            _rx(r"\b(?:upgrad|downgrad)(?:e|es|ed|ing)\b"),
            _rx(
                r"\b(?:change|switch|move|modify|convert)\b[^.?!\n]{0,30}\b(?:plan|tier|subscription|package|billing cycle|billing period|seats?|licen[cs]es?)\b"
            ),
            _rx(
                r"\b(?:add|remove|reduce|increase|decrease|more|fewer|extra)\b[^.?!\n]{0,15}\b(?:seats?|licen[cs]es?|users? to (?:my|our) (?:plan|subscription))\b"
            ),
            _rx(
                r"\b(?:go|move|switch)\b[^.?!\n]{0,10}\b(?:to|onto)\b[^.?!\n]{0,10}\b(?:annual|yearly|monthly)\b"
            ),
            _rx(r"\b(?:extend|extension)\b[^.?!\n]{0,20}\btrial\b"),
        ],
    ),
]

# Amounts: "$120", "120 USD", "€49.50", "49,50 EUR", "30 pounds".
_CURRENCY_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR"}
_CURRENCY_WORDS = {
    "dollar": "USD", "dollars": "USD", "usd": "USD", "bucks": "USD",
    "euro": "EUR", "euros": "EUR", "eur": "EUR",
    "pound": "GBP", "pounds": "GBP", "gbp": "GBP", "quid": "GBP",
    "cad": "CAD", "aud": "AUD", "chf": "CHF", "jpy": "JPY", "yen": "JPY", "inr": "INR", "rupees": "INR",
}  # fmt: skip
_NUMBER = r"\d{1,3}(?:[,\s]\d{3})*(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_AMOUNT_SYMBOL = re.compile(rf"([$€£¥₹])\s?({_NUMBER})")
_AMOUNT_CODE_AFTER = re.compile(rf"\b({_NUMBER})\s?({'|'.join(_CURRENCY_WORDS)})\b", re.IGNORECASE)
_AMOUNT_CODE_BEFORE = re.compile(rf"\b(usd|eur|gbp|cad|aud|chf|jpy|inr)\s?({_NUMBER})\b", re.IGNORECASE)

_PLAN_NAMES = _rx(
    r"\b(free|starter|basic|standard|team|pro(?:fessional)?|business|premium|growth|scale|enterprise)\b(?:\s+(?:plan|tier))?"
)


def _decimal(text: str) -> Decimal | None:
    cleaned = text.replace(" ", "")
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?", cleaned):
        cleaned = cleaned.replace(",", "")
    elif re.fullmatch(r"\d+,\d{1,2}", cleaned):
        cleaned = cleaned.replace(",", ".")  # 49,50 EUR
    else:
        cleaned = cleaned.replace(",", "")
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        return None


# A minus sign right before an amount ("-5 USD", "-$5"), not a hyphen after a word or number ("10-15 USD").
_MINUS_BEFORE = re.compile(r"(?<!\w)[-\u2212\u2013]\s?\Z")


def _signed(text: str, start: int, amount: Decimal) -> Decimal:
    # Only the few characters before the amount: a long message must not be searched once per amount in it.
    return -amount if _MINUS_BEFORE.search(text, max(0, start - 3), start) else amount


def find_amount(text: str) -> tuple[Decimal | None, str | None]:
    """The first money amount in the text with its ISO currency, or (None, None). Signed as written: "-5 USD" is
    -5 (requested_action drops it), not a refund of 5."""
    found: list[tuple[int, Decimal | None, str]] = []
    for m in _AMOUNT_SYMBOL.finditer(text):
        found.append((m.start(), _decimal(m.group(2)), _CURRENCY_SYMBOLS[m.group(1)]))
    for m in _AMOUNT_CODE_AFTER.finditer(text):
        found.append((m.start(), _decimal(m.group(1)), _CURRENCY_WORDS[m.group(2).lower()]))
    for m in _AMOUNT_CODE_BEFORE.finditer(text):
        found.append((m.start(), _decimal(m.group(2)), m.group(1).upper()))
    found = [f for f in found if f[1] is not None]
    if not found:
        return None, None
    start, amount, currency = min(found, key=lambda f: f[0])
    return _signed(text, start, amount), currency  # type: ignore[arg-type]


def requested_action(text: str) -> RequestedAction:
    """The account-changing action the customer asks for (or asks how to do), as a structured object."""
    for kind, patterns in _ACTIONS:
        if any(p.search(text) for p in patterns):
            action = RequestedAction(kind=kind)  # type: ignore[arg-type]
            if kind == "refund":
                # customer text: an amount outside the bounds an approver could submit (ActionInput) is dropped, so
                # triage never fails on it and never proposes it for a one-click approval
                amount, currency = bounded_amount(*find_amount(text))
                action = action.model_copy(update={"amount": amount, "currency": currency})
            elif kind == "change_plan":
                plans = [m.group(1).lower() for m in _PLAN_NAMES.finditer(text)]
                action = action.model_copy(update={"target": plans[-1] if plans else None})
            elif kind == "change_email" and re.search(r"\bowner(?:ship)?\b", text, re.IGNORECASE):
                action = action.model_copy(update={"target": "owner"})
            return action
    return RequestedAction()


def all_requested_actions(text: str) -> list[str]:
    return [kind for kind, patterns in _ACTIONS if any(p.search(text) for p in patterns)]


# --------------------------------------------------------------------------- sensitivity

_SENSITIVE: dict[str, list[re.Pattern[str]]] = {
    "billing": [
        _rx(
            r"\b(?:charged|billed|debited|invoiced|took|taken)\b[^.?!\n]{0,40}\b(?:twice|double|two times|again|wrong|incorrect|too much|extra|more than|without|after (?:i )?cancel+ed|unexpected(?:ly)?|by mistake|in error)\b"
        ),
        _rx(
            r"\b(?:double|duplicate|unexpected|unauthori[sz]ed|wrong|incorrect|extra|surprise|hidden|mystery)\b[^.?!\n]{0,15}\b(?:charges?|payments?|billing|invoices?|fees?|transactions?)\b"
        ),
        _rx(r"\bover-?charg(?:e|ed|ing)\b"),
        _rx(
            r"\b(?:charges?|payments?|transactions?|debits?|bills?)\b[^.?!\n]{0,40}\b(?:don'?t|do not|didn'?t|did not|never|can'?t)\s+(?:recogni[sz]e|authori[sz]e|make|order|remember)"
        ),
        _rx(r"\b(?:didn'?t|did not|never)\b[^.?!\n]{0,20}\b(?:authori[sz]e|agree to|sign up for|order)\b"),
        _rx(r"\b(?:waive|discount|coupon|credit note|price match|cheaper price|special price)\b"),
        _rx(
            r"\b(?:invoice|receipt)\b[^.?!\n]{0,30}\b(?:wrong|incorrect|mistake|error|fix|change|re-?issue|correct)\b"
        ),
        _rx(
            r"\b(?:change|update|fix|correct)\b[^.?!\n]{0,30}\b(?:vat|tax id|billing address|company name) on\b"
        ),
        _rx(r"\b(?:still being|keep getting|kept getting|was|were|got)\s+(?:charged|billed)\b"),
        _rx(r"\bpayment\b[^.?!\n]{0,20}\b(?:dispute|disputed|chargeback)\b"),
    ],
    "security": [
        _rx(
            r"\b(?:hack(?:ed|er|ers)?|compromis(?:ed|e)|breach(?:ed)?|phishing|malware|ransomware|exploit(?:ed)?|vulnerabilit(?:y|ies)|zero-?day)\b"
        ),
        _rx(
            r"\b(?:unauthori[sz]ed|suspicious|unknown|strange|unrecogni[sz]ed)\b[^.?!\n]{0,20}\b(?:access|log-?ins?|sign-?ins?|activity|sessions?|devices?|users?|api calls?)\b"
        ),
        _rx(r"\bsomeone\b[^.?!\n]{0,40}\b(?:logged|log|signed|accessed|got into|changed|using|has access)\b"),
        _rx(r"\b(?:xss|csrf|sql injection|rce|remote code execution|privilege escalation|ssrf|idor)\b"),
        _rx(
            r"\b(?:security (?:issue|bug|flaw|hole|incident|problem|concern|report)|responsible disclosure|bug bounty|pen ?test(?:ing)?)\b"
        ),
        _rx(
            r"\b(?:leak(?:ed)?|exposed|stolen|published)\b[^.?!\n]{0,30}\b(?:api keys?|tokens?|credentials?|passwords?|secrets?|keys?|data)\b"
        ),
        _rx(
            r"\b(?:api keys?|tokens?|credentials?|passwords?|secrets?)\b[^.?!\n]{0,30}\b(?:leak(?:ed)?|exposed|stolen|public|committed|pushed)\b"
        ),
        _rx(r"\blocked out\b"),
    ],
    "legal": [
        _rx(
            r"\b(?:lawyers?|attorneys?|solicitors?|legal (?:action|team|counsel|department|proceedings|notice)|lawsuit|sue|suing|litigation|court|subpoena|cease and desist|small claims)\b"
        ),
        _rx(
            r"\b(?:breach of contract|consumer protection|trading standards|ombudsman|regulator|attorney general|ftc|ico complaint|class action)\b"
        ),
        _rx(
            r"\b(?:data processing agreement|dpa|sub-?processors?|standard contractual clauses|sccs?|nda|msa|terms of service violation|copyright|dmca|trademark|infring(?:e|ing|ement))\b"
        ),
        _rx(r"\b(?:report|reporting) (?:you|this|your company)\b[^.?!\n]{0,30}\b(?:to|with)\b"),
        _rx(r"\blegal(?:ly)?\b"),
    ],
    "privacy": [
        _rx(
            r"\b(?:gdpr|ccpa|cpra|lgpd|pipeda|hipaa|dsar|data subject|subject access request|right to (?:be forgotten|erasure|access|portability))\b"
        ),
        _rx(
            r"\b(?:delete|erase|remove|purge|wipe|export|download|send me|give me|copy of)\b[^.?!\n]{0,30}\b(?:all )?(?:my|our|the)\b[^.?!\n]{0,15}\b(?:personal (?:data|information|info)|data (?:you|that you) (?:hold|have|store|keep)|pii|customer data|information you have)\b"
        ),
        _rx(
            r"\b(?:what|which) (?:personal )?(?:data|information) (?:do )?you (?:hold|have|store|keep|collect) (?:on|about) (?:me|us)\b"
        ),
        _rx(r"\b(?:stop|opt out of)\b[^.?!\n]{0,20}\b(?:processing|selling|sharing) (?:my|our)\b"),
        _rx(r"\bprivacy (?:request|complaint|concern|violation)\b"),
    ],
}

# Which flags each requested action implies (every action is an account change).
_ACTION_FLAGS = {
    "refund": {"refund", "billing", "account_change"},
    "cancel_subscription": {"billing", "account_change"},
    "change_plan": {"billing", "account_change"},
    "change_entitlement": {"account_change"},
    "delete_account": {"privacy", "account_change"},
    "reset_mfa": {"security", "account_change"},
    "change_email": {"security", "account_change"},
}


def sensitive_flags(text: str, actions: list[str] | None = None) -> list[str]:
    flags = {flag for flag, patterns in _SENSITIVE.items() if any(p.search(text) for p in patterns)}
    for kind in actions if actions is not None else all_requested_actions(text):
        flags.update(_ACTION_FLAGS.get(kind, {"account_change"}))
    return sorted(flags)


# --------------------------------------------------------------------------- wanting a human

_HUMAN = [
    _rx(
        r"\b(?:speak|talk|chat|get through|connect me|put me through|transfer me)\b[^.?!\n]{0,30}\b(?:human|person|agent|someone|somebody|representative|rep|manager|supervisor|staff|people|team member|real)\b"
    ),
    _rx(r"\b(?:real|actual|live)\s+(?:human|person|agent|people|support)\b"),
    _rx(r"\bhuman(?:\s+being)?\b[^.?!\n]{0,20}\b(?:please|pls|now|help|support|agent)\b"),
    _rx(
        r"\b(?:not|no more|stop)\b[^.?!\n]{0,20}\b(?:a |the )?(?:bot|robot|ai|automated|canned|auto-?reply|chatbot)\b"
    ),
    _rx(r"\b(?:escalate|escalation)\b"),
    _rx(r"\b(?:call|phone|ring)\s+me\b"),
    _rx(
        r"\b(?:your|a|the)\s+(?:manager|supervisor)\b(?![^.?!\n]{0,20}\b(?:role|permission|account|seat)s?\b)"
    ),
    _rx(r"^\s*(?:agent|human|representative|operator)[.!]*\s*$"),
]


def wants_human(text: str) -> bool:
    return any(p.search(text) for p in _HUMAN)


# --------------------------------------------------------------------------- sentiment

_NEGATIVE = re.compile(
    r"\b(?:angry|annoy(?:ed|ing)|frustrat(?:ed|ing)|furious|upset|terrible|awful|horrible|unacceptable|ridiculous|"
    r"disappoint(?:ed|ing)|worst|useless|garbage|pathetic|disgrace(?:ful)?|outrage(?:d|ous)|fed up|sick of|"
    r"waste of|scam|rip-?off|incompetent|hate|nightmare|shocking|appalling|livid|unusable|still (?:not|broken|waiting)|"
    r"again and again|third time|second time|nobody (?:has )?(?:answered|replied|helped))\b",
    re.IGNORECASE,
)
_POSITIVE = re.compile(
    r"\b(?:thanks?|thank you|great|love|awesome|excellent|amazing|appreciate(?:d)?|helpful|perfect|wonderful|"
    r"fantastic|brilliant|happy|pleased|nice|cheers)\b",
    re.IGNORECASE,
)


def sentiment(text: str) -> str:
    negative = len(_NEGATIVE.findall(text))
    negative += text.count("!!") + (1 if re.search(r"\b[A-Z]{5,}\b(?:\W+\b[A-Z]{3,}\b){2,}", text) else 0)
    positive = len(_POSITIVE.findall(text))
    # A polite closing ("thanks") does not outweigh a complaint.
    if negative and negative >= positive - 1:
        return "negative"
    if positive >= 2 or (positive and not re.search(r"\?", text)):
        return "positive"
    return "neutral"


# --------------------------------------------------------------------------- language

_STOPWORDS: dict[str, frozenset[str]] = {
    "en": _words("and are can do for have how i is it my not of that the this to what with you your"),
    "es": _words("como con cómo de el en es está la las los mi mis no para por puedo que qué un una y"),
    "fr": _words("avec comment de des est et je la le les ma mes mon ne pas pour que qui sur un une vous"),
    "de": _words("auf das den der die ein eine es für ich ist kann mein meine mit nicht sie und wie zu"),
    "pt": _words("a as com como de e em meu minha não o os para por posso que um uma você é"),
    "it": _words("che come con di e gli ho il la le lo mia mio non per posso sono un una è"),
    "nl": _words("dat de een en het hoe ik is je kan met mijn niet op te van voor"),
}
_SCRIPTS = [
    ("ja", re.compile(r"[\u3040-\u30ff]")),
    ("ko", re.compile(r"[\uac00-\ud7af]")),
    ("zh", re.compile(r"[\u4e00-\u9fff]")),
    ("ru", re.compile(r"[\u0400-\u04ff]")),
    ("ar", re.compile(r"[\u0600-\u06ff]")),
    ("he", re.compile(r"[\u0590-\u05ff]")),
    ("el", re.compile(r"[\u0370-\u03ff]")),
    ("hi", re.compile(r"[\u0900-\u097f]")),
    ("th", re.compile(r"[\u0e00-\u0e7f]")),
]
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def language(text: str, default: str = "en") -> str:
    """ISO 639-1 code from script, then stop-word counts; `default` when the text says too little."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return default
    for code, pattern in _SCRIPTS:
        if len(pattern.findall(text)) >= max(2, len(letters) // 4):
            return code
    words = [w.lower() for w in _WORD.findall(unicodedata.normalize("NFC", text))]
    scores = {code: sum(1 for w in words if w in stop) for code, stop in _STOPWORDS.items()}
    best = max(scores, key=lambda code: (scores[code], code == default))
    if scores[best] < 2 or scores[best] <= scores.get(default, 0):
        return default if scores.get(default, 0) or scores[best] < 2 else best
    return best


# --------------------------------------------------------------------------- problems, outages, impact

_PROBLEM = _rx(
    r"\b(?:error|errors|fail(?:s|ed|ing|ure)?|broken|crash(?:es|ed|ing)?|not working|doesn'?t work|does not work|"
    r"won'?t|can'?t|cannot|unable|stuck|bug|issue|problem|missing|wrong|hangs?|freez(?:e|es|ing)|timed? ?out|"
    r"times out|stopped|isn'?t|aren'?t|didn'?t|no longer|disappeared|exception|\b5\d\d\b)\b|\b[A-Z]{2,5}-\d{3,5}\b"
)
_QUESTION = _rx(
    r"^\s*(?:how|what|where|when|which|who|why|is|are|can|could|do|does|should|would|will)\b|\?\s*$"
)
_OUTAGE = [
    _rx(
        r"\b(?:outage|is down|are down|went down|gone down|completely down|site down|service down|down for)\b"
    ),
    _rx(
        r"\b(?:nothing|everything|all (?:of )?(?:our|my|the)?\s*(?:beams|syncs|runs|jobs|integrations|requests|pages|workflows))\b[^.?!\n]{0,30}\b(?:fail(?:s|ed|ing)?|down|broken|stopped|not (?:working|loading|running))\b"
    ),
    _rx(
        r"\b(?:can'?t|cannot|unable to)\b[^.?!\n]{0,15}\b(?:access|reach|load|open|log ?in to)\b[^.?!\n]{0,15}\b(?:anything|the (?:app|site|dashboard|service|api)|your (?:app|site|service|api))\b"
    ),
    _rx(r"\b(?:5\d\d|502|503|504)\b[^.?!\n]{0,20}\b(?:errors?|everywhere|on every|for all)\b"),
    _rx(r"\bdata loss\b|\blost (?:all )?(?:our|my) data\b"),
    _rx(r"\bproduction\b[^.?!\n]{0,20}\b(?:down|broken|stopped|outage|blocked)\b"),
]
_MANY_USERS = [
    _rx(
        r"\b(?:all|every|most|many|several|hundreds of|thousands of|dozens of|multiple)\b[^.?!\n]{0,15}\b(?:users|customers|employees|people|team ?mates|colleagues|accounts|agents|staff|clients|members|teams)\b"
    ),
    _rx(r"\b(?:whole|entire)\b[^.?!\n]{0,10}\b(?:team|company|organi[sz]ation|org|department|office)\b"),
    _rx(r"\b(?:everyone|everybody|anyone|anybody|nobody|no one)\b"),
    _rx(
        r"\b(?:for|in|across)\s+(?:the|our|my)\s+(?:whole\s+|entire\s+)?(?:company|team|organi[sz]ation|org|department)\b"
    ),
    _rx(r"\b\d{2,}\s+(?:users|customers|people|employees|accounts|agents|seats)\b"),
]
_URGENT = _rx(
    r"\b(?:urgent(?:ly)?|asap|immediately|critical|emergency|blocking|blocker|right now|deadline|losing (?:money|revenue|customers))\b"
)


def reports_problem(text: str) -> bool:
    return bool(_PROBLEM.search(text))


def is_question(text: str) -> bool:
    return any(_QUESTION.search(s) for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip())


def outage_language(text: str) -> bool:
    return any(p.search(text) for p in _OUTAGE)


def many_affected(text: str) -> bool:
    return any(p.search(text) for p in _MANY_USERS)


def urgent(text: str) -> bool:
    return bool(_URGENT.search(text))


# --------------------------------------------------------------------------- instructions aimed at a model

_INJECTION = [
    _rx(
        r"\b(?:ignore|disregard|forget|override|bypass|skip)\b[^.?!\n]{0,40}\b(?:previous|prior|above|earlier|all|any|your|the|system|safety)\b[^.?!\n]{0,30}\b(?:instructions?|prompts?|rules?|polic(?:y|ies)|guidelines?|guardrails?|directions?|constraints?)\b"
    ),
    _rx(
        r"\b(?:you are now|from now on,? you|act as|pretend (?:to be|you are)|roleplay as|you must now|new instructions?|system prompt|developer mode|jailbreak|dan mode)\b"
    ),
    _rx(
        r"\b(?:as an? (?:ai|assistant|language model|support bot)|(?:ai|assistant|bot|model|llm|chatgpt|claude)s?\b[^.?!\n]{0,30}\b(?:must|should|shall|will) (?:always|now|immediately)?\s*(?:approve|refund|grant|issue|reply|respond|say|tell|ignore))\b"
    ),
    _rx(
        r"\b(?:approve|issue|grant|process)\b[^.?!\n]{0,20}\b(?:all|any|every|this|the)\b[^.?!\n]{0,20}\b(?:refunds?|requests?|credits?)\b[^.?!\n]{0,30}\b(?:automatically|without (?:asking|approval|review|checking))\b"
    ),
    _rx(
        r"<\s*/?\s*(?:system|instructions?|prompt|assistant)\s*>|\[\s*(?:system|inst)\s*\]|###\s*(?:system|instruction)"
    ),
    # Role labels written the way chat transcripts are ("SYSTEM: …"); upper case only, so "System: Windows 11" passes.
    re.compile(r"(?:^|[\n.!?]\s*)(?:SYSTEM|ASSISTANT|DEVELOPER)\s*:"),
]


def instruction_like(text: str) -> bool:
    """Text addressed to a model rather than to a reader: quoted as data, flagged, never obeyed."""
    return any(p.search(text) for p in _INJECTION)


# --------------------------------------------------------------------------- one pass over a message


@dataclass(frozen=True)
class Signals:
    requested_action: RequestedAction
    actions: list[str]
    sensitive_flags: list[str]
    wants_human: bool
    sentiment: str
    language: str
    problem: bool
    question: bool
    outage: bool
    many_affected: bool
    urgent: bool
    injection: bool
    notes: list[str] = field(default_factory=list)


def detect(text: str, *, default_language: str = "en") -> Signals:
    actions = all_requested_actions(text)
    return Signals(
        requested_action=requested_action(text),
        actions=actions,
        sensitive_flags=sensitive_flags(text, actions),
        wants_human=wants_human(text),
        sentiment=sentiment(text),
        language=language(text, default_language),
        problem=reports_problem(text),
        question=is_question(text),
        outage=outage_language(text),
        many_affected=many_affected(text),
        urgent=urgent(text),
        injection=instruction_like(text),
    )
