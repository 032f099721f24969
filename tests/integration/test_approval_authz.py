"""Who may decide what. Randomized attempts run in-process against moto with a recording Workflow (the real
Step Functions path is covered in test_escalation_paths.py and below); concurrency and token abuse use the real
workflow."""

from __future__ import annotations

import dataclasses
import json
import random
import threading
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from deflect.domain.canonical import sha256_hex
from deflect.domain.errors import Conflict, DeflectError
from deflect.domain.models import HumanTask, RequestedAction, utcnow
from deflect.domain.tenancy import TenantContext
from deflect.escalation.approval import ApprovalService
from deflect.escalation.models import DecisionRequest
from tests.integration.conftest_escalation import decisions_meet_at_commit, escalation_fixture  # noqa: F401

ATTEMPTS = 1000
THRESHOLD = Decimal("500")
SENSITIVE = {
    "refund",
    "change_plan",
    "cancel_subscription",
    "change_entitlement",
    "delete_account",
    "reset_mfa",
    "change_email",
}
ACTIONS = [
    RequestedAction(),
    RequestedAction(kind="refund", amount=Decimal("100"), currency="EUR"),
    RequestedAction(kind="refund", amount=Decimal("900"), currency="EUR"),
    RequestedAction(kind="delete_account", target="acct-1"),
    RequestedAction(kind="change_email", target="new@example.com"),
]
ACTORS = ["agent:ann", "agent:bob", "agent:cy", "agent:dee"]
ROLES = ["agent", "approver", "supervisor", "admin"]
QUEUES = ["billing", "tier1", "supervisor"]


