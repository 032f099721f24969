"""The conversation API (per-tenant API key) and the admin routes for identity, entitlement and tenant config."""

from __future__ import annotations

import json
import threading

import pytest

from deflect.domain.tenancy import TenantContext
from deflect.webhooks import Requester
from tests.integration.intake_fixtures import acme_fixture, harness_fixture, queue_path_fixture  # noqa: F401
from tests.integration.intake_support import admin_claims


def _post(harness, path, payload, key, **headers):
    return harness.call(
        "POST", path, body=json.dumps(payload).encode(), headers={"Authorization": f"Bearer {key}", **headers}
    )


def test_a_conversation_without_triage_answers_202_with_a_status_url(harness, acme, without_sync_triage):
    harness.drain_triage_jobs()
    started = _post(
        harness,
        "/v1/conversations",
        {"message": "How do I export invoices? Card 4111 1111 1111 1111"},
        acme.api_key,
    )
    assert started.status == 202
    assert (
        started.headers["Location"]
        == started.body["status_url"]
        == f"/v1/conversations/{started.body['conversation_id']}"
    )
    status = harness.call("GET", started.body["status_url"], headers={"X-Api-Key": acme.api_key})
    assert status.status == 200 and status.body["status"] == "processing"
    [message] = status.body["messages"]
    assert "[CARD]" in message["text"] and "4111" not in message["text"]
    assert status.body["decision"] is None
    [job] = harness.drain_triage_jobs()
    assert job["ticket_id"] == started.body["conversation_id"]


def test_follow_up_messages_join_the_conversation(harness, acme):
    started = _post(harness, "/v1/conversations", {"message": "first"}, acme.api_key)
    cid = started.body["conversation_id"]
    follow = _post(
        harness,
        f"/v1/conversations/{cid}/messages",
        {"message": "second, call +1 415 555 0100"},
        acme.api_key,
    )
    assert follow.status == 202 and follow.body["conversation_id"] == cid
    texts = [
        m["text"]
        for m in harness.call("GET", f"/v1/conversations/{cid}", headers={"X-Api-Key": acme.api_key}).body[
            "messages"
        ]
    ]
    assert texts == ["first", "second, call [PHONE]"]
    missing = _post(harness, "/v1/conversations/cnv_nope/messages", {"message": "x"}, acme.api_key)
    assert missing.status == 404


def test_idempotency_key_makes_a_retried_post_return_the_same_conversation(harness, acme):
    payload = {"message": "retry me", "requester": {"email": "retry@acme.example"}}
    first = _post(harness, "/v1/conversations", payload, acme.api_key, **{"Idempotency-Key": "client-req-1"})
    again = _post(harness, "/v1/conversations", payload, acme.api_key, **{"Idempotency-Key": "client-req-1"})
    assert first.body == again.body
    other = _post(
        harness,
        "/v1/conversations",
        {**payload, "message": "changed"},
        acme.api_key,
        **{"Idempotency-Key": "client-req-1"},
    )
    assert other.status == 409


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"message": ""}',
        b'{"message": "x", "unexpected": 1}',
        json.dumps({"message": "x" * 20001}).encode(),
    ],
)
def test_malformed_conversation_bodies_are_client_errors_never_500(harness, acme, body):
    answer = harness.call("POST", "/v1/conversations", body=body, headers={"X-Api-Key": acme.api_key})
    assert 400 <= answer.status < 500, answer.body


def test_a_bad_api_key_is_401(harness, acme):
    assert _post(harness, "/v1/conversations", {"message": "x"}, acme.api_key + "x").status == 401
    assert _post(harness, "/v1/conversations", {"message": "x"}, "dfk_nobody_abc").status == 401


# --------------------------------------------------------------------------- the triage seam


def _intake_with(harness, triage, budget_ms):
    c = harness.container(fresh=True)
    intake = c.intake
    intake.triage, intake.conversation_budget_ms = triage, budget_ms
    return intake


