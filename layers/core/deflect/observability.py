"""One Logger / Tracer / Metrics setup for every function (JSON logs, correlation id, tenant id, EMF)."""

from __future__ import annotations

import threading
import warnings
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

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


class _OneWriterAtATime(AmazonCloudWatchEMFProvider):
    """Powertools keeps one metric set per process. On Lambda one invocation runs at a time; on the local stack every
    function shares the process, and one handler's flush could empty the set between another's emptiness check
    and its serialisation ("Must contain at least one metric", failing that invocation)."""

    _lock = threading.RLock()

    def add_metric(self, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            super().add_metric(*args, **kwargs)

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        with self._lock:
            super().flush_metrics(raise_on_empty_metrics=raise_on_empty_metrics)


@lru_cache(maxsize=1)
def metrics() -> Metrics:
    found = Metrics(namespace=NAMESPACE, service=SERVICE)
    found.provider = _OneWriterAtATime(
        namespace=NAMESPACE,
        service=SERVICE,
        metric_set=found.metric_set,
        dimension_set=found.dimension_set,
        metadata_set=found.metadata_set,
        default_dimensions=found.default_dimensions,
    )
    return found


def bind_tenant(tenant_id: str | None) -> None:
    # Thread-safe keys live in a context variable, so on the local stack (every function in one process) one
    # handler's tenant never labels another's lines; each invocation's clear_state drops them.
    if tenant_id:
        logger().thread_safe_append_keys(tenant_id=tenant_id)
