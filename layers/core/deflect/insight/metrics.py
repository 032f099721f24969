"""EMF metrics in namespace `Deflect`, with dimensions whose values come from closed lists.

Why closed lists: every distinct dimension value is a separate CloudWatch metric (billed, and slow to graph).
Tenant ids, ticket ids and free text are never dimensions; the tenant travels as EMF metadata instead, so Logs
Insights can still split by tenant. A value outside its list is recorded as `other`.

Producers call these directly (one line each); `observe()` in this package also calls them from audit events,
so a producer that appends the canonical audit events gets the business counters without calling anything.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from deflect.observability import NAMESPACE, logger

DIMENSION_VALUES: dict[str, frozenset[str]] = {
    "provider": frozenset({"zendesk", "intercom", "freshdesk", "jira", "generic", "api"}),
    "mode": frozenset({"shadow", "assist", "auto"}),
    "reason": frozenset(
        {
            "sensitive",
            "account_action",
            "wants_human",
            "low_confidence",
            "out_of_scope",
            "ungrounded",
            "repeat_contact",
            "model_error",
            "policy",
        }
    ),
    "outcome": frozenset({"approve", "edit", "reject", "reassign"}),
    "result": frozenset({"success", "conflict", "failure"}),
    "stage": frozenset(
        {"intake", "triage", "retrieval", "model", "escalation", "approval", "writeback", "audit"}
    ),
    "direction": frozenset({"input", "output"}),
    "kind": frozenset({"first_response", "task_timeout"}),
}


@dataclass(frozen=True)
class MetricSpec:
    unit: MetricUnit
    dimensions: tuple[str, ...] = ()


METRICS: dict[str, MetricSpec] = {
    "MessagesReceived": MetricSpec(MetricUnit.Count, ("provider",)),
    "Deflected": MetricSpec(MetricUnit.Count, ("mode",)),
    "DiagnosticsRequested": MetricSpec(MetricUnit.Count),
    "Escalated": MetricSpec(MetricUnit.Count, ("reason",)),
    "AgentOutcome": MetricSpec(MetricUnit.Count, ("outcome",)),
    "Writeback": MetricSpec(MetricUnit.Count, ("result",)),
    "StageLatency": MetricSpec(MetricUnit.Milliseconds, ("stage",)),
    "StageErrors": MetricSpec(MetricUnit.Count, ("stage",)),
    "ModelTokens": MetricSpec(MetricUnit.Count, ("direction",)),
    "SlaBreaches": MetricSpec(MetricUnit.Count, ("kind",)),
    "AuditVerifyFailures": MetricSpec(MetricUnit.Count),
    "BudgetExceeded": MetricSpec(MetricUnit.Count),
    "RateLimited": MetricSpec(MetricUnit.Count),
    "SignatureRejected": MetricSpec(MetricUnit.Count, ("provider",)),
}


def bounded(dimension: str, value: object) -> str:
    text = str(value)
    return text if text in DIMENSION_VALUES.get(dimension, frozenset()) else "other"


def emit(name: str, value: float = 1, *, tenant_id: str | None = None, **dimensions: object) -> None:
    """One EMF line now (not at the end of the invocation), so a crash later does not lose it."""
    spec = METRICS.get(name)
    if spec is None:
        logger().warning("unknown metric dropped", extra={"metric": name})
        return
    unknown = set(dimensions) - set(spec.dimensions)
    if unknown:
        # A dimension outside the spec would create unbounded series: drop it, keep the count.
        logger().warning("metric dimensions dropped", extra={"metric": name, "dimensions": sorted(unknown)})
    dims = {d: bounded(d, dimensions[d]) for d in spec.dimensions if d in dimensions}
    if is_metrics_disabled():  # single_metric ignores POWERTOOLS_METRICS_DISABLED (e.g. the CLI sets it)
        return
    with single_metric(
        name=name, unit=spec.unit, value=value, namespace=NAMESPACE, default_dimensions=dims
    ) as m:
        if tenant_id:
            m.add_metadata("tenant_id", tenant_id)


def count(name: str, value: float = 1, *, tenant_id: str | None = None, **dimensions: object) -> None:
    emit(name, value, tenant_id=tenant_id, **dimensions)


def latency(stage: str, milliseconds: float, *, tenant_id: str | None = None) -> None:
    emit("StageLatency", milliseconds, tenant_id=tenant_id, stage=stage)


@contextmanager
def timed(stage: str, *, tenant_id: str | None = None) -> Iterator[None]:
    """Latency of a block; a raised error counts in StageErrors and still records the time spent."""
    started = time.perf_counter()
    try:
        yield
    except Exception:
        emit("StageErrors", tenant_id=tenant_id, stage=stage)
        raise
    finally:
        latency(stage, (time.perf_counter() - started) * 1000, tenant_id=tenant_id)


def tokens(input_tokens: int, output_tokens: int, *, tenant_id: str | None = None) -> None:
    if input_tokens:
        emit("ModelTokens", input_tokens, tenant_id=tenant_id, direction="input")
    if output_tokens:
        emit("ModelTokens", output_tokens, tenant_id=tenant_id, direction="output")


def escalation_reason(
    reasons: list[str], sensitive_flags: list[str], action_kind: str, wants_human: bool
) -> str:
    """The one bounded reason an escalation is counted under (most specific first)."""
    if sensitive_flags:
        return "sensitive"
    if action_kind and action_kind != "none":
        return "account_action"
    if wants_human:
        return "wants_human"
    text = " ".join(reasons).lower()
    for reason in ("out_of_scope", "low_confidence", "ungrounded", "repeat_contact", "model_error"):
        if reason in text or reason.replace("_", " ") in text:
            return reason
    return "policy"