def test_triage_ready_within_the_budget_is_answered_directly(harness, acme):
    seen = []

    def triage(ctx, ticket_id, message_id):
        seen.append((ctx.tenant_id, ticket_id, message_id))
        return {"outcome": "deflect", "reply": "Go to Billing → Invoices → Export."}

    intake = _intake_with(harness, triage, 2000)
    ctx, config = intake.authenticate_api_key(acme.api_key)
    reply = intake.converse(ctx, config, text="How do I export invoices?", requester=Requester())
    assert reply.status_code == 200 and reply.body["triage"]["outcome"] == "deflect"
    assert reply.body["status"] == "answered"
    assert seen == [("acme", reply.body["conversation_id"], reply.body["message_id"])]


@pytest.mark.parametrize(
    ("result", "status"),
    [
        ({"outcome": "escalate", "reply": None}, "escalated"),
        ({"outcome": "escalate", "reply": None, "rollout_mode": "assist"}, "escalated"),
        # Shadow mode starts no escalation: nobody was handed the conversation, the team answers as before.
        ({"outcome": "escalate", "reply": None, "rollout_mode": "shadow"}, "with_agent"),
        ({"outcome": "ask_diagnostics", "reply": "Which app version are you on?"}, "awaiting_customer"),
        # Assist or shadow mode: decided, but the reply comes from the support team, not from us.
        ({"outcome": "deflect", "reply": None}, "with_agent"),
    ],
)
def test_a_conversation_is_called_answered_only_when_there_is_an_answer_to_show(
    harness, acme, result, status
):
    intake = _intake_with(harness, lambda ctx, ticket_id, message_id: result, 2000)
    ctx, config = intake.authenticate_api_key(acme.api_key)
    reply = intake.converse(ctx, config, text="How do I export invoices?", requester=Requester())
    assert reply.status_code == 200 and reply.body["status"] == status


ASKED = "To look into this, we need a few details:\n- the app version you are using"


@pytest.mark.parametrize(
    ("mode", "outcome", "draft", "sent", "status", "shown"),
    [
        (
            "auto",
            "deflect",
            True,
            "Open Billing → Invoices → Export.",
            "answered",
            "Open Billing → Invoices → Export.",
        ),
        # A decision stored before the sent reply was recorded: the auto-mode draft is what was sent.
        ("auto", "deflect", True, None, "answered", "Open Billing → Invoices → Export."),
        ("auto", "ask_diagnostics", False, ASKED, "awaiting_customer", ASKED),
        ("assist", "deflect", True, None, "with_agent", None),
        ("auto", "escalate", True, None, "escalated", None),
        ("shadow", "escalate", True, None, "with_agent", None),
    ],
)
def test_the_conversation_shows_what_the_customer_was_sent_and_says_so_in_its_status(
    harness, acme, mode, outcome, draft, sent, status, shown
):
    from deflect.domain.models import Decision, Draft
    from deflect.repositories import Tickets, save

    started = _post(harness, "/v1/conversations", {"message": "How do I export invoices?"}, acme.api_key)
    conversation = started.body["conversation_id"]
    ctx = TenantContext.system("acme")
    decision = Decision(
        tenant_id="acme",
        ticket_id=conversation,
        outcome=outcome,
        draft=Draft(text="Open Billing → Invoices → Export.", confidence=0.9) if draft else None,
        customer_reply=sent,
        rollout_mode=mode,
    )
    save(harness.container().store, ctx, [Tickets.decision_write(decision)])
    got = harness.call("GET", f"/v1/conversations/{conversation}", headers={"X-Api-Key": acme.api_key})
    assert got.body["status"] == status and got.body["decision"]["reply"] == shown


