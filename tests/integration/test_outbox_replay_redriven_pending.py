"""`deflect outbox replay` never leaves an item with nothing to send it. On the FIFO writeback queue, a ticket's
later items are handed back with a failing one and count receives too, so SQS redrives them to WritebackDLQ
(template: maxReceiveCount) while they are still `pending`; a delivery that keeps timing out leaves its item
`dispatching` the same way. The replay's drain queues such items again before it removes their DLQ message, still
sends each effect at most once, and gets past any number of messages it keeps (other tenants')."""

from __future__ import annotations

import json

import pytest

from deflect.domain.tenancy import TenantContext
from deflect.services import outbox
from infra.local import template as tpl
from infra.local.helpdesks import Fault, connect_tenant, start_helpdesks
from infra.local.helpdesks.harness import (
    Clock,
    commit_reply,
    fast_http,
    helpdesk_ticket,
    service,
    writeback_app,
    writeback_aws,
)
from infra.local.pollers import sqs_event, to_delete

TENANT = "redriveco"
LEASE_S = 90.0


class Crash(BaseException):
    """The function timing out: nothing after this point of the dispatch runs."""


@pytest.fixture
def world():
    with writeback_aws(stream=False) as aws, start_helpdesks() as helpdesks:
        connect_tenant(aws.container.secrets, helpdesks, TENANT)
        sqs = aws.session.client("sqs")
        # The redrive policy as template.yaml declares it (the harness creates the queues without it).
        redrive = tpl.queue_definitions()["WritebackQueue"]["RedrivePolicy"]
        dlq_arn = queue_arn(aws, "WritebackDLQ")
        policy = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": redrive["maxReceiveCount"]}
        sqs.set_queue_attributes(
            QueueUrl=aws.resources.queues["WritebackQueue"], Attributes={"RedrivePolicy": json.dumps(policy)}
        )
        yield aws, helpdesks, writeback_app("wb_replay_redriven_app"), int(redrive["maxReceiveCount"])


def queue_arn(aws, name: str) -> str:
    sqs = aws.session.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=aws.resources.queues[name], AttributeNames=["QueueArn"])
    return attributes["Attributes"]["QueueArn"]


def wired(aws, **kw):
    c = aws.container
    return service(aws, fast_http(), queue=c.writeback_queue, dead_letters=c.writeback_dead_letters, **kw)


def deliver(aws, app, svc, rounds: int) -> None:
    """Lambda's event source mapping: receive, invoke, delete what succeeded; a failed message comes back when
    its visibility timeout runs out (here at once), one receive more on its count."""
    sqs = aws.session.client("sqs")
    url = aws.resources.queues["WritebackQueue"]
    for _ in range(rounds):
        # With its attributes (the message group among them), as Lambda hands a FIFO batch over.
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not got:
            return
        done = to_delete(
            got, app.process(sqs_event(got, queue_arn(aws, "WritebackQueue")), None, service=svc)
        )
        for message in got:
            if message in done:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            else:
                sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )


def depth(aws, name: str) -> int:
    sqs = aws.session.client("sqs")
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    found = sqs.get_queue_attributes(QueueUrl=aws.resources.queues[name], AttributeNames=names)["Attributes"]
    return sum(int(found[n]) for n in names)


def run_cli(capsys, svc, argv: list[str]) -> dict:
    from deflect.cli import build_parser

    args = build_parser().parse_args(argv)
    args.service = svc
    capsys.readouterr()
    args.func(args)
    [summary] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    return summary


