"""Grounding rules shared by every answer composer: passages are data, answers quote them, citations are checked.

- `clean_passage` removes what a reader of the help center would never see or never read as help: HTML comments
  and hidden elements, markup, and sentences addressed to a model ("ignore previous instructions…"). Those are
  counted so the decision records that an article tried to instruct the assistant.
- `units` splits a passage into quotable units (sentences, list items), keeping numbered steps whole.
- `verify` checks a draft against the passages it claims to quote: every citation must name a retrieved
  article id + version and its quote must appear in that passage; a draft that promises an account action
  ("I have refunded…") is refused, since only a human approval can do that.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from deflect.domain.models import Draft
from deflect.knowledge.chunking import hidden_html
from deflect.triage.detectors import instruction_like

_TAG = re.compile(r"</?[a-z][^>]*>", re.I)
_ZERO_WIDTH = re.compile(r"[\u200b-\u200f\u2060-\u2064\ufeff]")
_UNIT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(*`])|\n+")
_MARKDOWN_NOISE = re.compile(r"^\s*(?:#{1,6}\s+|>\s*)|\*\*|__|`")
# Promises of an effect only a human approval can cause. The audit found the past-tense "we cancelled…" pattern let
# "Your subscription has been cancelled", "We'll cancel your subscription" and "We will refund your annual plan"
# reach customers in auto mode, so both voices are caught in every tense: a first person (we, I, our team) who has
# done, is doing or will do it, and the customer's account thing that has been, is now or will be changed.
# Help-center how-tos are not promises and stay quotable: what happens when the customer acts ("When you cancel,
# your plan stays active…", "If you downgrade, your plan will be downgraded at renewal"), present-tense rules
# ("Your plan is upgraded immediately…", "Refunds are issued to the original payment method…") and hypotheticals
# ("if your account was deleted…"). Every sentence of infra/local/demo/helpcenter passes.
_PROMISE_THING = (
    r"(?:account|subscription|plan|workspace|team|organi[sz]ation|org|seats?|refund|credits?|charges?|payments?"
    r"|invoices?|orders?|billing|fees?|discount|coupon|promo(?:tion)?(?: code)?|trial|(?:email|e-mail) address"
    r"|(?:(?<=your )|(?<=account's )|(?<=login ))e-?mail|mfa|2fa|two[- ]factor(?: authentication)?"
    r"|multi[- ]factor(?: authentication)?|password|ownership|owner|role|data|card|renewal|auto-?renew(?:al)?"
    r"|money|cancellation|deletion|downgrade|upgrade|request)\b"
)
# Verbs whose first-person use is a promise whatever follows ("we'll refund", "I've cancelled").
_PROMISE_VERB = (
    r"(?:refund(?:ed|ing)?|credit(?:ed|ing)?|cancel(?:l?ed|l?ing)?|waiv(?:e|ed|ing)|upgrad(?:e|ed|ing)"
    r"|downgrad(?:e|ed|ing)|delet(?:e|ed|ing))\b"
)
# Verbs that promise an account action only with an account thing as object ("we'll reset your 2FA", not "we'll
# update this article").
_OBJECT_VERB = (
    r"(?:clos(?:e|ed|ing)|remov(?:e|ed|ing)|reset(?:ting)?|chang(?:e|ed|ing)|updat(?:e|ed|ing)|switch(?:ed|ing)?"
    r"|mov(?:e|ed|ing)|transfer(?:red|ring)?|extend(?:ed|ing)?|appl(?:y|ied|ying)|issu(?:e|ed|ing)"
    r"|process(?:ed|ing)?|approv(?:e|ed|ing)|disabl(?:e|ed|ing)|turn(?:ed|ing)? off|deactivat(?:e|ed|ing)"
    r"|reactivat(?:e|ed|ing)|restor(?:e|ed|ing)|terminat(?:e|ed|ing)|revers(?:e|ed|ing)|void(?:ed|ing)?"
    r"|add(?:ed|ing)?|submit(?:ted|ting)?|initiat(?:e|ed|ing)|arrang(?:e|ed|ing))\b"
)
_PROMISE_OBJECT = (
    rf"\s+(?:(?:it|them|that)(?=\s*(?:$|[.,;:!?)]|for\b|on\b|now\b|today\b|right away\b|immediately\b|and\b))"
    rf"|(?:[\w%$.,'-]+\s+){{0,3}}?{_PROMISE_THING}"
    r"|[^.!?;]{0,40}?\b(?:for you|on your behalf)\b)"
)
_WE = r"\b(?:i|we|our (?:[\w-]+ )?team|(?:our |the )?(?:billing|support) (?:team|support))"
# Auxiliaries between the person and the verb: "we've", "I'll", "we are going to", "I have gone ahead and", "we just",
# "I'd be happy to" (and "let me…"). Not "can", "would" or a negation: "we can't refund…", "we would refund…" and
# the present-tense policy "we refund the extra charge" promise nothing to this customer.
_WE_AUX = (
    r"(?:\s*(?:'ve|'ll|'re|'m|'s|'d be (?:happy|glad) to)\b|\s+(?:have|has|will|shall|are|am|is|just|now|already"
    r"|also|then|successfully|going to|gone ahead and|went ahead and|go ahead and|(?:be )?(?:happy|glad) to"
    r"|would be (?:happy|glad) to)\b)"
)
_WE_PAST = r"(?:refunded|credited|cancell?ed|waived|upgraded|downgraded|deleted)\b"
_WE_OBJECT_PAST = (
    r"(?:closed|removed|reset|changed|updated|switched|moved|transferred|extended|applied|issued|processed"
    r"|approved|disabled|turned off|deactivated|reactivated|restored|terminated|reversed|voided|added|submitted"
    r"|initiated|arranged)"
)
_FIRST_PERSON_PROMISE = re.compile(
    rf"{_WE}(?:{_WE_AUX}{{1,5}}\s+(?:{_PROMISE_VERB}|{_OBJECT_VERB}{_PROMISE_OBJECT})"
    rf"|\s+(?:{_WE_PAST}|{_WE_OBJECT_PAST}{_PROMISE_OBJECT}))"
    rf"|\blet me\s+(?:{_PROMISE_VERB}|{_OBJECT_VERB}{_PROMISE_OBJECT})",
    re.I,
)
# The customer's account thing changed: "your subscription has been cancelled", "a refund has been issued to your
# card", "two-factor authentication has been reset", "you've been credited", "your plan will be upgraded".
_CHANGED_THING = (
    rf"(?:\byour\s+(?:[\w'-]+\s+){{0,2}}?{_PROMISE_THING}"
    r"|\b(?:a|an|the|this|that)\s+(?:[\w%$.,'-]+\s+){0,2}?(?:refund|credit|discount|coupon|cancellation|deletion"
    r"|downgrade|upgrade|charge|fee|trial|plan change|email change|transfer|request|subscription|account|plan)\b"
    r"|\b(?:two[- ]factor authentication|2fa|mfa|multi[- ]factor authentication|ownership)\b"
    r"|\byou\b)"
)
_PARTICIPLE = (
    r"(?:\s+(?:now|already|just|also|successfully|fully|officially|automatically))*\s+"
    r"(?:cancell?ed|refunded|deleted|closed|upgraded|downgraded|changed|updated|reset|credited|processed|approved"
    r"|issued|removed|extended|waived|transferred|applied|disabled|turned off|switched|moved|reactivated"
    r"|deactivated|restored|terminated|reversed|voided|completed|done|scheduled|initiated|submitted|granted"
    r"|set to (?:cancel|downgrade|expire|close))\b"
)
# Has been / is now: a statement that it happened. Will be / is: also how a how-to describes what follows the
# customer's own step, so those are promises only outside such a sentence (and "is" only ending its clause:
# "your plan is upgraded immediately" is the rule, "your subscription is cancelled." is the news).
_DONE = re.compile(
    rf"{_CHANGED_THING}\s*(?:(?:'s|has|have|had)(?:\s+(?:now|already|just|also))*\s+been|'ve\s+been|was|were"
    rf"|(?:is|are|'s|'re)\s+(?:now|being))\b{_PARTICIPLE}"
    r"|\b(?:you(?:'re|\s+are)|your\s+(?:workspace|account|team|subscription)\s+is)\s+now\s+on\s+(?:the\s+|a\s+)?"
    r"[\w-]+(?:\s+[\w-]+)?\s+(?:plan|tier)\b|\byour\s+(?:refund|credit)\s+is\s+on\s+(?:its|the)\s+way\b",
    re.I,
)
_TO_BE_DONE = re.compile(
    rf"{_CHANGED_THING}\s*(?:(?:will|'ll)(?:\s+(?:now|also|then))?\s+be|(?:is|are|'s|'re)\s+going\s+to\s+be"
    rf"|(?:is|are)\s+(?:scheduled|set)\s+to\s+be)\b{_PARTICIPLE}"
    rf"|{_CHANGED_THING}\s+(?:is|are){_PARTICIPLE}(?=\s*(?:$|[.,;:!)—–]|-\s|and\b|so\b|as of\b|effective\b|today\b"
    r"|for you\b|on your behalf\b))"
    r"|\byou(?:'ll|\s+will)\s+(?:receive|get|see)\s+(?:a|an|your)\s+(?:[\w%$.,-]+\s+){0,2}?(?:refund|credit)\b",
    re.I,
)
# "If your account was deleted…", "check whether your refund has been processed": a case, not news.
_HYPOTHETICAL = re.compile(
    r"\b(?:if|when|whenever|once|after|unless|until|whether|before|in case|as soon as|even if)\s*$", re.I
)
# "When you downgrade, your plan will be…", "…will be refunded if you cancel within 30 days": the customer's step.
_STEP = (
    r"(?:if|when|whenever|once|after|as soon as|as long as|unless)\s+(?:you|an? (?:owner|admin)|the owner)\b"
)
_STEP_BEFORE = re.compile(rf"^\W*{_STEP}|\b{_STEP}[^,;]*,\s*$", re.I)
_STEP_AFTER = re.compile(rf"^(?:\s+(?!and\b|so\b|but\b)[\w-]+){{0,6}}?,?\s+{_STEP}", re.I)
_PROMISE_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")


@dataclass(frozen=True)
class CleanPassage:
    article_id: str
    version: int
    title: str
    text: str
    score: float
    stale: bool
    heading_path: tuple[str, ...] = ()
    url: str | None = None
    dropped_instructions: int = 0


def clean_text(text: str) -> tuple[str, int]:
    """Visible, instruction-free text and the number of sentences dropped as instructions to a model."""
    text = _ZERO_WIDTH.sub("", text or "")
    # HTML left in a passage (inline HTML of a Markdown article, or an article indexed before the chunker dropped
    # it): comments and hidden elements, however nested, as the chunker finds them; then every other tag.
    shown, position = [], 0
    for start, end in hidden_html(text):
        shown.append(text[position:start])
        position = end
    text = " ".join([*shown, text[position:]])
    text = _TAG.sub(" ", text)
    kept, dropped = [], 0
    for line in text.split("\n"):
        pieces = [p for p in _UNIT_SPLIT.split(line) if p.strip()]
        good = [p for p in pieces if not instruction_like(p)]
        dropped += len(pieces) - len(good)
        if good or not pieces:
            kept.append(" ".join(good).rstrip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip(), dropped


def clean_passage(hit: Any) -> CleanPassage:
    """A knowledge SearchHit (or anything with the same fields) as data fit to quote."""
    text, dropped = clean_text(getattr(hit, "text", ""))
    return CleanPassage(
        article_id=hit.article_id,
        version=int(hit.version),
        title=_TAG.sub("", getattr(hit, "title", "") or "").strip(),
        text=text,
        score=float(getattr(hit, "score", 0.0)),
        stale=bool(getattr(hit, "stale", False)),
        heading_path=tuple(getattr(hit, "heading_path", []) or []),
        url=getattr(hit, "url", None),
        dropped_instructions=dropped,
    )


@dataclass(frozen=True)
class Unit:
    """One quotable sentence, list item or table row, with the heading of the section it sits in."""

    heading: str
    text: str


_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_TABLE_ROW = re.compile(r"^\s*\|")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(*`])")


# "See "Run credits and overages" for …", "If it keeps failing, see "…"": a sentence that sends the reader to
# another article by name.
_POINTER = re.compile(
    r"^(?:\W*(?:(?:for (?:details|more)|if|when)[^,]*,\s*)?(?:see|read|refer to|check out)\b[^.]*[\"“'](?=.*[\"”'])"
    r"|(?:see also|related articles?)\b)",
    re.I,
)


def is_pointer(unit_text: str) -> bool:
    """True for a cross-reference to another article: it names where the answer is, it is not the answer."""
    return bool(_POINTER.match(unit_text.strip()))


def _quotable(piece: str) -> str | None:
    piece = _MARKDOWN_NOISE.sub("", piece).strip()
    return piece if len(piece) >= 12 and re.search(r"[A-Za-z]{3}", piece) else None


def units(text: str) -> list[Unit]:
    """Quotable units in reading order. Wrapped lines are joined back into their paragraph; headings are not
    units (they label the units under them); list items and table rows stay whole."""
    out: list[Unit] = []
    heading = ""
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            joined = " ".join(paragraph)
            # A list item stays whole ("1. Open Settings…" keeps its number); prose splits into sentences.
            pieces = [joined] if _LIST_ITEM.match(joined) else _SENTENCE.split(joined)
            for sentence in pieces:
                if quote := _quotable(sentence):
                    out.append(Unit(heading, quote))
            paragraph.clear()

    lines = text.split("\n")
    for number, line in enumerate(lines):
        header_row = number + 1 < len(lines) and bool(_TABLE_RULE.match(lines[number + 1]))
        if match := _HEADING.match(line):
            flush()
            heading = _MARKDOWN_NOISE.sub("", match.group(1)).strip()
        elif not line.strip() or _TABLE_RULE.match(line):
            flush()
        elif _TABLE_ROW.match(line):
            flush()
            if not header_row and (quote := _quotable(line.strip().strip("|").strip())):
                out.append(Unit(heading, quote))
        elif _LIST_ITEM.match(line):
            flush()
            paragraph.append(line.strip())
        else:
            paragraph.append(line.strip())
    flush()
    return out


_STOP = frozenset(
    """a able about again all also an and any are as at be been being but by can can't could did do does
    doesn't doing don't each ever every find for from get give got had has have hello help here hey hi
    how i i'm if in into is isn't it it's its just know make may me might more most must my need needs
    no not of on only or other our please possible see shall should show so some still such tell than
    thank thanks that the then there there's these this those to too us use used using very want wants
    was way ways we we're were what what's when where which who whom whose why will with would yes you
    your actually anyone anything basically currently everyone good quick question really someone somebody
    something through""".split()  # noqa: SIM905 - a word list reads better as text
)
# Words keep their inner apostrophes, so "don't" is the stop word it is (not "don"), and "someone's" is "someone".
_TERM = re.compile(r"[a-z0-9][a-z0-9_'-]*[a-z0-9]|[a-z0-9]")
_APOSTROPHES = str.maketrans("\u2018\u2019\u02bc", "'''")


def _stem(word: str) -> str:
    return word[:5] if len(word) > 5 else word.rstrip("s")


def content_terms(text: str, ignore: Iterable[str] = ()) -> set[str]:
    """Lower-cased, crudely stemmed words that carry the question's meaning (stop words dropped)."""
    skip = {_stem(w) for w in ignore}
    words = (w.removesuffix("'s") for w in _TERM.findall(text.lower().translate(_APOSTROPHES)))
    return {_stem(w) for w in words if w not in _STOP and len(w) > 1} - skip


