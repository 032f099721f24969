"""Chunking by headings with overlap, and the identifiers (error codes, API names) a chunk mentions.

Each chunk keeps its article id, version, heading path and character offsets into the article's plain text, so
a citation can point at the exact passage of the exact version it quoted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser

from deflect.knowledge.models import ArticleMeta, Chunk

TARGET_CHARS = 1200
OVERLAP_CHARS = 200
MIN_CHUNK_CHARS = 40

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


class _HtmlText(HTMLParser):
    """HTML to text with headings kept as Markdown `#` lines, so one heading parser serves both formats."""

    _BLOCKS = frozenset(
        {"p", "div", "br", "li", "ul", "ol", "tr", "table", "pre", "blockquote", "section", "hr"}
    )
    _SKIP = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in self._BLOCKS:
            self.parts.append("\n")
            if tag == "li":
                self.parts.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif re.fullmatch(r"h[1-6]", tag) or tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(
                data.replace("\n", " ") if self.parts and not self.parts[-1].endswith("\n") else data
            )


def plain_text(body: str, body_format: str = "markdown") -> str:
    """The text that chunk offsets refer to."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    if body_format == "html":
        parser = _HtmlText()
        parser.feed(text)
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
    """Split at ATX and setext headings (not inside fenced code); each section starts at its heading line."""
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
    return [s for s in found if _has_content(text[s.start : s.end])]


def _has_content(piece: str) -> bool:
    body = "\n".join(line for line in piece.split("\n") if not _ATX.match(line) and not _SETEXT.match(line))
    return bool(body.strip())


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
    text = plain_text(body, meta.body_format)
    chunks: list[Chunk] = []
    for section in sections(text) or [Section((), 0, len(text))]:
        for start, end in windows(text, section.start, section.end, target_chars, overlap_chars):
            piece = text[start:end]
            # Offsets bound exactly the stored text: text[start:end] == chunk.text.
            start, end = start + len(piece) - len(piece.lstrip()), end - (len(piece) - len(piece.rstrip()))
            if (
                len(piece.strip()) < MIN_CHUNK_CHARS
                and chunks
                and chunks[-1].heading_path == list(section.heading_path)
            ):
                continue  # a sliver already covered by the previous window's overlap
            chunks.append(
                Chunk(
                    tenant_id=tenant_id,
                    article_id=article_id,
                    article_version=version,
                    chunk_id=f"{article_id}:v{version}:{len(chunks)}",
                    ordinal=len(chunks),
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
            )
    return chunks
