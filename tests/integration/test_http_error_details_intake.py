"""Refusals through the real intake handler (moto), as the caller reads them.

Once a webhook's signature is verified, its sender (the helpdesk its admin configured) is told why a delivery was
refused, and a quarantined body's 400 carries its quarantine key and the replay command; customer text never
appears. Before that, an unknown tenant and a bad signature stay indistinguishable and say nothing more than
before. The conversation API and the admin routes explain refusals once the API key or token is accepted."""

from __future__ import annotations

import base64
import json

import pytest

from deflect.domain.canonical import sha256_hex
from deflect.domain.errors import MalformedPayload
from deflect.domain.tenancy import TenantContext
from deflect.webhooks import sign
from tests.integration.intake_support import Tenant, admin_claims, moto_harness, queued_triage_only, sample

REJECTED = {"error": "webhook_rejected", "message": "webhook rejected"}


@pytest.fixture(scope="module")
def harness():
    yield from moto_harness()


@pytest.fixture(scope="module")
def acme(harness) -> Tenant:
    return harness.create_tenant("acme")


@pytest.fixture(autouse=True)
def without_sync_triage(harness):
    yield from queued_triage_only()


def _generic(ticket: str) -> bytes:
    return sample("generic", "ticket_created").replace(b"HD-90817", ticket.encode())


def _without_delivery(tenant: Tenant, body: bytes) -> dict[str, str]:
    headers = sign("generic", tenant.secrets["generic"], body)
    assert "X-Deflect-Delivery" not in headers
    return headers


def _zendesk_wrong_shape(tag: str) -> bytes:
    payload = json.loads(sample("zendesk", "trigger_ticket_created"))
    payload["ticket"]["subject"] += f" ({tag})"
    del payload["ticket"]["id"]
    payload["ticket"]["requester"] = "maria.lopez@acme-corp.example"  # a string where an object belongs
    return json.dumps(payload).encode()


def _quarantined(harness, tenant: str, provider: str, body: bytes) -> list[str]:
    return [k for k in harness.objects(f"tenant={tenant}/quarantine/{provider}/") if sha256_hex(body) in k]


def _held_body(harness, tenant: str, key: str) -> bytes:
    record = json.loads(harness.container().sealed_evidence.read_held(TenantContext.system(tenant), key))
    return base64.b64decode(record["body_b64"])


# --------------------------------------------------------------------------- after the signature is verified


def test_a_verified_delivery_without_its_delivery_id_is_told_why_and_where_its_body_is_kept(harness, acme):
    body = _generic("HD-NO-DELIVERY-ID")

    answer = harness.webhook("generic", "acme", body, _without_delivery(acme, body))

    [key] = _quarantined(harness, "acme", "generic", body)
    assert answer.status == 400
    assert answer.body == {
        "error": "malformed_payload",
        "message": "malformed payload",
        "detail": "X-Deflect-Delivery header is required (1..200 characters)",
        "quarantine_key": key,
        "replay": f"deflect tenant replay --tenant acme --key {key}",
    }
    assert _held_body(harness, "acme", key) == body  # the key the caller got is the one that holds its body
    text = json.dumps(answer.body)
    assert "jonas.weber" not in text and "Hallo" not in text


def test_a_verified_zendesk_payload_of_the_wrong_shape_names_the_fields_never_their_values(harness, acme):
    body = _zendesk_wrong_shape("verified")
    headers = sign("zendesk", acme.secrets["zendesk"], body, delivery_id="zd-shape-1")

    answer = harness.webhook("zendesk", "acme", body, headers)

    [key] = _quarantined(harness, "acme", "zendesk", body)
    assert answer.status == 400
    assert answer.body["error"] == "malformed_payload"
    assert answer.body["detail"] == (
        "zendesk payload does not match the expected shape at: ticket.id, ticket.requester"
    )
    assert answer.body["quarantine_key"] == key
    assert answer.body["replay"] == f"deflect tenant replay --tenant acme --key {key}"
    text = json.dumps(answer.body)
    assert "maria.lopez" not in text and "CSV export" not in text and "555" not in text
    # The replay command takes that key: the same parser refuses it the same way, and nothing is stored.
    with pytest.raises(MalformedPayload) as replayed:
        harness.container().intake.replay_quarantined(TenantContext.system("acme"), key)
    assert replayed.value.detail == answer.body["detail"]


def test_a_verified_delivery_whose_body_is_not_json_is_told_so(harness, acme):
    body = b'{"event": "ticket.created", "ticket": {"id": "HD-TRUNCATED-9"'  # cut off by a proxy
    answer = harness.webhook(
        "generic", "acme", body, sign("generic", acme.secrets["generic"], body, delivery_id="trunc-9")
    )
    [key] = _quarantined(harness, "acme", "generic", body)
    assert answer.status == 400
    assert answer.body["detail"] == "body is not valid UTF-8 JSON" and answer.body["quarantine_key"] == key


