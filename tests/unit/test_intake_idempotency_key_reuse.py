"""An Idempotency-Key names one request of the conversation API, for good.

The delivery guard forgets a key after 7 days; the conversation a request started with it stays. A later,
different request with the same key must be refused (409 `idempotency_key_reused`) and never join, read or get
the answer of what the first request stored; a true retry of the first request still gets its answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from deflect.domain.errors import Conflict
from deflect.domain.tenancy import TenantContext
from deflect.http import error_response
from deflect.repositories import Customers, TenantConfigs, Tickets
from deflect.services.intake import IdempotencyKeyReused, Intake
from deflect.webhooks import Requester
from tests.unit.intake_fakes import NoSecrets
from tests.unit.triage_fakes import RecordingQueue, World, make_world

ANA = Requester(email="ana@alpha.example")
BOB = Requester(email="bob@beta.example")
ANA_TEXT = "How do I set up SSO for my team? our idp tenant is alpha-prod-7781"
BOB_TEXT = "How do I export a report?"


class ExpiringGuard:
    """The delivery guard's contract (a repeat returns the first result, the same key with another fingerprint is a
    Conflict); `expire()` stands for its records reaching their 7-day expiry."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[str, dict[str, Any]]] = {}

    def once(self, key: str, fingerprint: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if key in self.seen:
            first, result = self.seen[key]
            if first != fingerprint:
                raise Conflict("same delivery id with a different body")
            return result
        result = work()
        self.seen[key] = (fingerprint, result)
        return result

    def expire(self) -> None:
        self.seen.clear()


class Api:
    def __init__(self) -> None:
        self.world: World = make_world()
        self.guard = ExpiringGuard()
        self.queue = RecordingQueue()
        world = self.world
        self.intake = Intake(
            world.store,
            world.evidence,
            NoSecrets(),
            self.queue,
            world.audit,
            self.guard,
            triage=lambda ctx, t, m: world.service.triage(ctx, t, m).model_dump(mode="json"),
        )
        self.ctx = TenantContext(
            tenant_id="acme", actor="api-key", via="api_key", roles=frozenset({"service"})
        )
        self.config = TenantConfigs(world.store).get(self.ctx)

    def post(self, text: str, requester: Requester, key: str | None, conversation: str | None = None) -> Any:
        return self.intake.converse(
            self.ctx,
            self.config,
            text=text,
            requester=requester,
            idempotency_key=key,
            conversation_id=conversation,
        )

    def texts(self, conversation_id: str) -> list[str]:
        # What the conversation holds (GET would show it only to the conversation's own requester).
        return [m.body_redacted for m in Tickets(self.world.store).messages(self.ctx, conversation_id)]

    def stored(self) -> str:
        """Everything the table and the evidence store hold, as text."""
        items = json.dumps([i.data for i in self.world.store._items.values()], default=str)
        blobs = b"".join(v for versions in self.world.evidence._objects.values() for v in versions)
        return items + blobs.decode("utf-8", "replace")

    def conversations(self) -> list[str]:
        return sorted(
            i.data["ticket_id"]
            for (pk, sk), i in self.world.store._items.items()
            if sk == "META" and "#TICKET#" in pk and i.data.get("provider") == "api"
        )


def answer(reply: Any) -> dict[str, Any]:
    """What the caller reads, less triage's own note that it answered this message before (`replayed`)."""
    body = dict(reply.body)
    body["triage"] = {k: v for k, v in body.get("triage", {}).items() if k != "replayed"}
    return {"status": reply.status_code, **body}


@pytest.fixture
def api() -> Api:
    return Api()


def test_a_key_reused_after_expiry_by_another_customer_is_refused_and_touches_nothing(api: Api) -> None:
    a = api.post(ANA_TEXT, ANA, "chat-1")
    assert a.status_code == 200
    ana_ticket = Tickets(api.world.store).get(api.ctx, a.body["conversation_id"])
    jobs = len(api.queue.sent)
    api.guard.expire()

    with pytest.raises(IdempotencyKeyReused) as refused:
        api.post(BOB_TEXT, BOB, "chat-1")

    # What Bob's client gets: a 409 that says why, and no conversation id, message or answer of Ana's.
    response = error_response(refused.value)
    assert response.status_code == 409
    assert response.body["error"] == "idempotency_key_reused"
    assert "Idempotency-Key was already used" in response.body["message"]
    assert "alpha-prod-7781" not in json.dumps(response.body)
    # Ana's conversation is exactly as she left it; nothing of Bob's request is stored or queued anywhere.
    assert api.texts(a.body["conversation_id"]) == [ANA_TEXT]
    assert Tickets(api.world.store).get(api.ctx, a.body["conversation_id"]) == ana_ticket
    assert api.conversations() == [a.body["conversation_id"]]
    assert "export a report" not in api.stored()
    assert Customers(api.world.store).find_by_requester(api.ctx, "email", "bob@beta.example") is None
    assert len(api.queue.sent) == jobs

    # With a key of his own, Bob gets his own conversation with his own message and answer.
    b = api.post(BOB_TEXT, BOB, "chat-2")
    assert b.status_code == 200 and b.body["conversation_id"] != a.body["conversation_id"]
    assert b.body["message_id"] != a.body["message_id"]
    assert api.texts(b.body["conversation_id"]) == [BOB_TEXT]
    assert api.texts(a.body["conversation_id"]) == [ANA_TEXT]
    assert b.body["triage"]["message_id"] == b.body["message_id"]
    bob = Customers(api.world.store).find_by_requester(api.ctx, "email", "bob@beta.example")
    assert bob is not None
    assert Tickets(api.world.store).get(api.ctx, b.body["conversation_id"]).customer_id == bob.customer_id
    assert Tickets(api.world.store).get(api.ctx, a.body["conversation_id"]).customer_id != bob.customer_id


def test_the_same_customer_reusing_a_key_for_a_new_question_is_refused_too(api: Api) -> None:
    a = api.post(ANA_TEXT, ANA, "chat-1")
    api.guard.expire()
    with pytest.raises(IdempotencyKeyReused):
        api.post(BOB_TEXT, ANA, "chat-1")
    assert api.texts(a.body["conversation_id"]) == [ANA_TEXT]
    assert "export a report" not in api.stored()


def test_a_true_retry_after_expiry_gets_the_same_answer_and_stores_nothing_twice(api: Api) -> None:
    a = api.post(ANA_TEXT, ANA, "chat-1")
    messages = Tickets(api.world.store).messages(api.ctx, a.body["conversation_id"])
    api.guard.expire()

    again = api.post(ANA_TEXT, ANA, "chat-1")

    assert answer(again) == answer(a)
    assert Tickets(api.world.store).messages(api.ctx, a.body["conversation_id"]) == messages
    assert api.conversations() == [a.body["conversation_id"]]


def test_within_the_guards_window_a_reused_key_gets_the_same_clear_409(api: Api) -> None:
    a = api.post(ANA_TEXT, ANA, "chat-1")
    with pytest.raises(IdempotencyKeyReused) as refused:
        api.post(BOB_TEXT, BOB, "chat-1")
    assert error_response(refused.value).body["error"] == "idempotency_key_reused"
    assert api.post(ANA_TEXT, ANA, "chat-1").body == a.body  # the guard's stored first answer
    assert api.texts(a.body["conversation_id"]) == [ANA_TEXT]


def test_a_follow_up_reusing_its_key_for_new_text_is_refused_not_silently_dropped(api: Api) -> None:
    a = api.post(ANA_TEXT, ANA, "chat-1")
    conversation = a.body["conversation_id"]
    first = api.post("Which IdP do you support?", ANA, "reply-1", conversation)
    api.guard.expire()

    with pytest.raises(IdempotencyKeyReused):
        api.post("Okta, it works now, thanks", ANA, "reply-1", conversation)
    assert api.texts(conversation) == [ANA_TEXT, "Which IdP do you support?"]

    # The retry of the follow-up itself is answered as before; the new text goes in with a new key.
    assert answer(api.post("Which IdP do you support?", ANA, "reply-1", conversation)) == answer(first)
    api.post("Okta, it works now, thanks", ANA, "reply-2", conversation)
    assert api.texts(conversation) == [ANA_TEXT, "Which IdP do you support?", "Okta, it works now, thanks"]


def test_a_key_reused_after_expiry_in_another_conversation_adds_only_to_that_one(api: Api) -> None:
    a = api.post(ANA_TEXT, ANA, "chat-1")
    b = api.post(BOB_TEXT, BOB, "chat-2")
    api.guard.expire()

    added = api.post("Also as CSV please", BOB, "chat-1", b.body["conversation_id"])

    assert added.body["conversation_id"] == b.body["conversation_id"]
    assert api.texts(b.body["conversation_id"]) == [BOB_TEXT, "Also as CSV please"]
    assert api.texts(a.body["conversation_id"]) == [ANA_TEXT]


def test_conversations_stored_before_requests_were_fingerprinted_are_protected_too(api: Api) -> None:
    a = api.post(ANA_TEXT, ANA, "chat-1")
    conversation = a.body["conversation_id"]
    store = api.world.store
    # The receipt as earlier releases wrote it: without the request's fingerprint.
    for item in store._items.values():
        if item.sk.startswith("DELIVERY#") and "#TICKET#" + conversation in item.pk:
            item.data.pop("request", None)
    api.guard.expire()

    with pytest.raises(IdempotencyKeyReused):
        api.post(BOB_TEXT, BOB, "chat-1")
    with pytest.raises(IdempotencyKeyReused):
        api.post(ANA_TEXT, BOB, "chat-1")  # Ana's words, another requester
    assert answer(api.post(ANA_TEXT, ANA, "chat-1")) == answer(a)
    assert api.texts(conversation) == [ANA_TEXT]
    assert "export a report" not in api.stored()


def test_a_start_never_joins_a_taken_conversation_even_when_the_check_before_it_is_raced(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = api.post(ANA_TEXT, ANA, "chat-1")
    api.guard.expire()
    # Stands for another request taking the id between the check and the write: the write refuses on its own.
    monkeypatch.setattr(api.intake, "_refuse_reused_key", lambda *args: None, raising=False)

    with pytest.raises(IdempotencyKeyReused):
        api.post(BOB_TEXT, BOB, "chat-1")
    assert api.texts(a.body["conversation_id"]) == [ANA_TEXT]
    assert api.conversations() == [a.body["conversation_id"]]


def test_starting_without_a_key_always_makes_a_new_conversation(api: Api) -> None:
    first = api.post(ANA_TEXT, ANA, None)
    second = api.post(ANA_TEXT, ANA, None)
    assert first.body["conversation_id"] != second.body["conversation_id"]
    assert api.texts(first.body["conversation_id"]) == [ANA_TEXT]
    assert api.texts(second.body["conversation_id"]) == [ANA_TEXT]
