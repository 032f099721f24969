"""A customer writes again while a person reviews the ticket (triage on the stack's table and evidence, the real
escalation state machine on moto, the agents' approval API): the follow-up joins the open review instead of starting
another, the agent's task view shows it and the diagnostics it gave, one approval makes one account action, and once
the review is decided the ticket's next message is triaged again."""

from __future__ import annotations

import json
import time
from typing import Any

from deflect.domain.models import Message
from deflect.domain.tenancy import TenantContext
from deflect.repositories import Tickets
from tests.integration.conftest_escalation import WAIT_S, escalation_fixture  # noqa: F401

AGENT = ("agent",)
APPROVER = ("agent", "approver")


def _triage(h: Any, tenant: str, *, auto: bool = True) -> Any:
    """The production TriageService on the stack's ports, with the unit suite's rule models (no model files)."""
    from deflect.embedded.model import ExtractiveComposer
    from deflect.triage.classification import Classifier
    from deflect.triage.engine import TriageEngine
    from deflect.triage.service import Handoffs, TriageService, escalation_starter
    from tests.unit.triage_fakes import EXPORT_ARTICLE, REFUND_ARTICLE, BagOfWords, KeywordSearch, RuleIntents

    c = h.container
    ctx = TenantContext.system(tenant)
    if auto:
        config = c.tenants.get(ctx)
        config.policy.rollout_default = "auto"
        c.store.put(ctx, c.tenants.save_write(config))
    engine = TriageEngine(
        Classifier(RuleIntents()),
        KeywordSearch([EXPORT_ARTICLE, REFUND_ARTICLE]),
        ExtractiveComposer(BagOfWords(), full_support=0.5, min_unit_similarity=0.1),
    )
    return TriageService(c.store, c.evidence, c.audit, engine, Handoffs(None, escalation_starter(c)))


def _write(h: Any, tenant: str, ticket_id: str, message_id: str, text: str) -> str:
    message = Message(tenant_id=tenant, ticket_id=ticket_id, message_id=message_id, body_redacted=text)
    h.container.store.put(TenantContext.system(tenant), Tickets.message_write(message))
    return message_id


def _executions(h: Any, ticket_id: str) -> list[dict[str, Any]]:
    listed = h.sfn.list_executions(stateMachineArn=h.state_machine_arn)["executions"]
    described = [h.sfn.describe_execution(executionArn=e["executionArn"]) for e in listed]
    return [d for d in described if json.loads(d["input"])["ticket_id"] == ticket_id]


def _items(h: Any, tenant: str, ticket_id: str, kind: str) -> list[Any]:
    return [i for i in h.outbox_items(tenant) if i.ticket_id == ticket_id and i.kind == kind]


def test_a_follow_up_joins_the_open_review_and_one_approval_makes_one_refund(escalation):
    h = escalation
    tenant = h.tenant("followup")
    ctx = TenantContext.system(tenant)
    triage = _triage(h, tenant)
    ticket = h.ticket(tenant, text="Please refund my last invoice of 120 EUR.")
    first = triage.triage(ctx, ticket.ticket_id, "m1")
    assert first.escalated and first.execution_name
    task = h.wait_task(tenant, ticket.ticket_id)

    _write(
        h,
        tenant,
        ticket.ticket_id,
        "m2",
        "Any news on the refund? App version 4.12.3. How do I export a report?",
    )
    follow_up = triage.triage(ctx, ticket.ticket_id, "m2")
    _write(h, tenant, ticket.ticket_id, "m3", "Also refund the 40 EUR setup fee (FOLLOWUP-FEE).")
    other = triage.triage(ctx, ticket.ticket_id, "m3")

    # One review: no second execution, no AI answer to the how-to part, the ticket still escalated.
    assert len(_executions(h, ticket.ticket_id)) == 1
    assert Tickets(h.container.store).get(ctx, ticket.ticket_id).status == "escalated"
    assert follow_up.reply is None
    assert len(_items(h, tenant, ticket.ticket_id, "public_reply")) == 1  # the acknowledgement only
    assert follow_up.attached_to == other.attached_to == first.execution_name

    # The open task shows what the customer said since, the version they gave, and the fee as a new action.
    status, detail = h.api("GET", f"/v1/tasks/{task['task_id']}", tenant_id=tenant, roles=AGENT)
    assert status == 200
    since = detail["summary"]["since_summary"]
    assert [m["message_id"] for m in since["messages"]] == ["m2", "m3"]
    assert [(d["name"], d["value"]) for d in since["diagnostics"]] == [("app_version", "4.12.3")]
    assert [m["new_action"] for m in since["messages"]] == [False, True]
    markdown = detail["summary"]["markdown"]
    assert "FOLLOWUP-FEE" in markdown and "NOT in the proposal" in markdown
    assert "escalation.follow_up_attached" in h.audit_types(tenant, ticket.ticket_id)

    assert h.decide(tenant, task["task_id"], "approve", roles=APPROVER, sub="ana")[0] == 200
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and _executions(h, ticket.ticket_id)[0]["status"] == "RUNNING":
        time.sleep(0.1)
    assert [i.action.amount for i in _items(h, tenant, ticket.ticket_id, "account_action")] == [120]

    # Decided: the customer's next message is triaged on its own again.
    _write(h, tenant, ticket.ticket_id, "m4", "How do I export a report?")
    after = triage.triage(ctx, ticket.ticket_id, "m4")
    assert after.attached_to is None and after.outcome == "deflect" and after.reply


def test_the_agent_reads_the_message_that_escalated_not_the_tickets_first(escalation):
    h = escalation
    tenant = h.tenant("secondmsg")
    ctx = TenantContext.system(tenant)
    triage = _triage(h, tenant)
    ticket = h.ticket(tenant, text="How do I export a report?")
    tickets = Tickets(h.container.store)
    stored = tickets.require(ctx, ticket.ticket_id)
    h.container.store.put(ctx, tickets.save_write(stored.model_copy(update={"subject_redacted": "Reports"})))
    assert triage.triage(ctx, ticket.ticket_id, "m1").outcome == "deflect"
    _write(
        h,
        tenant,
        ticket.ticket_id,
        "m2",
        "Please refund my invoice, the export deleted my data (DATA-LOSS-42).",
    )
    assert triage.triage(ctx, ticket.ticket_id, "m2").escalated
    task = h.wait_task(tenant, ticket.ticket_id)

    status, detail = h.api("GET", f"/v1/tasks/{task['task_id']}", tenant_id=tenant, roles=AGENT)

    assert status == 200
    summary = detail["summary"]
    assert "DATA-LOSS-42" in summary["problem"] and summary["problem_message_id"] == "m2"
    assert [m["message_id"] for m in summary["earlier_messages"]] == ["m1"]
    assert summary["since_summary"]["messages"] == []
