"""An API-only tenant's escalated chat leaves nothing in the alarmed writeback DLQ but what must alarm, on the stack.

Triage on the stack's table escalates a conversation (provider `api`) of a tenant without a `generic-writeback` or
CRM connection; the real escalation state machine on moto acknowledges it; an approver approves the proposed refund
(with a reply of her own) through the approval API; the writeback function's batch handler (functions/writeback/app.py) delivers every item
with the composition root's writeback (the template's WritebackDLQ behind it). The acknowledgement and the reply go
to the customer through the conversation API, `GET` shows the acknowledgement while the chat waits; the decision's
note ends `done`, not shown, audited `writeback.not_shown`, and counts as `Writeback_not_shown` (never as a writeback
failure); the refund nobody can carry out is the one `dead` item, the one DLQ message, the one failure counted, and
the only item `deflect outbox list --status dead` lists.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from deflect.cli.outbox import run_list
from deflect.domain.tenancy import TenantContext
from deflect.insight import metrics as insight_metrics
from deflect.services import outbox
from deflect.services.intake import Intake
from infra.local.helpdesks.harness import writeback_app
from tests.integration.conftest_escalation import escalation_fixture  # noqa: F401
from tests.integration.test_conversation_agent_reply_stack import _conversation, _triage, _wait_decided
from tests.integration.test_writeback_handler import sqs_record

APPROVER = ("agent", "approver")
EDITED = "We refunded the 120 EUR to your card today; it shows within 5 days. - Ann"
NOT_SHOWN = "conversation_api:not_shown"


class Metrics:
    """The writeback function's metrics as it adds them, and the writeback results the audit observer counts (EMF on
    Lambda; `Writeback` with result=failure is what a dashboard or alarm would read as failed)."""

    def __init__(self) -> None:
        self.counts: dict[str, float] = {}
        self.results: list[str] = []

    def add_metric(self, name: str, unit: Any, value: float) -> None:
        self.counts[name] = self.counts.get(name, 0) + value

    def count(self, name: str, value: float = 1, *, tenant_id: str | None = None, **dimensions: Any) -> None:
        if name == "Writeback":
            self.results.append(str(dimensions["result"]))


def _batch(tenant: str, items: list[Any]) -> dict[str, Any]:
    return {
        "Records": [
            sqs_record(f"m-{n}", json.dumps({"tenant_id": tenant, **outbox.message(item)}))
            for n, item in enumerate(items)
        ]
    }


def test_an_escalated_chat_dead_letters_only_the_refund_nobody_can_carry_out(escalation, monkeypatch, capsys):
    h = escalation
    tenant = h.tenant("chat-dlq")
    ctx = TenantContext.system(tenant)
    conversation = _conversation(h, tenant, "Please refund my last invoice of 120 EUR.")
    first = _triage(h, tenant).triage(ctx, conversation, "m1")
    assert first.escalated and first.execution_name
    intake = Intake(h.container.store, h.container.evidence, None, None, h.container.audit, None)
    task = h.wait_task(tenant, conversation)  # the workflow acknowledged the chat before opening the task
    status, _ = h.decide(tenant, task["task_id"], "edit", roles=APPROVER, sub="ann", reply=EDITED)
    assert status == 200
    _wait_decided(h, first.execution_name)
    items = {i.outbox_id: i for i in h.outbox_items(tenant) if i.ticket_id == conversation}
    [ack] = [i for i in items.values() if i.kind == "public_reply" and "follow up" in (i.body or "")]
    kinds = sorted(i.kind for i in items.values())
    assert kinds == ["account_action", "internal_note", "public_reply", "public_reply"]

    app = writeback_app("writeback_app_chat_dlq")
    metrics = Metrics()
    monkeypatch.setattr(app, "metrics", lambda: metrics)
    monkeypatch.setattr(insight_metrics, "count", metrics.count)
    writeback = h.container.writeback
    assert writeback.dead_letters is not None  # the template's WritebackDLQ, alarmed on depth

    # The acknowledgement first: the chat waits on a person, and says so.
    assert app.process(_batch(tenant, [ack]), service=writeback) == {"batchItemFailures": []}
    waiting = intake.conversation(ctx, conversation)
    assert waiting["status"] == "escalated"
    assert waiting["decision"]["acknowledgement"]["text"] == ack.body

    rest = [i for i in items.values() if i.outbox_id != ack.outbox_id]
    assert app.process(_batch(tenant, rest), service=writeback) == {"batchItemFailures": []}

    stored = {i: h.container.escalation_ports.outbox.get(ctx, i) for i in items}
    by_kind = {(s.kind, s.outbox_id == ack.outbox_id): s for s in stored.values()}
    note, refund = by_kind[("internal_note", False)], by_kind[("account_action", False)]
    reply = by_kind[("public_reply", False)]
    assert stored[ack.outbox_id].receipt["effects"] == [f"conversation_api:{ack.outbox_id}"]
    assert reply.body == EDITED and reply.receipt["effects"] == [f"conversation_api:{reply.outbox_id}"]
    assert (note.status, note.receipt["effects"]) == ("done", [NOT_SHOWN])
    assert refund.status == "dead"
    # Counted as what it is: one failure (the refund), nothing else that reads as one.
    assert metrics.counts["Writeback_dead"] == 1
    assert metrics.counts["Writeback_not_shown"] == 1
    assert metrics.counts["Writeback_delivered"] == 2
    assert sorted(metrics.results) == ["failure", "success", "success"]
    # The alarmed DLQ holds the refund alone.
    letters = [m for m in h.drain("WritebackDLQ") if m.get("tenant_id") == tenant]
    assert [m["outbox_id"] for m in letters] == [refund.outbox_id]
    audited = h.audit_types(tenant, conversation)
    assert audited.count("writeback.dead") == 1 and audited.count("writeback.not_shown") == 1
    assert h.container.audit.verify(ctx, conversation).ok

    # `deflect outbox list --tenant T --status dead`: the refund, and nothing of the chat's normal traffic.
    capsys.readouterr()
    args = argparse.Namespace(tenant=tenant, status=["dead"], limit=None, service=writeback)
    assert run_list(args) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["outbox_id"] for line in lines if "kind" in line] == [refund.outbox_id]
    assert {"tenant": tenant, "items": 1, "by_status": {"dead": 1}} in lines

    shown = intake.conversation(ctx, conversation)
    assert shown["status"] == "resolved"
    assert (shown["decision"]["reply"], shown["decision"]["answered_by"]) == (EDITED, "agent")
    assert "agent:ann" not in json.dumps(shown)
