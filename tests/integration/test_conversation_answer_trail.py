"""A conversation API answer is on the audit record as delivered: the chain says the customer was sent the reply in
the 200 (`answer.delivered`, once per decision), and the reply's outbox item ends `done` through the conversation API
itself when the tenant has no `generic-writeback` connection (not `dead`, which set off the writeback DLQ alarm for
ordinary chat traffic). With a connection, the reply is still pushed to the tenant's backend. In shadow mode the
customer is sent nothing and nothing is recorded as delivered.

Real intake service, real sync triage (embedded model, tantivy index in a temp dir) and real writeback, on moto."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from deflect.domain.tenancy import TenantContext
from deflect.knowledge.models import ArticleInput
from deflect.repositories import Outbox
from deflect.services.intake import load_sync_triage
from deflect.services.outbox import OutboxRef
from deflect.webhooks import Requester
from infra.local.helpdesks import connect_tenant, start_helpdesks
from tests.integration.intake_support import IntakeHarness, admin_claims, moto_harness

QUESTION = "How do I export a report to CSV?"
ARTICLE = ArticleInput(
    title="Export a report",
    body="# Export a report\n\n## Export to CSV\n\nTo export a report, open **Reports**, pick the report and "
    "click **Export CSV**. The file downloads to your computer.\n",
)


@pytest.fixture(scope="module")
def harness(tmp_path_factory) -> Iterator[IntakeHarness]:
    base = tmp_path_factory.mktemp("data")
    saved = {k: os.environ.get(k) for k in ("MODEL_DATA_DIR", "KNOWLEDGE_DATA_DIR", "MODEL_BACKEND")}
    os.environ.update(
        MODEL_DATA_DIR=str(base / "models"), KNOWLEDGE_DATA_DIR=str(base / "kb"), MODEL_BACKEND="embedded"
    )
    try:
        yield from moto_harness()
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


class ForgetfulGuard:
    """The delivery guard once it has forgotten a key (7 days on): a retry with that key runs the request again."""

    def once(self, key: str, fingerprint: str, work: Any) -> dict[str, Any]:
        return work()


def chat_tenant(harness: IntakeHarness, tenant_id: str, mode: str) -> tuple[Any, Any, Any, Any]:
    """A tenant answering through the conversation API only, in `mode`, with one help article."""
    tenant = harness.create_tenant(tenant_id)
    policy = json.dumps({"policy": {"rollout_default": mode}}).encode()
    answer = harness.call(
        "PUT", f"/v1/tenants/{tenant_id}/config", claims=admin_claims(tenant_id), body=policy
    )
    assert answer.status == 200
    c = harness.container(fresh=True)
    admin = TenantContext(tenant_id=tenant_id, actor="admin:kb", roles=frozenset({"admin"}), via="cli")
    c.knowledge_ingestion.put(admin, "gs-export", ARTICLE)
    intake = c.intake
    intake.triage, intake.conversation_budget_ms = load_sync_triage(c), 120_000
    ctx, config = intake.authenticate_api_key(tenant.api_key)
    return c, intake, ctx, config


def ask(intake: Any, ctx: Any, config: Any, key: str) -> Any:
    return intake.converse(ctx, config, text=QUESTION, requester=Requester(), idempotency_key=key)


def dispatch_all(c: Any, ctx: Any, outbox_ids: list[str]) -> list[Any]:
    """What the writeback worker does with each item the decision queued."""
    return [c.writeback.dispatch(OutboxRef(tenant_id=ctx.tenant_id, outbox_id=i)) for i in outbox_ids]


def chain(c: Any, ctx: Any, conversation_id: str) -> list[Any]:
    _, events = c.audit.load(ctx, conversation_id)
    assert all(e is not None for e in events)
    return events


def test_an_answer_in_the_200_is_recorded_as_delivered_and_its_item_ends_done_without_a_connection(harness):
    c, intake, ctx, config = chat_tenant(harness, "chat-only", "auto")

    reply = ask(intake, ctx, config, "chat-only-1")
    assert reply.status_code == 200 and reply.body["status"] == "answered"
    assert "Export CSV" in reply.body["triage"]["reply"]  # the customer has the answer now
    conversation = reply.body["conversation_id"]
    outbox_ids = reply.body["triage"]["outbox_ids"]
    assert len(outbox_ids) == 1

    [result] = dispatch_all(c, ctx, outbox_ids)
    assert (result.outcome, result.detail) == ("delivered", f"conversation_api:{outbox_ids[0]}")
    item = Outbox(c.store).get(ctx, outbox_ids[0])
    assert item.status == "done" and item.receipt["effects"] == [f"conversation_api:{outbox_ids[0]}"]

    events = chain(c, ctx, conversation)
    types = [e.type for e in events]
    assert "writeback.dead" not in types
    assert types.index("decision.made") < types.index("answer.delivered") < types.index("writeback.delivered")
    [made] = [e for e in events if e.type == "decision.made"]
    [delivered] = [e for e in events if e.type == "answer.delivered"]
    assert delivered.payload == {
        "decision_id": made.payload["decision_id"],
        "message_id": reply.body["message_id"],
        "channel": "conversation_api",
        "outbox_ids": outbox_ids,
    }
    assert "Export" not in json.dumps(delivered.payload)  # ids only, never the reply's text
    assert c.audit.verify(ctx, conversation).ok

    # A client retry with the same key, after the guard forgot it: the same decision and reply, recorded once.
    intake.guard = ForgetfulGuard()
    again = ask(intake, ctx, config, "chat-only-1")
    assert again.status_code == 200 and again.body["conversation_id"] == conversation
    assert again.body["triage"]["decision_id"] == made.payload["decision_id"]
    assert [e.type for e in chain(c, ctx, conversation)].count("answer.delivered") == 1

    # The GET still shows the reply (the item is done, not held back).
    shown = intake.conversation(ctx, conversation)
    assert shown["status"] == "answered" and "Export CSV" in shown["decision"]["reply"]


def test_with_a_generic_connection_the_reply_is_still_pushed_to_the_tenants_backend(harness):
    c, intake, ctx, config = chat_tenant(harness, "chat-backend", "auto")
    receiver = start_helpdesks()
    try:
        connect_tenant(c.secrets, receiver, "chat-backend", providers=("generic",))

        reply = ask(intake, ctx, config, "chat-backend-1")
        assert reply.status_code == 200 and reply.body["status"] == "answered"
        outbox_ids = reply.body["triage"]["outbox_ids"]
        [result] = dispatch_all(c, ctx, outbox_ids)

        assert result.outcome == "delivered" and result.detail.startswith("generic:")
        assert receiver.state.effects[outbox_ids[0]] == 1  # the signed webhook reached the backend, once
        pushed = [call for call in receiver.state.calls if call.provider == "generic"]
        assert [call.outbox_id for call in pushed] == outbox_ids
        assert "Export CSV" in pushed[0].body["body"]
    finally:
        receiver.stop()
    types = [e.type for e in chain(c, ctx, reply.body["conversation_id"])]
    assert types.count("answer.delivered") == 1 and "writeback.delivered" in types


def test_in_shadow_mode_nothing_is_recorded_as_delivered(harness):
    c, intake, ctx, config = chat_tenant(harness, "chat-shadow", "shadow")

    reply = ask(intake, ctx, config, "chat-shadow-1")
    assert reply.status_code == 200 and reply.body["status"] == "with_agent"
    assert reply.body["triage"]["reply"] is None
    assert dispatch_all(c, ctx, reply.body["triage"]["outbox_ids"]) == []

    types = [e.type for e in chain(c, ctx, reply.body["conversation_id"])]
    assert "decision.made" in types
    assert not {"answer.delivered", "writeback.delivered"} & set(types)
