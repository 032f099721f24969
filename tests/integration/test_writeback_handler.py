"""The writeback function: SQS batches with partial-failure reporting, the SupportTable stream relaying every
newly pending outbox item to the queue (so a commit whose enqueue was lost still goes out), and exactly one
effect however many messages arrive."""

from __future__ import annotations

import json

import pytest

from deflect.domain.errors import TransientFailure
from deflect.services import outbox
from infra.local.helpdesks import Fault, connect_tenant, start_helpdesks
from infra.local.helpdesks.harness import (
    ListQueue,
    commit_reply,
    fast_http,
    service,
    writeback_app,
    writeback_aws,
)

TENANT = "streamco"


@pytest.fixture(scope="module")
def world():
    with writeback_aws(stream=True) as aws, start_helpdesks() as helpdesks:
        connect_tenant(aws.container.secrets, helpdesks, TENANT)
        yield aws, helpdesks, writeback_app()


def committed_reply(aws, helpdesks, provider: str = "zendesk"):
    return commit_reply(aws, helpdesks, TENANT, provider, "Clear the cache and retry.")


def sqs_record(message_id: str, body: str) -> dict:
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:WritebackQueue",
        "awsRegion": "us-east-1",
    }


def message(item) -> str:
    return json.dumps({"tenant_id": item.tenant_id, **outbox.message(item)})


class StreamReader:
    """Reads the SupportTable stream from where it last stopped, as Lambda's event source mapping would."""

    def __init__(self, aws) -> None:
        self.client = aws.session.client("dynamodbstreams")
        arn = aws.session.client("dynamodb").describe_table(TableName="SupportTable")["Table"][
            "LatestStreamArn"
        ]
        shard = self.client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        self.iterator = self.client.get_shard_iterator(
            StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST"
        )["ShardIterator"]

    def event(self) -> dict:
        answer = self.client.get_records(ShardIterator=self.iterator)
        self.iterator = answer["NextShardIterator"]
        records = []
        for record in answer["Records"]:
            record = {k: v for k, v in record.items() if k != "dynamodb"} | {
                "dynamodb": {
                    k: v for k, v in record["dynamodb"].items() if k != "ApproximateCreationDateTime"
                }
            }
            records.append(record)
        return {"Records": records}


def test_an_sqs_batch_reports_only_the_records_to_retry(world):
    aws, helpdesks, app = world
    svc = service(aws, fast_http())
    good = committed_reply(aws, helpdesks, "zendesk")
    flaky = committed_reply(aws, helpdesks, "freshdesk")
    helpdesks.state.faults.append(Fault(provider="freshdesk", status=503, count=100))
    event = {
        "Records": [
            sqs_record("m1", message(good)),
            sqs_record("m2", message(flaky)),
            sqs_record("m3", "not an outbox message"),
        ]
    }
    answer = app.process(event, None, service=svc)
    helpdesks.state.faults.clear()
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m2"}, {"itemIdentifier": "m3"}]}
    assert helpdesks.state.effects[good.outbox_id] == 1
    assert helpdesks.state.effects[flaky.outbox_id] == 0
    # The retried message delivers; the duplicate of the delivered one changes nothing.
    again = {"Records": [sqs_record("m4", message(flaky)), sqs_record("m5", message(good))]}
    assert app.process(again, None, service=svc) == {"batchItemFailures": []}
    assert helpdesks.state.effects[flaky.outbox_id] == 1 and helpdesks.state.effects[good.outbox_id] == 1


def as_sqs(queue: ListQueue, prefix: str) -> dict:
    """What the queue would deliver next: the messages sent to it, as an SQS event."""
    sent, queue.sent = queue.sent, []
    return {"Records": [sqs_record(f"{prefix}{n}", json.dumps(body)) for n, body in enumerate(sent)]}


def test_an_item_whose_enqueue_was_lost_reaches_the_helpdesk_through_the_stream(world):
    aws, helpdesks, app = world
    queue = ListQueue()
    svc = service(aws, fast_http(), queue=queue)
    reader = StreamReader(aws)
    item = committed_reply(aws, helpdesks, "intercom")  # committed; the process died before enqueuing
    first = reader.event()
    assert [r["eventName"] for r in first["Records"]] == ["INSERT"]
    # what the template's FilterCriteria keeps on AWS (the local poller does not filter)
    assert first["Records"][0]["dynamodb"]["NewImage"]["entity"] == {"S": "OUTBOX"}
    assert app.process(first, None, service=svc) == {"batchItemFailures": []}
    assert helpdesks.state.effects[item.outbox_id] == 0  # the stream only relays: no helpdesk call on it
    assert [m["outbox_id"] for m in queue.sent] == [item.outbox_id]
    assert app.process(as_sqs(queue, "r"), None, service=svc) == {"batchItemFailures": []}
    assert helpdesks.state.effects[item.outbox_id] == 1
    # Writeback's own claim, receipt and audit writes flow through the stream too: none is relayed again.
    ours = reader.event()
    assert ours["Records"], "the stream carries writeback's own updates"
    assert app.process(ours, None, service=svc) == {"batchItemFailures": []}
    assert queue.sent == [] and helpdesks.state.effects[item.outbox_id] == 1


def test_a_relay_that_cannot_reach_the_queue_is_retried_by_the_stream(world):
    aws, helpdesks, app = world

    class DownQueue(ListQueue):
        def send(self, ctx, body, *, dedupe_id=None, group_id=None):
            raise TransientFailure("queue unreachable")

    svc = service(aws, fast_http(), queue=DownQueue())
    reader = StreamReader(aws)
    committed_reply(aws, helpdesks, "zendesk")
    change = reader.event()
    answer = app.process(change, None, service=svc)
    assert answer == {
        "batchItemFailures": [{"itemIdentifier": change["Records"][0]["dynamodb"]["SequenceNumber"]}]
    }


def test_both_sources_delivering_the_same_item_make_one_effect(world):
    aws, helpdesks, app = world
    queue = ListQueue()
    svc = service(aws, fast_http(), queue=queue)
    reader = StreamReader(aws)
    item = committed_reply(aws, helpdesks, "jira")
    from_stream = reader.event()
    app.process({"Records": [sqs_record("m6", message(item))]}, None, service=svc)
    app.process(from_stream, None, service=svc)
    app.process(as_sqs(queue, "r"), None, service=svc)  # the relayed duplicate
    assert helpdesks.state.effects[item.outbox_id] == 1


def test_the_handler_answers_a_ping(world):
    _, _, app = world

    class Context:
        function_name, memory_limit_in_mb, invoked_function_arn, aws_request_id = (
            "writeback",
            256,
            "arn",
            "req-1",
        )

    assert app.handler({"task": "ping"}, Context())["status"] == "ok"
