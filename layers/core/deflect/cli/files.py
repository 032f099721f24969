"""Files an operator names on the command line: read them, or stop with one line saying what is wrong.

A missing, unreadable, non-UTF-8 or non-JSON file is the operator's mistake, not a fault of the program: it ends
the command like the CLI's other usage errors (SystemExit with a message: one line on stderr, exit code 1), never
with a traceback. Commands that print their errors as JSON catch UnusableFile and print its `error_code` and `message`.

    text = read_text(args.file)            # "-" reads standard input
    fields = read_json(args.file)
    for row in json_lines(args.cases, require=("id", "text")): ...
    with reading(args.path): rows = list(read_path(args.path))   # a reader of our own, same messages
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager as ContextManager
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, TextIO

UNREADABLE = "unreadable_file"
MALFORMED = "malformed_payload"  # the code the services use for content that is not what was expected

STDIN = "-"


class UnusableFile(SystemExit):
    """A file named on the command line that cannot be used. Uncaught, it ends the command with its message."""

    def __init__(self, path: str | Path, problem: str, *, code: str = UNREADABLE) -> None:
        self.path = str(path)
        self.problem = problem
        self.error_code = code
        super().__init__(self.message)

    @property
    def message(self) -> str:
        where = "standard input" if self.path == STDIN else self.path
        return f"{where}: {self.problem}"


def why(error: OSError) -> str:
    """What an operator needs to hear about an OSError, without the errno noise."""
    if isinstance(error, FileNotFoundError):
        return "no such file"
    if isinstance(error, IsADirectoryError):
        return "is a folder, not a file"
    if isinstance(error, NotADirectoryError):
        return "no such file (a part of the path is not a folder)"
    if isinstance(error, PermissionError):
        return "permission denied"
    return f"cannot be read ({error.strerror or error})"


@contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Turn what reading `path` (or a file in that folder) can raise into UnusableFile."""
    try:
        yield
    except OSError as error:
        raise UnusableFile(error.filename or path, why(error)) from None
    except UnicodeDecodeError:
        raise UnusableFile(path, "not UTF-8 text") from None


def read_text(path: str | Path) -> str:
    """The file's text (UTF-8), or standard input for "-"."""
    with reading(path):
        if str(path) == STDIN:
            return sys.stdin.read()
        return Path(path).read_text(encoding="utf-8")


def parse_json(text: str, where: str | Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UnusableFile(
            where, f"not JSON ({error.msg} at line {error.lineno} column {error.colno})", code=MALFORMED
        ) from None
    except (ValueError, RecursionError) as error:  # e.g. an integer too long, or nested too deep
        raise UnusableFile(where, f"not usable JSON ({error})", code=MALFORMED) from None


def read_json(path: str | Path) -> Any:
    return parse_json(read_text(path), path)


def json_object(path: str | Path, what: str = "object") -> dict[str, Any]:
    """A file holding one JSON object; `what` names its contents in the message when it is something else."""
    value = read_json(path)
    if not isinstance(value, dict):
        raise UnusableFile(path, f"expected a JSON {what}", code=MALFORMED)
    return value


def json_lines(path: str | Path, *, require: Sequence[str] = ()) -> Iterator[dict[str, Any]]:
    """The objects of a JSONL file, one per non-blank line, each a JSON object with the `require`d fields. Read line
    by line (a corpus can be large): the first bad line stops the command, naming its number."""
    name = "standard input" if str(path) == STDIN else str(path)
    with reading(path), _opened(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{name} line {number}"
            row = parse_json(line, where)
            if not isinstance(row, dict):
                raise UnusableFile(where, "expected a JSON object", code=MALFORMED)
            missing = [field for field in require if field not in row]
            if missing:
                raise UnusableFile(where, f"missing {', '.join(missing)}", code=MALFORMED)
            yield row


def _opened(path: str | Path) -> ContextManager[TextIO]:
    return nullcontext(sys.stdin) if str(path) == STDIN else open(path, encoding="utf-8")
