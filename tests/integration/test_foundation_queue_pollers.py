"""The local stack's queue pollers behave like Lambda's SQS event source with ReportBatchItemFailures."""

from __future__ import annotations

import json

from infra.local.pollers import SqsPoller


def _queue(moto_stack, name: str) -> tuple[object, str, str]:
    sqs = moto_stack.session.client("sqs")
    return sqs, moto_stack.resources.queues[name], moto_stack.resources.queue_arns[name]


def _visible_and_in_flight(sqs, url: str) -> tuple[int, int]:
    found = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(found["ApproximateNumberOfMessages"]), int(found["ApproximateNumberOfMessagesNotVisible"])


def test_only_the_messages_the_function_reports_as_failed_stay_on_the_queue(moto_stack):
    sqs, url, arn = _queue(moto_stack, "TriageQueue")
    for n in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": n}))
    seen = []

    def handler(function: str, event: dict) -> dict:
        seen.extend(json.loads(r["body"])["n"] for r in event["Records"])
        failed = [r["messageId"] for r in event["Records"] if json.loads(r["body"])["n"] == 1]
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}

    delivered = SqsPoller(sqs, "TriageFunction", url, arn, handler, wait_s=0).poll_once()

    assert delivered == 3 and sorted(seen) == [0, 1, 2]
    # The failed one waits out the template's visibility timeout, then returns (and after 5 tries, the DLQ).
    assert _visible_and_in_flight(sqs, url) == (0, 1)


def test_a_function_error_keeps_the_whole_batch(moto_stack):
    sqs, url, arn = _queue(moto_stack, "WritebackQueue")
    sqs.send_message(QueueUrl=url, MessageBody="{}", MessageGroupId="ticket-1", MessageDeduplicationId="m-1")

    def broken(function: str, event: dict) -> dict:
        raise RuntimeError("connector down")

    SqsPoller(sqs, "WritebackFunction", url, arn, broken, wait_s=0).poll_once()

    assert _visible_and_in_flight(sqs, url) == (0, 1)


def test_queues_take_their_timing_from_the_template(moto_stack):
    sqs, url, _ = _queue(moto_stack, "TriageQueue")

    found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout", "RedrivePolicy"])[
        "Attributes"
    ]

    assert found["VisibilityTimeout"] == "360"
    assert json.loads(found["RedrivePolicy"])["maxReceiveCount"] == 5
