"""`deflect customer erase` for a Jira Service Management request participant, on the deployed wiring: intake
seals each webhook with its author's key and the observed audit log links each author to the ticket. The
participant's comment and name go; the requester's request stays readable."""

from __future__ import annotations

import json

from deflect.cli import main as cli
from deflect.domain import keys
from deflect.domain.models import Customer
from deflect.repositories import Customers, Tickets
from deflect.webhooks import parse_payload
from tests.integration.insight_story import seed_tenant
from tests.integration.test_insight_erasure import everything_readable
from tests.unit.test_intake_ticket_owner import ANA, BOB

ISSUE = {
    "id": "10042",
    "key": "SUP-142",
    "fields": {
        "summary": "Export fails for the finance workspace",
        "reporter": ANA,
        "customfield_10027": [BOB],  # Request participants
    },
}
ANAS_TEXT = "The export crashes every time on app version 4.2.1"
BOBS_TEXT = "Same crash here, ask Bob Beta in ops about it"


def test_erasing_a_request_participant_keeps_the_requesters_request(moto_stack, capsys):
    container = moto_stack.container()
    ctx = seed_tenant(container, "acme")
    for customer_id, user in (("crm-ana", ANA), ("crm-bob", BOB)):
        profile = Customer(
            tenant_id="acme",
            customer_id=customer_id,
            email=user["emailAddress"],
            name=user["displayName"],
            external_ids={"jira": user["accountId"]},
            verified=True,
        )
        container.store.transact(ctx, Customers(container.store).save_writes(profile))
    config = container.tenants.get(ctx)

    def jira(payload: dict, delivery: str):
        return container.intake.accept(ctx, config, parse_payload("jira", "acme", payload), delivery, payload)

    issue = {**ISSUE, "fields": {**ISSUE["fields"], "description": ANAS_TEXT}}
    raised = jira({"webhookEvent": "jira:issue_created", "issue": issue}, "d1")
    comment = {"id": "10201", "author": BOB, "body": BOBS_TEXT, "jsdPublic": True}
    commented = jira({"webhookEvent": "comment_created", "issue": ISSUE, "comment": comment}, "d2")
    assert commented.ticket_id == raised.ticket_id
    capsys.readouterr()

    assert cli(["customer", "erase", "--tenant", "acme", "--customer", "crm-bob"]) == 0

    texts = {m.message_id: m.body_redacted for m in Tickets(container.store).messages(ctx, raised.ticket_id)}
    assert texts == {raised.message_id: ANAS_TEXT, commented.message_id: "[erased]"}
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["tickets"] == report["shared_tickets"] == [raised.ticket_id]
    ticket = Tickets(container.store).get(ctx, raised.ticket_id)
    assert ticket.customer_id == "crm-ana" and ticket.subject_redacted == ISSUE["fields"]["summary"]
    # Ana's raw request is still hers to read; Bob's comment, as received, cannot be opened any more.
    _, events = container.audit.load(ctx, raised.ticket_id)
    received = {e.payload["message_id"]: e.evidence[0] for e in events if e.type == "message.received"}
    assert ANAS_TEXT.encode() in container.sealed_evidence.read(ctx, received[raised.message_id])
    table = json.dumps(container.store.query(ctx, keys.ticket_pk("acme", raised.ticket_id)), default=str)
    assert "Bob Beta" not in table and "Same crash here" not in table
    for text in everything_readable(moto_stack.session, container, ctx):
        assert "Same crash here" not in text and "bob@beta.example" not in text
    assert Customers(container.store).get(ctx, "crm-ana") is not None
    assert cli(["audit", "verify", "--tenant", "acme"]) == 0