def coverage(question: str, passage_text: str, ignore: Iterable[str] = ()) -> float:
    """Share of the question's content terms that the passage mentions: a quote that never names what the
    customer asked about ("does it support Airtable?") does not answer it, however similar it sounds."""
    wanted = content_terms(question, ignore)
    if not wanted:
        return 1.0
    present = content_terms(passage_text)
    # "mac" is covered by "macos", "config" by "configuration": prefixes of three letters or more match.
    found = {
        t
        for t in wanted
        if t in present
        or (len(t) >= 3 and any(p.startswith(t) or t.startswith(p) for p in present if len(p) >= 3))
    }
    return len(found) / len(wanted)


# Capitalised words that name a time, not a thing the help center could be silent about.
_CALENDAR = frozenset(
    (
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
        "january", "february", "march", "april", "may", "june", "july", "august",
        "september", "october", "november", "december",
    )
)  # fmt: skip
_NAME_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9+#.-]*[A-Za-z0-9+#]|[A-Za-z]")


def named_things(question: str) -> list[str]:
    """Words the customer capitalised inside a sentence ("Airtable", "OneDrive", "iOS"): the names of apps,
    products and systems they ask about. A sentence's first word and stop words say nothing."""
    names: list[str] = []
    for sentence in re.split(r"(?<=[.!?:;])\s+|\n+", question.strip()):
        for position, token in enumerate(_NAME_TOKEN.findall(sentence)):
            word = token.lower()
            if position == 0 or token == "I" or word in _STOP or word in _CALENDAR:
                continue
            if any(ch.isupper() for ch in token):
                names.append(word)
    return names


