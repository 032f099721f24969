"""An account action reaches the CRM only when people approved exactly that action: the escalation decision that
caused the outbox item is on record for the same ticket, approves the same action and has the approvals the
tenant's policy asks for. Anything else (a forged or copied item, an action changed after approval, a decision
short of an approver) is refused: dead, audited and in the DLQ, and the CRM hears nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from deflect.domain.models import RequestedAction, Ticket
from deflect.domain.tenancy import TenantContext
from deflect.services import outbox
from deflect.services.outbox import OutboxRef
from infra.local.helpdesks.harness import Clock, ListQueue, fast_http, service
from tests.integration.writeback_support import commit_account_action, helpdesk_world

TENANT = "guardco"
REFUND = RequestedAction(kind="refund", amount=Decimal("50"), currency="EUR", target="inv-7")
LARGE_REFUND = RequestedAction(kind="refund", amount=Decimal("900"), currency="EUR", target="inv-8")


@pytest.fixture(scope="module")
def world():
    with helpdesk_world(TENANT) as world:
        yield world


@pytest.fixture
def helpdesks(world):
    _, handle = world
    handle.state.faults.clear()
    return handle


_tickets = iter(range(1, 10_000))


def new_ticket() -> Ticket:
    n = next(_tickets)
    return Ticket(tenant_id=TENANT, ticket_id=f"t-guard-{n}", provider="zendesk", external_id=str(7000 + n))


def crm_calls(helpdesks, item) -> list:
    return [c for c in helpdesks.state.calls if c.provider == "crm" and c.outbox_id == item.outbox_id]


def dispatch(svc, item):
    return svc.dispatch(OutboxRef(tenant_id=TENANT, outbox_id=item.outbox_id))


def audit_types(aws, ticket_id: str) -> list[tuple[str, dict]]:
    _, events = aws.container.audit.load(TenantContext.system(TENANT), ticket_id)
    return [(e.type, e.payload) for e in events if e is not None]


# ---------------------------------------------------------------------------------------------- approved
def test_an_approved_refund_reaches_the_crm_once(world, helpdesks):
    aws, _ = world
    svc = service(aws, fast_http())
    item = commit_account_action(aws, new_ticket(), REFUND)
    result = dispatch(svc, item)
    assert result.outcome == "delivered", result
    assert helpdesks.state.effects[item.outbox_id] == 1
    assert svc.outbox.get(TenantContext.system(TENANT), item.outbox_id).status == "done"
    assert dispatch(svc, item).outcome == "already_handled"
    assert len(crm_calls(helpdesks, item)) == 1


def test_a_large_refund_with_two_approvers_reaches_the_crm(world, helpdesks):
    aws, _ = world
    svc = service(aws, fast_http())
    item = commit_account_action(aws, new_ticket(), LARGE_REFUND, approvals=("agent:ann", "agent:bob"))
    assert dispatch(svc, item).outcome == "delivered"
    assert helpdesks.state.effects[item.outbox_id] == 1


# ---------------------------------------------------------------------------------------------- refused
def forged(aws):
    """An account action written straight to the outbox: no decision caused it."""
    ticket = new_ticket()
    item = outbox.new_item(ticket, "account_action", action=REFUND, caused_by="escalation:esc-forged")
    aws.container.store.transact(TenantContext.system(TENANT), outbox.writes([item]))
    return item


def copied(aws):
    """A second refund under a new outbox id, borrowing a real approval: approved once means sent once."""
    original = commit_account_action(aws, new_ticket(), REFUND)
    copy = original.model_copy(update={"outbox_id": original.outbox_id + "x", "version": 0})
    aws.container.store.transact(TenantContext.system(TENANT), outbox.writes([copy]))
    return copy


def changed_after_approval(aws):
    """The approved item, its amount raised afterwards."""
    item = commit_account_action(aws, new_ticket(), REFUND)
    bigger = item.model_copy(update={"action": REFUND.model_copy(update={"amount": Decimal("5000")})})
    svc_outbox = service(aws, fast_http()).outbox
    aws.container.store.put(TenantContext.system(TENANT), svc_outbox.save_write(bigger))
    return svc_outbox.get(TenantContext.system(TENANT), item.outbox_id)


def decided_by_an_agent(aws):
    """A refund needs an approver; this decision came from someone holding only the agent role."""
    return commit_account_action(aws, new_ticket(), REFUND, roles=("agent",))


def large_refund_with_one_approval(aws):
    """Above the tenant's 500 line two different people must approve; the record has one."""
    return commit_account_action(aws, new_ticket(), LARGE_REFUND, approvals=("agent:ann",))