def test_a_reused_delivery_id_with_another_body_is_told_what_to_change(harness, acme):
    body = sample("generic", "message_created")
    first = harness.webhook(
        "generic", "acme", body, sign("generic", acme.secrets["generic"], body, delivery_id="dup-1")
    )
    assert first.status == 200
    other = body.replace(b"greyed out", b"missing entirely")

    answer = harness.webhook(
        "generic", "acme", other, sign("generic", acme.secrets["generic"], other, delivery_id="dup-1")
    )

    assert answer.status == 409
    assert answer.body == {
        "error": "conflict",
        "message": "conflict",
        "detail": "this delivery id was already received with a different body: a retry must resend the same "
        "bytes, and a new event needs a new delivery id",
    }
    assert "missing entirely" not in json.dumps(answer.body)


# --------------------------------------------------------------------------- before it: nothing more than today


@pytest.mark.parametrize(
    ("provider", "body", "delivery"),
    [
        ("generic", _generic("HD-PREAUTH-1"), None),  # would be 400 + quarantine once verified
        ("zendesk", _zendesk_wrong_shape("unverified"), "zd-preauth-1"),
        ("generic", b'{"event": "ticket.created"', "preauth-json"),
    ],
    ids=["no-delivery-id", "zendesk-shape", "not-json"],
)
def test_before_the_signature_is_verified_an_unknown_tenant_and_a_bad_signature_look_alike(
    harness, acme, provider, body, delivery
):
    genuine = sign(provider, acme.secrets[provider], body, delivery_id=delivery)
    forged = sign(provider, "not-the-secret", body, delivery_id=delivery)

    unknown = harness.webhook(provider, "nobody-here", body, genuine)
    bad = harness.webhook(provider, "acme", body, forged)
    unsigned = harness.webhook(provider, "acme", body, {})
    invalid = harness.webhook(provider, "NOT_A_TENANT!", body, genuine)

    assert (unknown.status, bad.status, unsigned.status, invalid.status) == (404, 401, 401, 404)
    assert unknown.body == bad.body == unsigned.body == invalid.body == REJECTED
    assert _quarantined(harness, "acme", provider, body) == []  # an unverified body is never kept
    assert _quarantined(harness, "nobody-here", provider, body) == []


def test_a_body_over_the_limit_is_refused_before_verification_with_the_public_message_only(harness, acme):
    body = json.dumps({"event": "ticket.created", "pad": "x" * (256 * 1024)}).encode()
    for tenant, secret in (("acme", acme.secrets["generic"]), ("nobody-here", "guess")):
        answer = harness.webhook("generic", tenant, body, sign("generic", secret, body, delivery_id="big"))
        assert (answer.status, answer.body) == (
            413,
            {"error": "payload_too_large", "message": "payload too large"},
        )


# --------------------------------------------------------------------------- the conversation API and admin routes


def _start(harness, api_key: str, text: str, key: str):
    return harness.call(
        "POST",
        "/v1/conversations",
        body=json.dumps({"message": text, "requester": {"email": "ana@alpha.example"}}).encode(),
        headers={"Authorization": f"Bearer {api_key}", "Idempotency-Key": key},
    )


def test_an_api_key_holder_is_told_why_its_request_was_refused(harness, acme):
    assert _start(harness, acme.api_key, "How do I set up SSO?", "detail-1").status == 202

    refused = _start(harness, acme.api_key, "How do I export a report?", "detail-1")

    assert refused.status == 409
    assert refused.body["error"] == "idempotency_key_reused"
    assert refused.body["detail"] == "idempotency key reused for another request"
    assert "SSO" not in json.dumps(refused.body)


def test_a_caller_without_a_valid_api_key_is_told_nothing_more(harness, acme):
    wrong = acme.api_key[:-4] + "AAAA"
    for key in (wrong, "dfk_nobody-here_x", ""):
        answer = _start(harness, key, "How do I export a report?", "detail-2")
        assert (answer.status, answer.body) == (401, {"error": "unauthorized", "message": "unauthorized"})


def test_a_signed_in_agent_is_told_which_role_an_admin_route_needs(harness, acme):
    agent = admin_claims("acme", groups="agent")
    answer = harness.call("PUT", "/v1/customers/crm-detail", body=b'{"email": "x@y.example"}', claims=agent)
    assert answer.status == 403
    assert answer.body == {
        "error": "forbidden",
        "message": "forbidden",
        "detail": "this request needs the admin role",
    }


def test_a_token_for_an_unknown_tenant_or_no_token_is_told_nothing_more(harness, acme):
    stranger = admin_claims("nobody-here", groups="agent")
    unknown = harness.call("PUT", "/v1/customers/crm-detail", body=b"{}", claims=stranger)
    assert (unknown.status, unknown.body) == (404, {"error": "not_found", "message": "not found"})
    anonymous = harness.call("PUT", "/v1/customers/crm-detail", body=b"{}")
    assert (anonymous.status, anonymous.body) == (401, {"error": "unauthorized", "message": "unauthorized"})
