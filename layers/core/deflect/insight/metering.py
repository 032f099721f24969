"""The handler wrapper that meters every invocation (deflect.insight.usage does the counting).

Kept apart and light: every function imports it at init, and the meter itself (pydantic models, repositories)
loads with the first invocation, like the rest of what a handler only needs to do its work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any


def metered(handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Wrap a Lambda handler: counts its time per tenant and writes the invocation's usage when it ends."""

    @wraps(handler)
    def wrapper(event: Any, context: Any) -> Any:
        from deflect.bootstrap import container

        meter = container().usage
        meter.begin_invocation()
        started = time.perf_counter()
        try:
            return handler(event, context)
        finally:
            memory = int(getattr(context, "memory_limit_in_mb", 0) or 1024)
            meter.end_invocation((time.perf_counter() - started) * 1000, memory)
            try:
                meter.flush()
            except Exception:  # metering must never fail the work it measures
                from deflect.observability import logger

                logger().warning("usage flush failed; tallies kept for the next invocation")

    return wrapper