def test_triage_slower_than_the_budget_falls_back_to_202_and_the_queue(harness, acme):
    release = threading.Event()

    def slow(ctx, ticket_id, message_id):
        release.wait(5)
        return {"outcome": "deflect"}

    harness.drain_triage_jobs()
    intake = _intake_with(harness, slow, 50)
    ctx, config = intake.authenticate_api_key(acme.api_key)
    reply = intake.converse(ctx, config, text="slow one", requester=Requester())
    release.set()
    assert reply.status_code == 202 and reply.body["status_url"].endswith(reply.body["conversation_id"])
    assert [j["message_id"] for j in harness.drain_triage_jobs()] == [reply.body["message_id"]]


# --------------------------------------------------------------------------- admin routes


def test_admin_routes_need_the_admin_role(harness, acme):
    agent = {"sub": "a1", "custom:tenant_id": "acme", "cognito:groups": "agent"}
    for path in ("/v1/customers/c-1", "/v1/accounts/a-1", "/v1/tenants/acme/config"):
        assert harness.call("PUT", path, body=b"{}", claims=agent).status == 403
        assert harness.call("PUT", path, body=b"{}").status == 401


def test_entitlement_changes_are_versioned_and_audited(harness, acme):
    claims = admin_claims("acme")
    created = harness.call(
        "PUT", "/v1/accounts/acct-1", body=b'{"plan": "team", "sla_tier": "standard"}', claims=claims
    )
    assert created.status == 200 and created.body["version"] == 1
    updated = harness.call(
        "PUT",
        "/v1/accounts/acct-1",
        body=b'{"plan": "enterprise", "sla_tier": "enterprise", "expected_version": 1}',
        claims=claims,
    )
    assert updated.status == 200 and updated.body["plan"] == "enterprise" and updated.body["version"] == 2
    stale = harness.call(
        "PUT", "/v1/accounts/acct-1", body=b'{"plan": "free", "expected_version": 1}', claims=claims
    )
    assert stale.status == 409
    unknown_tier = harness.call("PUT", "/v1/accounts/acct-1", body=b'{"sla_tier": "platinum"}', claims=claims)
    assert unknown_tier.status == 400
    audit = harness.container().audit
    entries = audit.entries(TenantContext.system("acme"), "account-acct-1")
    assert [e.type for e in entries] == ["account.created", "account.updated"]
    assert audit.verify(TenantContext.system("acme"), "account-acct-1").ok


def test_customer_identity_changes_move_the_requester_lookup(harness, acme):
    claims = admin_claims("acme")
    harness.call(
        "PUT",
        "/v1/customers/c-42",
        body=b'{"email": "old@acme.example", "external_ids": {"zendesk": "77"}}',
        claims=claims,
    )
    moved = harness.call(
        "PUT", "/v1/customers/c-42", body=b'{"email": "new@acme.example", "external_ids": {}}', claims=claims
    )
    assert moved.status == 200
    customers = harness.container().intake.customers
    ctx = TenantContext.system("acme")
    assert customers.find_by_requester(ctx, "email", "new@acme.example").customer_id == "c-42"
    assert customers.find_by_requester(ctx, "email", "old@acme.example") is None
    assert customers.find_by_requester(ctx, "ext:zendesk", "77") is None


def test_tenant_config_update_is_audited_with_who_and_what(harness, acme):
    claims = admin_claims("acme")
    answer = harness.call(
        "PUT",
        "/v1/tenants/acme/config",
        body=json.dumps({"default_locale": "de", "freshdesk_secret_header": "X-Acme-Hook"}).encode(),
        claims=claims,
    )
    assert (
        answer.status == 200
        and answer.body["default_locale"] == "de"
        and answer.body["updated_by"] == "agent:acme-admin"
    )
    bad = harness.call(
        "PUT", "/v1/tenants/acme/config", body=b'{"freshdesk_secret_header": "bad header"}', claims=claims
    )
    assert 400 <= bad.status < 500
    entries = harness.container().audit.entries(TenantContext.system("acme"), "tenant-config")
    assert entries[-1].type == "tenant.config_updated"


