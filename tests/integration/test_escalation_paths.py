"""Every path of the escalation state machine, executed by moto's Step Functions interpreter with the real ASL,
the real task handlers and the real approval API."""

from __future__ import annotations

import json
import time
from decimal import Decimal

from deflect.domain.models import RequestedAction
from deflect.domain.tenancy import TenantContext
from tests.integration.conftest_escalation import escalation_fixture  # noqa: F401

AGENT = ("agent",)
APPROVER = ("agent", "approver")
SUPERVISOR = ("agent", "supervisor")
REFUND = RequestedAction(kind="refund", amount=Decimal("120"), currency="EUR")


def _mine(messages, tenant_id):
    return [m for m in messages if m.get("tenant_id") == tenant_id]


def _by_kind(items):
    found: dict[str, list] = {}
    for item in items:
        found.setdefault(item.kind, []).append(item)
    return found


def test_approve_writes_reply_and_action_through_the_outbox(escalation):
    h = escalation
    tenant = h.tenant("approve")
    ticket = h.ticket(tenant, locale="de")
    arn = h.escalate(ticket, h.decision(ticket, action=REFUND, reply="Wir erstatten die Rechnung."))

    task = h.wait_task(tenant, ticket.ticket_id)
    assert (task["queue"], task["required_role"], task["status"]) == ("billing", "approver", "open")
    status, detail = h.api("GET", f"/v1/tasks/{task['task_id']}", tenant_id=tenant, roles=AGENT)
    assert status == 200
    assert "## Proposed action" in detail["summary"]["markdown"] and "refund" in detail["summary"]["markdown"]
    assert detail["evidence"] and all(link["url"].startswith("https://") for link in detail["evidence"])
    decision = {"decision_id": "d-approve-1", "outcome": "approve"}
    path = f"/v1/tasks/{task['task_id']}/decision"
    status, body = h.api("POST", path, tenant_id=tenant, roles=APPROVER, sub="ann", body=decision)
    assert status == 200 and body["status"] == "decided"
    # The same request again (a client retry) answers the same and applies nothing new.
    assert h.api("POST", path, tenant_id=tenant, roles=APPROVER, sub="ann", body=decision) == (200, body)

    assert h.wait_execution(arn)["status"] == "SUCCEEDED"
    items = _by_kind(h.outbox_items(tenant))
    ack = (
        items["public_reply"][0]
        if "persönlich" in items["public_reply"][0].body
        else items["public_reply"][1]
    )
    assert "meldet sich bis" in ack.body and "UTC" in ack.body  # German, with the follow-up time
    assert any(i.body == "Wir erstatten die Rechnung." for i in items["public_reply"])
    assert items["account_action"][0].action == REFUND
    assert "approve by agent:ann" in items["internal_note"][0].body
    queued = {m["outbox_id"] for m in _mine(h.drain("WritebackQueue"), tenant)}
    assert queued == {i.outbox_id for kind in items.values() for i in kind}
    ctx = TenantContext.system(tenant)
    assert h.container.escalation_ports.tickets.require(ctx, ticket.ticket_id).status == "resolved"
    assert h.audit_types(tenant, ticket.ticket_id) == [
        "escalation.summarized",
        "escalation.acknowledged",
        "task.opened",
        "task.decided",
        "escalation.writeback_enqueued",
        "escalation.completed",
    ]
    assert h.container.audit.verify(ctx, ticket.ticket_id).ok
    # The token never leaves the server: not in the list, the detail or the decision answer.
    _, listed = h.api("GET", "/v1/tasks", tenant_id=tenant, roles=AGENT, query="status=decided")
    _, detail = h.api("GET", f"/v1/tasks/{task['task_id']}", tenant_id=tenant, roles=AGENT)
    assert listed["count"] == 1 and detail["task"]["status"] == "decided"
    assert "token" not in json.dumps([listed, detail, body]).lower()


