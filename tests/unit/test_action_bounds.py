"""Account-changing actions stay within bounds a person could mean: the agent decision API refuses an impossible
amount or currency with a 422 naming the field (nothing is decided, nothing reaches the workflow or a CRM), triage
of a customer asking for an impossible amount still decides and hands the ticket to a person (without the amount),
and tasks stored before the bounds still load.

The approval API is called through functions/approval/app.py's handler with API Gateway events, its
composition root holding the real ApprovalService over the in-memory store."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from deflect.bootstrap import Container
from deflect.domain.canonical import sha256_hex
from deflect.domain.models import HumanTask, RequestedAction, TenantConfig, utcnow
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemoryEvidenceStore
from deflect.escalation.approval import ApprovalService
from deflect.escalation.records import EscalationPorts
from deflect.repositories import TenantConfigs, Tickets, save
from deflect.services.audit import AuditLog
from deflect.settings import Settings
from deflect.triage.detectors import find_amount, requested_action
from tests.unit.triage_fakes import Store, make_world

TENANT = "acme"
PROPOSED = RequestedAction(kind="refund", amount=Decimal("49.90"), currency="EUR")
AUDITED_BODY = {
    "decision_id": "p4",
    "outcome": "edit",
    "reply": "x",
    "action": {"kind": "refund", "amount": "-1e400", "currency": "EURO"},
}


class RecordingWorkflow:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def send_task_success(self, token: str, output: Any) -> None:
        self.calls.append((token, output))

    def send_task_failure(self, token: str, error: str, cause: str) -> None:
        self.calls.append((token, cause))


class PlainCipher:
    def encrypt(self, tenant_id: str, plaintext: str) -> str:
        return f"{tenant_id}:{plaintext}"

    def decrypt(self, tenant_id: str, ciphertext: str) -> str:
        return ciphertext.removeprefix(f"{tenant_id}:")


class ApprovalApi:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from deflect import bootstrap
        from infra.local import template as tpl
        from infra.local.functions import LocalFunctions

        self.ctx = TenantContext.system(TENANT)
        self.store = Store()
        evidence = MemoryEvidenceStore()
        self.workflow = RecordingWorkflow()
        self.ports = EscalationPorts(
            store=self.store,
            evidence=evidence,
            audit=AuditLog(self.store, evidence),
            workflow=self.workflow,
            cipher=PlainCipher(),
            notifier=None,  # type: ignore[arg-type]
            writeback=None,  # type: ignore[arg-type]
        )
        save(
            self.store,
            self.ctx,
            [TenantConfigs(self.store).save_write(TenantConfig(tenant_id=TENANT, display_name="Acme"))],
        )
        # the composition root the handler asks for; anything else it needs is built over this in-memory store
        root = Container(
            Settings.from_env({}),
            store=self.store,
            evidence=evidence,
            audit=self.ports.audit,
            approvals=ApprovalService(self.ports),
        )
        self.functions = LocalFunctions({"ApprovalFunction": tpl.functions()["ApprovalFunction"]})
        monkeypatch.setattr(bootstrap, "container", lambda: root)
        monkeypatch.setattr(self.functions.module("ApprovalFunction"), "container", lambda: root)
        self.routes = [r for r in tpl.routes() if r.function == "ApprovalFunction"]

    def task(self, action: RequestedAction = PROPOSED) -> str:
        token = "tok-1"
        task = HumanTask(
            tenant_id=TENANT,
            ticket_id="tkt-1",
            queue="tier1",
            required_role="approver",
            due_at=utcnow() + timedelta(hours=1),
            proposed_action=action,
            proposed_reply="We will refund you.",
            token_ciphertext=PlainCipher().encrypt(TENANT, token),
            token_sha256=sha256_hex(token.encode()),
        )
        save(self.store, self.ctx, [self.ports.tasks.save_write(task)])
        return task.task_id

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        from infra.local import api

        route, params = api.match(api.compile_routes(self.routes), method, path)  # type: ignore[misc]
        event = api.rest_event(
            route,
            method=method,
            path=path,
            query="",
            headers=[("content-type", "application/json")],
            body=json.dumps(body).encode() if body is not None else b"",
            path_parameters=params,
            claims={"sub": "ann", "custom:tenant_id": TENANT, "cognito:groups": "approver"},
            stage="local",
        )
        reply = self.functions.invoke("ApprovalFunction", event)
        return reply["statusCode"], json.loads(reply["body"]) if reply.get("body") else None

    def decide(self, task_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        return self.call("POST", f"/v1/tasks/{task_id}/decision", body)

    def nothing_decided(self, task_id: str) -> bool:
        task = self.ports.tasks.get(self.ctx, task_id)
        return (
            task.status == "open"
            and self.ports.decisions.for_task(self.ctx, task_id) is None
            and self.workflow.calls == []
        )


@pytest.fixture
def approval(monkeypatch):
    from deflect.observability import metrics

    yield ApprovalApi(monkeypatch)
    metrics().clear_metrics()


# ------------------------------------------------------------------ the agent decision API


def test_the_audited_refund_of_minus_1e400_euro_is_refused_with_a_422_naming_both_fields(approval):
    task_id = approval.task()

    status, body = approval.decide(task_id, AUDITED_BODY)

    assert status == 422
    assert body["error"] == "invalid_request"
    assert body["fields"] == ["body.action.amount", "body.action.currency"]
    assert approval.nothing_decided(task_id)


@pytest.mark.parametrize(
    ("action", "field"),
    [
        ({"kind": "refund", "amount": "-5", "currency": "USD"}, "amount"),
        ({"kind": "refund", "amount": "0", "currency": "USD"}, "amount"),
        ({"kind": "refund", "amount": "1000000000.01", "currency": "USD"}, "amount"),
        ({"kind": "refund", "amount": "12.34567", "currency": "USD"}, "amount"),
        ({"kind": "refund", "amount": "NaN", "currency": "USD"}, "amount"),
        ({"kind": "refund", "amount": "10", "currency": "€"}, "currency"),
        ({"kind": "refund", "amount": "10", "currency": ""}, "currency"),
        ({"kind": "refund", "amount": "10", "currency": "US"}, "currency"),
        ({"kind": "refund", "amont": "10", "currency": "USD"}, "amont"),  # a misspelt field is not ignored
    ],
)
def test_an_out_of_bounds_action_is_refused_and_nothing_is_decided(approval, action, field):
    task_id = approval.task()

    status, body = approval.decide(task_id, {"decision_id": "d-1", "outcome": "edit", "action": action})

    assert status == 422
    assert body["fields"] == [f"body.action.{field}"]
    assert approval.nothing_decided(task_id)


def test_an_edit_with_a_lower_case_currency_applies_with_its_iso_code(approval):
    task_id = approval.task()

    status, body = approval.decide(
        task_id,
        {
            "decision_id": "d-1",
            "outcome": "edit",
            "action": {"kind": "refund", "amount": "45.5", "currency": "eur"},
        },
    )

    assert status == 200 and body["outcome"] == "edit"
    decided = approval.ports.decisions.for_task(approval.ctx, task_id)
    assert decided.action == RequestedAction(kind="refund", amount=Decimal("45.5"), currency="EUR")
    assert decided.diff["action"] == {"amount": {"from": "49.90", "to": "45.5"}}
    assert len(approval.workflow.calls) == 1


def test_approving_the_proposal_exactly_as_the_task_shows_it_still_works(approval):
    task_id = approval.task()
    status, shown = approval.call("GET", f"/v1/tasks/{task_id}")
    assert status == 200

    status, body = approval.decide(
        task_id,
        {"decision_id": "d-1", "outcome": "approve", "action": shown["task"]["proposed_action"]},
    )

    assert status == 200 and body["outcome"] == "approve"
    assert approval.ports.decisions.for_task(approval.ctx, task_id).action == PROPOSED


def test_a_task_stored_before_the_bounds_with_an_impossible_amount_still_loads(approval):
    legacy = RequestedAction(kind="refund", amount=Decimal("-1E+400"), currency="EURO")
    task_id = approval.task(legacy)

    status, shown = approval.call("GET", f"/v1/tasks/{task_id}")

    assert status == 200
    assert shown["task"]["proposed_action"] == {
        "kind": "refund",
        "amount": "-1E+400",
        "currency": "EURO",
        "target": None,
    }
    # approving it as proposed commits nothing and says why
    status, refused = approval.decide(task_id, {"decision_id": "d-0", "outcome": "approve"})
    assert status == 400 and "amount" in refused["detail"] and "currency" in refused["detail"]
    assert approval.workflow.calls == []
    # and an agent can still correct it
    status, _ = approval.decide(
        task_id,
        {
            "decision_id": "d-1",
            "outcome": "edit",
            "action": {"kind": "refund", "amount": "5", "currency": "EUR"},
        },
    )
    assert status == 200


# ------------------------------------------------------------------ triage of what customers write


@pytest.mark.parametrize(
    "text",
    [
        "Please refund me -5 USD",
        "please refund me -$5",
        "Please refund me 0 dollars",
        "Please refund 99999999999999 USD to my card",
    ],
)
def test_a_refund_of_an_impossible_amount_is_triaged_and_handed_to_a_person_without_the_amount(text):
    world = make_world()

    result = world.triage("tkt-1", text)

    assert result.outcome == "escalate" and result.escalated
    assert "action:refund" in result.reasons
    action = result.classification.requested_action
    assert (action.kind, action.amount, action.currency) == ("refund", None, None)
    [decision] = Tickets(world.store).decisions(world.ctx, "tkt-1")
    assert decision.classification.requested_action == action
    [(started, _, _)] = world.started
    assert started.decision_id == result.decision_id


def test_a_refund_of_a_possible_amount_keeps_it():
    result = make_world().triage("tkt-1", "Please refund me 49,50 EUR")

    action = result.classification.requested_action
    assert (action.kind, action.amount, action.currency) == ("refund", Decimal("49.50"), "EUR")


def test_a_minus_sign_is_read_but_a_hyphenated_range_is_not():
    assert find_amount("refund me -5 USD") == (Decimal("-5"), "USD")
    assert find_amount("refund me \u22125 euros") == (Decimal("-5"), "EUR")
    assert find_amount("between 10-15 USD") == (Decimal("15"), "USD")
    assert requested_action("refund me 10-15 USD").amount == Decimal("15")