def test_the_real_triage_seam_decides_the_conversation(harness, acme):
    """With deflect.services.triage present, a conversation gets a decision (now, or soon via the status URL)."""
    import time

    from deflect.bootstrap import container
    from deflect.services.intake import load_sync_triage

    triage = load_sync_triage(container())
    if triage is None:
        pytest.skip("this build has no triage capability")
    intake = _intake_with(harness, triage, 30_000)
    ctx, config = intake.authenticate_api_key(acme.api_key)
    reply = intake.converse(ctx, config, text="I want a refund for last month, please", requester=Requester())
    deadline = time.monotonic() + 60
    decision = reply.body.get("triage")
    while decision is None and time.monotonic() < deadline:
        decision = intake.conversation(ctx, reply.body["conversation_id"])["decision"]
        time.sleep(0.5)
    assert decision is not None
    assert intake.conversation(ctx, reply.body["conversation_id"])["decision"]["outcome"] == "escalate"


def test_a_failing_triage_never_fails_the_conversation(harness, acme):
    def broken(ctx, ticket_id, message_id):
        raise RuntimeError("model endpoint refused the call")

    harness.drain_triage_jobs()
    intake = _intake_with(harness, broken, 2000)
    ctx, config = intake.authenticate_api_key(acme.api_key)
    reply = intake.converse(ctx, config, text="anything", requester=Requester())
    assert reply.status_code == 202
    assert [j["message_id"] for j in harness.drain_triage_jobs()] == [reply.body["message_id"]]


def test_a_caller_without_a_valid_key_learns_nothing_about_the_body(harness, acme):
    bad = json.dumps({"nope": 1}).encode()
    for headers in ({}, {"X-Api-Key": "dfk_acme_not-a-real-key"}):
        refused = harness.call("POST", "/v1/conversations", body=bad, headers=headers)
        assert refused.status == 401 and "fields" not in refused.body
    as_text = harness.call("POST", "/v1/conversations", body=b"hi", headers={"Content-Type": "text/plain"})
    assert as_text.status == 401
    # With its key, the same caller is told what is wrong with the body.
    invalid = harness.call("POST", "/v1/conversations", body=bad, headers={"X-Api-Key": acme.api_key})
    assert invalid.status == 422 and "body.message" in invalid.body["fields"]


def test_usage_is_stored_per_tenant_by_the_function_itself(harness):
    """`deflect usage` reads what the functions stored: each invocation writes its tenant's tallies."""
    from datetime import UTC, datetime

    from deflect.insight.usage import UsageMeter

    metered = harness.create_tenant("meterco")
    started = _post(harness, "/v1/conversations", {"message": "How do I export invoices?"}, metered.api_key)
    assert started.status == 202
    today = datetime.now(UTC).date()
    # A meter with nothing in memory sees only what was written to the table.
    [day] = UsageMeter(harness.container(fresh=True).store).days(
        TenantContext.system("meterco"), today, today
    )
    counted = day.counters
    assert counted["messages"] == 1 and counted["tickets"] == 1
    assert (
        counted["lambda_invocations"] == 1 and counted["lambda_mb_ms"] > 0 and counted["ddb_write_units"] > 0
    )


def test_a_suspended_tenant_is_closed_to_agents_but_its_admin_can_reopen_it(harness):
    harness.create_tenant("pausedco")
    claims = admin_claims("pausedco")
    assert (
        harness.call(
            "PUT", "/v1/tenants/pausedco/config", body=b'{"status": "suspended"}', claims=claims
        ).status
        == 200
    )
    closed = harness.call("PUT", "/v1/customers/c-1", body=b'{"email": "a@pausedco.example"}', claims=claims)
    assert closed.status == 404
    reopened = harness.call("PUT", "/v1/tenants/pausedco/config", body=b'{"status": "active"}', claims=claims)
    assert reopened.status == 200 and reopened.body["status"] == "active"
    again = harness.call("PUT", "/v1/customers/c-1", body=b'{"email": "a@pausedco.example"}', claims=claims)
    assert again.status == 200
