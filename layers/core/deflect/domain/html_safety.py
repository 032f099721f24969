"""HTML rewritten so that Python's HTMLParser reads it in one pass, the way a browser reads it.

HTMLParser reads an unfinished tag, comment or declaration again from each later "<" when the text ends inside one:
256 KiB of "<a <a <a" took minutes, longer than a Lambda may run, and releases of Python read such text differently.
`neutralised` reads the markup once, left to right, as a browser's tokenizer does, and writes each tag back whole
and plainly quoted. What a browser never shows (comments, "<!…>" and "<?…>", the content of <script> and <style>)
becomes an empty comment, and an unfinished tag at the end of the text, which a browser never shows either, is left
out. Text is kept as written, so ordinary HTML reads exactly as before.
"""

from __future__ import annotations

import re

EMPTY_COMMENT = "<!---->"
# Where markup may start; any other "<" is text to HTMLParser and to a browser alike.
_MARKUP = re.compile(r"<[A-Za-z/!?]")
# A start tag read as a browser reads it (quotes count only around a value, a "/" that is not before ">" is
# skipped). Possessive, so that a tag the text ends inside fails after one pass to the end and never backtracks.
_START_TAG = re.compile(
    r"""<(?P<name>[A-Za-z][^\t\n\f\r />]*+)
    (?P<attributes>(?>
        [\t\n\f\r ]++
      | /(?!>)
      | [^\t\n\f\r />][^\t\n\f\r /=>]*+
        (?>[\t\n\f\r ]*+=[\t\n\f\r ]*+(?>"[^"]*+"|'[^']*+'|(?!["'])[^\t\n\f\r >]*+)|(?![\t\n\f\r ]*+=))
    )*+)
    (?P<close>/?>)""",
    re.X,
)
_ATTRIBUTE = re.compile(
    r"""(?P<name>[^\t\n\f\r />][^\t\n\f\r /=>]*+)
    (?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(?:"(?P<double>[^"]*+)"|'(?P<single>[^']*+)'|(?P<bare>[^\t\n\f\r >]*+)))?+""",
    re.X,
)
# HTMLParser also takes "</ p>" for an end tag; it runs to the next ">".
_END_TAG = re.compile(r"</[\t\n\f\r ]*+([A-Za-z][^\t\n\f\r />]*+)")
# ASCII case only, as in a browser: "</ſcript>" does not end a script.
_RAW_TEXT = {tag: re.compile(rf"</{tag}(?=[\t\n\f\r />])", re.I | re.A) for tag in ("script", "style")}
_COMMENT_END = re.compile(r"--!?>")
_CDATA_END = re.compile(r"]]>")
_TAG_END = re.compile(">")


def neutralised(html: str, resume: re.Pattern[str] | None = None) -> str:
    """`html` with every tag complete and plainly written, and what a browser hides reduced to empty comments.

    A comment, declaration, <script> or <style> left open hides the rest of the text, as in a browser, or, given
    `resume`, only up to its next match (where the rest of an article is read again). Takes time in proportion to
    the length of `html`.
    """
    return _Reader(html.replace("\x00", ""), resume).read()


class _Reader:
    def __init__(self, html: str, resume: re.Pattern[str] | None) -> None:
        self.html = html
        self.resume = resume
        self.out: list[str] = []
        # Closers searched for in vain, and from where: none is found from any later offset either, so no stretch
        # of the text is searched twice (many "<!--" left open would otherwise each search to the end).
        self._missing: dict[re.Pattern[str], int] = {}

    def read(self) -> str:
        html, position = self.html, 0
        while opening := _MARKUP.search(html, position):
            at = opening.start()
            self.out.append(html[position:at])
            if html.startswith("<!--", at):
                position = self._comment(at)
            elif html.startswith("<![CDATA[", at):
                position = self._hidden(at, self._find(_CDATA_END, at) or self._find(_TAG_END, at))
            elif html[at + 1] in "!?":
                position = self._hidden(at, self._find(_TAG_END, at))
            elif html[at + 1] == "/":
                position = self._end_tag(at)
            else:
                position = self._start_tag(at)
        self.out.append(html[position:])
        return "".join(self.out)

    def _find(self, closer: re.Pattern[str], start: int) -> re.Match[str] | None:
        if self._missing.get(closer, len(self.html) + 1) <= start:
            return None
        found = closer.search(self.html, start)
        if not found:
            self._missing[closer] = start
        return found

    def _unclosed(self, start: int) -> int:
        """Where reading goes on after something left open at `start`: the next `resume` match, or the end."""
        again = self.resume.search(self.html, start) if self.resume else None
        return again.start() if again else len(self.html)

    def _hidden(self, at: int, end: re.Match[str] | None) -> int:
        self.out.append(EMPTY_COMMENT)
        return end.end() if end else self._unclosed(at + 2)

    def _comment(self, at: int) -> int:
        # "<!-->" and "<!--->" are whole, empty comments; any other ends at "-->" or "--!>".
        for empty in (">", "->"):
            if self.html.startswith(empty, at + 4):
                self.out.append(EMPTY_COMMENT)
                return at + 4 + len(empty)
        return self._hidden(at, self._find(_COMMENT_END, at + 4))

    def _end_tag(self, at: int) -> int:
        tag = _END_TAG.match(self.html, at)
        if not tag:
            if at + 2 == len(self.html):
                self.out.append("&lt;/")
                return at + 2
            if self.html.startswith("</>", at):  # nothing at all
                self.out.append(EMPTY_COMMENT)
                return at + 3
            return self._hidden(at, self._find(_TAG_END, at))
        end = self._find(_TAG_END, tag.end())
        if not end:
            return len(self.html)  # the text ends inside the tag
        self.out.append(f"</{tag.group(1)}>")
        return end.end()

    def _start_tag(self, at: int) -> int:
        tag = _START_TAG.match(self.html, at)
        if not tag:
            return len(self.html)  # the text ends inside the tag (or inside a quoted value)
        name = tag.group("name")
        written = [f"<{name}"]
        for attribute in _ATTRIBUTE.finditer(tag.group("attributes")):
            if attribute.group("name").startswith("="):
                continue  # "<p x =y>" holds an attribute named "=y", which HTMLParser would read as x's value
            value = next((v for v in attribute.group("double", "single", "bare") if v is not None), None)
            written.append(f" {attribute.group('name')}")
            if value is not None:
                written.append('="' + value.replace('"', "&quot;") + '"')
        raw = _RAW_TEXT.get(name.lower())
        written.append(">" if raw or tag.group("close") == ">" else "/>")
        self.out.append("".join(written))
        if not raw:
            return tag.end()
        # The content of <script> and <style> is never shown (nor is it markup): only where it ends matters.
        self.out.append(f"</{name}>")
        close = self._find(raw, tag.end())
        if not close:
            return self._unclosed(tag.end())
        end = self._find(_TAG_END, close.end())
        return end.end() if end else len(self.html)
