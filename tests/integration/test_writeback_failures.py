"""Failures never drop an effect silently: 429/Retry-After is respected, 5xx are retried with backoff, a
poison item ends in the DLQ after its attempts and `deflect outbox replay` delivers it once."""

from __future__ import annotations

import json

import pytest

from deflect.domain.errors import Throttled, TransientFailure
from deflect.domain.models import OutboxItem, Ticket
from deflect.domain.tenancy import TenantContext
from deflect.services import outbox
from deflect.services.outbox import OutboxRef, ref_from_message
from infra.local.helpdesks import Fault
from infra.local.helpdesks.harness import (
    Clock,
    ListQueue,
    commit_reply,
    fast_http,
    helpdesk_ticket,
    service,
)
from tests.integration.writeback_support import helpdesk_world

TENANT = "failco"


@pytest.fixture(scope="module")
def world():
    with helpdesk_world(TENANT) as world:
        yield world


@pytest.fixture
def helpdesks(world):
    _, handle = world
    handle.state.faults.clear()
    return handle


def new_reply(aws, helpdesks, provider: str = "zendesk"):
    item = commit_reply(aws, helpdesks, TENANT, provider, "Please update to 4.2.")
    return item, OutboxRef(tenant_id=TENANT, outbox_id=item.outbox_id)


def test_a_429_is_waited_out_for_as_long_as_retry_after_says(world, helpdesks):
    aws, _ = world
    sleeps: list[float] = []
    svc = service(aws, fast_http(sleeps=sleeps, rng=lambda: 0.0))
    item, ref = new_reply(aws, helpdesks)
    helpdesks.state.faults.append(Fault(provider="zendesk", status=429, retry_after="3", count=1))
    assert svc.dispatch(ref).outcome == "delivered"
    assert 3.0 in sleeps
    assert helpdesks.state.effects[item.outbox_id] == 1


def test_a_long_retry_after_goes_back_to_the_queue_without_using_an_attempt(world, helpdesks):
    aws, _ = world
    now = [0.0]
    svc = service(aws, fast_http(bucket_clock=lambda: now[0]))
    item, ref = new_reply(aws, helpdesks, "intercom")
    helpdesks.state.faults.append(Fault(provider="intercom", status=429, retry_after="120", count=1))
    with pytest.raises(Throttled) as raised:
        svc.dispatch(ref)
    # Intercom gives the window's reset time, in whole seconds
    assert 118 <= raised.value.retry_after_s <= 120
    stored = svc.outbox.get(TenantContext.system(TENANT), item.outbox_id)
    assert (stored.status, stored.attempts) == ("failed", 0)
    with pytest.raises(Throttled):
        svc.dispatch(ref)  # the tenant is still paused: not even one request goes out
    now[0] += 121
    assert svc.dispatch(ref).outcome == "delivered"
    assert helpdesks.state.effects[item.outbox_id] == 1


def test_5xx_are_retried_with_growing_backoff(world, helpdesks):
    aws, _ = world
    sleeps: list[float] = []
    svc = service(aws, fast_http(sleeps=sleeps))
    item, ref = new_reply(aws, helpdesks, "freshdesk")
    helpdesks.state.faults.append(
        Fault(provider="freshdesk", status=503, method="POST", path_contains="/reply", count=2)
    )
    helpdesks.state.faults.append(Fault(provider="freshdesk", status=500, method="GET", count=2))
    assert svc.dispatch(ref).outcome == "delivered"
    assert len(sleeps) == 4 and sleeps[0] < sleeps[1]
    assert helpdesks.state.effects[item.outbox_id] == 1


def test_a_timeout_after_the_helpdesk_applied_the_reply_does_not_post_it_twice(world, helpdesks):
    aws, _ = world
    http = fast_http()
    http.timeout_s = 0.3
    svc = service(aws, http)
    item, ref = new_reply(aws, helpdesks, "jira")
    helpdesks.state.faults.append(
        Fault(provider="jira", method="POST", path_contains="/comment", mode="hang_after", delay_s=0.6)
    )
    assert svc.dispatch(ref).outcome == "delivered"
    assert helpdesks.state.effects[item.outbox_id] == 1


