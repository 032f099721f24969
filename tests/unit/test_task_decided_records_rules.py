"""The audit event of a person's decision (`task.decided`) says how many approvals the tenant's rules required and
which policy version those rules come from, so a refund approved by one person can be judged from the audit log
alone, without the mutable task and decision records. In memory: no sockets."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from deflect.domain.canonical import sha256_hex
from deflect.domain.models import DecisionPolicy, HumanTask, RequestedAction, TenantConfig, utcnow
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemoryEvidenceStore
from deflect.escalation.approval import ApprovalService
from deflect.escalation.models import DecisionRequest
from deflect.escalation.records import EscalationPorts
from deflect.repositories import Tasks, TenantConfigs, save
from deflect.services.audit import AuditLog
from tests.unit.triage_fakes import Store

TENANT = "acme"
POLICY_VERSION = 7


class Workflow:
    def send_task_success(self, token, output):
        pass

    def send_task_failure(self, token, error, cause):
        pass


class Cipher:
    def decrypt(self, tenant_id, ciphertext):
        return ciphertext


def _desk():
    store, evidence = Store(), MemoryEvidenceStore()
    ports = EscalationPorts(
        store=store,
        evidence=evidence,
        audit=AuditLog(store, evidence),
        workflow=Workflow(),
        cipher=Cipher(),
        notifier=None,
        writeback=None,
    )
    config = TenantConfig(
        tenant_id=TENANT,
        display_name="Acme",
        policy=DecisionPolicy(version=POLICY_VERSION, two_person_amount_threshold=Decimal("500")),
    )
    save(store, TenantContext.system(TENANT), [TenantConfigs(store).save_write(config)])
    return ports


def _refund_task(ports, amount: str, approvals_required: int) -> HumanTask:
    task = HumanTask(
        tenant_id=TENANT,
        ticket_id="tkt_1",
        queue="tier1",
        required_role="approver",
        due_at=utcnow() + timedelta(hours=1),
        approvals_required=approvals_required,
        proposed_action=RequestedAction(kind="refund", amount=Decimal(amount), currency="EUR"),
        proposed_reply="Your refund is on its way.",
        token_ciphertext="token-1",
        token_sha256=sha256_hex(b"token-1"),
    )
    save(ports.store, TenantContext.system(TENANT), [Tasks(ports.store).save_write(task)])
    return task


def _approve(ports, task: HumanTask, who: str) -> dict:
    agent = TenantContext(tenant_id=TENANT, actor=who, roles=frozenset({"approver"}), via="jwt")
    ApprovalService(ports).decide(agent, task.task_id, DecisionRequest(decision_id="d-1", outcome="approve"))
    _, events = ports.audit.load(TenantContext.system(TENANT), task.ticket_id)
    [decided] = [e for e in events if e.type == "task.decided"]
    return decided.payload


def test_a_first_approval_of_a_large_refund_records_that_two_were_required_and_the_policy_version():
    ports = _desk()
    payload = _approve(ports, _refund_task(ports, "600", approvals_required=2), "agent:alice")

    assert payload["approvals"] == ["agent:alice"]
    assert (payload["approvals_required"], payload["policy_version"]) == (2, POLICY_VERSION)


def test_a_refund_one_approver_may_decide_records_that_one_was_enough():
    ports = _desk()
    payload = _approve(ports, _refund_task(ports, "49.90", approvals_required=1), "agent:bob")

    assert payload["approvals"] == ["agent:bob"]
    assert (payload["approvals_required"], payload["policy_version"]) == (1, POLICY_VERSION)
