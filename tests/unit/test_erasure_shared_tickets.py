"""Erasing someone who only took part in another customer's ticket (a Jira Service Management request participant,
a CC) erases what they wrote and what names them there, and nothing of the customer the ticket belongs to. Erasing
the ticket's own customer still erases the whole ticket."""

from __future__ import annotations

import json
from typing import Any

from deflect.adapters.eventbridge_publisher import NoEventBus
from deflect.domain import keys
from deflect.domain.models import Customer, DiagnosticsChecklist
from deflect.insight.facts import FactStore
from deflect.insight.privacy import ERASED, CustomerKeys, Erasure
from deflect.insight.service import Insight
from deflect.ports import IntentPrediction
from deflect.repositories import Customers, TenantConfigs, Tickets, save
from deflect.services.intake import Intake
from deflect.webhooks import parse_payload
from tests.unit.triage_fakes import EXPORT_ARTICLE, REFUND_ARTICLE, RecordingQueue, make_world

ANA = {"accountId": "qm:aaaa", "displayName": "Ana Alpha", "emailAddress": "ana@alpha.example"}
BOB = {"accountId": "qm:bbbb", "displayName": "Bob Beta", "emailAddress": "bob@beta.example"}
ISSUE = {
    "id": "10042",
    "key": "SUP-142",
    "fields": {
        "summary": "Export fails for the finance workspace",
        "reporter": {**ANA, "accountType": "customer"},
        "priority": {"name": "High"},
        # JSM's "Request participants" field: Bob is named on Ana's request.
        "customfield_10027": [{**BOB, "accountType": "customer"}],
    },
}
ANAS_TEXT = "The export crashes every time on app version 4.2.1, workspace: alpha-finance"
BOBS_TEXT = "Same crash here on version 4.3.0, workspace: beta-ops-bob, call me on 07700 900123"
TROUBLE = IntentPrediction(
    intent="error_report", confidence=0.9, kind="problem", product_area="troubleshooting"
)


class Desk:
    """Tenant acme: Ana raised SUP-142 on the service desk, Bob (another company's user) commented on it."""

    def __init__(self) -> None:
        self.world = make_world(
            articles=[EXPORT_ARTICLE, REFUND_ARTICLE],
            diagnostics=[
                DiagnosticsChecklist(product_area="troubleshooting", required=["app_version", "workspace"])
            ],
            rules=[("crash", TROUBLE)],
        )
        self.ctx = self.world.ctx
        self.store = self.world.store
        self.intake = Intake(
            self.store, self.world.evidence, _NoSecrets(), RecordingQueue(), self.world.audit, None
        )
        self.config = TenantConfigs(self.store).get(self.ctx)
        for customer_id, user in (("crm-ana", ANA), ("crm-bob", BOB)):
            profile = Customer(
                tenant_id="acme",
                customer_id=customer_id,
                email=user["emailAddress"],
                name=user["displayName"],
                external_ids={"jira": user["accountId"]},
                verified=True,
            )
            save(self.store, self.ctx, Customers(self.store).save_writes(profile))
        self.erasure = Erasure(self.store, self.world.audit, CustomerKeys(self.store, None, None))

    def jira(self, payload: dict[str, Any], delivery: str) -> Any:
        accepted = self.intake.accept(
            self.ctx, self.config, parse_payload("jira", "acme", payload), delivery, {"raw": delivery}
        )
        # Triage the message, and link its author to the ticket as the deployed audit log's observer does.
        self.world.service.triage(self.ctx, accepted.ticket_id, accepted.message_id)
        Insight(self.store, FactStore(self.store), NoEventBus(), None).replay(
            self.ctx, self.world.audit, accepted.ticket_id, publish=False
        )
        return accepted

    def raise_and_comment(self) -> tuple[Any, Any]:
        issue = {**ISSUE, "fields": {**ISSUE["fields"], "description": ANAS_TEXT}}
        raised = self.jira({"webhookEvent": "jira:issue_created", "issue": issue}, "d1")
        comment = {
            "id": "10201",
            "author": {**BOB, "accountType": "customer"},
            "body": BOBS_TEXT,
            "jsdPublic": True,
        }
        commented = self.jira({"webhookEvent": "comment_created", "issue": ISSUE, "comment": comment}, "d2")
        return raised, commented

    def items(self, ticket_id: str) -> dict[str, dict[str, Any]]:
        return {i.sk: i.data for i in self.store.query(self.ctx, keys.ticket_pk("acme", ticket_id))}

    def texts(self, ticket_id: str) -> dict[str, str]:
        return {m.message_id: m.body_redacted for m in Tickets(self.store).messages(self.ctx, ticket_id)}

    def diagnostics(self, ticket_id: str) -> dict[str, str]:
        items = self.store.query(self.ctx, keys.ticket_pk("acme", ticket_id), "DIAG#")
        return {i.data["name"]: i.data["value"] for i in items}


