"""Two outbox items with the same text are two effects on the helpdesk: a second escalation approved by the same
person ("Deflect escalation: approve by agent:ann.") or two identical acknowledgements are both posted, never
taken for the first one's earlier attempt and reported `replayed`. Freshdesk and Intercom keep no marker on a
comment, so a retry knows its own earlier comment by author + text: that must still find this item's own comment
(posted once after a crash or a lost answer), never another item's."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from deflect.domain.errors import TransientFailure
from deflect.domain.models import OutboxItem
from deflect.domain.tenancy import TenantContext
from deflect.helpdesk.directory import CONNECTORS
from deflect.helpdesk.models import HelpdeskCredentials
from deflect.services import outbox
from deflect.services.outbox import OutboxRef
from infra.local.helpdesks import BOT, Fault, connect_tenant, credentials_for, start_helpdesks
from infra.local.helpdesks.harness import Clock, ListQueue, fast_http, helpdesk_ticket, service, writeback_aws
from infra.local.helpdesks.inprocess import BASE_URL, InProcessHttp

TENANT = "twinco"
PROVIDERS = ["freshdesk", "intercom", "zendesk", "jira"]
NOTE = "Deflect escalation: approve by agent:ann."
ACK = "Thanks, a person from our team will follow up by 17:00."
# Where each helpdesk's note is written (method, path part), to fail that request.
NOTE_WRITE = {
    "zendesk": ("PUT", ".json"),
    "intercom": ("POST", "/reply"),
    "freshdesk": ("POST", "/notes"),
    "jira": ("POST", "/comment"),
}
LEASE_S = 60.0


class Crash(BaseException):
    """The process dies here."""


@pytest.fixture(scope="module")
def world():
    with writeback_aws(stream=False) as aws, start_helpdesks() as helpdesks:
        connect_tenant(aws.container.secrets, helpdesks, TENANT)
        yield aws, helpdesks


@pytest.fixture
def case(world, request):
    """A ticket on `request.param`'s helpdesk, and its escalation-outcome note maker."""
    aws, helpdesks = world
    provider = request.param
    ticket = helpdesk_ticket(helpdesks, TENANT, provider)
    desk = helpdesks.state.ticket(provider, TENANT, ticket.external_id)

    def escalation_note(execution: str, text: str = NOTE, public: bool = False):
        item = outbox.reply(ticket, text, public=public, caused_by=f"escalation:{execution}")
        aws.container.store.transact(TenantContext.system(TENANT), outbox.writes([item]))
        return item

    yield provider, desk, escalation_note
    helpdesks.state.faults.clear()


def ref(item) -> OutboxRef:
    return OutboxRef(tenant_id=TENANT, outbox_id=item.outbox_id)


def from_deflect(desk, text: str, *, public: bool = False) -> list:
    """Deflect's comments with this text, as the helpdesk shows them (notes for agents, or public replies)."""
    return [
        e
        for e in desk.events
        if e.author in BOT.values()
        and e.public == public
        and e.kind in ("comment", "note")
        and text in e.body
    ]


def write_fault(provider: str, **kw) -> Fault:
    method, path = NOTE_WRITE[provider]
    return Fault(provider=provider, method=method, path_contains=path, **kw)


@pytest.mark.parametrize("case", PROVIDERS, indirect=True)
@pytest.mark.parametrize("public", [False, True], ids=["escalation_note", "acknowledgement"])
def test_a_second_item_with_the_same_text_is_posted(world, case, public):
    aws, helpdesks = world
    _, desk, escalation_note = case
    svc = service(aws, fast_http())
    text = ACK if public else NOTE
    first = escalation_note("esc-1", text, public)
    assert svc.dispatch(ref(first)).outcome == "delivered"
    # Days later, a second escalation on the same ticket, with the same outcome text.
    second = escalation_note("esc-2", text, public)
    assert svc.dispatch(ref(second)).outcome == "delivered"

    assert len(from_deflect(desk, text, public=public)) == 2
    assert helpdesks.state.effects[first.outbox_id] == helpdesks.state.effects[second.outbox_id] == 1
    receipts = [svc.outbox.get(TenantContext.system(TENANT), i.outbox_id).receipt for i in (first, second)]
    assert not any(r["replayed"] for r in receipts)
    assert receipts[0]["effects"][0] != receipts[1]["effects"][0]


