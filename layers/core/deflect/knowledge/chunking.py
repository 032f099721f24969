"""Chunking by headings with overlap, and the identifiers (error codes, API names) a chunk mentions.

Each chunk keeps its article id, version, heading path and character offsets into the article's plain text, so
a citation can point at the exact passage of the exact version it quoted.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import unescape
from html.parser import HTMLParser

from deflect.domain.errors import MalformedPayload
from deflect.domain.html_safety import neutralised
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
# A browser would hide everything after an unclosed <style>, <script> or comment; an author who forgot to close one
# did not mean to hide the rest of the article, yet the text up to the next block is CSS, JS or a note, never meant
# for a reader: it is dropped, and the article read again from there.
_RESUME = re.compile(rf"<(?:{'|'.join(sorted(_P_ENDS))}|body|li|dt|dd|tr)\b|</(?:head|body|html)\s*>", re.I)
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


class _HtmlText(HTMLParser):
    """HTML to the text a reader sees, headings kept as Markdown `#` lines so one heading parser serves both
    formats. Open elements are tracked so that text inside a hidden one is dropped however it is nested."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._open: list[tuple[str, bool]] = []  # (tag, hides its content), outermost first
        self._depths: dict[str, list[int]] = {}  # where in _open each tag is open, innermost last
        self._hidden = 0  # open elements that hide their content

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._end_implied(tag)
        hidden = _hides(tag, dict(attrs))
        if tag not in VOID_ELEMENTS:
            self._depths.setdefault(tag, []).append(len(self._open))
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
        if self._depths.get(tag):
            self._close(self._depths[tag][-1], tag)
        elif not self._hidden and (re.fullmatch(r"h[1-6]", tag) or tag in _BLOCKS):
            self.parts.append("\n")  # a stray </p> or </br> still breaks the line

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(
                data.replace("\n", " ") if self.parts and not self.parts[-1].endswith("\n") else data
            )

    def _end_implied(self, tag: str) -> None:
        ends, stops = (frozenset({"p"}), _P_STOPS) if tag in _P_ENDS else _IMPLIED_ENDS.get(tag, ((), ()))
        depth = self._innermost(ends)
        if depth > self._innermost(stops):
            self._close(depth, self._open[depth][0])

    def _innermost(self, tags: Iterable[str]) -> int:
        """Where in _open the innermost of these tags is open; -1 if none is."""
        return max((self._depths[tag][-1] for tag in tags if self._depths.get(tag)), default=-1)

    def _close(self, depth: int, tag: str) -> None:
        """Close the element at `depth` and whatever is still open inside it."""
        shown = not self._hidden
        closed = self._open[depth:]
        del self._open[depth:]
        for closed_tag, _ in closed:
            self._depths[closed_tag].pop()
        self._hidden -= sum(hidden for _, hidden in closed)
        if shown and (re.fullmatch(r"h[1-6]", tag) or tag in _BLOCKS):
            self.parts.append("\n")


# Comments, and elements whose content is never parsed as HTML: what they hold is hidden whatever it looks like. A
# browser ends a comment at "-->" or "--!>" ("<!-->" and "<!--->" are whole, empty comments), "<!…>" and "<?…>" at
# the next ">", <script>, <style> and the other hiding elements a browser reads as raw text at their end tag, and
# each of them, left open, at the end of the page.
_RAW_HIDDEN = re.compile(
    r"<!--|<[!?]|<(?P<rawtag>script|style|noscript|iframe|noembed|noframes)(?=[\s/>])[^>]*>", re.I
)
# A tag as CommonMark reads one in Markdown text.
_OPEN_TAG = (
    r"<[A-Za-z][A-Za-z0-9-]*(?:\s+[A-Za-z_:][\w.:-]*(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'=<>`]+))?)*\s*/?>"
)
_CLOSE_TAG = r"</[A-Za-z][A-Za-z0-9-]*\s*>"
# In Markdown text, left to right: a comment or raw element, a tag (a backtick inside it is no code span), a
# backslash escape ("\<div hidden>" is text), a run of backticks that may open a code span.
_INLINE = re.compile(
    rf"(?P<raw>{_RAW_HIDDEN.pattern})|{_OPEN_TAG}|{_CLOSE_TAG}|(?P<escape>\\[!-/:-@\[-`{{-~])|(?P<ticks>`+)",
    re.I,
)