def test_edit_stores_the_diff_and_sends_the_edited_reply(escalation):
    h = escalation
    tenant = h.tenant("edit")
    ticket = h.ticket(tenant, text="How do I export my data?")
    arn = h.escalate(ticket, h.decision(ticket, reply="Use Settings > Export.", product_area="data"))

    task = h.wait_task(tenant, ticket.ticket_id)
    assert task["required_role"] == "agent"
    claim = f"/v1/tasks/{task['task_id']}/claim"
    status, claimed = h.api("POST", claim, tenant_id=tenant, roles=AGENT, sub="al")
    assert status == 200 and (claimed["status"], claimed["assignee"]) == ("claimed", "agent:al")
    assert (
        h.api("POST", claim, tenant_id=tenant, roles=AGENT, sub="al")[0] == 200
    )  # claiming again is a no-op
    assert h.api("POST", claim, tenant_id=tenant, roles=AGENT, sub="bo")[0] == 409
    assert h.decide(tenant, task["task_id"], "approve", roles=AGENT, sub="bo")[0] == 409  # claimed by al
    edited = "Use Settings > Data > Export, then download the archive."
    status, _ = h.decide(tenant, task["task_id"], "approve", roles=AGENT, sub="al", reply=edited)
    assert status == 400  # approving cannot change the proposal
    status, _ = h.decide(
        tenant, task["task_id"], "edit", roles=AGENT, sub="al", reply=edited, note="clearer path"
    )
    assert status == 200

    assert h.wait_execution(arn)["status"] == "SUCCEEDED"
    replies = [i.body for i in _by_kind(h.outbox_items(tenant))["public_reply"]]
    assert edited in replies and "Use Settings > Export." not in replies
    _, detail = h.api("GET", f"/v1/tasks/{task['task_id']}", tenant_id=tenant, roles=AGENT)
    diff = detail["decision"]["diff"]["reply"]
    assert "-Use Settings > Export." in diff and f"+{edited}" in diff
    # How much the agent changed the AI's reply is recorded for analytics (0 = as proposed, 1 = rewritten).
    ctx = TenantContext.system(tenant)
    entries = h.container.audit.entries(ctx, ticket.ticket_id)
    [decided] = h.container.audit.intact_events(ctx, [e for e in entries if e.type == "task.decided"])
    assert decided.payload["edit_distance"] > 0 and 0 < decided.payload["edit_ratio"] < 1


def test_reject_fails_the_task_and_performs_no_action(escalation):
    h = escalation
    tenant = h.tenant("reject")
    ticket = h.ticket(tenant)
    arn = h.escalate(ticket, h.decision(ticket, action=REFUND))

    task = h.wait_task(tenant, ticket.ticket_id)
    reply = "We cannot refund this invoice; a colleague will explain the options."
    status, _ = h.decide(
        tenant, task["task_id"], "reject", roles=APPROVER, sub="ann", reply=reply, note="outside policy"
    )
    assert status == 200

    assert h.wait_execution(arn)["status"] == "SUCCEEDED"
    items = _by_kind(h.outbox_items(tenant))
    assert "account_action" not in items
    assert reply in [i.body for i in items["public_reply"]]
    ctx = TenantContext.system(tenant)
    assert h.container.escalation_ports.tickets.require(ctx, ticket.ticket_id).status == "escalated"


def test_reassign_moves_the_task_to_the_next_queue(escalation):
    h = escalation
    tenant = h.tenant("reassign")
    ticket = h.ticket(tenant)
    arn = h.escalate(ticket, h.decision(ticket, action=REFUND))

    first = h.wait_task(tenant, ticket.ticket_id)
    status, _ = h.decide(tenant, first["task_id"], "reassign", roles=AGENT, sub="al", note="not my area")
    assert status == 403  # the refund task is approver work; an agent cannot even move it
    status, _ = h.decide(
        tenant, first["task_id"], "reassign", roles=SUPERVISOR, sub="sue", note="not billing"
    )
    assert status == 200
    second = h.wait_task(tenant, ticket.ticket_id, exclude={first["task_id"]})
    assert (first["queue"], second["queue"], second["hops"]) == ("billing", "tier1", 1)
    status, _ = h.decide(tenant, first["task_id"], "approve", roles=APPROVER, sub="ann")
    assert status == 410  # the old task is gone
    status, _ = h.decide(tenant, second["task_id"], "approve", roles=APPROVER, sub="ann")
    assert status == 200

    assert h.wait_execution(arn)["status"] == "SUCCEEDED"
    assert "Reassign" in h.states_entered(arn)