@pytest.mark.parametrize("case", PROVIDERS, indirect=True)
def test_a_note_queued_behind_an_identical_one_and_retried_is_still_posted(world, case):
    """A backlog (a helpdesk outage): both notes are queued before the first goes out; the second's first attempt
    fails before reaching the helpdesk, and its retry finds the first note there, made after it was queued."""
    aws, helpdesks = world
    provider, desk, escalation_note = case
    svc = service(aws, fast_http())
    first, second = escalation_note("esc-1"), escalation_note("esc-2")
    assert svc.dispatch(ref(first)).outcome == "delivered"
    helpdesks.state.faults.append(write_fault(provider, status=503, count=10))
    with pytest.raises(TransientFailure):
        svc.dispatch(ref(second))
    helpdesks.state.faults.clear()

    assert svc.dispatch(ref(second)).outcome == "delivered"
    assert len(from_deflect(desk, NOTE)) == 2
    assert helpdesks.state.effects[second.outbox_id] == 1


@pytest.mark.parametrize("case", PROVIDERS, indirect=True)
def test_a_lost_answer_beside_an_identical_note_posts_the_note_once(world, case):
    aws, helpdesks = world
    provider, desk, escalation_note = case
    svc = service(aws, fast_http())
    first = escalation_note("esc-1")
    assert svc.dispatch(ref(first)).outcome == "delivered"
    second = escalation_note("esc-2")
    # The helpdesk makes the second note but its answer is lost: writeback looks before posting again.
    helpdesks.state.faults.append(write_fault(provider, status=502, count=1, mode="after"))

    # Zendesk reports the update it found by its marker as replayed; the others, the comment they posted.
    assert svc.dispatch(ref(second)).outcome in ("delivered", "replayed")
    assert len(from_deflect(desk, NOTE)) == 2
    assert helpdesks.state.effects[second.outbox_id] == 1


@pytest.mark.parametrize("case", PROVIDERS, indirect=True)
def test_a_crash_after_posting_beside_an_identical_note_posts_the_note_once(world, case):
    aws, helpdesks = world
    _, desk, escalation_note = case
    clock = Clock()
    crash_at = {"sent"}

    def checkpoint(step: str) -> None:
        if step in crash_at:
            crash_at.discard(step)
            raise Crash(step)

    svc = service(aws, fast_http(), clock=clock, lease_s=LEASE_S, checkpoint=checkpoint)
    first = escalation_note("esc-1")
    crash_at.clear()
    assert svc.dispatch(ref(first)).outcome == "delivered"
    second = escalation_note("esc-2")
    crash_at.add("sent")
    with pytest.raises(Crash):
        svc.dispatch(ref(second))  # the note is on the helpdesk; the process died before recording it
    clock.skip(LEASE_S + 1)  # the queue redelivers once the lease has run out

    result = svc.dispatch(ref(second))
    assert result.outcome == "replayed"
    assert len(from_deflect(desk, NOTE)) == 2
    assert helpdesks.state.effects[second.outbox_id] == 1


@pytest.mark.parametrize("case", PROVIDERS, indirect=True)
def test_replaying_a_dead_note_whose_last_attempt_landed_beside_an_identical_one_posts_nothing(world, case):
    aws, helpdesks = world
    provider, desk, escalation_note = case
    ctx = TenantContext.system(TENANT)
    queue = ListQueue()
    http = fast_http()
    svc = service(aws, http, queue=queue, max_attempts=1, dead_letters=aws.container.writeback_dead_letters)
    first = escalation_note("esc-1")
    assert svc.dispatch(ref(first)).outcome == "delivered"
    second = escalation_note("esc-2")
    # Its only attempt: every try fails, and the last one reaches the helpdesk but its answer is lost.
    helpdesks.state.faults.append(write_fault(provider, status=503, count=http.max_attempts - 1))
    helpdesks.state.faults.append(write_fault(provider, status=503, count=1, mode="after"))
    assert svc.dispatch(ref(second)).outcome == "dead"
    helpdesks.state.faults.clear()
    aws.queue_messages("WritebackDLQ")
    assert len(from_deflect(desk, NOTE)) == 2

    assert svc.replay(ctx, [second.outbox_id]) == [second.outbox_id]
    [requeued] = queue.take()
    assert svc.dispatch(requeued).outcome == "replayed"
    assert len(from_deflect(desk, NOTE)) == 2
    assert helpdesks.state.effects[second.outbox_id] == 1
    receipts = [svc.outbox.get(ctx, i.outbox_id).receipt for i in (first, second)]
    assert receipts[0]["effects"][0] != receipts[1]["effects"][0]