def _raw_end(text: str, opening: re.Match[str]) -> int:
    """Where the comment or raw element that `opening` (a _RAW_HIDDEN match) starts ends, as a browser reads it."""
    start, tag = opening.end(), opening.group("rawtag")
    if opening.group(0) == "<!--":
        for empty in (">", "->"):
            if text.startswith(empty, start):
                return start + len(empty)
        close = re.compile(r"--!?>").search(text, start)
    elif tag:
        close = re.compile(rf"</{tag}(?=[\s/>])[^>]*>", re.I).search(text, start)
    else:
        close = re.compile(">").search(text, start)
    return close.end() if close else len(text)


# A tag as a browser reads one, bounded so that finding every tag takes one pass over the text: a "<" that does not
# start a tag (an attribute holding "<" is read as ending there) leaves it at that.
_TAG_TOKEN = re.compile(r"<(/?)([A-Za-z][^\s/<>]*)((?:\"[^\"]*\"|'[^']*'|[^<>\"'])*)>")
_ATTRIBUTE = re.compile(r"([^\s\"'<>/=]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+)))?")


def _value(attribute: re.Match[str]) -> str | None:
    quoted = [value for value in attribute.group(2, 3, 4) if value is not None]
    return unescape(quoted[0]) if quoted else None


class _HidingElements(_HtmlText):
    """Where elements hide text, as (start, end) offsets: from the start tag of an outermost hiding element to the
    end of its end tag, or to where a browser ends it (a start tag that implies its end, or the end of the text).
    The tags are read with _TAG_TOKEN and their elements tracked as _HtmlText tracks them.

    `blocks` are the Markdown paragraphs, headings and list items between raw HTML: a renderer wraps each in an
    element of its own, which ends an inline element left open in it ("Intro <span hidden>note" hides only the
    rest of that paragraph) and, as a <p> does, a <p hidden> left open before it."""

    def __init__(self, text: str, blocks: Sequence[tuple[int, int]] = ()) -> None:
        super().__init__()
        self.text = text
        self.spans: list[tuple[int, int]] = []
        # At one offset a block's end comes before the next block's start.
        self._events = sorted([(start, 1) for start, _ in blocks] + [(end, 0) for _, end in blocks])
        self._next = 0
        self._from = 0

    def spans_of(self) -> list[tuple[int, int]]:
        for token in _TAG_TOKEN.finditer(self.text):
            at, tag = token.start(), token.group(2).lower()
            self._blocks_until(at)
            if token.group(1):
                self._tracked(at, token.end(), lambda tag=tag: _HtmlText.handle_endtag(self, tag))
                continue
            attrs = [(m.group(1).lower(), _value(m)) for m in _ATTRIBUTE.finditer(token.group(3))]
            # A browser ignores "/>" on anything but a void element: <div hidden/> hides what follows.
            self._tracked(at, at, lambda tag=tag, attrs=attrs: _HtmlText.handle_starttag(self, tag, attrs))
        self._blocks_until(len(self.text))
        if self._hidden:
            self.spans.append((self._from, len(self.text)))
        return self.spans

    def _blocks_until(self, at: int) -> None:
        while self._next < len(self._events) and self._events[self._next][0] <= at:
            offset, starts = self._events[self._next]
            self._next += 1
            if starts:
                self._tracked(offset, offset, lambda: _HtmlText.handle_starttag(self, "p", []))
            else:
                self._tracked(offset, offset, lambda: _HtmlText.handle_endtag(self, "p"))

    def _tracked(self, start: int, end: int, event: Callable[[], None]) -> None:
        """Run a tag's event: hiding it starts starts at `start`, hiding it ends ends at `end`."""
        before = self._hidden
        event()
        if self._hidden and not before:
            self._from = start
        elif before and not self._hidden:
            self.spans.append((self._from, end))


