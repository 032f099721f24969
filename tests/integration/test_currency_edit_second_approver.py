"""The audit's case end to end (the escalation state machine's real ASL under moto, the real approval API): one
approver takes a 900 EUR refund, which needs two people, and edits only its currency (499 KWD, about 1,500 EUR).
With no limit currency configured that edit needs a second, different approver: nothing is queued for the CRM
until the second approval, and then exactly the edited refund is. An edit that keeps the currency and stays under
the line is still one approver's decision."""

from __future__ import annotations

from decimal import Decimal

from deflect.domain.models import RequestedAction
from tests.integration.conftest_escalation import escalation_fixture  # noqa: F401

APPROVER = ("agent", "approver")
BIG = RequestedAction(kind="refund", amount=Decimal("900"), currency="EUR")


def account_actions(h, tenant: str) -> list[RequestedAction]:
    return [i.action for i in h.outbox_items(tenant) if i.kind == "account_action"]


def test_an_approver_changing_the_currency_of_a_large_refund_needs_a_second_approver(escalation):
    h = escalation
    tenant = h.tenant("currency", threshold=Decimal("500"))
    ticket = h.ticket(tenant)
    arn = h.escalate(ticket, h.decision(ticket, action=BIG))
    first = h.wait_task(tenant, ticket.ticket_id)
    assert first["approvals_required"] == 2

    status, body = h.decide(
        tenant,
        first["task_id"],
        "edit",
        roles=APPROVER,
        sub="ann",
        action={"kind": "refund", "amount": "499", "currency": "KWD"},
    )

    assert status == 200, body
    assert body["approvals_required"] == 2 and body["awaiting_second_approval"] is True
    second = h.wait_task(tenant, ticket.ticket_id, exclude={first["task_id"]})
    assert second["second_approval"] is True and second["approvals"] == ["agent:ann"]
    assert second["proposed_action"]["currency"] == "KWD"
    assert account_actions(h, tenant) == []  # nothing for the CRM yet
    assert "EnqueueWriteback" not in h.states_entered(arn)
    assert (
        h.decide(tenant, second["task_id"], "approve", roles=APPROVER, sub="ann")[0] == 403
    )  # the same person

    status, body = h.decide(tenant, second["task_id"], "approve", roles=APPROVER, sub="bob")

    assert status == 200 and body["approvals"] == 2
    assert h.wait_execution(arn)["status"] == "SUCCEEDED"
    assert "SecondApproval" in h.states_entered(arn)
    assert account_actions(h, tenant) == [
        RequestedAction(kind="refund", amount=Decimal("499"), currency="KWD")
    ]


def test_an_edit_into_a_code_that_is_no_currency_is_refused_and_the_task_stays_open(escalation):
    h = escalation
    tenant = h.tenant("gold", threshold=Decimal("500"))
    ticket = h.ticket(tenant)
    h.escalate(ticket, h.decision(ticket, action=BIG))
    first = h.wait_task(tenant, ticket.ticket_id)

    status, body = h.decide(
        tenant,
        first["task_id"],
        "edit",
        roles=APPROVER,
        sub="ann",
        action={"kind": "refund", "amount": "1", "currency": "XAU"},
    )

    assert status == 422 and body["fields"] == ["body.action.currency"]
    assert "XAU is not an ISO 4217 currency code" in body["problems"][0]
    assert h.wait_task(tenant, ticket.ticket_id)["status"] == "open"


def test_an_edit_keeping_the_currency_under_the_line_is_still_one_approvers_decision(escalation):
    h = escalation
    tenant = h.tenant("samecur", threshold=Decimal("500"))
    ticket = h.ticket(tenant)
    arn = h.escalate(ticket, h.decision(ticket, action=BIG))
    first = h.wait_task(tenant, ticket.ticket_id)

    status, body = h.decide(
        tenant,
        first["task_id"],
        "edit",
        roles=APPROVER,
        sub="ann",
        action={"kind": "refund", "amount": "450", "currency": "EUR"},
    )

    assert status == 200 and body["approvals_required"] == 1 and body["awaiting_second_approval"] is False
    assert h.wait_execution(arn)["status"] == "SUCCEEDED"
    assert "SecondApproval" not in h.states_entered(arn)
    assert account_actions(h, tenant) == [
        RequestedAction(kind="refund", amount=Decimal("450"), currency="EUR")
    ]
