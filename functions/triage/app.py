"""Triage worker: one SQS record per stored message → deflect.triage.triage_message. Batch with partial failures.

A record that may succeed later (throttling, a transient failure, a lost race, a message not readable yet) is
reported in `batchItemFailures` and retried by the queue (then the DLQ, which alarms). A record that can never
succeed (not a triage job, unknown or suspended tenant) is logged, counted and acknowledged. A message is started
only while the invocation has the time one message may need (TRIAGE_MARGIN_S + BEDROCK_BUDGET_S); the rest are
reported unstarted, so a slow model never runs the batch into the function's timeout.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import BaseModel, ConfigDict, ValidationError

from deflect import __version__
from deflect.domain.errors import InvalidTenant, TenantNotFound
from deflect.domain.tenancy import TenantContext, TenantId
from deflect.insight.metering import metered
from deflect.invocation import BatchClock
from deflect.observability import bind_tenant, logger, metrics
from deflect.settings import settings


class TriageJob(BaseModel):
    """The queue message intake sends (extra fields such as provider or dedupe_id are ignored)."""

    model_config = ConfigDict(extra="ignore")

    tenant_id: TenantId
    ticket_id: str
    message_id: str


@logger().inject_lambda_context(clear_state=True)
@metrics().log_metrics
@metered
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("task") == "ping":
        return {"status": "ok", "function": "triage", "version": __version__}
    return process(event, context)


def process(event: dict[str, Any], context: Any = None, container: Any = None) -> dict[str, Any]:
    """The testable seam: the same batch handling with any composition root."""
    from deflect.triage import triage_message

    if container is None:
        from deflect.bootstrap import container as default_container

        container = default_container()
    # A composition root without settings of its own (a test's) runs with the function's environment.
    config = getattr(container, "settings", None) or settings()
    clock = BatchClock.of(context, message_s=config.triage_message_s, margin_s=config.triage_margin_s)

    def on_message(record: SQSRecord) -> None:
        try:
            job = TriageJob.model_validate_json(record.body)
        except (ValidationError, InvalidTenant, ValueError):
            logger().warning(
                "dropping a record that is not a triage job", extra={"message_id": record.message_id}
            )
            metrics().add_metric(name="TriageJobMalformed", unit=MetricUnit.Count, value=1)
            return
        bind_tenant(job.tenant_id)
        ctx = TenantContext.system(job.tenant_id, actor="triage")
        try:
            # OutOfTime (not started) goes on to the batch processor: reported, so the queue delivers it again.
            with clock.message():
                result = triage_message(container, ctx, job.ticket_id, job.message_id)
        except TenantNotFound:
            logger().warning("dropping a triage job of an unknown or suspended tenant")
            metrics().add_metric(name="TriageJobTenantGone", unit=MetricUnit.Count, value=1)
            return
        metrics().add_metric(name=f"Triage_{result.outcome}", unit=MetricUnit.Count, value=1)
        logger().info(
            "triaged",
            extra={
                "ticket_id": job.ticket_id,
                "outcome": result.outcome,
                "mode": result.rollout_mode,
                "replayed": result.replayed,
            },
        )

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    response = process_partial_response(
        event=event, record_handler=on_message, processor=processor, context=context
    )
    if clock.deferred:
        logger().info(
            "messages left for the next delivery: not enough time left",
            extra={"deferred": clock.deferred, "started": clock.started, "time_left_s": clock.time_left()},
        )
        metrics().add_metric(name="TriageDeferred", unit=MetricUnit.Count, value=clock.deferred)
    return response
