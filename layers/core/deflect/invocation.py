"""Time-keeping for a queue worker that handles a batch within one Lambda invocation.

A message starts only while the invocation still has what one message may need; the rest are handed back to the
queue unstarted. While a message runs, the model may use the invocation's time left minus a margin (for the writes
after it), so even a message started late ends before Lambda stops the invocation and retries the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

# Seconds the running message's model may still use; None outside a limited invocation (CLI, API, tests).
_model_time_left: ContextVar[Callable[[], float] | None] = ContextVar("deflect_model_time_left", default=None)


def model_time_left() -> float | None:
    """Seconds the running invocation can still give the model (may be ≤ 0), or None when nothing limits it."""
    left = _model_time_left.get()
    return None if left is None else left()


class OutOfTime(Exception):
    """A message not started: too little of the invocation was left. The queue delivers it again."""


class BatchClock:
    """One invocation's time, shared by the messages of its batch.

    `message_s` is the longest one message may take (the model's budget plus `margin_s`); `margin_s` is what a
    message needs besides the model. `time_left` gives the invocation's seconds left (None: unlimited).
    """

    def __init__(self, time_left: Callable[[], float] | None, *, message_s: float, margin_s: float) -> None:
        self._time_left = time_left
        self.message_s = message_s
        self.margin_s = margin_s
        self.started = 0
        self.deferred = 0

    @classmethod
    def of(cls, context: Any, *, message_s: float, margin_s: float) -> BatchClock:
        """The clock of a Lambda context (None, or no remaining time to read: unlimited)."""
        if context is None or not hasattr(context, "get_remaining_time_in_millis"):
            return cls(None, message_s=message_s, margin_s=margin_s)
        return cls(
            lambda: context.get_remaining_time_in_millis() / 1000, message_s=message_s, margin_s=margin_s
        )

    def time_left(self) -> float:
        return float("inf") if self._time_left is None else self._time_left()

    @contextmanager
    def message(self) -> Iterator[None]:
        """Run one message, or raise OutOfTime without starting it.

        The first message of an invocation always starts, so every delivery makes progress even when the
        function's timeout is shorter than `message_s`; its model then gets only what is left.
        """
        if self.started and self.time_left() < self.message_s:
            self.deferred += 1
            raise OutOfTime(f"{self.time_left():.1f} s left, a message may need {self.message_s:.1f} s")
        self.started += 1
        token = _model_time_left.set(lambda: self.time_left() - self.margin_s)
        try:
            yield
        finally:
            _model_time_left.reset(token)