def unmentioned_names(question: str, passage_texts: Iterable[str]) -> list[str]:
    """The question's named things that none of the passages mentions: what the help center (as far as search
    could find) says nothing about. "macs" is mentioned by "macOS"."""
    text = " ".join(passage_texts).lower()
    present = content_terms(text)
    missing = []
    for name in named_things(question):
        if name in text:
            continue
        # An error code is named exactly: SB-1001 does not mention SB-1003.
        if any(ch.isdigit() for ch in name):
            missing.append(name)
            continue
        # A longer word may mention a name ("macos" mentions "mac"), never a shorter one: "one" is not "onedrive".
        stem = _stem(name)
        if not any(p == stem or (len(stem) >= 3 and p.startswith(stem)) for p in present):
            missing.append(name)
    return missing


# A question naming an app, product or code that no retrieved passage mentions ("can it sync Airtable?" against
# the Salesforce article) keeps this share of its answer's confidence, whichever composer wrote the answer. On
# tests/knowledge_cases/customer_questions.jsonl, on-topic questions no article answers were answered 31.2 -> 22.5 %
# at 68.4 -> 67.8 % of answerable ones right (docs/answer-confidence.md).
UNMENTIONED_NAME_FACTOR = 0.6


def discount_unmentioned_names(draft: Draft, question: str, passages: Sequence[CleanPassage]) -> Draft:
    """The draft with less confidence when the question names what no retrieved passage mentions: search would
    have found an article naming it, so the help center says nothing about it. Only the count is kept on the
    draft; the names are the customer's words. A greeting or sign-off ("Cheers, Tom") names nothing asked about."""
    from deflect.knowledge.search import focus

    seen = (" ".join([p.title, *p.heading_path, p.text]) for p in passages)
    missing = unmentioned_names(focus(question), seen)
    if not missing:
        return draft
    return draft.model_copy(
        update={
            "confidence": round(draft.confidence * UNMENTIONED_NAME_FACTOR, 4),
            "unmentioned_names": len(missing),
        }
    )