def test_timeouts_reassign_up_to_the_supervisor_and_never_approve(escalation):
    h = escalation
    # 5 s per queue: at 2 s (load 6-7) and at 3 s (two test workers beside an eval) the supervisor's window closed
    # while the approval was in flight, and the run ended as a review expiry instead.
    tenant = h.tenant("timeout", review_timeout_s=5, queues=["tier1", "tier2", "supervisor"])
    ticket = h.ticket(tenant)
    arn = h.escalate(ticket, h.decision(ticket, product_area="general"))

    first = h.wait_task(tenant, ticket.ticket_id)
    second = h.wait_task(tenant, ticket.ticket_id, exclude={first["task_id"]})
    third = h.wait_task(tenant, ticket.ticket_id, exclude={first["task_id"], second["task_id"]})
    assert [first["queue"], second["queue"], third["queue"]] == ["tier1", "tier2", "supervisor"]
    assert third["required_role"] == "supervisor"
    assert h.audit_types(tenant, ticket.ticket_id).count("task.decided") == 0  # nothing approved itself
    status, _ = h.decide(tenant, third["task_id"], "approve", roles=AGENT, sub="al")
    assert status == 403
    # The wait resumes with a fresh token after the near-due warning; a decision landing in that instant
    # is told to retry (409), as any client would.
    deadline = time.monotonic() + 10  # a loaded machine can take a while to hand the wait its fresh token
    while True:
        status, _ = h.decide(tenant, third["task_id"], "approve", roles=SUPERVISOR, sub="sue")
        if status != 409 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200

    assert h.wait_execution(arn)["status"] == "SUCCEEDED"
    states = h.states_entered(arn)
    assert (
        states.count("CheckSla") >= 4 and states.count("HumanReview") >= 5
    )  # warned, then reassigned, twice
    types = h.audit_types(tenant, ticket.ticket_id)
    assert types.count("task.reassigned") == 2 and types.count("task.decided") == 1
    # The near-due warnings went to the SLA topic, one per task that reached its warning time.
    notes = [json.loads(m["Message"]) for m in h.drain("SlaWatch")]
    near_due = [n for n in notes if n["tenant_id"] == tenant and n["event"] == "task_near_due"]
    assert {n["task_id"] for n in near_due} >= {first["task_id"], second["task_id"]}


def test_no_decision_in_any_queue_reaches_the_human_failure_queue(escalation):
    h = escalation
    tenant = h.tenant("expired", review_timeout_s=1, queues=["tier1", "supervisor"], max_hops=1)
    ticket = h.ticket(tenant)
    arn = h.escalate(ticket, h.decision(ticket, product_area="general"))

    assert h.wait_execution(arn)["status"] == "FAILED"
    failures = [m for m in h.drain("HumanFailureQueue") if m["escalation"]["tenant_id"] == tenant]
    assert len(failures) == 1
    state = failures[0]["escalation"]
    assert state["error"]["Error"] == "Deflect.ReviewExpired"
    assert state["ticket_id"] == ticket.ticket_id and state["proposed_reply"]  # the context is intact
    assert "task.decided" not in h.audit_types(tenant, ticket.ticket_id)
    _, listed = h.api("GET", "/v1/tasks", tenant_id=tenant, roles=SUPERVISOR, query="status=expired")
    assert listed["count"] == 1


