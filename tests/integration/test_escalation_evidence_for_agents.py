"""What triage collected for an escalation reaches the human agent through GET /v1/tasks/{id}: each stored
diagnostic with its value, and the diagnostic tools' output (sealed with the customer's key) opened for the
agent — never another ticket's or tenant's, and never as a link that would hand out ciphertext.

Runs the real state machine (moto), the escalation Lambda steps and the approval API, via the project's fixture."""

from __future__ import annotations

import json

from deflect.domain import keys
from deflect.domain.canonical import canonical_json
from deflect.domain.tenancy import TenantContext
from deflect.escalation import start_escalation
from deflect.ports import Put
from tests.integration.conftest_escalation import escalation_fixture  # noqa: F401

AGENT = ("agent",)


def _tool_ref(h, ctx, ticket, code: str):
    """What TriageService._run_tools keeps for a known customer (bootstrap: sealed_evidence.put_for_customer)."""
    body = canonical_json(
        {
            "tool": "recent_errors",
            "subject": {"ticket_id": ticket.ticket_id, "account_id": "acct-1"},
            "ok": True,
            "output": {"account_id": "acct-1", "errors": [{"code": code, "at": "2025-01-01T00:00:00Z"}]},
            "actor": "triage",
        }
    )
    return h.container.sealed_evidence.put_for_customer(
        ctx, ticket.ticket_id, ticket.customer_id, body, "diagnostic_tool"
    )


def _diagnostic(h, ctx, ticket, name: str, value: str) -> None:
    """What TriageService._commit stores for a value it found (here: in an attached log it did not keep)."""
    data = {"name": name, "value": value, "message_id": "m1", "at": "2025-01-01T00:00:00+00:00"}
    h.container.store.put(
        ctx, Put(pk=keys.ticket_pk(ctx.tenant_id, ticket.ticket_id), sk=f"DIAG#{name}", data=data)
    )


def test_the_agent_sees_diagnostic_values_and_tool_output_of_this_ticket_only(escalation):
    h = escalation
    tenant, other_tenant = h.tenant("diagshow"), h.tenant("diagother")
    ctx, other_ctx = TenantContext.system(tenant), TenantContext.system(other_tenant)
    text = "The app crashes on sync, log attached. I want to talk to a person."
    ticket = h.ticket(tenant, text=text, customer_id="cus_diag1")
    neighbour = h.ticket(tenant, text=text, customer_id="cus_diag2")
    stranger = h.ticket(other_tenant, text=text, customer_id="cus_diag1")
    _diagnostic(h, ctx, ticket, "app_version", "4.12.3-beta7")
    _diagnostic(h, ctx, ticket, "logs", "attachment:sync.log")
    _diagnostic(h, ctx, neighbour, "app_version", "NEIGHBOUR-9.9.9")
    _diagnostic(h, other_ctx, stranger, "app_version", "STRANGER-7.7.7")
    own = _tool_ref(h, ctx, ticket, "SB-4040-XYZ")
    _tool_ref(h, ctx, neighbour, "NEIGHBOUR-ERR")
    _tool_ref(h, other_ctx, stranger, "STRANGER-ERR")

    start_escalation(h.container, h.decision(ticket, product_area="troubleshooting"), ticket, evidence=[own])
    task = h.wait_task(tenant, ticket.ticket_id)
    status, detail = h.api("GET", f"/v1/tasks/{task['task_id']}", tenant_id=tenant, roles=AGENT)
    assert status == 200, detail
    summary, markdown = detail["summary"], detail["summary"]["markdown"]

    # Each diagnostic with its value; the log it came from is said not to be kept.
    assert {d["name"]: d["value"] for d in summary["diagnostics"]} == {
        "app_version": "4.12.3-beta7",
        "logs": "attachment:sync.log",
    }
    assert "- app_version: 4.12.3-beta7 (message m1)" in markdown
    assert "- logs: attachment:sync.log (message m1) — the file itself is not kept by Deflect" in markdown

    # The tool's output, opened for the agent, in the structured view and the Markdown.
    [result] = summary["tool_results"]
    assert result["tool"] == "recent_errors" and result["ok"] is True and result["sha256"] == own.sha256
    assert json.loads(result["output"])["errors"][0]["code"] == "SB-4040-XYZ"
    assert "### recent_errors — ok, run by triage" in markdown and '"code": "SB-4040-XYZ"' in markdown
    [link] = [e for e in detail["evidence"] if e["kind"] == "diagnostic_tool"]
    assert link["sealed"] and link["url"] is None  # still no link that would hand out ciphertext

    # Nothing of another ticket or tenant.
    shown = json.dumps(detail)
    for foreign in ("NEIGHBOUR-9.9.9", "STRANGER-7.7.7", "NEIGHBOUR-ERR", "STRANGER-ERR"):
        assert foreign not in shown, foreign
    assert h.api("GET", f"/v1/tasks/{task['task_id']}", tenant_id=other_tenant, roles=AGENT)[0] == 404

    # The stored summary carries the values, sealed: the vault holds ciphertext only.
    stored = h.container.evidence.read_latest(
        ctx, h.container.escalation_ports.tasks.get(ctx, task["task_id"]).summary.key
    )
    assert b"4.12.3-beta7" not in stored

    # Erasure shreds all of it for the agent too.
    assert h.container.customer_keys.destroy(ctx, "cus_diag1")
    status, detail = h.api("GET", f"/v1/tasks/{task['task_id']}", tenant_id=tenant, roles=AGENT)
    assert status == 200 and detail["summary"] == {"erased": True}
    assert "SB-4040-XYZ" not in json.dumps(detail) and "4.12.3-beta7" not in json.dumps(detail)
