"""An email names a CRM-verified customer only when the channel vouches for it.

An Intercom lead (an anonymous website visitor) or a Zendesk web-form requester types an email nobody verified:
it may be anyone's. Such a message gets an unverified customer of its own and never a verified customer's plan,
entitlements or segments. An Intercom `user`, a Zendesk user marked verified, the conversation API's requester
(the tenant's own backend sends it) and a helpdesk user id the CRM registered still name the customer. Emails
compare without ASCII case only: a mailbox spelt with a look-alike (the Kelvin sign) is another mailbox.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from deflect.domain.models import Account, Customer
from deflect.embedded.search import EmbeddedKnowledgeIndex
from deflect.knowledge.chunking import chunk_article
from deflect.knowledge.models import ArticleInput, SearchRequest
from deflect.repositories import Accounts, Customers, TenantConfigs, Tickets, save
from deflect.services.intake import Intake, customer_id_for
from deflect.services.tenant_admin import CustomerUpdate, TenantAdmin
from deflect.triage.profile import TriageProfile
from deflect.triage.service import customer_options
from deflect.webhooks import Requester, parse_payload
from tests.knowledge_cases.fakes import HashingEmbedder
from tests.unit.intake_fakes import NoSecrets
from tests.unit.triage_fakes import RecordingQueue, make_world

KATE = "kate@example.com"
KELVIN_KATE = "\u212aate@example.com"  # KELVIN SIGN + "ate": str.lower() turns it into "kate"


class Once:
    def once(self, key, fingerprint, work):
        return work()


class Desk:
    """Kate is a CRM-verified customer on an enterprise account entitled to the beta API (Zendesk user 9001)."""

    def __init__(self) -> None:
        self.world = make_world()
        self.ctx = self.world.ctx
        self.store = self.world.store
        self.intake = Intake(
            self.store, self.world.evidence, NoSecrets(), RecordingQueue(), self.world.audit, Once()
        )
        self.config = TenantConfigs(self.store).get(self.ctx)
        account = Account(tenant_id="acme", account_id="acct-k", plan="enterprise", entitlements=["beta-api"])
        save(self.store, self.ctx, [Accounts(self.store).save_write(account)])
        kate = Customer(
            tenant_id="acme",
            customer_id="crm-kate",
            email=KATE,
            external_ids={"zendesk": "9001"},
            account_id="acct-k",
            verified=True,
        )
        save(self.store, self.ctx, Customers(self.store).save_writes(kate))
        self.deliveries = 0
        self.last_ticket = ""

    def deliver(
        self, provider: str, payload: dict[str, Any]
    ) -> tuple[str | None, str | None, list[str], bool]:
        """Who the ticket is for, as agents and triage see it: customer, plan, entitlements, 'verified'."""
        self.deliveries += 1
        parsed = parse_payload(provider, "acme", payload)
        accepted = self.intake.accept(self.ctx, self.config, parsed, f"d{self.deliveries}", {"raw": "x"})
        self.last_ticket = accepted.ticket_id
        ticket = Tickets(self.store).require(self.ctx, accepted.ticket_id)
        _, events = self.world.audit.load(self.ctx, accepted.ticket_id)
        return ticket.customer_id, ticket.plan, ticket.entitlements, events[-1].payload["customer_verified"]

    def beta_article_answers_last_ticket(self) -> bool:
        """Whether triage's knowledge search for the last ticket finds Kate's segment-only article."""
        ticket = Tickets(self.store).require(self.ctx, self.last_ticket)
        account = Accounts(self.store).get(self.ctx, ticket.account_id) if ticket.account_id else None
        audience = customer_options(TriageProfile(tenant_id="acme"), account, ticket)["audience"]
        index = EmbeddedKnowledgeIndex(None, HashingEmbedder())
        article = ArticleInput(
            title="Beta API for enterprise",
            body="# Beta API\n\nEnable the beta API with token BETA-KEY-1.",
            visibility="segments",
            segments=["beta-api"],
        )
        chunks = chunk_article(
            tenant_id="acme", article_id="beta", version=1, meta=article.meta(), body=article.body,
            updated_at=datetime.now(UTC),
        )  # fmt: skip
        index.replace_article(self.ctx, "beta", chunks)
        index.flush()
        hits = index.search(
            self.ctx, SearchRequest(text="enable the beta API", audience=audience, now=datetime.now(UTC))
        )
        return [h.article_id for h in hits] == ["beta"]


def intercom(author_type: str, email: str, contact_id: str = "contact-1") -> dict[str, Any]:
    return {
        "type": "notification_event",
        "id": f"n-{author_type}-{contact_id}-{email}",
        "topic": "conversation.user.created",
        "data": {
            "item": {
                "id": f"conv-{author_type}-{contact_id}-{ord(email[0])}",
                "source": {
                    "id": "p1",
                    "body": "<p>How do I enable the beta API?</p>",
                    "author": {"type": author_type, "id": contact_id, "email": email},
                },
                "contacts": {"contacts": [{"id": contact_id}]},
            }
        },
    }


def zendesk(email: str, user_id: str, **requester: Any) -> dict[str, Any]:
    return {
        "event": "ticket.created",
        "ticket": {
            "id": f"zd-{user_id}-{ord(email[0])}",
            "subject": "Beta API",
            "description": "How do I enable the beta API?",
            "requester": {"id": user_id, "email": email, "name": "Kate?", **requester},
        },
        "current_user": {"role": "end-user"},
    }


def test_an_intercom_lead_that_types_a_customers_email_gets_nothing_of_hers():
    desk = Desk()
    customer_id, plan, entitlements, verified = desk.deliver("intercom", intercom("lead", KATE, "lead-666"))
    assert customer_id != "crm-kate"
    assert (plan, entitlements, verified) == (None, [], False)  # agents see an unverified visitor, not "Kate"
    assert not desk.beta_article_answers_last_ticket()
    lead = Customers(desk.store).get(desk.ctx, customer_id)
    assert lead is not None and not lead.verified and lead.account_id is None
    # The lead's next message is the same unverified visitor again, still nothing of Kate's.
    again = desk.deliver("intercom", intercom("lead", KATE.upper(), "lead-666"))
    assert again == (customer_id, None, [], False)


def test_an_intercom_user_with_the_email_is_the_customer():
    desk = Desk()
    customer_id, plan, entitlements, verified = desk.deliver("intercom", intercom("user", "Kate@Example.COM"))
    assert (customer_id, plan, entitlements, verified) == ("crm-kate", "enterprise", ["beta-api"], True)
    assert desk.beta_article_answers_last_ticket()


@pytest.mark.parametrize("author_type", ["lead", "user"])
def test_a_look_alike_mailbox_is_another_mailbox_even_when_vouched_for(author_type):
    desk = Desk()
    customer_id, plan, entitlements, verified = desk.deliver("intercom", intercom(author_type, KELVIN_KATE))
    assert customer_id != "crm-kate" and (plan, entitlements, verified) == (None, [], False)
    assert customer_id != customer_id_for("email", KATE)
    assert Customers(desk.store).get(desk.ctx, customer_id).email == KELVIN_KATE


def test_a_zendesk_web_form_requester_is_known_by_zendesk_user_not_by_the_typed_email():
    desk = Desk()
    # An anonymous web-form request: a new Zendesk user (not the one the CRM registered), email never verified.
    assert desk.deliver("zendesk", zendesk(KATE, "66601"))[1:] == (None, [], False)
    # The Zendesk user the CRM registered for Kate is Kate, whatever email the request carries.
    assert desk.deliver("zendesk", zendesk("someone@else.example", "9001")) == (
        "crm-kate", "enterprise", ["beta-api"], True,
    )  # fmt: skip
    # A payload that says Zendesk verified the user vouches for its email.
    assert desk.deliver("zendesk", zendesk(KATE, "55501", verified=True))[0] == "crm-kate"
    assert desk.deliver("zendesk", zendesk(KATE, "55502", verified="false"))[0] != "crm-kate"


def test_the_conversation_api_requester_is_vouched_for_by_the_tenants_backend():
    desk = Desk()
    reply = desk.intake.converse(
        desk.ctx,
        desk.config,
        text="How do I enable the beta API?",
        requester=Requester(email="KATE@example.com"),
    )
    ticket = Tickets(desk.store).require(desk.ctx, reply.body["conversation_id"])
    assert (ticket.customer_id, ticket.plan) == ("crm-kate", "enterprise")


def test_identities_keyed_by_earlier_releases_still_resolve():
    desk = Desk()
    customers = Customers(desk.store)
    # Intake of earlier releases made an unverified customer for an ASCII email: the same id, found again.
    earlier = Customer(
        tenant_id="acme", customer_id=customer_id_for("email", "bob@example.com"), email="bob@example.com"
    )
    save(desk.store, desk.ctx, customers.save_writes(earlier))
    assert desk.deliver("intercom", intercom("lead", "Bob@Example.com", "lead-7"))[0] == earlier.customer_id
    # A CRM email with a non-ASCII letter: its A-Z letters fold, the others compare exactly.
    zoe = Customer(tenant_id="acme", customer_id="crm-zoe", email="zo\u00eb@example.com", verified=True)
    save(desk.store, desk.ctx, customers.save_writes(zoe))
    assert customers.find_by_requester(desk.ctx, "email", "ZO\u00eb@EXAMPLE.com").customer_id == "crm-zoe"
    assert customers.find_by_requester(desk.ctx, "email", "zo\u00cb@example.com") is None


def test_a_lower_cased_key_of_an_earlier_release_names_only_the_customer_it_really_is():
    """Earlier releases keyed identities by str.lower(): the key of kate@ is where the Kelvin mailbox looks too, and
    what it finds there is not taken for it (the profile must name the very address)."""
    desk = Desk()
    customers = Customers(desk.store)
    assert customers.find_by_requester(desk.ctx, "email", KELVIN_KATE) is None
    assert customers.claimant(desk.ctx, "email", KELVIN_KATE) is None
    assert customers.find_by_requester(desk.ctx, "email", " KATE@example.com ").customer_id == "crm-kate"


def test_a_crm_customer_synced_with_a_look_alike_email_never_takes_the_real_address():
    """A product sign-up with the Kelvin mailbox reaches the CRM; it must not become the owner of kate@."""
    desk = Desk()
    admin = TenantAdmin(desk.store, NoSecrets(), desk.world.audit)
    saved = admin.put_customer(desk.ctx, "crm-kelvin", CustomerUpdate(email=KELVIN_KATE))
    assert saved.email == KELVIN_KATE
    assert desk.deliver("intercom", intercom("user", KATE, "user-kate"))[0] == "crm-kate"
    assert desk.deliver("intercom", intercom("user", KELVIN_KATE, "user-kelvin"))[0] == "crm-kelvin"
