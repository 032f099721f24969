"""HTML → plain text for message bodies, without executing or trusting anything in the markup.

Hidden content (script/style, `hidden`, `display:none`) is dropped: a reader of the ticket never sees it, so it
must not reach a model either (a favourite place to hide prompt injections).
"""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

from deflect.domain.html_safety import neutralised

_DROP = {"script", "style", "head", "title", "template", "noscript", "iframe", "object", "svg", "math"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_BLOCK = {
    "p", "div", "section", "article", "header", "footer", "blockquote", "pre", "table", "tr", "ul", "ol",
    "h1", "h2", "h3", "h4", "h5", "h6", "dl", "dt", "dd", "figure", "figcaption", "hr",
}  # fmt: skip
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0(?![.\d])", re.I)
_TAG_START = re.compile(r"<\s*/?\s*[a-zA-Z]")
_ENTITY = re.compile(r"&[a-zA-Z#0-9]+;")
# Past the first element that may hide its content (one with attributes, a hiding element, a comment), nothing but
# the parser tells hidden text from shown. Neutralised markup writes every tag whole, so "[^>]*" stays in one tag.
_MAY_HIDE = re.compile(rf"<!--|<(?:{'|'.join(sorted(_DROP))})\b|<[A-Za-z][^\s/>]*\s+[^\s/>]", re.I)
_PLAIN_TAG = re.compile(r"<[A-Za-z/][^>]*>")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._stack: list[tuple[str, bool]] = []  # (tag, hides its content)
        self._open: dict[str, int] = {}  # how many of each tag _stack holds: a stray end tag costs no search
        self._hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        hides = (
            tag in _DROP
            or "hidden" in values
            or values.get("aria-hidden") == "true"
            or bool(_HIDDEN_STYLE.search(values.get("style") or ""))
        )
        if tag in _VOID:
            if not self._hidden_depth:
                self._void(tag, values)
            return
        self._stack.append((tag, hides))
        self._open[tag] = self._open.get(tag, 0) + 1
        if hides:
            self._hidden_depth += 1
        elif not self._hidden_depth:
            if tag == "li":
                self.parts.append("\n- ")
            elif tag in _BLOCK:
                self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # Browsers ignore "/>" on a non-void element: `<div hidden/>text` opens a hidden div around the text.
        self.handle_starttag(tag, attrs)

    def _void(self, tag: str, values: dict[str, str | None]) -> None:
        if tag == "br" or tag == "hr":
            self.parts.append("\n")
        elif tag == "img" and values.get("alt"):
            self.parts.append(f"[image: {values['alt']}]")

    def handle_endtag(self, tag: str) -> None:
        # Close up to the matching open tag; stray end tags are ignored (browsers do the same).
        if not self._open.get(tag):
            return
        for position in range(len(self._stack) - 1, -1, -1):
            if self._stack[position][0] == tag:
                for closed, hides in self._stack[position:]:
                    self._open[closed] -= 1
                    if hides:
                        self._hidden_depth -= 1
                del self._stack[position:]
                if not self._hidden_depth and tag in _BLOCK:
                    self.parts.append("\n")
                return

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            self.parts.append(data)


def _tidy(text: str) -> str:
    lines = [re.sub(r"[ \t\r\f\v\u00a0]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _looks_like_html(value: str) -> bool:
    # A tag's start with a ">" anywhere after it: one search, where a pattern ending "[^>]*>" searched again from
    # every "<" to the end of a long body.
    start = _TAG_START.search(value)
    return bool(start and value.find(">", start.end()) >= 0) or bool(_ENTITY.search(value))


def _text_before_hiding(markup: str) -> str:
    """Text of neutralised `markup` up to the first element that may hide something, tags stripped."""
    cut = _MAY_HIDE.search(markup)
    return unescape(_PLAIN_TAG.sub(" ", markup[: cut.start() if cut else len(markup)]))


def html_to_text(value: str | None) -> str:
    """Plain text of an HTML (or already plain) body. Never raises; takes time in proportion to its length."""
    if not value:
        return ""
    if not _looks_like_html(value):
        return _tidy(value)
    markup = neutralised(value)
    parser = _TextExtractor()
    try:
        parser.feed(markup)
        parser.close()
        text = "".join(parser.parts)
    except Exception:
        text = _text_before_hiding(markup)  # less text, never hidden text
    return _tidy(text)