def test_amount_above_threshold_needs_a_second_different_approver(escalation):
    h = escalation
    tenant = h.tenant("twoperson", threshold=Decimal("500"))
    ticket = h.ticket(tenant)
    big = RequestedAction(kind="refund", amount=Decimal("900"), currency="EUR")
    arn = h.escalate(ticket, h.decision(ticket, action=big))

    first = h.wait_task(tenant, ticket.ticket_id)
    status, body = h.decide(tenant, first["task_id"], "approve", roles=APPROVER, sub="ann")
    assert status == 200 and body["awaiting_second_approval"] is True
    second = h.wait_task(tenant, ticket.ticket_id, exclude={first["task_id"]})
    assert second["second_approval"] is True and second["approvals"] == ["agent:ann"]
    assert h.decide(tenant, second["task_id"], "approve", roles=APPROVER, sub="ann")[0] == 403  # same person
    assert (
        h.decide(tenant, second["task_id"], "approve", roles=SUPERVISOR, sub="sue")[0] == 403
    )  # not an approver
    assert h.decide(tenant, second["task_id"], "edit", roles=APPROVER, sub="bob", reply="x")[0] == 400
    status, body = h.decide(tenant, second["task_id"], "approve", roles=APPROVER, sub="bob")
    assert status == 200 and body["approvals"] == 2

    assert h.wait_execution(arn)["status"] == "SUCCEEDED"
    assert "SecondApproval" in h.states_entered(arn)
    action = _by_kind(h.outbox_items(tenant))["account_action"][0]
    assert action.action.amount == Decimal("900")
    assert h.audit_types(tenant, ticket.ticket_id).count("task.decided") == 2


def test_a_second_approver_who_rejects_is_the_one_named_for_the_rejection(escalation):
    h = escalation
    tenant = h.tenant("rejectby", threshold=Decimal("500"))
    ticket = h.ticket(tenant)
    big = RequestedAction(kind="refund", amount=Decimal("900"), currency="EUR")
    arn = h.escalate(ticket, h.decision(ticket, action=big))
    first = h.wait_task(tenant, ticket.ticket_id)
    assert h.decide(tenant, first["task_id"], "approve", roles=APPROVER, sub="ann")[0] == 200
    second = h.wait_task(tenant, ticket.ticket_id, exclude={first["task_id"]})

    status, _ = h.decide(
        tenant, second["task_id"], "reject", roles=APPROVER, sub="bob", reply="We cannot refund this."
    )

    assert status == 200 and h.wait_execution(arn)["status"] == "SUCCEEDED"
    items = h.outbox_items(tenant)
    assert not [i for i in items if i.kind == "account_action"]
    [note] = [i.body for i in items if i.kind == "internal_note"]
    assert "reject by agent:bob." in note and "agent:ann" not in note
    ctx = TenantContext.system(tenant)
    entries = h.container.audit.entries(ctx, ticket.ticket_id)
    [done] = h.container.audit.intact_events(ctx, [e for e in entries if e.type == "escalation.completed"])
    assert done.payload["decided_by"] == ["agent:bob"]


def test_an_approver_cannot_take_the_amount_out_of_a_large_refund_to_approve_it_alone(escalation):
    h = escalation
    tenant = h.tenant("noamount", threshold=Decimal("500"))
    ticket = h.ticket(tenant)
    big = RequestedAction(kind="refund", amount=Decimal("5000"), currency="USD", target="inv-1")
    arn = h.escalate(ticket, h.decision(ticket, action=big))

    first = h.wait_task(tenant, ticket.ticket_id)
    status, body = h.decide(
        tenant,
        first["task_id"],
        "edit",
        roles=APPROVER,
        sub="ann",
        action={"kind": "refund", "target": "inv-1"},
    )
    assert (
        status == 200 and body["awaiting_second_approval"] is True
    )  # a refund of no stated amount is open-ended
    assert not [i for i in h.outbox_items(tenant) if i.kind == "account_action"]
    second = h.wait_task(tenant, ticket.ticket_id, exclude={first["task_id"]})
    assert h.decide(tenant, second["task_id"], "approve", roles=APPROVER, sub="bob")[0] == 200
    assert h.wait_execution(arn)["status"] == "SUCCEEDED" and "SecondApproval" in h.states_entered(arn)


