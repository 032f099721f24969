"""A tenant may trust a helpdesk's requester emails (TenantConfig.email_vouching_providers), safe by default.

Maria is a CRM-verified customer known by email only (the common PUT /v1/customers shape), on an enterprise account.
Without the opt-in, a Zendesk, Freshdesk or Jira ticket from her address is an unverified requester's: intake cannot
tell her from someone who typed her email. A tenant whose Zendesk takes mail only from verified senders, or whose
Jira portal requires login, lists that helpdesk and her tickets carry her account, plan and SLA again. An Intercom
lead is an anonymous visitor: its email never names her, whatever the tenant lists. Until a tenant opts in, each
such ticket logs a warning (tenant, provider, customer id; no email) and counts a metric, so the change is noticed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from deflect.domain.errors import MalformedPayload
from deflect.domain.models import Account, Customer, TenantConfig
from deflect.repositories import Accounts, Customers, TenantConfigs, Tickets, save
from deflect.services.intake import Intake
from deflect.services.tenant_admin import TenantAdmin, TenantConfigUpdate
from deflect.webhooks import parse_payload
from tests.unit.intake_fakes import NoSecrets
from tests.unit.triage_fakes import RecordingQueue, make_world

EVENTS = Path(__file__).resolve().parents[2] / "events"
MARIA = "maria.lopez@acme-corp.example"  # the requester of the shipped Zendesk trigger body
MARIAS = ("crm-maria", "acct-m", "enterprise", "enterprise")


class Desk:
    def __init__(self) -> None:
        self.world = make_world()
        self.ctx = self.world.ctx
        self.store = self.world.store
        self.metrics: list[tuple[str, float]] = []
        self.intake = Intake(
            self.store,
            self.world.evidence,
            NoSecrets(),
            RecordingQueue(),
            self.world.audit,
            None,
            metric=lambda name, value: self.metrics.append((name, value)),
        )
        account = Account(tenant_id="acme", account_id="acct-m", plan="enterprise", sla_tier="enterprise")
        save(self.store, self.ctx, [Accounts(self.store).save_write(account)])
        self.crm_customer("crm-maria", MARIA)
        self.deliveries = 0

    def crm_customer(self, customer_id: str, email: str) -> None:
        maria = Customer(
            tenant_id="acme", customer_id=customer_id, email=email, account_id="acct-m", verified=True
        )
        save(self.store, self.ctx, Customers(self.store).save_writes(maria))

    def trust(self, *providers: str) -> None:
        """As an admin does it: PUT /v1/tenants/{tenant}/config."""
        update = TenantConfigUpdate.model_validate({"email_vouching_providers": list(providers)})
        TenantAdmin(self.store, NoSecrets(), self.world.audit).update_config(self.ctx, "acme", update)

    def deliver(self, provider: str, payload: dict[str, Any]) -> tuple[Any, ...]:
        """Who the ticket is for, as agents and routing see it: customer, account, plan, SLA tier."""
        self.deliveries += 1
        config = TenantConfigs(self.store).get(self.ctx)
        parsed = parse_payload(provider, "acme", payload)
        accepted = self.intake.accept(self.ctx, config, parsed, f"d{self.deliveries}", {"raw": "x"})
        t = Tickets(self.store).require(self.ctx, accepted.ticket_id)
        return t.customer_id, t.account_id, t.plan, t.sla_tier


def event(path: str) -> dict[str, Any]:
    return json.loads((EVENTS / path).read_text())


def intercom_lead(email: str) -> dict[str, Any]:
    return {
        "type": "notification_event",
        "id": "n-lead-1",
        "topic": "conversation.user.created",
        "data": {
            "item": {
                "id": "conv-lead-1",
                "source": {
                    "id": "p1",
                    "body": "<p>Export fails</p>",
                    "author": {"type": "lead", "id": "lead-1", "email": email},
                },
                "contacts": {"contacts": [{"id": "lead-1"}]},
            }
        },
    }


def test_without_the_opt_in_the_shipped_zendesk_trigger_gets_an_unverified_customer():
    desk = Desk()
    customer_id, account_id, plan, _ = desk.deliver("zendesk", event("zendesk/trigger_ticket_created.json"))
    assert customer_id != "crm-maria" and account_id is None and plan is None
    assert not Customers(desk.store).get(desk.ctx, customer_id).verified


def test_a_tenant_that_trusts_zendesk_emails_gets_its_crm_customers_plan_and_sla_back():
    desk = Desk()
    desk.trust("zendesk")
    assert desk.deliver("zendesk", event("zendesk/trigger_ticket_created.json")) == MARIAS


@pytest.mark.parametrize(
    ("provider", "path", "email"),
    [
        ("jira", "jira/issue_created.json", "sam.okafor@umbrella.example"),
        ("freshdesk", "freshdesk/ticket_created.json", "lena.fischer@initech.example"),
    ],
)
def test_a_jira_or_freshdesk_requester_is_the_crm_customer_once_that_helpdesk_is_trusted(
    provider, path, email
):
    desk = Desk()
    desk.crm_customer("crm-requester", email)
    assert desk.deliver(provider, event(path))[0] != "crm-requester"  # safe by default
    desk.trust(provider)
    again = event(path)
    if provider == "jira":
        again["issue"]["id"], again["issue"]["key"] = "10043", "SUP-143"
    else:
        again["freshdesk_webhook"]["ticket_id"] = "4822"
    assert desk.deliver(provider, again) == ("crm-requester", *MARIAS[1:])


def test_trusting_one_helpdesk_does_not_vouch_for_another():
    desk = Desk()
    desk.trust("jira")
    assert desk.deliver("zendesk", event("zendesk/trigger_ticket_created.json"))[0] != "crm-maria"


def test_intercom_cannot_be_listed_and_a_lead_never_names_the_customer():
    desk = Desk()
    with pytest.raises(ValidationError, match="Intercom"):
        TenantConfigUpdate.model_validate({"email_vouching_providers": ["intercom"]})
    with pytest.raises(MalformedPayload):
        TenantAdmin(desk.store, NoSecrets(), desk.world.audit).update_config(
            desk.ctx, "acme", TenantConfigUpdate.model_construct(email_vouching_providers=["intercom"])
        )
    desk.trust("zendesk", "freshdesk", "jira", "generic")
    assert desk.deliver("intercom", intercom_lead(MARIA))[0] != "crm-maria"
    # Even a config that came to list Intercom some other way: a lead is anonymous by definition.
    config = TenantConfigs(desk.store).get(desk.ctx)
    listed = TenantConfig.model_construct(**{**dict(config), "email_vouching_providers": ["intercom"]})
    parsed = parse_payload("intercom", "acme", intercom_lead(MARIA.upper()))
    accepted = desk.intake.accept(desk.ctx, listed, parsed, "d-lead", {"raw": "x"})
    assert accepted.customer_id != "crm-maria"


def test_an_unvouched_email_of_a_verified_customer_is_logged_and_counted_without_the_email(caplog):
    desk = Desk()
    desk.deliver("zendesk", event("zendesk/trigger_ticket_created.json"))
    assert ("UnvouchedEmailOfVerifiedCustomer", 1) in desk.metrics
    [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert (warning.tenant_id, warning.provider, warning.customer_id) == ("acme", "zendesk", "crm-maria")
    assert MARIA not in json.dumps(warning.__dict__, default=str).lower()
    # Once the tenant trusts Zendesk the customer is matched: nothing to warn about.
    desk.trust("zendesk")
    caplog.clear()
    desk.metrics.clear()
    event_again = event("zendesk/trigger_ticket_created.json")
    event_again["ticket"]["id"] = "35437"
    assert desk.deliver("zendesk", event_again) == MARIAS
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert ("UnvouchedEmailOfVerifiedCustomer", 1) not in desk.metrics


def test_a_trusted_helpdesk_that_says_the_email_is_unverified_is_believed():
    # Trusting Zendesk's emails covers trigger bodies that do not say; a body that says "verified": false is a
    # web-form requester who typed Maria's address, and must not get her enterprise account and SLA.
    desk = Desk()
    desk.trust("zendesk", "generic")
    typed = event("zendesk/trigger_ticket_created.json")
    typed["ticket"]["requester"]["verified"] = False
    assert desk.deliver("zendesk", typed)[0] != "crm-maria"
    as_text = event("zendesk/trigger_ticket_created.json")
    as_text["ticket"]["id"], as_text["ticket"]["requester"]["verified"] = "35438", "false"
    assert desk.deliver("zendesk", as_text)[0] != "crm-maria"
    said_no = event("generic/ticket_created.json")
    said_no["requester"] = {"email": MARIA, "email_verified": False}
    assert desk.deliver("generic", said_no)[0] != "crm-maria"
    # Bodies that do not say are trusted, as the tenant chose.
    unsaid = event("generic/ticket_created.json")
    unsaid["ticket"]["id"] = "g-unsaid"
    unsaid["requester"] = {"email": MARIA}
    assert desk.deliver("generic", unsaid) == MARIAS