# ------------------------------------------------------------------ the connectors alone (in-process helpdesks)
TEXT_MATCHED = ["freshdesk", "intercom", "jira"]  # Jira: a site that leaves out comment properties
EFFECT = {"freshdesk": "conversation", "intercom": "part", "jira": "comment"}


def connector(http: InProcessHttp, provider: str):
    creds = HelpdeskCredentials.parse(provider, json.dumps(credentials_for(provider, TENANT, BASE_URL)))
    return CONNECTORS[provider](TENANT, creds, http)


def note_item(desk, provider: str, **kw) -> OutboxItem:
    return OutboxItem(
        tenant_id=TENANT,
        ticket_id="t-1",
        provider=provider,
        external_ticket_id=desk.id,
        kind="internal_note",
        body=NOTE,
        **kw,
    )


@pytest.fixture
def desk_http():
    http = InProcessHttp(sleep=lambda s: None)
    http.state.jira_expands_comment_properties = False
    return http


@pytest.mark.parametrize("provider", TEXT_MATCHED)
def test_a_first_attempt_posts_beside_an_identical_note(desk_http, provider):
    desk = desk_http.state.create_ticket(provider, TENANT)
    connector(desk_http, provider).send(note_item(desk, provider, attempts=1))
    receipt = connector(desk_http, provider).send(note_item(desk, provider, attempts=1))
    assert not receipt.replayed and len(from_deflect(desk, NOTE)) == 2


@pytest.mark.parametrize("provider", TEXT_MATCHED)
def test_a_retry_never_takes_a_note_another_item_posted(desk_http, provider):
    desk = desk_http.state.create_ticket(provider, TENANT)
    first = connector(desk_http, provider).send(note_item(desk, provider, attempts=1))
    retry = note_item(desk, provider, attempts=2)
    receipt = connector(desk_http, provider).send(retry, others=[e for e in first.effects if ":" in e])
    assert not receipt.replayed and len(from_deflect(desk, NOTE)) == 2
    assert desk_http.state.effects[retry.outbox_id] == 1


@pytest.mark.parametrize("provider", TEXT_MATCHED)
def test_a_retry_never_takes_a_note_older_than_its_item(desk_http, provider):
    desk = desk_http.state.create_ticket(provider, TENANT)
    connector(desk_http, provider).send(note_item(desk, provider, attempts=1))
    # The same text from an escalation decided a day later: the first note cannot be one of its attempts.
    later = note_item(desk, provider, attempts=2)
    later = later.model_copy(update={"created_at": later.created_at + timedelta(days=1)})
    receipt = connector(desk_http, provider).send(later)
    assert not receipt.replayed and len(from_deflect(desk, NOTE)) == 2


@pytest.mark.parametrize("provider", TEXT_MATCHED)
def test_a_retry_still_finds_its_own_note_beside_another_items(desk_http, provider):
    desk = desk_http.state.create_ticket(provider, TENANT)
    first = connector(desk_http, provider).send(note_item(desk, provider, attempts=1))
    mine = note_item(desk, provider, attempts=1)
    posted = connector(desk_http, provider).send(mine)  # its answer lost: the item is retried
    others = [e for e in first.effects if e.startswith(EFFECT[provider])]
    again = connector(desk_http, provider).send(mine.model_copy(update={"attempts": 2}), others=others)
    assert again.replayed and again.effects[0] == posted.effects[0]
    assert len(from_deflect(desk, NOTE)) == 2 and desk_http.state.effects[mine.outbox_id] == 1