# What Lambda reports to Step Functions when a function runs out of time (no Python exception reaches it).
SandboxTimedout = type("Sandbox.Timedout", (Exception,), {})


def test_a_step_that_times_out_once_is_retried_and_the_approved_reply_still_goes_out(escalation, monkeypatch):
    h = escalation
    tenant = h.tenant("steptimeout")
    audit, original = h.container.audit, h.container.audit.append
    left = [1]

    def append(ctx, ticket_id, type, payload, **kw):
        if type == "escalation.writeback_enqueued" and left[0]:
            left[0] -= 1
            raise SandboxTimedout("Task timed out after 29.00 seconds")
        return original(ctx, ticket_id, type, payload, **kw)

    monkeypatch.setattr(audit, "append", append)
    ticket = h.ticket(tenant)
    arn = h.escalate(ticket, h.decision(ticket))
    task = h.wait_task(tenant, ticket.ticket_id)
    assert h.decide(tenant, task["task_id"], "approve", roles=APPROVER, sub="ann")[0] == 200

    assert h.wait_execution(arn)["status"] == "SUCCEEDED"
    replies = [i.body for i in h.outbox_items(tenant) if i.kind == "public_reply"]
    assert replies.count("We have reviewed your invoice.") == 1
    assert h.audit_types(tenant, ticket.ticket_id).count("escalation.writeback_enqueued") == 1


class _BrokenCipher:
    """KMS refusing to encrypt for one tenant."""

    def __init__(self, tenant_id, inner):
        self.tenant_id, self.inner = tenant_id, inner

    def encrypt(self, tenant_id, plaintext):
        if tenant_id == self.tenant_id:
            raise RuntimeError("key disabled")
        return self.inner.encrypt(tenant_id, plaintext)

    def decrypt(self, tenant_id, ciphertext):
        return self.inner.decrypt(tenant_id, ciphertext)


def test_a_failing_task_lands_in_the_human_failure_queue_with_its_context(escalation):
    h = escalation
    tenant = h.tenant("broken")
    ticket = h.ticket(tenant)
    ports = h.container.escalation_ports
    original = ports.cipher
    ports.cipher = _BrokenCipher(tenant, original)
    try:
        arn = h.escalate(ticket, h.decision(ticket, action=REFUND))
        assert h.wait_execution(arn)["status"] == "FAILED"
    finally:
        ports.cipher = original
    failure = next(m for m in h.drain("HumanFailureQueue") if m["escalation"]["tenant_id"] == tenant)
    assert failure["execution"] == arn.rsplit(":", 1)[-1]
    assert failure["escalation"]["error"]["Error"] == "RuntimeError"
    assert (
        failure["escalation"]["route"]["queue"] == "billing"
        and failure["escalation"]["summary"]["ref"]["key"]
    )
    # An escalation for a ticket that does not exist fails at the first step, also into the queue.
    ghost = h.ticket(tenant).model_copy(update={"ticket_id": "t-missing"})
    arn = h.escalate(ghost, h.decision(ghost))
    assert h.wait_execution(arn)["status"] == "FAILED"
    failure = next(m for m in h.drain("HumanFailureQueue") if m["escalation"]["ticket_id"] == "t-missing")
    assert failure["escalation"]["error"]["Error"] == "NotFound"


def test_starting_the_same_decision_twice_is_one_escalation(escalation):
    h = escalation
    tenant = h.tenant("once")
    ticket = h.ticket(tenant)
    decision = h.decision(ticket)
    arn = h.escalate(ticket, decision)
    assert h.escalate(ticket, decision) == arn
    task = h.wait_task(tenant, ticket.ticket_id)
    assert h.decide(tenant, task["task_id"], "approve", roles=AGENT, sub="al")[0] == 200
    assert h.wait_execution(arn)["status"] == "SUCCEEDED"
    public = [i for i in h.outbox_items(tenant) if i.kind == "public_reply"]
    assert len(public) == 2  # one acknowledgement, one reply


