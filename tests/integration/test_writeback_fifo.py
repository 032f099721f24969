"""The writeback queue is FIFO, grouped by ticket (template.yaml): the stream's copy of an item that was already
enqueued is one message, not two; a replayed item is a new message even inside SQS's deduplication window; and
one ticket's effects go out in the order they were queued, the next only after the one before it."""

from __future__ import annotations

import pytest

from deflect.domain.tenancy import TenantContext
from deflect.services import outbox
from infra.local.helpdesks import Fault, connect_tenant, start_helpdesks
from infra.local.helpdesks.harness import (
    commit_reply,
    fast_http,
    helpdesk_ticket,
    service,
    writeback_app,
    writeback_aws,
)
from infra.local.pollers import SqsPoller

TENANT = "fifoco"


@pytest.fixture
def world():
    with writeback_aws(stream=True) as aws, start_helpdesks() as helpdesks:
        connect_tenant(aws.container.secrets, helpdesks, TENANT)
        yield aws, helpdesks, writeback_app("writeback_fifo_app")


def stream_changes(aws) -> dict:
    """Every SupportTable stream record so far, as the stream's event source mapping would hand them over."""
    streams = aws.session.client("dynamodbstreams")
    arn = aws.session.client("dynamodb").describe_table(TableName="SupportTable")["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    return {"Records": [r | {"eventSource": "aws:dynamodb"} for r in records]}


def waiting(aws) -> int:
    """Messages on the writeback queue that a consumer could receive now (counted, not consumed)."""
    sqs = aws.session.client("sqs")
    url = aws.resources.queues["WritebackQueue"]
    count = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(count["Attributes"]["ApproximateNumberOfMessages"])


def poller(aws, app, svc) -> SqsPoller:
    sqs = aws.session.client("sqs")
    url = aws.resources.queues["WritebackQueue"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return SqsPoller(
        sqs, "WritebackFunction", url, arn, lambda _f, event: app.process(event, service=svc), wait_s=0
    )


def test_the_queue_is_fifo_as_the_template_declares(world):
    aws, _, _ = world
    url = aws.resources.queues["WritebackQueue"]
    assert url.endswith(".fifo") and aws.resources.queues["WritebackDLQ"].endswith(".fifo")


def test_the_streams_copy_of_an_enqueued_item_is_dropped_and_one_effect_goes_out(world):
    aws, helpdesks, app = world
    queue = aws.container.writeback_queue
    svc = service(aws, fast_http(), queue=queue)
    item = commit_reply(aws, helpdesks, TENANT, "zendesk", "Clear the cache and retry.")
    outbox.enqueue(queue, TenantContext.system(TENANT), [item])

    # The stream relays the same committed item: the queue keeps one message.
    assert app.process(stream_changes(aws), None, service=svc) == {"batchItemFailures": []}
    assert waiting(aws) == 1

    assert poller(aws, app, svc).poll_once() == 1
    assert helpdesks.state.effects[item.outbox_id] == 1
    assert waiting(aws) == 0


def test_a_replayed_item_is_a_new_message_inside_the_deduplication_window(world):
    aws, helpdesks, app = world
    queue = aws.container.writeback_queue
    ctx = TenantContext.system(TENANT)
    svc = service(aws, fast_http(), queue=queue, dead_letters=aws.container.writeback_dead_letters)
    item = commit_reply(aws, helpdesks, TENANT, "freshdesk", "Re-link the integration.")
    outbox.enqueue(queue, ctx, [item])
    # The helpdesk refuses it for good (a deleted ticket, say): dead, while its first message still waits.
    helpdesks.state.faults.append(Fault(provider="freshdesk", status=404, count=1))
    assert svc.dispatch(outbox.ref(item)).outcome == "dead"

    assert svc.replay(ctx) == [item.outbox_id]
    assert waiting(aws) == 2, "the replay's message was taken for a duplicate of the first"
    # Their stream copies (the insert, the replay) add nothing.
    app.process(stream_changes(aws), None, service=svc)
    assert waiting(aws) == 2

    assert poller(aws, app, svc).poll_once() == 2
    assert helpdesks.state.effects[item.outbox_id] == 1


def test_a_tickets_effects_wait_for_the_one_before_them_while_other_tickets_go_on(world):
    aws, helpdesks, app = world
    queue = aws.container.writeback_queue
    ctx = TenantContext.system(TENANT)
    svc = service(aws, fast_http(max_attempts=1), queue=queue)
    ticket = helpdesk_ticket(helpdesks, TENANT, "freshdesk")
    first = outbox.reply(ticket, "We are looking into it.", public=False)
    second = outbox.reply(ticket, "It is fixed now.", public=False)
    other = commit_reply(aws, helpdesks, TENANT, "zendesk", "Clear the cache and retry.")
    aws.container.store.transact(ctx, outbox.writes([first, second]))
    outbox.enqueue(queue, ctx, [first, second, other])
    # The ticket's helpdesk fails the first request only: sent out of order, the second would land first.
    helpdesks.state.faults.append(Fault(provider="freshdesk", status=503, count=1))

    delivered = poller(aws, app, svc).poll_once()

    assert delivered == 3
    assert helpdesks.state.effects[other.outbox_id] == 1
    assert helpdesks.state.effects[first.outbox_id] == 0
    assert helpdesks.state.effects[second.outbox_id] == 0, "the later note overtook the earlier one"
    # Both stay queued behind their ticket's failure; SQS hands out nothing of that ticket meanwhile.
    assert poller(aws, app, svc).poll_once() == 0
    assert waiting(aws) == 0  # in flight until the visibility timeout, then retried in order
