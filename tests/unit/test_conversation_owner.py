"""A conversation (conversation API) belongs to the customer who started it.

Another requester of the same tenant cannot add to it or read it: both answer 404, exactly as an unknown id does.
A conversation's id is random, never derived from the Idempotency-Key; the key still finds its conversation again
(a late retry gets the first answer, another request with the key is refused), also for conversations that an
earlier release gave an id derived from the key.
"""

from __future__ import annotations

import pytest

from deflect.domain.canonical import sha256_hex
from deflect.domain.errors import NotFound
from deflect.domain.models import Account, Customer
from deflect.repositories import Accounts, Customers, TenantConfigs, Tickets, save
from deflect.services.intake import IdempotencyKeyReused, Intake
from deflect.webhooks import Requester
from tests.unit.intake_fakes import ForgetfulGuard, NoSecrets
from tests.unit.triage_fakes import RecordingQueue, make_world

X = Requester(email="x@example.com")
Y = Requester(email="y@example.com")
INVOICE = "My invoice INV-77 for ACME Corp is wrong"


class Desk:
    """X (enterprise, beta API) and Y (no account) are CRM-verified customers of tenant acme."""

    def __init__(self) -> None:
        world = make_world()
        self.world, self.ctx, self.store = world, world.ctx, world.store
        self.queue = RecordingQueue()
        self.intake = Intake(
            self.store, world.evidence, NoSecrets(), self.queue, world.audit, ForgetfulGuard()
        )
        self.config = TenantConfigs(self.store).get(self.ctx)
        account = Account(tenant_id="acme", account_id="acct-x", plan="enterprise", entitlements=["beta-api"])
        save(self.store, self.ctx, [Accounts(self.store).save_write(account)])
        self.customer("crm-x", "x@example.com", "acct-x")
        self.customer("crm-y", "y@example.com", None)

    def customer(self, customer_id: str, email: str, account_id: str | None) -> None:
        profile = Customer(
            tenant_id="acme", customer_id=customer_id, email=email, account_id=account_id, verified=True
        )
        save(self.store, self.ctx, Customers(self.store).save_writes(profile))

    def say(
        self, text: str, requester: Requester, conversation_id: str | None = None, key: str | None = None
    ):
        return self.intake.converse(
            self.ctx,
            self.config,
            text=text,
            requester=requester,
            conversation_id=conversation_id,
            idempotency_key=key,
        )

    def texts(self, conversation_id: str) -> list[str]:
        return [m.body_redacted for m in Tickets(self.store).messages(self.ctx, conversation_id)]


def test_another_customer_can_neither_post_into_nor_read_a_conversation():
    desk = Desk()
    started = desk.say(INVOICE, X, key="order-1001")
    conversation = started.body["conversation_id"]
    jobs = len(desk.queue.sent)

    with pytest.raises(NotFound) as posted:
        desk.say("what plan is this?", Y, conversation)
    with pytest.raises(NotFound) as unknown:
        desk.say("what plan is this?", Y, "cnv_" + "0" * 32)
    assert str(posted.value) == str(unknown.value)  # the same answer: nothing says the conversation exists
    assert (
        desk.texts(conversation) == [INVOICE] and len(desk.queue.sent) == jobs
    )  # nothing stored, nothing triaged

    for reader in (Y, Requester(), Requester(external_id="crm-x")):
        with pytest.raises(NotFound):
            desk.intake.conversation(desk.ctx, conversation, reader)
    with pytest.raises(NotFound):
        desk.intake.conversation(desk.ctx, conversation)

    # X itself (its email in any ASCII case) goes on as before.
    desk.say("It should be 40 EUR", Requester(email="X@Example.com"), conversation)
    shown = desk.intake.conversation(desk.ctx, conversation, X)
    assert [m["text"] for m in shown["messages"]] == [INVOICE, "It should be 40 EUR"]
    ticket = Tickets(desk.store).require(desk.ctx, conversation)
    assert (ticket.customer_id, ticket.plan) == ("crm-x", "enterprise")


def test_a_conversation_id_cannot_be_worked_out_from_its_idempotency_key():
    desk = Desk()
    first = desk.say(INVOICE, X, key="order-1001").body["conversation_id"]
    derived = "cnv_" + sha256_hex(b"acme\x1forder-1001")[:32]
    assert first != derived and first.startswith("cnv_") and len(first) == len(derived)
    assert desk.say("another question", X).body["conversation_id"] not in (first, derived)

    # The guard forgot the key: a retry still gets the first conversation and answer, another request a 409.
    assert desk.say(INVOICE, X, key="order-1001").body["conversation_id"] == first
    with pytest.raises(IdempotencyKeyReused):
        desk.say("something else", X, key="order-1001")
    with pytest.raises(IdempotencyKeyReused):
        desk.say(INVOICE, Y, key="order-1001")
    assert desk.texts(first) == [INVOICE]


def test_a_conversation_an_earlier_release_keyed_by_its_idempotency_key_is_found_again():
    desk = Desk()
    legacy = "cnv_" + sha256_hex(b"acme\x1forder-7")[:32]
    # What an earlier release stored for a start with Idempotency-Key order-7 (the same message and receipt).
    desk.intake._conversation_id_for = lambda ctx, key: legacy  # type: ignore[method-assign]
    desk.say(INVOICE, X, key="order-7")
    del desk.intake._conversation_id_for
    assert desk.texts(legacy) == [INVOICE]

    assert desk.say(INVOICE, X, key="order-7").body["conversation_id"] == legacy
    with pytest.raises(IdempotencyKeyReused):
        desk.say("something else", X, key="order-7")
    with pytest.raises(NotFound):
        desk.intake.conversation(desk.ctx, legacy, Y)  # its guessable id no longer opens it to anyone
    assert desk.texts(legacy) == [INVOICE]


def test_a_conversation_without_a_requester_is_reached_only_without_one():
    desk = Desk()
    conversation = desk.say("How do I export invoices?", Requester()).body["conversation_id"]
    assert (
        desk.intake.conversation(desk.ctx, conversation)["messages"][0]["text"] == "How do I export invoices?"
    )
    desk.say("and to CSV?", Requester(), conversation)
    with pytest.raises(NotFound):
        desk.say("mine now", Y, conversation)
    with pytest.raises(NotFound):
        desk.intake.conversation(desk.ctx, conversation, Y)


def test_the_crm_record_of_the_requester_who_started_a_conversation_keeps_it():
    """Started while the CRM did not know them yet (an unverified customer); the CRM then adds them."""
    desk = Desk()
    newcomer = Requester(email="new@example.com")
    conversation = desk.say("Where is my invoice?", newcomer).body["conversation_id"]
    desk.customer("crm-new", "new@example.com", "acct-x")
    desk.say("Still waiting", newcomer, conversation)
    assert Tickets(desk.store).require(desk.ctx, conversation).customer_id == "crm-new"
    assert len(desk.intake.conversation(desk.ctx, conversation, newcomer)["messages"]) == 2