def test_a_poison_item_reaches_the_dlq_and_is_replayable(world, helpdesks, capsys):
    aws, _ = world
    clock = Clock()
    queue = ListQueue()
    svc = service(
        aws,
        fast_http(),
        clock=clock,
        max_attempts=3,
        queue=queue,
        dead_letters=aws.container.writeback_dead_letters,
    )
    item, ref = new_reply(aws, helpdesks, "freshdesk")
    helpdesks.state.faults.append(Fault(provider="freshdesk", status=500, count=1000))
    for _ in range(2):
        with pytest.raises(TransientFailure):
            svc.dispatch(ref)
    result = svc.dispatch(ref)  # the third attempt is the last
    assert result.outcome == "dead"
    [letter] = aws.queue_messages("WritebackDLQ")
    assert (letter["tenant_id"], letter["outbox_id"], letter["attempts"]) == (TENANT, item.outbox_id, 3)
    assert helpdesks.state.effects[item.outbox_id] == 0
    # The DLQ message is still there for the alarm (queue_messages consumed it: put it back as SQS would hold it).
    aws.container.writeback_dead_letters.send(
        TenantContext.system(TENANT), {k: v for k, v in letter.items() if k != "tenant_id"}
    )

    # The operator sees it...
    lines = run_cli(capsys, svc, ["outbox", "list", "--tenant", TENANT, "--status", "dead"])
    assert [line["outbox_id"] for line in lines[:-1]] == [item.outbox_id]
    assert lines[-1]["by_status"] == {"dead": 1}

    # ...fixes the cause, and replays it: back to pending, re-queued, the DLQ cleared.
    helpdesks.state.faults.clear()
    [summary] = run_cli(capsys, svc, ["outbox", "replay", "--tenant", TENANT])
    assert summary["replayed"] == [item.outbox_id] and summary["dlq_messages_removed"] == 1
    assert aws.queue_messages("WritebackDLQ") == []
    [requeued] = queue.take()
    assert (requeued.tenant_id, requeued.outbox_id) == (ref.tenant_id, ref.outbox_id)
    assert svc.dispatch(requeued).outcome == "delivered"
    assert helpdesks.state.effects[item.outbox_id] == 1
    assert svc.dispatch(requeued).outcome == "already_handled"  # a duplicate message changes nothing


def own_comments(helpdesks, item) -> list:
    """What Deflect posted on the local Zendesk ticket for this item (replies and notes)."""
    ticket = helpdesks.state.ticket("zendesk", TENANT, item.external_ticket_id)
    return [e for e in ticket.events if e.marker == item.outbox_id and e.kind in ("comment", "note")]


