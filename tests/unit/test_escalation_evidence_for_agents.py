"""What triage collected reaches the agent: each diagnostic with its (redacted) value in the escalation summary,
and the diagnostic tools' output opened in the task view, sealed evidence staying sealed everywhere else.

In memory: the summarize step and the task view over the real SealedEvidence (per-customer keys, a fake KMS)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from deflect.domain import keys
from deflect.domain.canonical import canonical_json
from deflect.domain.errors import NotFound
from deflect.domain.models import (
    AttachmentRef,
    Classification,
    Customer,
    HumanTask,
    Message,
    RequestedAction,
    TenantConfig,
    Ticket,
)
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemoryEvidenceStore, MemorySupportStore
from deflect.escalation.approval import ApprovalService
from deflect.escalation.models import EscalationState
from deflect.escalation.records import EscalationPorts
from deflect.escalation.steps import EscalationSteps
from deflect.escalation.summary import (
    TOOL_OUTPUT_CHARS,
    EscalationSummary,
    collected_diagnostics,
    render_markdown,
    stored_document,
)
from deflect.insight.privacy import CustomerKeys, SealedEvidence
from deflect.ports import Put
from deflect.repositories import Customers, TenantConfigs, Tickets
from deflect.services.audit import AuditLog

NOW = datetime.now(UTC)
AGENT = ("agent",)


class FakeKms:
    """generate_data_key / decrypt as KMS answers them, bound to the encryption context."""

    def __init__(self) -> None:
        self._keys: dict[bytes, tuple[bytes, dict[str, str]]] = {}

    def generate_data_key(self, *, KeyId: str, KeySpec: str, EncryptionContext: dict[str, str]) -> dict:
        plain, wrapped = os.urandom(32), os.urandom(48)
        self._keys[wrapped] = (plain, dict(EncryptionContext))
        return {"CiphertextBlob": wrapped, "Plaintext": plain}

    def decrypt(self, *, CiphertextBlob: bytes, EncryptionContext: dict[str, str]) -> dict:
        plain, context = self._keys[CiphertextBlob]
        assert context == EncryptionContext, "unwrapped for another tenant or customer"
        return {"Plaintext": plain}


class World:
    def __init__(self) -> None:
        self.store = MemorySupportStore()
        self.vault = MemoryEvidenceStore()
        self.customer_keys = CustomerKeys(self.store, FakeKms(), "alias/test", cache_s=0)
        self.sealed = SealedEvidence(self.vault, self.customer_keys)
        self.audit = AuditLog(self.store, self.vault)
        self.ports = EscalationPorts(
            store=self.store,
            evidence=self.sealed,
            audit=self.audit,
            workflow=None,  # type: ignore[arg-type]  # not reached by summarize or the task view
            cipher=None,  # type: ignore[arg-type]
            notifier=None,  # type: ignore[arg-type]
            writeback=None,  # type: ignore[arg-type]
            seal_for_customer=self.sealed.put_for_customer,
        )
        self.steps = EscalationSteps(self.ports)
        self.approvals = ApprovalService(self.ports)

    def tenant(self, tenant_id: str) -> TenantContext:
        ctx = TenantContext.system(tenant_id)
        config = TenantConfig(tenant_id=tenant_id, display_name=tenant_id, escalation_queues=["tier1"])
        self.store.transact(ctx, [TenantConfigs(self.store).save_write(config)])
        return ctx

    def ticket(
        self,
        ctx: TenantContext,
        ticket_id: str,
        *,
        text: str = "Sync fails with error SB-1001, running version 4.12.3-beta7.",
        attachments: list[AttachmentRef] | None = None,
        customer_id: str | None = "cus_1",
        diagnostics: dict[str, str] | None = None,
    ) -> Ticket:
        t = ctx.tenant_id
        ticket = Ticket(
            tenant_id=t,
            ticket_id=ticket_id,
            provider="zendesk",
            external_id=ticket_id,
            subject_redacted="Sync broken",
            customer_id=customer_id,
        )
        message = Message(
            tenant_id=t,
            ticket_id=ticket_id,
            message_id="m1",
            body_redacted=text,
            attachments=attachments or [],
        )
        writes: list[Any] = [Tickets(self.store).save_write(ticket), Tickets.message_write(message)]
        if customer_id:
            writes += Customers(self.store).save_writes(
                Customer(tenant_id=t, customer_id=customer_id, name="Dana")
            )
        for name, value in (diagnostics or {}).items():
            data = {"name": name, "value": value, "message_id": "m1", "at": NOW.isoformat()}
            writes.append(Put(pk=keys.ticket_pk(t, ticket_id), sk=f"DIAG#{name}", data=data))
        self.store.transact(ctx, writes)
        return ticket

    def tool_result(
        self, ctx: TenantContext, ticket: Ticket, output: dict[str, Any], *, tool: str = "recent_errors"
    ):
        """What DiagnosticToolRegistry.run keeps for triage (sealed with the customer's key when known)."""
        body = canonical_json(
            {
                "tool": tool,
                "subject": {"ticket_id": ticket.ticket_id, "account_id": "acct-1"},
                "ok": True,
                "output": output,
                "actor": "triage",
            }
        )
        if ticket.customer_id:
            return self.sealed.put_for_customer(
                ctx, ticket.ticket_id, ticket.customer_id, body, "diagnostic_tool"
            )
        return self.sealed.put_evidence(ctx, ticket.ticket_id, body, "diagnostic_tool")

    def escalate(
        self,
        ctx: TenantContext,
        ticket: Ticket,
        evidence: list[Any] = (),  # type: ignore[assignment]
        *,
        required_role: str = "agent",
        action: RequestedAction | None = None,
    ) -> HumanTask:
        state = EscalationState(
            tenant_id=ctx.tenant_id,
            ticket_id=ticket.ticket_id,
            decision_id=f"dec_{ticket.ticket_id}",
            classification=Classification(
                intent="bug_report", intent_confidence=0.8, product_area="troubleshooting"
            ),
            missing_diagnostics=["os"],
            evidence_refs=list(evidence),
            escalated_at=NOW,
        )
        ref = self.steps.summarize(ctx, state, f"exec-{ticket.ticket_id}").ref
        task = HumanTask(
            tenant_id=ctx.tenant_id,
            ticket_id=ticket.ticket_id,
            queue="tier1",
            required_role=required_role,  # type: ignore[arg-type]
            due_at=NOW + timedelta(hours=1),
            summary=ref,
            proposed_action=action or RequestedAction(),
        )
        self.store.put(ctx, self.ports.tasks.save_write(task))
        return task

    def detail(self, tenant_id: str, task: HumanTask, roles: tuple[str, ...] = AGENT) -> dict[str, Any]:
        return self.approvals.task_detail(
            TenantContext(tenant_id=tenant_id, actor="alice", roles=roles), task.task_id
        )

    def stored_summary(self, ctx: TenantContext, task: HumanTask) -> dict[str, Any]:
        assert task.summary is not None
        return json.loads(self.sealed.read(ctx, task.summary))


@pytest.fixture
def world() -> World:
    return World()


# ------------------------------------------------------------------ diagnostic values in the summary


def test_the_summary_lists_each_collected_diagnostic_with_its_value(world):
    ctx = world.tenant("acme")
    ticket = world.ticket(ctx, "t1", diagnostics={"app_version": "4.12.3-beta7", "error_code": "SB-1001"})
    task = world.escalate(ctx, ticket)

    document = world.stored_summary(ctx, task)
    values = {d["name"]: d for d in document["summary"]["diagnostics"]}
    assert values["app_version"]["value"] == "4.12.3-beta7"
    assert values["app_version"]["source"] == "message" and values["app_version"]["message_id"] == "m1"
    assert values["error_code"]["value"] == "SB-1001"
    assert "- app_version: 4.12.3-beta7 (message m1)" in document["markdown"]
    assert "- error_code: SB-1001 (message m1)" in document["markdown"]

    detail = world.detail("acme", task)
    assert "- app_version: 4.12.3-beta7 (message m1)" in detail["summary"]["markdown"]
    assert {d["name"]: d["value"] for d in detail["summary"]["diagnostics"]} == {
        "app_version": "4.12.3-beta7",
        "error_code": "SB-1001",
    }
    assert sorted(detail["summary"]["diagnostics_collected"]) == ["app_version", "error_code"]  # unchanged


def test_values_read_from_an_attached_file_are_redacted_and_the_file_is_said_not_to_be_kept(world):
    ctx = world.tenant("acme")
    log = AttachmentRef(name="app.log", url="https://acme.zendesk.com/a/1", content_type="text/plain")
    ticket = world.ticket(
        ctx,
        "t1",
        text="It crashes on start, log attached.",
        attachments=[log],
        diagnostics={
            # As triage stores them: a value found only in the attached log, the log as a pointer, and a
            # value holding an email address (what is read from an attachment is stored as found).
            "request_id": "req_8f3a9c2e1b7d",
            "logs": "attachment:app.log",
            "user": "dana@example.com",
        },
    )
    task = world.escalate(ctx, ticket)

    markdown = world.detail("acme", task)["summary"]["markdown"]
    assert (
        "- request_id: req_8f3a9c2e1b7d (message m1) — read from a file attached to that message" in markdown
    )
    assert "- logs: attachment:app.log (message m1) — the file itself is not kept by Deflect" in markdown
    assert "- user: [EMAIL]" in markdown
    document = json.dumps(world.stored_summary(ctx, task))
    assert "dana@example.com" not in document and "dana@example.com" not in markdown


def test_a_diagnostic_stored_without_a_value_says_so_instead_of_inventing_one():
    [found] = collected_diagnostics([{"name": "screenshot", "value": "", "message_id": "m2"}])
    assert found.value is None and found.note == "named by triage without a value kept"
    assert collected_diagnostics([{"value": "x"}]) == []  # a record without a name is not shown


def test_a_summary_stored_with_names_only_is_shown_with_this_tickets_values(world):
    """Escalations summarized before values were kept: the task view reads this ticket's stored diagnostics."""
    ctx = world.tenant("acme")
    ticket = world.ticket(ctx, "t1", customer_id=None, diagnostics={"app_version": "4.12.3-beta7"})
    world.ticket(ctx, "t2", customer_id=None, diagnostics={"app_version": "9.9.9", "os": "Windows 11"})
    task = world.escalate(ctx, ticket)
    document = world.stored_summary(ctx, task)
    old = EscalationSummary.model_validate({**document["summary"], "diagnostics": []})
    legacy = world.vault.put_evidence(ctx, "t1", canonical_json(stored_document(old)), "escalation_summary")
    world.store.put(
        ctx, world.ports.tasks.save_write(task.model_copy(update={"summary": legacy, "version": 1}))
    )

    detail = world.detail("acme", task)
    assert detail["summary"]["diagnostics"][0]["value"] == "4.12.3-beta7"
    assert "- app_version: 4.12.3-beta7" in detail["summary"]["markdown"]
    assert "9.9.9" not in json.dumps(detail) and "Windows 11" not in json.dumps(detail)  # t2's


def test_names_only_still_render_as_before():
    summary = EscalationSummary.model_validate(
        {
            "tenant_id": "acme",
            "ticket_id": "t1",
            "decision_id": "d",
            "problem": "p",
            "customer": {},
            "account": {},
            "sla": {
                "tier": "standard",
                "first_response_minutes": 60,
                "review_timeout_seconds": 60,
                "follow_up_by": NOW.isoformat(),
            },
            "ai": {"intent": "x", "intent_confidence": 0.5},
            "sentiment": "neutral",
            "impact": "",
            "proposed_action": {},
            "diagnostics_collected": ["browser_version"],
        }
    )
    markdown = render_markdown(summary)
    assert "Collected:\n- browser_version\n" in markdown
    assert "## Diagnostic tool results" not in markdown  # only where the caller opened them


# ------------------------------------------------------------------ tool results in the task view


def test_the_task_view_shows_the_diagnostic_tools_output_for_this_ticket(world):
    ctx = world.tenant("acme")
    ticket = world.ticket(ctx, "t1")
    tool = world.tool_result(ctx, ticket, {"account_id": "acct-1", "errors": [{"code": "SB-4040-XYZ"}]})
    task = world.escalate(ctx, ticket, [tool])

    detail = world.detail("acme", task)
    [result] = detail["summary"]["tool_results"]
    assert result["tool"] == "recent_errors" and result["ok"] is True and result["actor"] == "triage"
    assert json.loads(result["output"]) == {"account_id": "acct-1", "errors": [{"code": "SB-4040-XYZ"}]}
    assert result["truncated"] is False and result["unavailable"] is None
    assert result["sha256"] == tool.sha256
    markdown = detail["summary"]["markdown"]
    assert "## Diagnostic tool results\n### recent_errors — ok, run by triage\n```json\n" in markdown
    assert '"code": "SB-4040-XYZ"' in markdown
    # Still no link that would hand out ciphertext, and the vault still holds only ciphertext.
    [link] = [e for e in detail["evidence"] if e["kind"] == "diagnostic_tool"]
    assert link["sealed"] and link["url"] is None
    assert b"SB-4040-XYZ" not in world.vault.read(ctx, tool)


def test_long_tool_output_is_cut_with_a_clear_marker(world):
    ctx = world.tenant("acme")
    ticket = world.ticket(ctx, "t1")
    errors = [{"code": f"E-{i:05d}", "message": "x" * 200} for i in range(200)]
    tool = world.tool_result(ctx, ticket, {"errors": errors})
    task = world.escalate(ctx, ticket, [tool])

    [result] = world.detail("acme", task)["summary"]["tool_results"]
    assert result["truncated"] is True and result["output_chars"] > TOOL_OUTPUT_CHARS
    assert len(result["output"]) < TOOL_OUTPUT_CHARS + 200
    assert (
        f"… [truncated: {TOOL_OUTPUT_CHARS} of {result['output_chars']} characters shown" in result["output"]
    )
    assert "E-00000" in result["output"] and "E-00199" not in result["output"]


def test_another_tickets_or_tenants_tool_output_is_never_opened(world):
    ctx = world.tenant("acme")
    other_ctx = world.tenant("globex")
    ticket = world.ticket(ctx, "t1")
    neighbour = world.ticket(ctx, "t2", customer_id="cus_2")
    stranger = world.ticket(other_ctx, "t1")
    own = world.tool_result(ctx, ticket, {"errors": [{"code": "OWN-1"}]})
    neighbours = world.tool_result(ctx, neighbour, {"errors": [{"code": "NEIGHBOUR-2"}]})
    strangers = world.tool_result(other_ctx, stranger, {"errors": [{"code": "STRANGER-3"}]})
    # A summary that (wrongly) names them: the view must not open them.
    task = world.escalate(ctx, ticket, [own, neighbours, strangers])

    detail = world.detail("acme", task)
    text = json.dumps(detail)
    assert "OWN-1" in text
    assert "NEIGHBOUR-2" not in text and "STRANGER-3" not in text
    reasons = [r["unavailable"] for r in detail["summary"]["tool_results"]]
    assert reasons == [None, "not this ticket's", "not this ticket's"]
    # Another tenant's agent does not see the task at all.
    with pytest.raises(NotFound):
        world.detail("globex", task)


def test_a_tool_result_about_another_ticket_is_not_shown_even_under_this_tickets_key(world):
    ctx = world.tenant("acme")
    ticket = world.ticket(ctx, "t1", customer_id=None)
    body = canonical_json(
        {"tool": "recent_errors", "subject": {"ticket_id": "t2"}, "output": {"e": "T2-ONLY"}}
    )
    misfiled = world.sealed.put_evidence(ctx, "t1", body, "diagnostic_tool")
    task = world.escalate(ctx, ticket, [misfiled])

    detail = world.detail("acme", task)
    assert detail["summary"]["tool_results"][0]["unavailable"] == "not this ticket's"
    assert "T2-ONLY" not in detail["summary"]["markdown"]


def test_raw_inbound_requests_stay_sealed_in_the_task_view(world):
    """Only diagnostic tool output is opened: a raw webhook body is not redacted and is never shown."""
    ctx = world.tenant("acme")
    ticket = world.ticket(ctx, "t1")
    raw = world.sealed.put_for_customer(
        ctx, "t1", "cus_1", b'{"requester": {"email": "dana@example.com"}}', "inbound_request"
    )
    task = world.escalate(ctx, ticket, [raw])

    detail = world.detail("acme", task)
    assert "dana@example.com" not in json.dumps(detail)
    assert detail["summary"]["tool_results"] == []
    assert "## Diagnostic tool results\n- none" in detail["summary"]["markdown"]


def test_a_caller_whose_roles_may_not_work_the_task_sees_no_tool_output(world):
    ctx = world.tenant("acme")
    ticket = world.ticket(ctx, "t1")
    tool = world.tool_result(ctx, ticket, {"errors": [{"code": "SB-4040-XYZ"}]})
    task = world.escalate(ctx, ticket, [tool], required_role="approver")

    as_agent = world.detail("acme", task, roles=("agent",))
    assert "SB-4040-XYZ" not in json.dumps(as_agent)
    assert as_agent["summary"]["tool_results"][0]["unavailable"] == "withheld: this task needs an approver"
    as_approver = world.detail("acme", task, roles=("approver",))
    assert "SB-4040-XYZ" in as_approver["summary"]["tool_results"][0]["output"]


def test_erasure_shreds_the_values_and_the_tool_output_for_the_agent(world):
    ctx = world.tenant("acme")
    ticket = world.ticket(ctx, "t1", diagnostics={"app_version": "4.12.3-beta7"})
    tool = world.tool_result(ctx, ticket, {"errors": [{"code": "SB-4040-XYZ"}]})
    task = world.escalate(ctx, ticket, [tool])
    assert "SB-4040-XYZ" in json.dumps(world.detail("acme", task))

    assert world.customer_keys.destroy(ctx, "cus_1")  # erasure's crypto-shredding step
    detail = world.detail("acme", task)
    assert detail["summary"] == {"erased": True}
    assert "SB-4040-XYZ" not in json.dumps(detail) and "4.12.3-beta7" not in json.dumps(detail)


def test_a_tool_result_sealed_for_an_erased_customer_reads_as_erased(world):
    ctx = world.tenant("acme")
    ticket = world.ticket(ctx, "t1", customer_id=None)
    body = canonical_json(
        {"tool": "recent_errors", "subject": {"ticket_id": "t1"}, "ok": True, "output": {"e": "GONE-1"}}
    )
    tool = world.sealed.put_for_customer(ctx, "t1", "cus_old", body, "diagnostic_tool")
    task = world.escalate(ctx, ticket, [tool])
    world.customer_keys.destroy(ctx, "cus_old")

    detail = world.detail("acme", task)
    assert detail["summary"]["tool_results"][0]["unavailable"] == "erased"
    assert "GONE-1" not in json.dumps(detail)
    assert "- diagnostic_tool: not shown (erased)" in detail["summary"]["markdown"]


def test_the_number_of_tool_results_shown_is_bounded(world):
    ctx = world.tenant("acme")
    ticket = world.ticket(ctx, "t1", customer_id=None)
    refs = [world.tool_result(ctx, ticket, {"n": i}, tool=f"tool_{i}") for i in range(13)]
    task = world.escalate(ctx, ticket, refs)

    results = world.detail("acme", task)["summary"]["tool_results"]
    assert [r["tool"] for r in results[:10]] == [f"tool_{i}" for i in range(10)]
    assert results[10]["unavailable"].startswith("truncated: 3 more tool results")
    assert len(results) == 11