def test_a_note_redriven_behind_a_throttled_one_is_sent_after_outbox_replay(world, capsys):
    aws, helpdesks, app, max_receives = world
    ctx = TenantContext.system(TENANT)
    ticket = helpdesk_ticket(helpdesks, TENANT, "freshdesk")
    first = outbox.reply(ticket, "We are looking into it.", public=False)
    second = outbox.reply(ticket, "Here is what we found.", public=False)
    aws.container.store.transact(ctx, outbox.writes([first, second]))
    outbox.enqueue(aws.container.writeback_queue, ctx, [first, second])
    # The helpdesk's rate limit says: come back in an hour, again and again.
    helpdesks.state.faults.append(Fault(provider="freshdesk", status=429, retry_after="3600", count=1000))
    svc = wired(aws)
    deliver(aws, app, svc, rounds=max_receives + 2)
    # Never tried: it waited behind the first, and its message went to the DLQ with the first's.
    assert svc.outbox.get(ctx, second.outbox_id).status == "pending"
    assert depth(aws, "WritebackQueue") == 0 and depth(aws, "WritebackDLQ") == 2

    # The limit is over; the operator follows the README.
    helpdesks.state.faults.clear()
    summary = run_cli(capsys, wired(aws), ["outbox", "replay", "--tenant", TENANT])
    deliver(aws, app, wired(aws), rounds=3)

    assert helpdesks.state.effects[first.outbox_id] == 1
    assert helpdesks.state.effects[second.outbox_id] == 1, "the second note was never sent"
    assert summary["replayed"] == [first.outbox_id]
    assert summary.get("requeued_from_dlq") == [second.outbox_id]
    assert summary["dlq_messages_removed"] == 2
    assert [svc.outbox.get(ctx, i.outbox_id).status for i in (first, second)] == ["done", "done"]
    assert depth(aws, "WritebackDLQ") == 0  # the alarm clears, with nothing lost


def test_a_delivery_that_kept_timing_out_is_replayed_once_its_lease_ran_out_and_not_posted_twice(
    world, capsys
):
    aws, helpdesks, app, max_receives = world
    ctx = TenantContext.system(TENANT)
    clock = Clock()
    item = commit_reply(aws, helpdesks, TENANT, "zendesk", "Deflect: the export finished.", public=False)
    outbox.enqueue(aws.container.writeback_queue, ctx, [item])

    def timeout(step: str) -> None:
        if step == "sent":
            raise Crash(step)

    # The function times out after the helpdesk took the note, before the receipt: the item stays `dispatching`.
    with pytest.raises(Crash):
        wired(aws, clock=clock, lease_s=LEASE_S, checkpoint=timeout).dispatch(outbox.ref(item))
    assert helpdesks.state.effects[item.outbox_id] == 1
    # ...and keeps timing out until SQS moves its message to the DLQ.
    sqs = aws.session.client("sqs")
    url = aws.resources.queues["WritebackQueue"]
    for _ in range(max_receives + 1):
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
    assert depth(aws, "WritebackQueue") == 0 and depth(aws, "WritebackDLQ") == 1

    # Within the lease a delivery may still be sending it: its message stays, nothing is queued.
    summary = run_cli(
        capsys, wired(aws, clock=clock, lease_s=LEASE_S), ["outbox", "replay", "--tenant", TENANT]
    )
    assert depth(aws, "WritebackQueue") == 0 and depth(aws, "WritebackDLQ") == 1, (
        "its only message was removed"
    )
    assert (summary.get("requeued_from_dlq"), summary["dlq_messages_removed"]) == ([], 0)

    clock.skip(LEASE_S + 1)
    svc = wired(aws, clock=clock, lease_s=LEASE_S)
    summary = run_cli(capsys, svc, ["outbox", "replay", "--tenant", TENANT])
    deliver(aws, app, svc, rounds=3)

    assert svc.outbox.get(ctx, item.outbox_id).status == "done"
    assert helpdesks.state.effects[item.outbox_id] == 1, (
        "the note the timed-out delivery posted was posted again"
    )
    assert depth(aws, "WritebackDLQ") == 0
    assert (summary["requeued_from_dlq"], summary["dlq_messages_removed"]) == ([item.outbox_id], 1)


def test_the_drain_gets_past_more_kept_messages_than_one_receive_returns(world, capsys):
    aws, helpdesks, _, _ = world
    dead_letters = aws.container.writeback_dead_letters
    other = TenantContext.system("othertenant")
    for n in range(12):  # another tenant's dead items, ahead of ours on the FIFO DLQ
        dead_letters.send(
            other, {"outbox_id": f"obx_other{n}"}, dedupe_id=f"other{n}", group_id=f"t-other-{n}"
        )
    svc = wired(aws)
    item = commit_reply(aws, helpdesks, TENANT, "freshdesk", "Re-link the integration.")
    helpdesks.state.faults.append(Fault(provider="freshdesk", status=404, count=1))
    assert svc.dispatch(outbox.ref(item)).outcome == "dead"

    summary = run_cli(capsys, svc, ["outbox", "replay", "--tenant", TENANT])

    assert summary["replayed"] == [item.outbox_id]
    assert summary["dlq_messages_removed"] == 1, "this tenant's message was never reached"
    assert depth(aws, "WritebackDLQ") == 12  # the other tenant's, put back untouched
