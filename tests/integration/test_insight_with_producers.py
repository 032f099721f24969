"""The timeline and analytics read what the real escalation and approval code appends (not a replica), and
agents reach them through the approval function's routes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from deflect.domain import keys
from deflect.domain.canonical import canonical_json
from deflect.domain.models import RequestedAction
from deflect.domain.tenancy import TenantContext
from deflect.ports import Delete
from tests.integration.conftest_escalation import escalation  # noqa: F401

REFUND = RequestedAction(kind="refund", amount=Decimal("40"), currency="EUR")


def test_a_real_escalation_is_rebuilt_and_served_to_agents(escalation):  # noqa: F811 (pytest fixture)
    h = escalation
    tenant = h.tenant("insight")
    ctx = TenantContext.system(tenant)
    c = h.container
    ticket = h.ticket(tenant)
    decision = h.decision(ticket, action=REFUND, reply="We refunded 40 EUR.")
    # intake's part (the harness wrote the ticket and message directly): the receipt, as services/intake.py appends it
    c.audit.append(
        ctx,
        ticket.ticket_id,
        "message.received",
        {
            "provider": "zendesk",
            "message_id": "m1",
            "external_ticket_id": ticket.external_id,
            "new_ticket": True,
        },
        actor="webhook:zendesk",
    )
    # triage's part, as insight/events.py documents it (the triage code appends the same)
    ref = c.evidence.put_evidence(
        ctx, ticket.ticket_id, canonical_json(decision.model_dump(mode="json")), "decision"
    )
    c.audit.append(
        ctx,
        ticket.ticket_id,
        "decision.made",
        {"decision_id": decision.decision_id, "outcome": "escalate", "reasons": decision.reasons,
         "classification": decision.classification.model_dump(mode="json"), "rollout_mode": "auto", "policy_version": 1},
        actor="triage",
        evidence=[ref],
    )  # fmt: skip
    arn = h.escalate(ticket, decision)
    task = h.wait_task(tenant, ticket.ticket_id)
    status, _ = h.decide(tenant, task["task_id"], "approve", roles=("agent", "approver"), sub="ann")
    assert status == 200
    assert h.wait_execution(arn)["status"] == "SUCCEEDED"
    # container.audit observed every event the producers appended as it was appended

    status, timeline = h.api(
        "GET", f"/v1/tickets/{ticket.ticket_id}/timeline", tenant_id=tenant, roles=("agent",)
    )
    assert status == 200 and timeline["chain"]["ok"]
    stages = [e["stage"] for e in timeline["events"]]
    assert stages[:4] == ["received", "triaged", "escalated", "escalated"] and "decided" in stages
    decided = next(e for e in timeline["events"] if e["type"] == "task.decided")
    assert decided["actor"] == "agent:ann" and decided["outputs"]["outcome"] == "approve"
    assert timeline["events"][1]["inputs"]["classification"]["intent"] == "refund_request"
    assert any(link["url"] for e in timeline["events"] for link in e["evidence"])

    # another tenant's agent sees nothing; an agent without a role is refused
    assert (
        h.api(
            "GET", f"/v1/tickets/{ticket.ticket_id}/timeline", tenant_id=h.tenant("other"), roles=("agent",)
        )[0]
        == 404
    )
    assert h.api("GET", f"/v1/tickets/{ticket.ticket_id}/timeline", tenant_id=tenant, roles=())[0] == 403

    today = datetime.now(UTC).date()
    query = f"from={today - timedelta(days=1)}&to={today}"
    status, summary = h.api(
        "GET", "/v1/analytics/summary", tenant_id=tenant, roles=("supervisor",), query=query
    )
    assert status == 200
    assert summary["escalation"]["decided"] == 1 and summary["escalation"]["sent_unchanged"] == 1
    assert summary["escalation"]["unneeded"] == 0  # a refund needs a person: never an unneeded escalation
    assert h.api("GET", "/v1/analytics/summary", tenant_id=tenant, roles=("agent",), query=query)[0] == 403
    assert (
        h.api("GET", "/v1/analytics/summary", tenant_id=tenant, roles=("supervisor",), query="from=x&to=y")[0]
        == 400
    )

    # the mutable records go; the history stays
    for pk in (keys.ticket_pk(tenant, ticket.ticket_id), keys.task_pk(tenant, task["task_id"])):
        for item in c.store.query(ctx, pk):
            c.store.delete(ctx, Delete(pk=item.pk, sk=item.sk))
    history = c.timeline.rebuild_from_audit(ctx, ticket.ticket_id)
    assert history.chain_ok and history.reached == ["received", "triaged", "escalated", "decided"]
    assert history.escalation["task_id"] == task["task_id"]
    assert history.agent_decisions[0]["outcome"] == "approve" and history.status == "resolved"
    assert history.decisions[0].decision_id == decision.decision_id