class _NoSecrets:
    def secrets(self, tenant_id: str, name: str) -> list[str]:
        return []


def _without_versions(items: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {sk: {k: v for k, v in data.items() if k != "version"} for sk, data in items.items()}


def test_erasing_a_request_participant_keeps_the_requesters_messages_drafts_and_ticket() -> None:
    desk = Desk()
    raised, commented = desk.raise_and_comment()
    ticket_id = raised.ticket_id
    assert commented.ticket_id == ticket_id
    assert desk.erasure.tickets_of(desk.ctx, "crm-bob") == [ticket_id]  # Bob is linked through his comment
    # Bob's comment gave the latest values.
    assert desk.diagnostics(ticket_id) == {"app_version": "4.3.0", "workspace": "beta-ops-bob"}
    before = desk.items(ticket_id)

    report = desk.erasure.erase_customer(desk.ctx, "crm-bob")

    assert report.tickets == report.shared_tickets == [ticket_id]
    # Ana's request is still Ana's: her message, the ticket and every decision and draft are as they were.
    assert desk.texts(ticket_id)[raised.message_id] == ANAS_TEXT
    ticket = Tickets(desk.store).get(desk.ctx, ticket_id)
    assert ticket is not None and ticket.customer_id == "crm-ana"
    assert ticket.subject_redacted == ISSUE["fields"]["summary"]
    assert ticket.custom_fields["priority"] == "High"
    after = desk.items(ticket_id)
    decisions = [sk for sk in before if sk.startswith("DECISION#")]
    assert len(decisions) == 2
    assert {sk: after[sk] for sk in decisions} == {sk: before[sk] for sk in decisions}
    # What Bob wrote, and where he is named, is gone.
    assert desk.texts(ticket_id)[commented.message_id] == ERASED
    assert ticket.custom_fields["customfield_10027"] == [ERASED]
    kept = json.dumps(after)
    for bobs in ("beta-ops-bob", "4.3.0", "Bob Beta", "bob@beta.example", "qm:bbbb", "Same crash here"):
        assert bobs not in kept, bobs
    assert "beta-ops-bob" not in json.dumps(desk.diagnostics(ticket_id))
    # Only Bob's records changed.
    changed = {sk for sk in before if _without_versions(before).get(sk) != _without_versions(after).get(sk)}
    bobs_message = next(sk for sk in before if sk.startswith("MSG#") and sk.endswith(commented.message_id))
    assert changed == {"META", bobs_message, "DIAG#app_version", "DIAG#workspace"}


def test_erasing_the_requester_still_erases_the_whole_ticket() -> None:
    desk = Desk()
    raised, commented = desk.raise_and_comment()

    desk.erasure.erase_customer(desk.ctx, "crm-ana")

    texts = desk.texts(raised.ticket_id)
    assert texts == {raised.message_id: ERASED, commented.message_id: ERASED}
    kept = json.dumps(desk.items(raised.ticket_id))
    for personal in ("alpha-finance", "beta-ops-bob", "Export fails for the finance workspace", "Bob Beta"):
        assert personal not in kept, personal
    assert desk.diagnostics(raised.ticket_id) == {}
    # The answer triage queued for Ana (not delivered yet) is blanked too.
    _, events = desk.world.audit.load(desk.ctx, raised.ticket_id)
    queued = [o for e in events if e.type == "decision.made" for o in e.payload["outbox_ids"]]
    assert queued
    for outbox_id in queued:
        assert desk.store.get(desk.ctx, keys.outbox_pk("acme", outbox_id), "META").data["body"] == ERASED


def test_a_participants_erasure_leaves_the_requesters_diagnostics_in_place() -> None:
    desk = Desk()
    issue = {**ISSUE, "fields": {**ISSUE["fields"], "description": ANAS_TEXT}}
    raised = desk.jira({"webhookEvent": "jira:issue_created", "issue": issue}, "d1")
    comment = {"id": "10202", "author": {**BOB, "accountType": "customer"}, "body": "+1", "jsdPublic": True}
    desk.jira({"webhookEvent": "comment_created", "issue": ISSUE, "comment": comment}, "d2")
    assert desk.diagnostics(raised.ticket_id) == {"app_version": "4.2.1", "workspace": "alpha-finance"}

    desk.erasure.erase_customer(desk.ctx, "crm-bob")

    # Ana gave them: they stay, and triage will not ask her again.
    assert desk.diagnostics(raised.ticket_id) == {"app_version": "4.2.1", "workspace": "alpha-finance"}