def _masked(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """`text` with each span blanked out (line breaks kept, so offsets and lines stay): nothing in it reads as a tag."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = re.sub(r"[^\n]", " ", text[start:end])
    return "".join(chars)


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        elif end > start:
            merged.append((start, end))
    return merged


def hidden_html(text: str) -> list[tuple[int, int]]:
    """Spans of `text` (HTML, or any passage that may hold some) a browser never shows: comments, <script>, <style>
    and every element _hides, however nested; what is left open hides to the end. No Markdown is read: a code
    block showing HTML counts as HTML (the grounding cleaner's view of a passage, see _MarkdownLayout for chunking)."""
    if "<" not in text:
        return []
    raw: list[tuple[int, int]] = []
    position = 0
    while opening := _RAW_HIDDEN.search(text, position):
        position = _raw_end(text, opening)
        raw.append((opening.start(), position))
    return _merged([*raw, *_HidingElements(_masked(text, raw)).spans_of()])


_QUOTE_MARKS = re.compile(r"(?:[ ]{0,3}>[ ]?)*")
_LIST_MARKER = re.compile(r"[ \t]*(?:[-*+]|\d{1,9}[.)])(?:[ \t]+|$)")
_FENCE_OPEN = re.compile(r"(`{3,})(?=[^`]*$)|(~{3,})")
# A line that starts a block of raw HTML, as CommonMark reads one (comments, <script>, <style>, "<!" and "<?"
# start one too, and end where _raw_end says). A block ends at a blank line; one opened by <pre> or <textarea>
# ends at its end tag instead.
_HTML_BLOCK = re.compile(
    r"<(?P<verbatim>pre|textarea)(?:[\s>]|$)"
    r"|</?(?:address|article|aside|base|basefont|blockquote|body|caption|center|col|colgroup|dd|details|dialog|dir"
    r"|div|dl|dt|fieldset|figcaption|figure|footer|form|frame|frameset|h[1-6]|head|header|hr|html|iframe|legend|li"
    r"|link|main|menu|menuitem|nav|noframes|ol|optgroup|option|p|param|search|section|summary|table|tbody|td"
    r"|tfoot|th|thead|title|tr|track|ul)(?:[\s>]|/>|$)",
    re.I,
)
# A line of one whole tag starts a block of raw HTML too, unless it would break a paragraph.
_HTML_LINE = re.compile(rf"(?:{_OPEN_TAG}|{_CLOSE_TAG})[ \t]*$")
_BLANK_LINE = re.compile(r"[ \t]*$")
_BLANKS = re.compile(r"[ \t]*")
_BLANK_LINES = re.compile(r"(?:[ \t]*\n)*")


def _indent(line: str) -> int:
    """Columns of leading blanks, a tab reaching the next multiple of four."""
    column = 0
    for char in line:
        if char not in " \t":
            break
        column += 1 if char == " " else 4 - column % 4
    return column


class _MarkdownLayout:
    """A Markdown body's raw HTML, read as CommonMark reads it: `hidden` (comments, <script>, <style>: hidden
    whatever they hold), `code` (fenced and indented code blocks, code spans: shown as written, never HTML) and
    `blocks` (runs of Markdown text: paragraphs, headings and list items, each of which a renderer wraps in an
    element of its own).

    Line by line: a fence or an indented block is code until it ends, a line of raw HTML starts a block of HTML
    that runs to a blank line, and any other line is Markdown text, in which a code span (on one line) is code.
    Comments are found anywhere outside code, and whatever a comment holds (fences, headings) is hidden with it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.hidden: list[tuple[int, int]] = []
        self.code: list[tuple[int, int]] = []
        self.blocks: list[tuple[int, int]] = []
        self._resume = 0  # end of the comment or raw element the last line opened
        self._block: int | None = None
        fence: str | None = None  # the pattern of the line that closes the fenced code being read
        html_until: re.Pattern[str] | None = None  # the line that ends the block of raw HTML being read
        list_indent: int | None = None  # column of the text of the list item being read
        blank, paragraph = True, False  # the previous line was blank; it was paragraph text
        position = 0
        for line in text.split("\n"):
            start, end = position, position + len(line)
            position = end + 1
            if self._resume > start:  # the line is (partly) inside a comment, <script> or <style>
                if self._resume < end:
                    inside = text[self.hidden[-1][0] : self._resume]
                    if html_until is _BLANK_LINE and re.search(r"\n[ \t]*\n", inside):
                        html_until = None  # a blank line inside the comment ended the block of HTML
                    self._scan(self._resume, end, markdown=False)
                    blank = False
                continue
            if fence:
                self.code.append((start, end))
                fence = None if re.fullmatch(fence, line) else fence
                continue
            if html_until:
                self._scan(start, end, markdown=False)
                if html_until.match(line) if html_until is _BLANK_LINE else html_until.search(line):
                    blank, html_until = html_until is _BLANK_LINE, None
                continue
            if not line.strip():
                self._end_block(start)
                blank, paragraph = True, False
                continue
            quoted = _QUOTE_MARKS.match(line).end()  # type: ignore[union-attr]
            indent = _indent(line[quoted:])
            if list_indent is not None and blank and indent < list_indent:
                list_indent = None  # a line outdented after a blank line ends the list (or starts another)
            base = list_indent or 0
            if indent >= base + 4 and not paragraph:
                self._end_block(start)
                self.code.append((start, end))  # an indented code block
                blank = False
                continue
            rest = line[quoted:]
            if marker := _LIST_MARKER.match(rest):
                list_indent, rest = marker.end(), rest[marker.end() :]
            rest = rest.lstrip(" \t")
            if opened := _FENCE_OPEN.match(rest):
                self._end_block(start)
                run = opened.group(0)
                fence = rf"[ \t]*(?:>[ \t]?)*[ \t]*{re.escape(run[0])}{{{len(run)},}}[ \t]*"
                self.code.append((start, end))
                blank = paragraph = False
                continue
            raw, block = _RAW_HIDDEN.match(rest), _HTML_BLOCK.match(rest)
            if raw or block or (not paragraph and _HTML_LINE.match(rest)):
                self._end_block(start)
                if raw:
                    html_until = None  # it ends with its comment or raw element
                elif block and block.group("verbatim"):
                    html_until = re.compile(rf"</{block.group('verbatim')}>", re.I)
                else:
                    html_until = _BLANK_LINE
                self._scan(start, end, markdown=False)
                if html_until is not _BLANK_LINE and html_until and html_until.search(line):
                    html_until = None
                blank = paragraph = False
                continue
            heading = _ATX.match(rest)
            if marker or heading:
                self._end_block(start)  # each list item and heading is an element of its own
            if self._block is None:
                self._block = start
            self._scan(start, end, markdown=True)
            if heading:
                self._end_block(end)
            blank, paragraph = False, not heading
        self._end_block(len(text))

    def _end_block(self, at: int) -> None:
        if self._block is not None:
            self.blocks.append((self._block, at))
            self._block = None

    def _scan(self, start: int, end: int, *, markdown: bool) -> None:
        """The comments and raw elements in text[start:end], and the code spans if it is Markdown text."""
        position = start
        runs: dict[int, list[int]] | None = None  # where each length of backtick run starts in the line
        while found := _INLINE.search(self.text, position, end):
            position = found.end()
            if found.group("raw"):
                position = _raw_end(self.text, found)
                self.hidden.append((found.start(), position))
                if position > end:
                    self._resume = position
                    return
            elif found.group("escape") and markdown:
                if found.group("escape") == "\\<":
                    self.code.append((found.start(), found.end()))  # shown as written, as code is
            elif found.group("ticks") and markdown:
                if runs is None:
                    runs = {}
                    for run in re.finditer("`+", self.text[start:end]):
                        runs.setdefault(len(run.group()), []).append(start + run.start())
                length = len(found.group("ticks"))
                after = runs.get(length, [])
                at = bisect_right(after, found.start())
                if at < len(after):  # a code span ends at the next run of as many backticks
                    self.code.append((found.start(), after[at] + length))
                    position = after[at] + length


def _visible_markdown(text: str) -> str:
    """A Markdown body without what its raw HTML hides on the rendered page: comments (to the end of the body when
    left open, as in a browser) and hidden elements however nested, never anything shown as code. A hidden span
    that filled its lines takes them with it, and the blank lines around it, but one."""
    if "<" not in text:
        return text
    layout = _MarkdownLayout(text)
    found = _HidingElements(_masked(text, [*layout.hidden, *layout.code]), layout.blocks).spans_of()
    newlines = [m.start() for m in re.finditer("\n", text)]
    indents: dict[int, int] = {}  # where the text of a line starts
    spans: list[tuple[int, int]] = []
    for start, end in _merged([*layout.hidden, *found]):
        if spans and not text[spans[-1][1] : start].strip(" \t"):  # two spans on one line, blanks between
            previous = spans.pop()
            start, end = previous[0], max(end, previous[1])
        line = bisect_left(newlines, start)
        line_start = newlines[line - 1] + 1 if line else 0
        after = bisect_left(newlines, end)
        line_end = newlines[after] if after < len(newlines) else len(text)
        if line_start not in indents:
            indents[line_start] = _BLANKS.match(text, line_start).end()  # type: ignore[union-attr]
        if indents[line_start] >= start and _BLANKS.match(text, end).end() >= line_end:  # type: ignore[union-attr]
            start, end = line_start, min(line_end + 1, len(text))
            if start == 0 or text.endswith("\n\n", 0, start):
                end = _BLANK_LINES.match(text, end).end()  # type: ignore[union-attr]
        spans.append((start, end))
    kept, position = [], 0
    for start, end in _merged(spans):
        kept.append(text[position:start])
        position = end
    kept.append(text[position:])
    return "".join(kept)


def plain_text(body: str, body_format: str = "markdown") -> str:
    """The text that chunk offsets refer to: only what a reader of the page sees (for Markdown, the body without
    the comments and hidden elements of its raw HTML)."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    if body_format == "html":
        parser = _HtmlText()
        parser.feed(neutralised(text, resume=_RESUME))  # read in one pass, however broken the markup
        parser.close()
        text = "".join(parser.parts)
        text = re.sub(r"[ \t]+\n", "\n", text)
        text = re.sub(r"\n{3,}", "\n\n", text).strip()
    else:
        text = _visible_markdown(text)
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
