"""HTML → plain text for message bodies, without executing or trusting anything in the markup.

Hidden content (script/style, `hidden`, `display:none`) is dropped: a reader of the ticket never sees it, so it
must not reach a model either (a favourite place to hide prompt injections).
"""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

_DROP = {"script", "style", "head", "title", "template", "noscript", "iframe", "object", "svg", "math"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_BLOCK = {
    "p", "div", "section", "article", "header", "footer", "blockquote", "pre", "table", "tr", "ul", "ol",
    "h1", "h2", "h3", "h4", "h5", "h6", "dl", "dt", "dd", "figure", "figcaption", "hr",
}  # fmt: skip
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0(?![.\d])", re.I)
_LOOKS_LIKE_HTML = re.compile(r"<\s*/?\s*[a-zA-Z][^>]*>|&[a-zA-Z#0-9]+;")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._stack: list[tuple[str, bool]] = []  # (tag, hides its content)
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
        if hides:
            self._hidden_depth += 1
        elif not self._hidden_depth:
            if tag == "li":
                self.parts.append("\n- ")
            elif tag in _BLOCK:
                self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            self.handle_starttag(tag, attrs)

    def _void(self, tag: str, values: dict[str, str | None]) -> None:
        if tag == "br" or tag == "hr":
            self.parts.append("\n")
        elif tag == "img" and values.get("alt"):
            self.parts.append(f"[image: {values['alt']}]")

    def handle_endtag(self, tag: str) -> None:
        # Close up to the matching open tag; stray end tags are ignored (browsers do the same).
        for position in range(len(self._stack) - 1, -1, -1):
            if self._stack[position][0] == tag:
                for _, hides in self._stack[position:]:
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


def html_to_text(value: str | None) -> str:
    """Plain text of an HTML (or already plain) body. Never raises."""
    if not value:
        return ""
    if not _LOOKS_LIKE_HTML.search(value):
        return _tidy(value)
    parser = _TextExtractor()
    try:
        parser.feed(value)
        parser.close()
        text = "".join(parser.parts)
    except Exception:
        text = unescape(re.sub(r"<[^>]*>", " ", value))
    return _tidy(text)
