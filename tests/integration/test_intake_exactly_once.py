"""Exactly once under concurrency and crashes: duplicates never create a second ticket, message or triage job,
and a failure at any step is repaired by the provider's retry without losing the message."""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from deflect.domain.errors import DeflectError, TransientFailure
from deflect.webhooks import sign
from tests.integration.intake_support import moto_harness, sample


@pytest.fixture(scope="module")
def harness():
    yield from moto_harness()


CONTAINERS = 5  # like five warm Lambda containers receiving the same webhook


@pytest.fixture(scope="module")
def acme(harness):
    return harness.create_tenant("acme")


def test_fifty_concurrent_duplicate_deliveries_make_one_ticket_one_message_one_job(harness, acme):
    body = sample("zendesk", "trigger_ticket_created")
    headers = sign("zendesk", acme.secrets["zendesk"], body, delivery_id="inv-storm-1")
    containers = [harness.container(fresh=True) for i in range(CONTAINERS)]
    harness.drain_triage_jobs()

    def deliver(n: int):
        try:
            return containers[n % CONTAINERS].intake.receive_webhook("zendesk", "acme", headers, body)
        except DeflectError as error:  # a retryable 429 is a legitimate answer to a duplicate in flight
            return type(error).__name__

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(deliver, range(50)))

    print("answers:", Counter(a if isinstance(a, str) else a.status_code for a in answers))
    replies = [a for a in answers if not isinstance(a, str)]
    assert replies and all(r.status_code == 200 for r in replies), Counter(map(str, answers))
    assert (
        len({json.dumps(r.body, sort_keys=True) for r in replies}) == 1
    )  # every duplicate got the first answer
    # The others got a retryable answer: 429 for a duplicate still in flight, or (rarely, when in-process moto
    # fails a dedupe-store call under 50 threads) 503. The provider retries either, and gets the first answer.
    assert set(a for a in answers if isinstance(a, str)) <= {"Throttled", "TransientFailure"}
    retried = containers[0].intake.receive_webhook("zendesk", "acme", headers, body)
    assert json.dumps(retried.body, sort_keys=True) == json.dumps(replies[0].body, sort_keys=True)
    ticket_id = replies[0].body["ticket_id"]
    assert len(harness.tickets("acme", ticket_id)) == 1
    assert len(harness.messages("acme", ticket_id)) == 1
    jobs = harness.drain_triage_jobs()
    assert len(jobs) == 1 and jobs[0]["ticket_id"] == ticket_id


class FlakyQueue:
    """The triage queue failing on demand: before the send, or after it (the send happened, we crashed)."""

    def __init__(self, real, mode: str) -> None:
        self.real, self.mode, self.calls = real, mode, 0

    def send(self, ctx, body, *, dedupe_id=None, group_id=None):
        self.calls += 1
        if self.calls == 1 and self.mode == "before_send":
            raise TransientFailure("queue unavailable")
        result = self.real.send(ctx, body, dedupe_id=dedupe_id)
        if self.calls == 1 and self.mode == "after_send":
            raise TransientFailure("crashed after the send")
        return result


@pytest.mark.parametrize("mode", ["before_send", "after_send"])
def test_a_failure_around_the_queue_send_is_repaired_by_the_retry(harness, acme, mode):
    body = sample("generic", "ticket_created").replace(b"HD-90817", f"HD-FAIL-{mode}".encode())
    headers = sign("generic", acme.secrets["generic"], body, delivery_id=f"fail-{mode}")
    real = harness.container()
    flaky = FlakyQueue(real.triage_queue, mode)
    container = harness.container(triage_queue=flaky)
    harness.drain_triage_jobs()

    with pytest.raises(TransientFailure):  # the provider sees a 503 and retries
        container.intake.receive_webhook("generic", "acme", headers, body)
    retried = container.intake.receive_webhook("generic", "acme", headers, body)

    assert retried.status_code == 200
    ticket_id = retried.body["ticket_id"]
    assert len(harness.messages("acme", ticket_id)) == 1  # the retry did not store the message again
    jobs = harness.drain_triage_jobs()
    # Never lost; at most re-sent with the same dedupe id (consumers drop the repeat).
    assert {j["dedupe_id"] for j in jobs} == {retried.body["message_id"]}
    assert len(jobs) == (2 if mode == "after_send" else 1)


def test_a_crash_before_the_ticket_write_leaves_nothing_half_done(harness, acme):
    body = sample("generic", "ticket_created").replace(b"HD-90817", b"HD-CRASH-EVIDENCE")
    headers = sign("generic", acme.secrets["generic"], body, delivery_id="crash-audit")
    real = harness.container()

    class BrokenAudit:
        def append(self, *args, **kwargs):
            raise TransientFailure("audit store unavailable")

    broken = harness.container(audit=BrokenAudit())
    with pytest.raises(TransientFailure):
        broken.intake.receive_webhook("generic", "acme", headers, body)
    from deflect.services.intake import ticket_id_for

    ticket_id = ticket_id_for("generic", "HD-CRASH-EVIDENCE")
    assert harness.tickets("acme", ticket_id) == [] and harness.messages("acme", ticket_id) == []
    retried = real.intake.receive_webhook("generic", "acme", headers, body)
    assert retried.status_code == 200 and len(harness.messages("acme", ticket_id)) == 1


def test_dynamodb_throttling_answers_429_and_the_retry_stores_exactly_once(harness, acme):
    """A throttled table write: the helpdesk gets 429 + Retry-After, nothing is half-stored, its retry lands once."""
    from botocore.exceptions import ClientError

    from deflect.bootstrap import container as handler_container
    from deflect.services.intake import ticket_id_for

    body = sample("generic", "ticket_created").replace(b"HD-90817", b"HD-THROTTLED")
    headers = sign("generic", acme.secrets["generic"], body, delivery_id="throttled-1")
    harness.drain_triage_jobs()
    events = handler_container().client("dynamodb").meta.events

    def throttle(**kwargs):
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
            "TransactWriteItems",
        )

    events.register("before-call.dynamodb.TransactWriteItems", throttle, unique_id="throttle-test")
    try:
        refused = harness.webhook("generic", "acme", body, headers)
    finally:
        events.unregister("before-call.dynamodb.TransactWriteItems", unique_id="throttle-test")

    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    assert refused.body == {"error": "throttled", "message": "too many requests"}
    ticket_id = ticket_id_for("generic", "HD-THROTTLED")
    assert harness.tickets("acme", ticket_id) == [] and harness.messages("acme", ticket_id) == []
    assert harness.drain_triage_jobs() == []

    accepted = harness.webhook("generic", "acme", body, headers)  # the provider's retry
    assert accepted.status == 200 and accepted.body["ticket_id"] == ticket_id
    assert len(harness.tickets("acme", ticket_id)) == 1 and len(harness.messages("acme", ticket_id)) == 1
    assert [j["ticket_id"] for j in harness.drain_triage_jobs()] == [ticket_id]
