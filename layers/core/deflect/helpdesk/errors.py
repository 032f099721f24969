"""Typed errors of helpdesk and CRM writeback.

Writeback sorts every failure into one of four outcomes, and each outcome has one error type:
- `HelpdeskConflict`: the ticket changed after the decision read it; never retried as is.
- `Throttled` (domain): the provider or our own rate limit said slow down; retried later, not an attempt.
- `TransientFailure` (domain): timeouts, 5xx, connection errors; retried with backoff, counts as an attempt.
- `PermanentFailure`: retrying cannot help (bad credentials, ticket gone, request rejected); goes to the DLQ.
"""

from __future__ import annotations

from typing import Any

from deflect.domain.errors import Conflict, DeflectError, Throttled, TransientFailure

__all__ = [
    "HelpdeskAuthFailed",
    "HelpdeskConflict",
    "HelpdeskNotConfigured",
    "PermanentFailure",
    "Throttled",
    "TransientFailure",
]


class HelpdeskConflict(Conflict):
    """A newer human (or customer) edit exists on the helpdesk ticket; our change must not overwrite it."""

    code = "helpdesk_conflict"
    public_message = "the helpdesk ticket changed after it was read"

    def __init__(self, reason: str, *, current: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        # What we saw on the helpdesk (ids, times, authors): recorded and audited, never message bodies.
        self.current = current or {}


class PermanentFailure(DeflectError):
    """The provider rejected the request in a way a retry cannot fix."""

    code = "permanent_failure"
    public_message = "the helpdesk rejected the request"

    def __init__(self, detail: str = "", *, status: int | None = None, **context: object) -> None:
        super().__init__(detail, **context)
        self.status = status


class HelpdeskAuthFailed(PermanentFailure):
    code = "helpdesk_auth_failed"
    public_message = "the helpdesk refused our credentials"


class HelpdeskNotConfigured(PermanentFailure):
    """The tenant has no (valid) credentials for this provider."""

    code = "helpdesk_not_configured"
    public_message = "no helpdesk connection is configured for this tenant"
