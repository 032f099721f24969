"""Chunking by headings with overlap, and the identifiers (error codes, API names) a chunk mentions.

Each chunk keeps its article id, version, heading path and character offsets into the article's plain text, so
a citation can point at the exact passage of the exact version it quoted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser

from deflect.domain.errors import MalformedPayload
from deflect.knowledge.models import ArticleMeta, Chunk

TARGET_CHARS = 1200
OVERLAP_CHARS = 200
MIN_CHUNK_CHARS = 40
# Chunks one article may make. Each is embedded while the PUT waits, and the API must answer within 29 s: with
# Bedrock (one call per chunk, four at a time) 500 chunks leave each round of four calls about 0.2 s. 400,000
# characters of prose, the largest body accepted, make about 400.
MAX_CHUNKS = 500

_ATX = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)")
_SETEXT = re.compile(r"^[ \t]{0,3}(=+|-+)[ \t]*$")

# Identifiers are found token by token (one pass over the text, then a few anchored checks per token): error
# codes, written SB-1001, SB_1001, sb1001 or "SB 1001", compare without separators; the other shapes support
# questions quote verbatim compare lowercased.
_TOKEN = re.compile(r"[A-Za-z0-9_./{}:\-]+")
_SPACED_CODE = re.compile(r"\b[A-Z]{2,4} \d{3,5}\b")
_CODE = re.compile(r"[A-Za-z]{1,8}[-_]?\d{2,6}")
_SHAPES = (
    re.compile(r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+"),  # snake_case / SCREAMING_SNAKE
    re.compile(r"[a-z][a-z0-9]*(?:[A-Z][a-z0-9]+)+"),  # camelCase API names
    re.compile(r"[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)+"),  # PascalCase product terms
    re.compile(r"[a-z][a-z0-9_]+(?:\.[a-z][a-z0-9_]+)+"),  # dotted names: beam.run.failed
    re.compile(r"[a-z][a-z0-9_]*:[a-z][a-z0-9_*]*"),  # scopes and permissions: beams:write
    re.compile(r"/(?:[A-Za-z0-9_{}.:-]+/)*[A-Za-z][A-Za-z0-9_{}.:-]*"),  # API paths: /v2/beams
    re.compile(r"X-[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*"),  # HTTP headers
    re.compile(r"--[a-z][a-z0-9-]+"),  # command-line flags
)


# Lines that define rather than mention: headings, table rows, list items that start with code.
_DEFINING_LINE = re.compile(r"^\s*(?:#{1,6}\s|\||[-*+]\s+`|\d+\.\s+`)")


def defined_identifiers(title: str, heading_path: list[str], text: str) -> list[str]:
    """Identifiers a chunk is about (title, headings, table rows, code-led list items), not merely mentions."""
    lines = [title, *heading_path, *(line for line in text.split("\n") if _DEFINING_LINE.match(line))]
    return identifiers("\n".join(lines))


def identifiers(text: str) -> list[str]:
    """Distinct identifiers in `text`, normalised, in order of first appearance."""
    found: dict[str, None] = {}
    for match in _SPACED_CODE.finditer(text):
        found.setdefault(match.group(0).replace(" ", "").lower(), None)
    for match in _TOKEN.finditer(text):
        raw = match.group(0).rstrip(".:-")
        if (raw.isalpha() and (raw.islower() or raw[1:].islower())) or raw.isdigit():
            continue  # plain words and numbers: most tokens, and never an identifier
        parts = [raw]
        if ":" in raw:
            parts += raw.split(":")
        if "/" in raw and not raw.startswith("/"):
            parts += raw.split("/")
        for token in parts:
            if _CODE.fullmatch(token):
                found.setdefault(re.sub(r"[-_]", "", token).lower(), None)
            elif len(token) >= 3 and any(shape.fullmatch(token) for shape in _SHAPES):
                found.setdefault(token.strip(".:/").lower(), None)
    return list(found)


# What a reader of the page never sees: whole elements, inline styles and attributes that hide an element's text.
# The grounding cleaner (deflect.triage.grounding) drops the same things from passages quoted to customers.
UNSEEN_ELEMENTS = frozenset({"script", "style", "template", "noscript", "iframe", "object", "embed"})
_PAGE_ONLY = frozenset({"head", "title"})  # parts of a whole page, never of its article
HIDING_STYLE = re.compile(
    r"(?<![\w-])(?:display\s*:\s*none|visibility\s*:\s*(?:hidden|collapse)"
    r"|(?:opacity|font-size|(?:max-)?(?:width|height))\s*:\s*[+-]?(?:0+(?:\.0*)?|\.0+)(?![\d.]))",
    re.I,
)
VOID_ELEMENTS = frozenset("area base br col embed hr img input link meta param source track wbr".split())  # noqa: SIM905
_BLOCKS = frozenset({"p", "div", "br", "li", "ul", "ol", "tr", "table", "pre", "blockquote", "section", "hr"})
# Start tags that close an open <p>, as a browser reads them; also where an unclosed <style>, <script> or comment
# is taken to end.
_P_ENDS = frozenset(
    "p div ul ol dl table pre blockquote section article main header footer aside nav figure details form hr "  # noqa: SIM905
    "h1 h2 h3 h4 h5 h6".split()
)
_RESUME = re.compile(rf"<(?:{'|'.join(sorted(_P_ENDS))}|body|li|dt|dd|tr)\b|</(?:head|body|html)\s*>", re.I)
_RAW_OPEN = re.compile(r"<!--|<(script|style)\b[^>]*>", re.I)
# An open <p> is not ended across these.
_P_STOPS = frozenset({"table", "td", "th", "caption", "button", "template", "object", "html"})
# Start tags that end an element the author left open (<li>one<li>two): {tag: (what it ends, unless one of these
# is nearer)}. Without them, text after a hidden element left open would be hidden too.
_IMPLIED_ENDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "li": (frozenset({"li"}), frozenset({"ul", "ol"})),
    "dt": (frozenset({"dt", "dd"}), frozenset({"dl"})),
    "dd": (frozenset({"dt", "dd"}), frozenset({"dl"})),
    "tr": (frozenset({"tr", "td", "th"}), frozenset({"table"})),
    "td": (frozenset({"td", "th"}), frozenset({"tr", "table"})),
    "th": (frozenset({"td", "th"}), frozenset({"tr", "table"})),
    "option": (frozenset({"option"}), frozenset({"select"})),
}


def _hides(tag: str, attrs: dict[str, str | None]) -> bool:
    """True when a reader never sees what the element holds."""
    return (
        tag in UNSEEN_ELEMENTS
        or tag in _PAGE_ONLY
        or "hidden" in attrs
        or (attrs.get("aria-hidden") or "").strip().lower() == "true"
        or "hidden" in (attrs.get("class") or "").split()
        or bool(HIDING_STYLE.search(attrs.get("style") or ""))
    )


def _closed_raw_text(html: str) -> str:
    """`html` with every unclosed <style>, <script> or comment ended at the next block tag (or the end).

    A browser would hide everything after one; an author who forgot to close it did not mean to hide the rest of
    the article, yet the text up to the next block is CSS, JS or a note, never meant for a reader: it is dropped.
    """
    parts: list[str] = []
    position = 0
    while opening := _RAW_OPEN.search(html, position):
        tag = opening.group(1)
        close = re.compile(rf"</\s*{tag}\s*>" if tag else r"--\s*>", re.I).search(html, opening.end())
        if close:
            parts.append(html[position : close.end()])
            position = close.end()
            continue
        resume = _RESUME.search(html, opening.end())
        parts.append(html[position : opening.end()] + (f"</{tag}>" if tag else "-->"))
        position = resume.start() if resume else len(html)
    parts.append(html[position:])
    return "".join(parts)


class _HtmlText(HTMLParser):
    """HTML to the text a reader sees, headings kept as Markdown `#` lines so one heading parser serves both
    formats. Open elements are tracked so that text inside a hidden one is dropped however it is nested."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._open: list[tuple[str, bool]] = []  # (tag, hides its content), outermost first
        self._hidden = 0  # open elements that hide their content

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._end_implied(tag)
        hidden = _hides(tag, dict(attrs))
        if tag not in VOID_ELEMENTS:
            self._open.append((tag, hidden))
            self._hidden += hidden
        if self._hidden or hidden:
            return
        if re.fullmatch(r"h[1-6]", tag):
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in _BLOCKS:
            self.parts.append("\n")
            if tag == "li":
                self.parts.append("- ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # A browser ignores "/>" on anything but a void element: <div hidden/> hides what follows.
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        depth = next((d for d in range(len(self._open) - 1, -1, -1) if self._open[d][0] == tag), None)
        if depth is not None:
            self._close(depth, tag)
        elif not self._hidden and (re.fullmatch(r"h[1-6]", tag) or tag in _BLOCKS):
            self.parts.append("\n")  # a stray </p> or </br> still breaks the line

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(
                data.replace("\n", " ") if self.parts and not self.parts[-1].endswith("\n") else data
            )

    def _end_implied(self, tag: str) -> None:
        ends, stops = (frozenset({"p"}), _P_STOPS) if tag in _P_ENDS else _IMPLIED_ENDS.get(tag, ((), ()))
        for depth in range(len(self._open) - 1, -1, -1):
            open_tag = self._open[depth][0]
            if open_tag in ends:
                self._close(depth, open_tag)
                return
            if open_tag in stops:
                return

    def _close(self, depth: int, tag: str) -> None:
        """Close the element at `depth` and whatever is still open inside it."""
        shown = not self._hidden
        closed, self._open = self._open[depth:], self._open[:depth]
        self._hidden -= sum(hidden for _, hidden in closed)
        if shown and (re.fullmatch(r"h[1-6]", tag) or tag in _BLOCKS):
            self.parts.append("\n")


def plain_text(body: str, body_format: str = "markdown") -> str:
    """The text that chunk offsets refer to: for HTML, only what a reader of the page sees."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    if body_format == "html":
        parser = _HtmlText()
        parser.feed(_closed_raw_text(text))
        parser.close()
        text = "".join(parser.parts)
        text = re.sub(r"[ \t]+\n", "\n", text)
        text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return text


@dataclass(frozen=True)
class Section:
    heading_path: tuple[str, ...]
    start: int
    end: int


def sections(text: str) -> list[Section]:
    """Split at ATX and setext headings (not inside fenced code); each section starts at its heading line. A
    heading with no text of its own joins the section after it ("# Billing" above "## Refunds")."""
    lines = text.split("\n")
    offsets = []
    position = 0
    for line in lines:
        offsets.append(position)
        position += len(line) + 1
    stack: list[tuple[int, str]] = []
    found: list[Section] = []
    start, path = 0, ()
    in_fence = False
    for number, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        level, title, line_start = 0, "", offsets[number]
        atx = _ATX.match(line)
        if atx:
            level, title = len(atx.group(1)), atx.group(2).strip()
        elif (
            number > 0
            and lines[number - 1].strip()
            and _SETEXT.match(line)
            and not _ATX.match(lines[number - 1])
        ):
            level = 1 if line.strip().startswith("=") else 2
            title, line_start = lines[number - 1].strip(), offsets[number - 1]
        if not level:
            continue
        if line_start > start:
            found.append(Section(path, start, line_start))
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        start, path = line_start, tuple(t for _, t in stack)
    if len(text) > start:
        found.append(Section(path, start, len(text)))
    joined: list[Section] = []
    empty_from: int | None = None
    for section in found:
        if not _body_chars(text[section.start : section.end]):
            empty_from = section.start if empty_from is None else empty_from
            continue
        if empty_from is not None:
            section, empty_from = Section(section.heading_path, empty_from, section.end), None
        joined.append(section)
    return joined  # a heading left empty at the very end says nothing


def _body_chars(piece: str) -> int:
    """Characters of text under the section's heading lines."""
    lines = (line for line in piece.split("\n") if not _ATX.match(line) and not _SETEXT.match(line))
    return len("\n".join(lines).strip())


def merge_tiny(text: str, found: list[Section], limit: int) -> list[Section]:
    """Neighbouring sections under the same parent heading merged, while one of them has less than
    MIN_CHUNK_CHARS of text and together they fit in `limit`: the merged section keeps both headings in its text
    and is labelled by the parent. "## Step 2 / Click Save." reads better with the steps around it, and a page of
    thousands of one-line sections would otherwise make thousands of chunks."""
    merged: list[tuple[Section, tuple[str, ...], int]] = []  # (section, parent path, characters of text)
    for section in found:
        parent, size = section.heading_path[:-1], _body_chars(text[section.start : section.end])
        if merged:
            last, last_parent, last_size = merged[-1]
            if (
                last_parent == parent
                and section.end - last.start <= limit
                and min(last_size, size) < MIN_CHUNK_CHARS
            ):
                merged[-1] = (Section(parent, last.start, section.end), parent, last_size + size)
                continue
        merged.append((section, parent, size))
    return [section for section, _, _ in merged]


def _cut(text: str, start: int, limit: int) -> int:
    """Where a window starting at `start` should end: a paragraph, then a sentence, then a word boundary."""
    if limit >= len(text):
        return len(text)
    floor = start + (limit - start) // 2
    for pattern in ("\n\n", ". ", "\n", " "):
        at = text.rfind(pattern, floor, limit)
        if at != -1:
            return at + len(pattern)
    return limit


def windows(text: str, start: int, end: int, target: int, overlap: int) -> list[tuple[int, int]]:
    """Overlapping windows of about `target` characters covering text[start:end]."""
    spans: list[tuple[int, int]] = []
    piece_start = start
    while True:
        piece_end = (
            end
            if end - piece_start <= target
            else min(end, _cut(text[:end], piece_start, piece_start + target))
        )
        spans.append((piece_start, piece_end))
        if piece_end >= end:
            return spans
        nxt = max(piece_end - overlap, piece_start + 1)
        space = text.find(" ", nxt, piece_end)
        piece_start = space + 1 if space != -1 else nxt


def chunk_article(
    *,
    tenant_id: str,
    article_id: str,
    version: int,
    meta: ArticleMeta,
    body: str,
    updated_at: datetime,
    target_chars: int = TARGET_CHARS,
    overlap_chars: int = OVERLAP_CHARS,
) -> list[Chunk]:
    """The article's chunks; MalformedPayload when it has no text a reader would see, or too many chunks."""
    text = plain_text(body, meta.body_format)
    if not text.strip():
        raise MalformedPayload("the article has no visible text: only markup, comments or hidden text")
    spans: list[tuple[Section, int, int, str]] = []
    for section in merge_tiny(text, sections(text), target_chars) or [Section((), 0, len(text))]:
        for start, end in windows(text, section.start, section.end, target_chars, overlap_chars):
            piece = text[start:end]
            # Offsets bound exactly the stored text: text[start:end] == chunk.text.
            start, end = start + len(piece) - len(piece.lstrip()), end - (len(piece) - len(piece.rstrip()))
            if len(piece.strip()) < MIN_CHUNK_CHARS and spans and spans[-1][0] == section:
                continue  # a sliver already covered by the previous window's overlap
            spans.append((section, start, end, piece))
    if len(spans) > MAX_CHUNKS:
        raise MalformedPayload(
            f"the article would make {len(spans)} chunks and one article may make at most {MAX_CHUNKS}: "
            "split it into smaller articles"
        )
    return [
        Chunk(
            tenant_id=tenant_id,
            article_id=article_id,
            article_version=version,
            chunk_id=f"{article_id}:v{version}:{ordinal}",
            ordinal=ordinal,
            title=meta.title,
            heading_path=list(section.heading_path),
            text=text[start:end],
            start=start,
            end=end,
            product_area=meta.product_area,
            locale=meta.locale,
            visibility=meta.visibility,
            segments=list(meta.segments),
            authority=meta.authority,
            updated_at=updated_at,
            review_by=meta.review_by,
            expires_at=meta.expires_at,
            superseded=meta.superseded_by is not None,
            identifiers=identifiers(meta.title + "\n" + piece),
            defined_identifiers=defined_identifiers(meta.title, list(section.heading_path), piece),
            url=meta.url,
        )
        for ordinal, (section, start, end, piece) in enumerate(spans)
    ]