def one_person_twice(aws):
    """Two approvals by the same person are one approval."""
    return commit_account_action(aws, new_ticket(), LARGE_REFUND, approvals=("agent:ann", "agent:ann"))


def another_tickets_decision(aws):
    """The writeback step carried out a decision made on a different ticket."""
    return commit_account_action(aws, new_ticket(), REFUND, decision_ticket=new_ticket())


@pytest.mark.parametrize(
    ("make", "why"),
    [
        pytest.param(make, why, id=make.__name__)
        for make, why in [
            (forged, "no escalation decision on record"),
            (copied, "no escalation decision on record"),
            (changed_after_approval, "approved a different action"),
            (decided_by_an_agent, "not made by an approver"),
            (large_refund_with_one_approval, "has 1 of 2 approvals"),
            (one_person_twice, "has 1 of 2 approvals"),
            (another_tickets_decision, "not on record for this ticket"),
        ]
    ],
)
def test_an_account_action_without_a_matching_approval_is_refused_and_never_sent(world, helpdesks, make, why):
    aws, _ = world
    queue = ListQueue()
    svc = service(
        aws, fast_http(), clock=Clock(), queue=queue, dead_letters=aws.container.writeback_dead_letters
    )
    ctx = TenantContext.system(TENANT)
    item = make(aws)

    result = dispatch(svc, item)
    assert result.outcome == "dead" and result.detail.startswith("refused: "), result
    stored = svc.outbox.get(ctx, item.outbox_id)
    assert stored.status == "dead" and stored.last_error.startswith("refused: ") and why in stored.last_error
    assert stored.attempts == 1  # refused at once, not retried up to max_attempts
    assert crm_calls(helpdesks, item) == [] and helpdesks.state.effects[item.outbox_id] == 0
    [(_, audited)] = [(t, p) for t, p in audit_types(aws, item.ticket_id) if t == "writeback.dead"]
    assert audited["outbox_id"] == item.outbox_id and audited["reason"].startswith("refused: ")
    letters = [m for m in aws.queue_messages("WritebackDLQ") if m.get("outbox_id") == item.outbox_id]
    assert len(letters) == 1 and letters[0]["reason"].startswith("refused: ")

    # A redelivered message changes nothing; an operator's replay is refused again, still without a CRM call.
    assert dispatch(svc, item).outcome == "already_handled"
    assert svc.replay(ctx, [item.outbox_id]) == [item.outbox_id]
    [again] = queue.take()
    assert svc.dispatch(again).outcome == "dead"
    assert crm_calls(helpdesks, item) == [] and helpdesks.state.effects[item.outbox_id] == 0
    aws.queue_messages("WritebackDLQ")  # the replay's dead letter: not for the next test


def test_the_original_of_a_copied_approval_still_goes_out_once(world, helpdesks):
    aws, _ = world
    svc = service(aws, fast_http())
    original = commit_account_action(aws, new_ticket(), REFUND)
    copy = original.model_copy(update={"outbox_id": original.outbox_id + "x", "version": 0})
    aws.container.store.transact(TenantContext.system(TENANT), outbox.writes([copy]))
    assert dispatch(svc, copy).outcome == "dead"
    assert dispatch(svc, original).outcome == "delivered"
    assert helpdesks.state.effects[original.outbox_id] == 1 and helpdesks.state.effects[copy.outbox_id] == 0
