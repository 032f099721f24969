"""`deflect ARGV` run in the test's process, seen as a shell sees it."""

from __future__ import annotations

import sys

import pytest

from deflect.cli import main


def deflect(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `deflect ARGV`: an uncaught SystemExit prints its message on stderr and exits
    1, as the interpreter does. Any other exception (the traceback an operator would get) fails the test."""
    try:
        code = main(list(argv))
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(err: str) -> str:
    """The single line an error printed, with no traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]