def test_near_due_tasks_are_flagged_and_listed_first(escalation, capsys):
    from datetime import timedelta

    from deflect.cli import main
    from deflect.domain.models import HumanTask, utcnow

    h = escalation
    tenant = h.tenant("listing", queues=["tier1", "tier2", "supervisor"])
    ctx = TenantContext.system(tenant)
    now = utcnow()
    # A day-long task with 50 minutes left is near due (warned an hour ahead); a 1-hour task with 20 minutes
    # left is not yet (warned 15 minutes ahead), although it is due sooner.
    # (ticket, queue, due in, window): minutes
    for ticket_id, queue, due_in, window in [
        ("t3", "tier1", 300, 300),
        ("t2", "tier1", 20, 60),
        ("t1", "tier2", 50, 1440),
    ]:
        due_at = now + timedelta(minutes=due_in)
        task = HumanTask(
            tenant_id=tenant,
            ticket_id=ticket_id,
            queue=queue,
            due_at=due_at,
            created_at=due_at - timedelta(minutes=window),
        )
        h.container.store.put(ctx, h.container.escalation_ports.tasks.save_write(task))

    status, body = h.api("GET", "/v1/tasks", tenant_id=tenant, roles=AGENT)
    assert status == 200
    assert [t["ticket_id"] for t in body["tasks"]] == ["t1", "t2", "t3"]
    assert [t["near_due"] for t in body["tasks"]] == [True, False, False]
    _, only_tier1 = h.api("GET", "/v1/tasks", tenant_id=tenant, roles=AGENT, query="queue=tier1")
    assert [t["ticket_id"] for t in only_tier1["tasks"]] == ["t2", "t3"]
    assert h.api("GET", "/v1/tasks", tenant_id=tenant, roles=("admin",))[0] == 403

    assert main(["tasks", "list", "--tenant", tenant]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert lines[-1] == {"tenant": tenant, "tasks": 3, "near_due": 1}


def test_a_known_customers_summary_is_sealed_readable_by_agents_and_shredded_by_erasure(escalation):
    h = escalation
    tenant = h.tenant("sealed")
    text = "Refund invoice INV-5531 for Ana Lima please."
    ticket = h.ticket(tenant, text=text, customer_id="cus_sealed1")
    h.escalate(ticket, h.decision(ticket, action=REFUND, reply="We will refund it."))
    task = h.wait_task(tenant, ticket.ticket_id)
    status, detail = h.api("GET", f"/v1/tasks/{task['task_id']}", tenant_id=tenant, roles=AGENT)
    assert status == 200 and "INV-5531" in detail["summary"]["markdown"]
    [summary_link] = [e for e in detail["evidence"] if e["kind"] == "escalation_summary"]
    assert summary_link["sealed"] and summary_link["url"] is None  # no link that would hand out ciphertext
    ctx = TenantContext.system(tenant)
    stored = h.container.evidence.read_latest(ctx, task_summary_key(h, ctx, task["task_id"]))
    assert b"INV-5531" not in stored

    assert h.container.customer_keys.destroy(ctx, "cus_sealed1")  # erasure's crypto-shredding step
    status, detail = h.api("GET", f"/v1/tasks/{task['task_id']}", tenant_id=tenant, roles=AGENT)
    assert status == 200 and detail["summary"] == {"erased": True}
    assert detail["task"]["task_id"] == task["task_id"]  # the task itself stays workable
    assert h.container.audit.verify(ctx, ticket.ticket_id).ok


def task_summary_key(h, ctx, task_id: str) -> str:
    return h.container.escalation_ports.tasks.get(ctx, task_id).summary.key
