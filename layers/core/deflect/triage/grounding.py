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
from deflect.knowledge.chunking import HIDING_STYLE, UNSEEN_ELEMENTS, VOID_ELEMENTS
from deflect.triage.detectors import instruction_like

# HTML left in a passage (inline HTML of a Markdown article): what the chunker drops from an HTML article.
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_HIDDEN_BLOCK = re.compile(
    rf"<(?P<tag>[a-z][a-z0-9]*)\b[^>]*(?:{HIDING_STYLE.pattern}|"
    r"\bhidden\b|aria-hidden\s*=\s*[\"']?true)[^>]*>.*?(?:</(?P=tag)\s*>|\Z)",
    re.I | re.S,
)
_DROPPED_BLOCK = re.compile(
    rf"<({'|'.join(sorted(UNSEEN_ELEMENTS - VOID_ELEMENTS))})\b.*?(?:</\1\s*>|\Z)", re.I | re.S
)
_TAG = re.compile(r"</?[a-z][^>]*>", re.I)
_ZERO_WIDTH = re.compile(r"[\u200b-\u200f\u2060-\u2064\ufeff]")
_UNIT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(*`])|\n+")
_MARKDOWN_NOISE = re.compile(r"^\s*(?:#{1,6}\s+|>\s*)|\*\*|__|`")
# Promises of an effect only a human approval can cause.
_ACTION_PROMISE = re.compile(
    r"\b(?:i|we)(?:'ve| have| just|'ll| will| are going to)?\s+(?:now\s+)?"
    r"(?:refunded|issued (?:a|your) refund|processed (?:a|your) refund|cancel+ed|deleted|closed|removed|reset|"
    r"changed|upgraded|downgraded|credited|waived|approved|disabled|transferred|updated your (?:plan|email|account))\b"
    r"|\byour (?:refund|cancellation|account deletion|plan change|mfa reset|email change) (?:has been|is|was) "
    r"(?:approved|processed|issued|completed|done|scheduled)\b",
    re.I,
)


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
    text = _COMMENT.sub(" ", text)
    text = _DROPPED_BLOCK.sub(" ", text)
    previous = None
    while previous != text:  # nested hidden blocks
        previous = text
        text = _HIDDEN_BLOCK.sub(" ", text)
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
    return bool(_ACTION_PROMISE.search(text or ""))


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
