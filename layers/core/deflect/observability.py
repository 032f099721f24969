"""One Logger / Tracer / Metrics setup for every function (JSON logs, correlation id, tenant id, EMF)."""

from __future__ import annotations

import warnings
from functools import lru_cache

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "deflect"
NAMESPACE = "Deflect"

# An invocation that counted nothing (a health check, an empty poll) is normal, not a mistake: no warning per call.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


@lru_cache(maxsize=1)
def logger() -> Logger:
    # Message bodies and secrets are never logged: callers log ids, counts and redacted text only.
    return Logger(service=SERVICE, use_rfc3339=True)


@lru_cache(maxsize=1)
def tracer() -> Tracer:
    return Tracer(service=SERVICE)


@lru_cache(maxsize=1)
def metrics() -> Metrics:
    return Metrics(namespace=NAMESPACE, service=SERVICE)


def bind_tenant(tenant_id: str | None) -> None:
    # Thread-safe keys live in a context variable, so on the local stack (every function in one process) one
    # handler's tenant never labels another's lines; each invocation's clear_state drops them.
    if tenant_id:
        logger().thread_safe_append_keys(tenant_id=tenant_id)
