"""Start-up hooks let other parts of the system join `make run` with one line, without breaking it."""

from __future__ import annotations

import sys
import types

from infra.local import stack as local_stack


class _FakeStack:
    def __init__(self) -> None:
        self.notes: list[str] = []
        self.calls: list[str] = []

    def note(self, line: str) -> None:
        self.notes.append(line)


def test_hooks_run_in_order_and_a_missing_capability_is_skipped(monkeypatch):
    module = types.ModuleType("deflect_test_hooks")
    module.stack_hook = lambda s: s.calls.append("default")
    module.other = lambda s: s.calls.append("named")
    monkeypatch.setitem(sys.modules, "deflect_test_hooks", module)
    monkeypatch.setattr(
        local_stack,
        "STARTUP_HOOKS",
        ["deflect_test_hooks", "not_built_yet.module:stack_hook", "deflect_test_hooks:other"],
    )
    fake = _FakeStack()

    local_stack._run_hooks(fake)  # type: ignore[arg-type]

    assert fake.calls == ["default", "named"]
    assert fake.notes == []


def test_a_failing_hook_is_reported_in_the_banner_not_fatal(monkeypatch):
    module = types.ModuleType("deflect_test_broken_hook")

    def broken(_: object) -> None:
        raise RuntimeError("help center missing")

    module.stack_hook = broken
    monkeypatch.setitem(sys.modules, "deflect_test_broken_hook", module)
    monkeypatch.setattr(local_stack, "STARTUP_HOOKS", ["deflect_test_broken_hook"])
    fake = _FakeStack()

    local_stack._run_hooks(fake)  # type: ignore[arg-type]

    assert fake.notes and "help center missing" in fake.notes[0]