def normal_form(text: str) -> str:
    """How a quote is compared with the text it quotes: Markdown marks dropped, wrapped lines joined, case folded
    (a quotable unit has lost its `**`, backticks and line breaks)."""
    return re.sub(r"\s+", " ", _MARKDOWN_NOISE.sub("", text)).strip().lower()


def promises_action(text: str) -> bool:
    """True when the text tells the customer an account action (refund, credit, cancellation, deletion, plan or
    email change, 2FA or password reset, transfer, extension, waiver, discount) was, is being or will be done for
    them: only a human approval can do that. How-tos describing the customer's own steps are not promises."""
    for sentence in _PROMISE_SENTENCE.split((text or "").translate(_APOSTROPHES)):
        if _FIRST_PERSON_PROMISE.search(sentence):
            return True
        if any(not _HYPOTHETICAL.search(sentence[: m.start()]) for m in _DONE.finditer(sentence)):
            return True
        for match in _TO_BE_DONE.finditer(sentence):
            before = sentence[: match.start()]
            if _HYPOTHETICAL.search(before) or _STEP_BEFORE.search(before):
                continue
            if not _STEP_AFTER.search(sentence[match.end() :]):
                return True
    return False


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""


def verify(draft: Draft, passages: Sequence[CleanPassage]) -> Verdict:
    """Every citation points at a passage we retrieved and quotes it; the text promises no account action."""
    if not draft.text.strip() or not draft.citations:
        return Verdict(False, "no_citations")
    if promises_action(draft.text):
        return Verdict(False, "promises_action")
    if instruction_like(draft.text):
        return Verdict(False, "instruction_in_answer")
    by_ref = {}
    for passage in passages:
        by_ref.setdefault((passage.article_id, passage.version), []).append(normal_form(passage.text))
    for citation in draft.citations:
        texts = by_ref.get((citation.article_id, citation.version))
        if texts is None:
            return Verdict(False, f"unknown_citation:{citation.article_id}@{citation.version}")
        quote = normal_form(citation.quote)
        if quote and not any(quote in text for text in texts):
            return Verdict(False, f"quote_not_in_passage:{citation.article_id}@{citation.version}")
    return Verdict(True)
