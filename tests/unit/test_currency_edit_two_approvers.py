"""An approver cannot move a refund past the two-person line by changing its currency.

Without a limit currency (`policy.two_person_currency` unset) the line is a bare number in the proposal's own
currency, so an edit that changes, adds or drops the currency needs a second, different approver; with one set, an
edit to that currency is compared and any other needs two. Currency codes are ISO 4217's (BTC, XAU, "ABC" are
refused), and writeback's re-check holds a decision stored before this rule to it.

The approval API is called through functions/approval/app.py's handler (tests.unit.test_action_bounds' ApprovalApi,
the real ApprovalService over the in-memory store)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from deflect.domain.models import ActionInput, DecisionPolicy, RequestedAction, TenantConfig, Ticket
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemoryEvidenceStore
from deflect.escalation import policy
from deflect.escalation.models import TaskDecision
from deflect.escalation.records import TaskDecisions
from deflect.repositories import TenantConfigs, save
from deflect.services import outbox
from deflect.services.audit import AuditLog
from deflect.services.writeback import WRITEBACK_ENQUEUED, approval_refusal
from tests.unit.test_action_bounds import ApprovalApi
from tests.unit.triage_fakes import Store

DEFAULT = DecisionPolicy()  # a 500 line, no limit currency
IN_USD = DecisionPolicy(two_person_currency="USD")
BIG_EUR = RequestedAction(kind="refund", amount=Decimal("900"), currency="EUR")


def refund(amount: str, currency: str | None) -> RequestedAction:
    return RequestedAction(kind="refund", amount=Decimal(amount), currency=currency)


@pytest.fixture
def approval(monkeypatch):
    from deflect.observability import metrics

    yield ApprovalApi(monkeypatch)
    metrics().clear_metrics()


# ------------------------------------------------------------------ the rule


@pytest.mark.parametrize(
    ("proposed", "edited"),
    [
        pytest.param(BIG_EUR, refund("499", "KWD"), id="900 EUR edited to 499 KWD (~1,500 EUR)"),
        pytest.param(refund("100", "EUR"), refund("100", "JPY"), id="currency replaced, amount kept"),
        pytest.param(refund("900", None), refund("499", "KWD"), id="currency added"),
        pytest.param(BIG_EUR, refund("499", None), id="currency dropped"),
    ],
)
def test_without_a_limit_currency_an_edit_that_changes_the_currency_needs_two_approvers(proposed, edited):
    assert policy.needs_two_people(edited, DEFAULT, proposed)


def test_an_edit_that_keeps_the_currency_is_measured_against_the_line_as_before():
    assert not policy.needs_two_people(refund("499", "EUR"), DEFAULT, BIG_EUR)
    assert policy.needs_two_people(refund("501", "EUR"), DEFAULT, BIG_EUR)
    # a proposal (no edit) keeps its own currency's line, as the README says
    assert not policy.needs_two_people(refund("499", "KWD"), DEFAULT)


def test_with_a_limit_currency_an_edit_into_it_is_compared_and_any_other_needs_two():
    assert not policy.needs_two_people(refund("499", "USD"), IN_USD, BIG_EUR)
    assert policy.needs_two_people(refund("501", "USD"), IN_USD, BIG_EUR)
    assert policy.needs_two_people(refund("10", "GBP"), IN_USD, refund("10", "USD"))
    assert policy.needs_two_people(refund("10", None), IN_USD, BIG_EUR)  # dropped: no longer says what it is


# ------------------------------------------------------------------ currency codes


@pytest.mark.parametrize("code", ["XAU", "BTC", "ABC", "XTS", "XXX"])
def test_a_code_that_is_not_an_iso_4217_currency_is_refused(code):
    with pytest.raises(ValidationError) as refused:
        ActionInput(kind="refund", amount=Decimal("10"), currency=code)
    assert f"{code} is not an ISO 4217 currency code" in str(refused.value)
    with pytest.raises(ValidationError):
        DecisionPolicy(two_person_currency=code)


@pytest.mark.parametrize("code", ["EUR", "usd", "KWD", "JPY", "XOF", " gbp "])
def test_iso_4217_currencies_are_accepted_upper_cased(code):
    assert ActionInput(currency=code).currency == code.strip().upper()


def test_a_limit_currency_stored_before_the_iso_check_loads_and_needs_two_for_every_amount():
    stored = TenantConfig.model_validate(
        {"tenant_id": "acme", "display_name": "Acme", "policy": {"two_person_currency": "EUD"}}
    )
    assert stored.policy.two_person_currency == "EUD"
    assert policy.needs_two_people(refund("1", "EUR"), stored.policy)


# ------------------------------------------------------------------ the approval API


def test_one_approver_changing_the_currency_gets_a_decision_awaiting_a_second_approver(approval):
    task_id = approval.task(BIG_EUR)
    body = {
        "decision_id": "d-1",
        "outcome": "edit",
        "action": {"kind": "refund", "amount": "499", "currency": "KWD"},
    }

    status, decided = approval.decide(task_id, body)

    assert status == 200
    assert decided["approvals_required"] == 2 and decided["awaiting_second_approval"] is True
    assert approval.ports.decisions.for_task(approval.ctx, task_id).approvals_required == 2


def test_one_approver_editing_within_the_same_currency_under_the_line_still_decides_alone(approval):
    task_id = approval.task(BIG_EUR)
    body = {
        "decision_id": "d-1",
        "outcome": "edit",
        "action": {"kind": "refund", "amount": "450", "currency": "EUR"},
    }

    status, decided = approval.decide(task_id, body)

    assert status == 200
    assert decided["approvals_required"] == 1 and decided["awaiting_second_approval"] is False


@pytest.mark.parametrize("code", ["XAU", "BTC", "ABC"])
def test_an_edit_into_a_code_that_is_no_currency_is_refused_saying_why(approval, code):
    task_id = approval.task(BIG_EUR)
    body = {
        "decision_id": "d-1",
        "outcome": "edit",
        "action": {"kind": "refund", "amount": "10", "currency": code},
    }

    status, refused = approval.decide(task_id, body)

    assert status == 422 and refused["fields"] == ["body.action.currency"]
    assert refused["problems"] == [
        f"body.action.currency: {code} is not an ISO 4217 currency code (e.g. EUR, USD, GBP)"
    ]
    assert approval.nothing_decided(task_id)


def test_approving_a_stored_proposal_in_a_code_that_is_no_currency_is_refused(approval):
    task_id = approval.task(refund("10", "BTC"))  # stored before codes were checked

    status, refused = approval.decide(task_id, {"decision_id": "d-1", "outcome": "approve"})

    assert status == 400 and "currency" in refused["detail"]
    assert approval.nothing_decided(task_id)


# ------------------------------------------------------------------ writeback's re-check


def _stored_currency_edit(approvals_required: int, approvals: list[str]) -> tuple[Store, AuditLog, object]:
    """A decision as the approval API stored it before this rule (one approver, approvals_required 1) for a
    900 EUR refund edited to 499 KWD, and the account action escalation queued for it."""
    store = Store()
    audit = AuditLog(store, MemoryEvidenceStore())
    ctx = TenantContext.system("acme")
    save(store, ctx, [TenantConfigs(store).save_write(TenantConfig(tenant_id="acme", display_name="Acme"))])
    ticket = Ticket(tenant_id="acme", ticket_id="t-1", provider="zendesk", external_id="1")
    edited = refund("499", "KWD")
    record = TaskDecision(
        tenant_id="acme",
        task_id="task_1",
        ticket_id="t-1",
        decision_id="d-1",
        outcome="edit",
        actor=approvals[-1],
        actor_roles=["approver"],
        action=edited,
        diff={"action": {"amount": {"from": "900", "to": "499"}, "currency": {"from": "EUR", "to": "KWD"}}},
        approvals=approvals,
        approvals_required=approvals_required,
    )
    audit.append(ctx, "t-1", "task.decided", {"decision_id": "d-1"}, writes=TaskDecisions.writes(record))
    item = outbox.new_item(ticket, "account_action", action=edited, caused_by="escalation:esc-1")
    payload = {"decision_id": "d-1", "outcome": "edit", "outbox_ids": [item.outbox_id]}
    audit.append(ctx, "t-1", WRITEBACK_ENQUEUED, payload, writes=outbox.writes([item]))
    return store, audit, item


def test_writeback_refuses_a_stored_currency_edit_that_one_approver_committed():
    store, audit, item = _stored_currency_edit(1, ["agent:ann"])

    refusal = approval_refusal(store, audit, TenantContext.system("acme"), item)

    assert refusal == "decision d-1 has 1 of 2 approvals"


def test_writeback_sends_a_currency_edit_that_two_people_approved():
    store, audit, item = _stored_currency_edit(2, ["agent:ann", "agent:bob"])

    assert approval_refusal(store, audit, TenantContext.system("acme"), item) is None
