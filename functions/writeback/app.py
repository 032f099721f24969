"""Writeback: outbox items → helpdesk/CRM connectors. Batch with partial failures.

Fed by the writeback SQS queue, which dispatches, and by the SupportTable stream, which only relays each newly
pending outbox item to that queue (so an item committed by a process that died before enqueuing still goes out,
and a helpdesk outage never holds up the stream). Messages carry only outbox ids; the service makes the effect
exactly-once however many arrive. A record that must be retried (transient failure, throttling, another worker
holds the item, the queue unreachable) is reported in `batchItemFailures`; on the FIFO writeback queue, so are
the same ticket's later records in the batch.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from deflect import __version__
from deflect.insight.metering import metered
from deflect.observability import bind_tenant, logger, metrics
from deflect.services.outbox import OutboxRef, ref_from_message, ref_from_stream_record


@logger().inject_lambda_context(clear_state=True)
@metrics().log_metrics
@metered
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("task") == "ping":
        return {"status": "ok", "function": "writeback", "version": __version__}
    return process(event, context)


def process(event: dict[str, Any], context: Any = None, service: Any = None) -> dict[str, Any]:
    """The testable seam: the same batch handling with any Writeback service."""
    if service is None:
        from deflect.bootstrap import container

        service = container().writeback
    records = event.get("Records") or []
    if not records:
        return {"batchItemFailures": []}
    from_stream = bool(records) and records[0].get("eventSource") == "aws:dynamodb"

    def dispatch(ref: OutboxRef) -> None:
        bind_tenant(ref.tenant_id)
        result = service.dispatch(ref)
        metrics().add_metric(name=f"Writeback_{result.outcome}", unit=MetricUnit.Count, value=1)
        if result.age_s is not None:
            metrics().add_metric(
                name="OutboxToEffectLatency", unit=MetricUnit.Milliseconds, value=result.age_s * 1000
            )

    def on_message(record: SQSRecord) -> None:
        dispatch(ref_from_message(record.body))

    def on_change(record: DynamoDBRecord) -> None:
        ref = ref_from_stream_record(record.raw_event)
        if ref is None:
            return  # a stream change that is not a pending outbox item
        service.relay(ref)
        metrics().add_metric(name="Writeback_relayed", unit=MetricUnit.Count, value=1)

    # Every record failing is still a partial response (all listed), not an exception: the queue retries each.
    if from_stream:
        processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
        return process_partial_response(
            event=event, record_handler=on_change, processor=processor, context=context
        )
    if str(records[0].get("eventSourceARN", "")).endswith(".fifo"):
        # A ticket's later messages in the batch fail with its first failure, so they stay behind it, in order;
        # other tickets' messages go on.
        processor = SqsFifoPartialProcessor(skip_group_on_error=True)
        processor.raise_on_entire_batch_failure = False
    else:
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(
        event=event, record_handler=on_message, processor=processor, context=context
    )
