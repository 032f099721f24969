"""Over HTTP: a conversation is shown and added to only for the requester who started it.

GET names the reader with `X-Requester-Email` / `X-Requester-External-Id` (the same identity its messages carry in
`requester`); anyone else, or nobody, gets the 404 of an unknown conversation.
"""

from __future__ import annotations

import json

import pytest

from deflect.domain.canonical import sha256_hex
from tests.integration.intake_support import admin_claims, moto_harness, queued_triage_only


@pytest.fixture(scope="module")
def harness():
    yield from moto_harness()


@pytest.fixture(scope="module")
def acme(harness):
    tenant = harness.create_tenant("acme")
    claims = admin_claims("acme")
    plan = b'{"plan": "enterprise", "entitlements": ["beta-api"]}'
    assert harness.call("PUT", "/v1/accounts/acct-x", body=plan, claims=claims).status == 200
    for customer, body in (
        ("crm-x", {"email": "x@acme.example", "account_id": "acct-x"}),
        ("crm-y", {"email": "y@acme.example"}),
    ):
        assert (
            harness.call(
                "PUT", f"/v1/customers/{customer}", body=json.dumps(body).encode(), claims=claims
            ).status
            == 200
        )
    return tenant


@pytest.fixture(autouse=True)
def without_sync_triage(harness):
    yield from queued_triage_only()


def _post(harness, path, payload, key, **headers):
    return harness.call(
        "POST", path, body=json.dumps(payload).encode(), headers={"X-Api-Key": key, **headers}
    )


def test_only_the_requester_who_started_a_conversation_reads_or_adds_to_it(harness, acme):
    x = {"email": "x@acme.example"}
    started = _post(harness, "/v1/conversations", {"message": "Invoice INV-77 is wrong", "requester": x}, acme.api_key,
                    **{"Idempotency-Key": "order-1001"})  # fmt: skip
    assert started.status == 202
    path = started.body["status_url"]
    assert started.body["conversation_id"] != "cnv_" + sha256_hex(b"acme\x1forder-1001")[:32]

    unknown = harness.call("GET", "/v1/conversations/cnv_" + "0" * 32, headers={"X-Api-Key": acme.api_key})
    for headers in ({}, {"X-Requester-Email": "y@acme.example"}, {"X-Requester-External-Id": "crm-x"}):
        read = harness.call("GET", path, headers={"X-Api-Key": acme.api_key, **headers})
        assert (read.status, read.body) == (unknown.status, unknown.body) == (404, unknown.body)
        assert "INV-77" not in json.dumps(read.body)
    posted = _post(harness, f"{path}/messages", {"message": "what plan?", "requester": {"email": "y@acme.example"}},
                   acme.api_key)  # fmt: skip
    assert posted.status == 404 and posted.body == unknown.body

    own = harness.call(
        "GET", path, headers={"X-Api-Key": acme.api_key, "X-Requester-Email": "X@acme.example"}
    )
    assert own.status == 200 and [m["text"] for m in own.body["messages"]] == ["Invoice INV-77 is wrong"]
    assert (
        _post(harness, f"{path}/messages", {"message": "any news?", "requester": x}, acme.api_key).status
        == 202
    )
