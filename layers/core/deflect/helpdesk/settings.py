"""Writeback settings, read once from the environment (composed into the function's settings by bootstrap)."""

from __future__ import annotations

import os

from pydantic import Field

from deflect.settings import _Env


class WritebackSettings(_Env):
    # Attempts per outbox item before it is marked dead and sent to the DLQ (throttling does not count).
    max_attempts: int = Field(default=5, ge=1, le=50, alias="WRITEBACK_MAX_ATTEMPTS")
    # How long a claimed item belongs to its worker: longer than the function timeout, so a live worker
    # never loses its claim; after it, a crashed worker's item is taken over.
    lease_s: float = Field(default=90.0, gt=0, alias="WRITEBACK_LEASE_S")
    helpdesk_timeout_s: float = Field(default=10.0, gt=0, le=60, alias="HELPDESK_TIMEOUT_S")
    helpdesk_max_attempts: int = Field(default=4, ge=1, le=10, alias="HELPDESK_MAX_ATTEMPTS")
    # Waits longer than this (Retry-After, rate limit) are not slept in the function: the queue retries later.
    helpdesk_max_inline_wait_s: float = Field(default=15.0, ge=0, alias="HELPDESK_MAX_INLINE_WAIT_S")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> WritebackSettings:
        env = dict(os.environ if environ is None else environ)
        return cls.model_validate({k: v for k, v in env.items() if v != ""})
