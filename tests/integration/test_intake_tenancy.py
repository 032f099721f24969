"""Tenant isolation at the intake edge: one tenant's credentials never reach another tenant's data.

`acme` and `acme-corp` share a prefix on purpose: keys must not leak across it.
"""

from __future__ import annotations

import json

import pytest

from deflect.webhooks import sign
from tests.integration.intake_support import admin_claims, moto_harness, sample


@pytest.fixture(scope="module")
def harness():
    yield from moto_harness()


@pytest.fixture(scope="module")
def tenants(harness):
    return harness.create_tenant("acme"), harness.create_tenant("acme-corp")


@pytest.mark.parametrize("provider", ["zendesk", "intercom", "freshdesk", "jira", "generic"])
def test_tenant_a_secret_posting_to_tenant_b_path_is_401(harness, tenants, provider):
    a, _ = tenants
    body = sample(provider, {"zendesk": "trigger_ticket_created", "intercom": "conversation_user_created",
                             "freshdesk": "ticket_created", "jira": "issue_created", "generic": "ticket_created"}[provider])  # fmt: skip
    headers = sign(provider, a.secrets[provider], body, delivery_id=f"cross-{provider}")
    answer = harness.webhook(provider, "acme-corp", body, headers)
    assert answer.status == 401
    assert harness.webhook(provider, "acme", body, headers).status == 200  # the same request is fine at home


def _start(harness, tenant, text: str) -> dict:
    answer = harness.call(
        "POST",
        "/v1/conversations",
        body=json.dumps({"message": text, "requester": {"email": "pat@corp.example"}}).encode(),
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    )
    assert answer.status in (200, 202), answer.body  # 200 when triage answers within the budget
    return answer.body


def test_nothing_of_b_is_readable_through_a_routes(harness, tenants):
    a, b = tenants
    theirs = _start(harness, b, "Our SSO certificate expires tomorrow, how do we rotate it?")
    read_by_a = harness.call(
        "GET", f"/v1/conversations/{theirs['conversation_id']}", headers={"X-Api-Key": a.api_key}
    )
    write_by_a = harness.call(
        "POST",
        f"/v1/conversations/{theirs['conversation_id']}/messages",
        body=json.dumps({"message": "hello"}).encode(),
        headers={"X-Api-Key": a.api_key},
    )
    assert read_by_a.status == write_by_a.status == 404
    assert "SSO" not in json.dumps(read_by_a.body)
    # B's own requester reads it (a conversation is shown only to the requester who started it).
    own = {"X-Api-Key": b.api_key, "X-Requester-Email": "pat@corp.example"}
    assert harness.call("GET", f"/v1/conversations/{theirs['conversation_id']}", headers=own).status == 200


def test_a_admin_cannot_touch_b_configuration_or_identities(harness, tenants):
    config = harness.call(
        "PUT", "/v1/tenants/acme-corp/config", body=b'{"display_name": "pwned"}', claims=admin_claims("acme")
    )
    assert config.status == 404
    # A customer id written by A's admin lands in A only.
    created = harness.call(
        "PUT", "/v1/customers/shared-id", body=b'{"email": "x@acme.example"}', claims=admin_claims("acme")
    )
    assert created.status == 200 and created.body["tenant_id"] == "acme"
    assert harness.items("acme-corp", "CUST#shared-id", "PROFILE") == []
    from deflect.domain.tenancy import TenantContext

    assert harness.container().tenants.get(TenantContext.system("acme-corp")).display_name == "Acme-Corp"


def test_api_key_of_one_tenant_with_another_tenant_name_is_rejected(harness, tenants):
    a, _ = tenants
    forged = a.api_key.replace("dfk_acme_", "dfk_acme-corp_", 1)
    answer = harness.call("GET", "/v1/conversations/cnv_x", headers={"X-Api-Key": forged})
    assert answer.status == 401
    assert harness.call("GET", "/v1/conversations/cnv_x", headers={}).status == 401
