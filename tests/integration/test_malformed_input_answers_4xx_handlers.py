"""Malformed input through the real intake handler on moto: a clear 4xx instead of a Lambda error (a 502 from API
Gateway), authentication decided first, and nothing queued or kept for the refused request."""

from __future__ import annotations

import pytest

from deflect.domain.tenancy import TenantContext
from tests.integration.intake_fixtures import acme_fixture, harness_fixture, queue_path_fixture  # noqa: F401
from tests.integration.intake_support import admin_claims

ODD_STAMPS = {"superscript-two": "\u00b2", "5000-digits": "9" * 5000}


@pytest.mark.parametrize("stamp", ODD_STAMPS.values(), ids=ODD_STAMPS.keys())
def test_a_generic_webhook_with_an_odd_timestamp_is_refused_like_any_bad_signature(harness, acme, stamp):
    harness.drain_triage_jobs()
    headers = {"X-Deflect-Signature": f"t={stamp},v1=00", "X-Deflect-Delivery": "odd-stamp"}
    known = harness.webhook("generic", "acme", b'{"event": "ticket.created"}', headers)
    plain = harness.webhook(
        "generic", "acme", b'{"event": "ticket.created"}', {**headers, "X-Deflect-Signature": "t=1,v1=00"}
    )
    unknown = harness.webhook("generic", "nobody", b'{"event": "ticket.created"}', headers)
    assert (known.status, known.body) == (plain.status, plain.body) and known.status == 401
    assert unknown.status == 404
    assert harness.drain_triage_jobs() == []


DEEP = (
    b'{"message": ' + b"[" * 3000 + b"]" * 3000 + b"}"
)  # 6 KB: under every size limit, past Python's recursion
JSON = {"Content-Type": "application/json"}


def test_a_deeply_nested_conversation_body_is_a_401_without_a_key_and_a_400_with_one(harness, acme):
    harness.drain_triage_jobs()
    kept = harness.objects("tenant=acme/")
    anonymous = harness.call("POST", "/v1/conversations", body=DEEP, headers=JSON)
    assert anonymous.status == 401 and anonymous.body["error"] == "unauthorized"
    keyed = harness.call("POST", "/v1/conversations", body=DEEP, headers={**JSON, "X-Api-Key": acme.api_key})
    assert keyed.status == 400 and keyed.body["error"] == "malformed_body"
    assert harness.drain_triage_jobs() == []
    assert harness.objects("tenant=acme/") == kept


def test_a_conversation_body_that_is_not_utf8_is_a_400(harness, acme):
    harness.drain_triage_jobs()
    answer = harness.call(
        "POST",
        "/v1/conversations",
        body=b'{"message": "caf\xe9"}',
        headers={**JSON, "X-Api-Key": acme.api_key},
    )
    assert answer.status == 400 and answer.body["error"] == "malformed_body"
    assert harness.drain_triage_jobs() == []


def test_a_deeply_nested_admin_body_is_a_400_and_changes_nothing(harness, acme):
    answer = harness.call(
        "PUT", "/v1/customers/cust-deep", body=DEEP, headers=JSON, claims=admin_claims("acme")
    )
    assert answer.status == 400 and answer.body["error"] == "malformed_body"
    customers = harness.container().tenant_admin.customers
    assert customers.get(TenantContext.system("acme"), "cust-deep") is None