class RecordingWorkflow:
    """Stands in for Step Functions here only: every delivered decision is one recorded call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def start(self, name, payload):  # pragma: no cover - not used by the approval service
        raise AssertionError("the approval service never starts executions")

    def send_task_success(self, token, output):
        self.calls.append((token, output["task_id"]))

    def send_task_failure(self, token, error, cause):
        self.calls.append((token, json.loads(cause)["task_id"]))


def _random_task(rng: random.Random, cipher, tenant_id: str, ticket_id: str) -> tuple[HumanTask, str]:
    now = utcnow()
    queue = rng.choice(QUEUES)
    action = rng.choice(ACTIONS)
    sensitive = action.kind in SENSITIVE
    role = "supervisor" if queue == "supervisor" else ("approver" if sensitive else "agent")
    second = action.amount is not None and action.amount > THRESHOLD and rng.random() < 0.5
    token = f"tok-{uuid.uuid4().hex}"
    state = rng.choices(["open", "claimed", "decided", "expired", "past_due"], [60, 12, 10, 8, 10])[0]
    task = HumanTask(
        tenant_id=tenant_id,
        ticket_id=ticket_id,
        queue=queue,
        required_role="approver" if second else role,
        status={"past_due": "open"}.get(state, state),  # type: ignore[arg-type]
        assignee=rng.choice(ACTORS) if state == "claimed" else None,
        due_at=now - timedelta(seconds=5) if state == "past_due" else now + timedelta(hours=1),
        approvals=[rng.choice(ACTORS)] if second else [],
        approvals_required=2 if action.amount is not None and action.amount > THRESHOLD else 1,
        proposed_action=action,
        proposed_reply=rng.choice([None, "Here is what we will do."]),
        token_ciphertext=cipher.encrypt(tenant_id, token),
        token_sha256=sha256_hex(token.encode()),
        created_at=now - timedelta(minutes=5),
    )
    return task, token


def _allowed(caller_tenant, roles, actor, task: HumanTask, outcome, action, reply) -> bool:
    """The rules, written out independently of deflect.escalation.policy."""
    if caller_tenant != task.tenant_id or not roles & {"agent", "approver", "supervisor"}:
        return False
    if task.status not in ("open", "claimed") or task.due_at <= utcnow():
        return False
    if task.assignee not in (None, actor) and "supervisor" not in roles:
        return False
    second = task.approvals_required > 1 and bool(task.approvals)
    approving = outcome in ("approve", "edit")
    if outcome == "approve" and (
        (action is not None and action != task.proposed_action)
        or (reply is not None and reply != task.proposed_reply)
    ):
        return False
    if outcome == "edit":
        final = action if action is not None else task.proposed_action
        unchanged = (
            final == task.proposed_action
            and (reply if reply is not None else task.proposed_reply) == task.proposed_reply
        )
        if second or unchanged:
            return False
    else:
        final = task.proposed_action
    if task.required_role == "supervisor" and "supervisor" not in roles:
        return False
    if task.required_role == "approver" and not roles & (
        {"approver"} if approving else {"approver", "supervisor"}
    ):
        return False
    large = final.amount is not None and final.amount > THRESHOLD
    if approving and (final.kind in SENSITIVE or large) and "approver" not in roles:
        return False
    if second and ("approver" not in roles or actor in task.approvals):
        return False
    return not (outcome == "reassign" and task.queue == "supervisor")


def test_randomized_attempts_never_apply_an_unauthorized_decision(escalation):
    h = escalation
    rng = random.Random(6)
    recorder = RecordingWorkflow()
    ports = dataclasses.replace(h.container.escalation_ports, workflow=recorder)
    service = ApprovalService(ports)
    tenants = [h.tenant("rand-a", queues=QUEUES), h.tenant("rand-b", queues=QUEUES)]
    tickets = {t: h.ticket(t).ticket_id for t in tenants}
    pool: list[HumanTask] = []

    def add_task(tenant_id: str) -> None:
        task, _ = _random_task(rng, ports.cipher, tenant_id, tickets[tenant_id])
        ports.store.put(TenantContext.system(tenant_id), ports.tasks.save_write(task))
        pool.append(ports.tasks.get(TenantContext.system(tenant_id), task.task_id))

    for i in range(40):
        add_task(tenants[i % 2])
    # Decision ids already applied, per tenant (ids are the tenant's own): reusing one never applies again.
    applied_ids: dict[str, list[str]] = {t: [] for t in tenants}
    applied = refused = unauthorized = 0
    for _ in range(ATTEMPTS):
        task = rng.choice(pool)
        caller = rng.choice(tenants)
        roles = frozenset(rng.sample(ROLES, rng.randint(0, 3)))
        actor = rng.choice(ACTORS)
        outcome = rng.choice(["approve", "edit", "reject", "reassign"])
        action = rng.choice([None, None, task.proposed_action, rng.choice(ACTIONS)])
        reply = rng.choice([None, None, task.proposed_reply, "An edited reply."])
        reused = bool(applied_ids[caller]) and rng.random() < 0.1
        decision_id = rng.choice(applied_ids[caller]) if reused else f"d-{uuid.uuid4().hex[:16]}"
        body = DecisionRequest(decision_id=decision_id, outcome=outcome, action=action, reply=reply)
        ctx = TenantContext(tenant_id=caller, actor=actor, roles=roles, via="jwt")
        before = len(recorder.calls)
        try:
            service.decide(ctx, task.task_id, body)
        except DeflectError:
            pass
        delivered = recorder.calls[before:]
        assert len(delivered) <= 1
        expected = _allowed(caller, roles, actor, task, outcome, action, reply) and not reused
        if delivered:
            applied += 1
            unauthorized += not expected
            assert delivered[0][1] == task.task_id
            applied_ids[caller].append(decision_id)
            pool.remove(task)
            add_task(task.tenant_id)
        else:
            refused += 1
            assert not expected, f"an allowed decision was refused: {roles} {actor} {outcome} on {task}"

    assert unauthorized == 0
    # Refused attempts changed nothing: every task still in the pool is as it was written.
    for task in pool:
        assert ports.tasks.get(TenantContext.system(task.tenant_id), task.task_id) == task
    assert applied >= 50 and refused >= 500  # both sides were exercised


def test_two_concurrent_decisions_apply_exactly_one(escalation, monkeypatch):
    h = escalation
    tenant = h.tenant("race")
    ticket = h.ticket(tenant)
    arn = h.escalate(ticket, h.decision(ticket))
    task = h.wait_task(tenant, ticket.ticket_id)
    decisions_meet_at_commit(h.container.audit, monkeypatch)
    results: dict[str, object] = {}

    def decide(actor: str, reply: str) -> None:
        ctx = TenantContext(tenant_id=tenant, actor=actor, roles=frozenset({"agent"}), via="jwt")
        body = DecisionRequest(decision_id=f"d-{actor[-3:]}", outcome="edit", reply=reply)
        try:
            results[actor] = h.container.approvals.decide(ctx, task["task_id"], body)
        except DeflectError as error:
            results[actor] = error

    threads = [threading.Thread(target=decide, args=(a, f"Reply by {a}")) for a in ("agent:ann", "agent:bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)

    winners = [a for a, r in results.items() if isinstance(r, dict)]
    losers = [r for r in results.values() if isinstance(r, Conflict)]
    assert len(winners) == 1 and len(losers) == 1
    assert h.wait_execution(arn)["status"] == "SUCCEEDED"
    assert h.audit_types(tenant, ticket.ticket_id).count("task.decided") == 1
    replies = [i.body for i in h.outbox_items(tenant) if i.kind == "public_reply"]
    assert f"Reply by {winners[0]}" in replies and len(replies) == 2  # acknowledgement + the winner's reply


def test_a_reused_or_forged_token_changes_nothing(escalation, capfd):
    h = escalation
    tenant, other = h.tenant("forge"), h.tenant("forge-other")
    ticket = h.ticket(tenant)
    arn = h.escalate(ticket, h.decision(ticket))
    task_id = h.wait_task(tenant, ticket.ticket_id)["task_id"]
    ctx = TenantContext.system(tenant)
    ports = h.container.escalation_ports
    stored = ports.tasks.get(ctx, task_id)
    token = ports.cipher.decrypt(tenant, stored.token_ciphertext)

    def tamper(**fields):
        current = ports.tasks.get(ctx, task_id)
        ports.store.put(ctx, ports.tasks.save_write(current.model_copy(update=fields)))
        return ports.tasks.get(ctx, task_id)

    forged = "forged-token"
    # (tampered fields, writes the attempt makes: refused before any write, or decided and taken back)
    attempts = [
        ({"token_ciphertext": ports.cipher.encrypt(tenant, forged)}, 0),  # ciphertext swapped, hash kept
        ({"token_ciphertext": ports.cipher.encrypt(other, token)}, 0),  # another tenant's encryption
        (
            {
                "token_ciphertext": ports.cipher.encrypt(tenant, forged),
                "token_sha256": sha256_hex(forged.encode()),
            },
            2,
        ),
    ]
    for fields, writes in attempts:
        before = tamper(**fields)
        status, _ = h.decide(tenant, task_id, "approve", roles=("agent",), sub="al")
        assert status == 409
        after = ports.tasks.get(ctx, task_id)
        assert (after.status, after.decided_by, after.approvals) == ("open", [], [])
        assert ports.decisions.for_task(ctx, task_id) is None
        assert after.version == before.version + writes
    assert h.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
    types = h.audit_types(tenant, ticket.ticket_id)
    assert types.count("task.decided") == types.count("task.decision_undelivered") == 1

    # The API never takes a token from the caller.
    status, _ = h.api(
        "POST",
        f"/v1/tasks/{task_id}/decision",
        tenant_id=tenant,
        sub="al",
        body={"decision_id": "d-with-token", "outcome": "approve", "task_token": token},
    )
    assert status == 422
    # Another tenant's agent cannot see or decide it.
    assert h.api("GET", f"/v1/tasks/{task_id}", tenant_id=other, roles=("supervisor",))[0] == 404
    assert h.decide(other, task_id, "approve", roles=("agent", "approver", "supervisor"), sub="al")[0] == 404

    tamper(token_ciphertext=stored.token_ciphertext, token_sha256=stored.token_sha256)
    assert h.decide(tenant, task_id, "approve", roles=("agent",), sub="al")[0] == 200
    assert h.wait_execution(arn)["status"] == "SUCCEEDED"
    history = len(h.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"])
    with pytest.raises(Conflict):
        ports.workflow.send_task_success(
            token, {"task_id": task_id, "decision_id": "replayed", "outcome": "approve"}
        )
    assert len(h.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]) == history
    assert h.decide(tenant, task_id, "reject", roles=("agent",), sub="al")[0] == 409
    assert token not in capfd.readouterr().out  # the token was never logged