@pytest.mark.parametrize("case", ["internal_note", "public_reply_unstamped", "stored_before_dispatches"])
def test_replaying_an_item_whose_last_attempt_landed_does_not_post_it_again(world, helpdesks, case):
    """The last allowed attempt reaches Zendesk but its answer is lost (5xx after applying), so the item is dead
    although its note / reply is on the ticket. The operator replays it: the replay finds it, posts nothing."""
    aws, _ = world
    queue = ListQueue()
    svc = service(
        aws,
        fast_http(),
        clock=Clock(),
        max_attempts=2,
        queue=queue,
        dead_letters=aws.container.writeback_dead_letters,
    )
    ctx = TenantContext.system(TENANT)
    ticket = helpdesk_ticket(helpdesks, TENANT, "zendesk")
    if case == "public_reply_unstamped":
        # Intake never learned the helpdesk's version: no `safe_update`, so nothing but our own look stops a repeat.
        ticket = ticket.model_copy(update={"external_updated_at": None})
        item = outbox.reply(ticket, "Your refund has been issued.")
    else:
        item = outbox.reply(ticket, "Deflect escalation: approve by agent:ann.", public=False)
    aws.container.store.transact(ctx, outbox.writes([item]))
    ref = OutboxRef(tenant_id=TENANT, outbox_id=item.outbox_id)
    helpdesks.state.faults.append(Fault(provider="zendesk", method="PUT", status=503, count=4))
    with pytest.raises(TransientFailure):
        svc.dispatch(ref)  # attempt 1: nothing applied
    helpdesks.state.faults.append(Fault(provider="zendesk", method="PUT", status=503, count=3))
    helpdesks.state.faults.append(Fault(provider="zendesk", method="PUT", status=503, count=1, mode="after"))
    assert svc.dispatch(ref).outcome == "dead"  # attempt 2, the last: applied, the answer lost
    assert len(own_comments(helpdesks, item)) == 1
    helpdesks.state.faults.clear()
    if case == "stored_before_dispatches":
        # As an item written before `dispatches` existed reads back: only its attempts tell it was sent.
        dead = svc.outbox.get(ctx, item.outbox_id)
        aws.container.store.put(ctx, svc.outbox.save_write(dead.model_copy(update={"dispatches": 0})))
        assert OutboxItem.model_validate(
            {k: v for k, v in item.model_dump(mode="json").items() if k != "dispatches"}
        ).dispatches == 0

    assert svc.replay(ctx, [item.outbox_id]) == [item.outbox_id]
    [requeued] = queue.take()
    result = svc.dispatch(requeued)
    assert result.outcome == "replayed", result
    posted = own_comments(helpdesks, item)
    assert len(posted) == 1 and helpdesks.state.effects[item.outbox_id] == 1
    assert [e.public for e in posted] == [case == "public_reply_unstamped"]
    assert svc.outbox.get(ctx, item.outbox_id).status == "done"
    aws.queue_messages("WritebackDLQ")  # the dead letter of attempt 2: not for later tests


def test_an_item_without_credentials_for_its_helpdesk_goes_to_the_dlq(world, helpdesks):
    aws, _ = world
    svc = service(aws, fast_http(), dead_letters=aws.container.writeback_dead_letters)
    ticket = Ticket(tenant_id="nocreds", ticket_id="t-1", provider="zendesk", external_id="1")
    # A reply: an account action would be refused before its connector is looked up (test_writeback_guards.py).
    item = outbox.reply(ticket, "Please update to 4.2.")
    aws.container.store.transact(TenantContext.system("nocreds"), outbox.writes([item]))
    assert svc.dispatch(OutboxRef(tenant_id="nocreds", outbox_id=item.outbox_id)).outcome == "dead"
    [letter] = [m for m in aws.queue_messages("WritebackDLQ") if m["outbox_id"] == item.outbox_id]
    assert letter["outbox_id"] == item.outbox_id


def test_sweep_requeues_an_item_whose_enqueue_was_lost(world, helpdesks):
    aws, _ = world
    clock = Clock()
    queue = ListQueue()
    svc = service(aws, fast_http(), clock=clock, queue=queue)
    item, _ = new_reply(aws, helpdesks, "intercom")  # committed, but the process died before enqueue
    clock.skip(600)
    assert item.outbox_id in svc.sweep(TenantContext.system(TENANT), older_than_s=300)
    assert [(r.outbox_id, r.ticket_id) for r in queue.take()] == [(item.outbox_id, item.ticket_id)]


def run_cli(capsys, svc, argv: list[str]) -> list[dict]:
    from deflect.cli import build_parser

    args = build_parser().parse_args(argv)
    args.service = svc
    capsys.readouterr()
    args.func(args)
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_queue_messages_from_enqueue_parse_back(world):
    aws, _ = world
    ctx = TenantContext.system(TENANT)
    ticket = Ticket(tenant_id=TENANT, ticket_id="t-q", provider="zendesk", external_id="9")
    item = outbox.reply(ticket, "hi")
    outbox.enqueue(aws.container.writeback_queue, ctx, [item])
    [message] = aws.queue_messages("WritebackQueue")
    assert ref_from_message(json.dumps(message)) == OutboxRef(
        tenant_id=TENANT, outbox_id=item.outbox_id, ticket_id="t-q"
    )
