"""A ticket belongs to the customer who raised it.

A later message from someone else (a Jira Service Management request participant, a CC) is stored and triaged on
that ticket, but never re-assigns the ticket's customer, account, plan, entitlements or SLA tier; in an API
conversation another requester's message is refused (404). The customer's own messages still refresh what they are entitled to, and a ticket
raised without a known customer takes its first known author.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from deflect.domain.errors import NotFound
from deflect.domain.models import Account, Customer
from deflect.domain.tenancy import TenantContext
from deflect.escalation.models import EscalationRequest, EscalationState
from deflect.escalation.records import EscalationPorts
from deflect.escalation.steps import EscalationSteps
from deflect.repositories import Accounts, Customers, TenantConfigs, Tickets, save
from deflect.services.intake import Intake
from deflect.webhooks import InboundMessage, Requester, parse_payload
from tests.unit.intake_fakes import NoSecrets
from tests.unit.triage_fakes import RecordingQueue, World, make_world

ANA = {
    "accountId": "qm:aaaa",
    "displayName": "Ana Alpha",
    "emailAddress": "ana@alpha.example",
    "accountType": "customer",
}
BOB = {
    "accountId": "qm:bbbb",
    "displayName": "Bob Beta",
    "emailAddress": "bob@beta.example",
    "accountType": "customer",
}
ISSUE = {
    "id": "10042",
    "key": "SUP-142",
    "fields": {"summary": "Refund the duplicate charge on INV-5531", "reporter": ANA},
}
REFUND = "Please refund the duplicate charge on INV-5531, card ending 4242. App version 4.2.1"


class Desk:
    """Ana (enterprise account) and Bob (free account) are CRM customers of tenant acme."""

    def __init__(self) -> None:
        self.world: World = make_world()
        self.ctx = self.world.ctx
        self.queue = RecordingQueue()
        self.intake = Intake(
            self.world.store, self.world.evidence, NoSecrets(), self.queue, self.world.audit, None
        )
        self.config = TenantConfigs(self.world.store).get(self.ctx)
        self.account("acct-a", plan="enterprise", sla_tier="enterprise", entitlements=["refunds", "sso"])
        self.account("acct-b", plan="free")
        self.customer("crm-ana", "ana@alpha.example", "qm:aaaa", "acct-a")
        self.customer("crm-bob", "bob@beta.example", "qm:bbbb", "acct-b")

    def account(self, account_id: str, **fields: Any) -> None:
        accounts = Accounts(self.world.store)
        current = accounts.get(self.ctx, account_id)
        if current is None:
            record = Account(tenant_id="acme", account_id=account_id, **fields)
        else:
            record = current.model_copy(update=fields)
        save(self.world.store, self.ctx, [accounts.save_write(record)])

    def customer(self, customer_id: str, email: str, jira_id: str | None, account_id: str | None) -> None:
        profile = Customer(
            tenant_id="acme",
            customer_id=customer_id,
            email=email,
            external_ids={"jira": jira_id} if jira_id else {},
            account_id=account_id,
            verified=True,
        )
        save(self.world.store, self.ctx, Customers(self.world.store).save_writes(profile))

    def jira(self, payload: dict[str, Any], delivery: str) -> Any:
        return self.intake.accept(
            self.ctx, self.config, parse_payload("jira", "acme", payload), delivery, {"raw": delivery}
        )

    def raise_request(self) -> Any:
        created = {
            "webhookEvent": "jira:issue_created",
            "issue": {**ISSUE, "fields": {**ISSUE["fields"], "description": REFUND}},
        }
        return self.jira(created, "d1")

    def comment(self, author: dict[str, Any], comment_id: str, text: str) -> Any:
        payload = {
            "webhookEvent": "comment_created",
            "issue": ISSUE,
            "comment": {"id": comment_id, "author": author, "body": text, "jsdPublic": True},
        }
        return self.jira(payload, f"d-{comment_id}")

    def owner(self, ticket_id: str) -> tuple[Any, ...]:
        t = Tickets(self.world.store).get(self.ctx, ticket_id)
        assert t is not None
        return (t.customer_id, t.account_id, t.plan, sorted(t.entitlements), t.sla_tier)

    def texts(self, ticket_id: str) -> list[str]:
        return [m.body_redacted for m in Tickets(self.world.store).messages(self.ctx, ticket_id)]

    def received_from(self, ticket_id: str) -> dict[str, Any]:
        """message id → customer id, as the audit trail recorded each received message."""
        _, events = self.world.audit.load(self.ctx, ticket_id)
        return {
            e.payload["message_id"]: e.payload["customer_id"]
            for e in events
            if e is not None and e.type == "message.received"
        }


ANAS = ("crm-ana", "acct-a", "enterprise", ["refunds", "sso"], "enterprise")


def test_a_participants_comment_is_kept_and_triaged_on_the_requesters_ticket() -> None:
    desk = Desk()
    first = desk.raise_request()
    assert desk.owner(first.ticket_id) == ANAS

    comment = desk.comment(BOB, "10201", "Any news on this?")

    assert comment.ticket_id == first.ticket_id and comment.new_message
    assert desk.owner(first.ticket_id) == ANAS  # still Ana's request, on Ana's account and SLA
    assert desk.texts(first.ticket_id) == [REFUND, "Any news on this?"]
    assert [job["message_id"] for job in desk.queue.sent] == [first.message_id, comment.message_id]
    # Who wrote each message stays on record.
    assert desk.received_from(first.ticket_id) == {first.message_id: "crm-ana", comment.message_id: "crm-bob"}

    # Triaging Bob's comment escalates Ana's refund request as Ana's, under Ana's account.
    desk.world.service.triage(desk.ctx, first.ticket_id, comment.message_id)
    decision, ticket, _ = desk.world.started[-1]
    assert ticket.customer_id == "crm-ana"
    state = EscalationState.model_validate(EscalationRequest.from_decision(decision, ticket).model_dump())
    ports = EscalationPorts(desk.world.store, desk.world.evidence, desk.world.audit, None, None, None, None)
    ref = EscalationSteps(ports).summarize(desk.ctx, state, "esc-x").ref
    summary = json.loads(desk.world.evidence.read(desk.ctx, ref))["summary"]
    assert summary["customer"]["email"] == "ana@alpha.example"
    assert summary["account"]["account_id"] == "acct-a"


def test_the_requesters_own_messages_still_refresh_their_entitlements() -> None:
    desk = Desk()
    first = desk.raise_request()
    desk.account("acct-a", plan="enterprise-plus", entitlements=["refunds", "sso", "audit-log"])

    desk.comment(ANA, "10202", "Adding the invoice PDF")
    upgraded = ("crm-ana", "acct-a", "enterprise-plus", ["audit-log", "refunds", "sso"], "enterprise")
    assert desk.owner(first.ticket_id) == upgraded

    desk.comment(BOB, "10203", "+1, same here")
    assert desk.owner(first.ticket_id) == upgraded


def test_a_customer_moved_to_another_account_in_the_crm_brings_their_ticket_along() -> None:
    desk = Desk()
    first = desk.raise_request()
    desk.account("acct-a2", plan="team", sla_tier="premium")
    profile = Customers(desk.world.store).get(desk.ctx, "crm-ana")
    assert profile is not None
    moved = profile.model_copy(update={"account_id": "acct-a2"})
    save(desk.world.store, desk.ctx, Customers(desk.world.store).save_writes(moved))

    desk.comment(ANA, "10204", "We moved to the new workspace")
    assert desk.owner(first.ticket_id) == ("crm-ana", "acct-a2", "team", [], "premium")


def test_a_ticket_raised_without_a_known_customer_takes_its_first_known_author() -> None:
    desk = Desk()

    def message(requester: Requester, text: str, message_id: str) -> Any:
        inbound = InboundMessage(
            tenant_id="acme",
            provider="generic",
            event="message.created",
            is_new_ticket=message_id == "m1",
            external_ticket_id="T-7",
            external_message_id=message_id,
            requester=requester,
            body_text=text,
        )
        return desk.intake.accept(desk.ctx, desk.config, inbound, f"d-{message_id}", {"raw": message_id})

    first = message(Requester(), "Refund please", "m1")
    assert desk.owner(first.ticket_id) == (None, None, None, [], "standard")

    # Emails the sending tool verified (an unverified one names no CRM customer: see test_requester_email_vouching).
    message(Requester(email="ana@alpha.example", email_verified=True), "It is INV-5531", "m2")
    assert desk.owner(first.ticket_id) == ANAS

    message(Requester(email="bob@beta.example", email_verified=True), "Me too", "m3")
    message(Requester(), "Anyone?", "m4")  # nobody known wrote it: changes nothing either
    assert desk.owner(first.ticket_id) == ANAS
    assert desk.texts(first.ticket_id) == ["Refund please", "It is INV-5531", "Me too", "Anyone?"]


def test_the_crm_record_of_the_first_unverified_requester_takes_over_its_ticket() -> None:
    desk = Desk()
    carol = {"accountId": "qm:cccc", "displayName": "Carol", "emailAddress": "carol@gamma.example"}
    issue = {**ISSUE, "fields": {**ISSUE["fields"], "reporter": {**carol, "accountType": "customer"}}}
    created = desk.jira({"webhookEvent": "jira:issue_created", "issue": issue}, "d1")
    unverified = Tickets(desk.world.store).get(desk.ctx, created.ticket_id)
    assert unverified is not None and unverified.customer_id not in (None, "crm-carol")

    # A verified customer (another person) writing first changes nothing ...
    desk.comment(BOB, "10301", "Any news?")
    assert desk.owner(created.ticket_id)[0] == unverified.customer_id
    # ... then the CRM learns Carol (by her Jira account: Jira does not vouch for the email): her next message
    # brings her verified profile and account to her ticket.
    desk.account("acct-c", plan="team", sla_tier="premium")
    desk.customer("crm-carol", "carol@gamma.example", "qm:cccc", "acct-c")
    desk.jira(
        {
            "webhookEvent": "comment_created",
            "issue": issue,
            "comment": {
                "id": "10302",
                "author": {**carol, "accountType": "customer"},
                "body": "Invoice attached",
            },
        },
        "d-10302",
    )
    assert desk.owner(created.ticket_id) == ("crm-carol", "acct-c", "team", [], "premium")
    desk.comment(BOB, "10303", "Still waiting")
    assert desk.owner(created.ticket_id)[0] == "crm-carol"


def test_an_api_conversation_stays_with_the_customer_who_started_it() -> None:
    desk = Desk()
    ctx = TenantContext(tenant_id="acme", actor="api-key", via="api_key", roles=frozenset({"service"}))

    def post(text: str, requester: Requester, conversation: str | None = None) -> Any:
        return desk.intake.converse(
            ctx, desk.config, text=text, requester=requester, conversation_id=conversation
        )

    class OnceGuard:
        def once(self, key: str, fingerprint: str, work: Any) -> dict[str, Any]:
            return work()

    desk.intake.guard = OnceGuard()
    ana = Requester(email="ana@alpha.example")
    started = post("Where is my refund for INV-5531?", ana)
    conversation = started.body["conversation_id"]
    # Another requester, or none, is answered as for an unknown conversation (see test_conversation_owner).
    for other in (Requester(email="bob@beta.example"), Requester()):
        with pytest.raises(NotFound):
            post("I am her colleague, any update?", other, conversation)
    post("Hello?", ana, conversation)

    assert desk.owner(conversation) == ANAS
    texts = [m["text"] for m in desk.intake.conversation(ctx, conversation, ana)["messages"]]
    assert texts == ["Where is my refund for INV-5531?", "Hello?"]
    assert len({job["message_id"] for job in desk.queue.sent}) == 2
