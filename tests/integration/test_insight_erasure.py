"""Erasure: the customer's personal data is unreadable everywhere, and every audit chain still verifies."""

from __future__ import annotations

import json

import pytest

from deflect.cli import main as cli
from deflect.domain import keys
from deflect.domain.errors import Gone
from deflect.domain.models import Customer, utcnow
from deflect.insight.privacy import with_retention
from deflect.repositories import Customers, Tickets
from tests.integration.insight_story import BODY, EMAIL, NAME, PHONE, escalated_ticket, seed_tenant

PERSONAL = [EMAIL, NAME, PHONE, "Ana", "ana.lima"]


def everything_readable(session, container, ctx) -> list[str]:
    """Every item of the table and every version of every evidence object, as text, plus what the services
    hand out when asked (opened sealed evidence)."""
    texts = []
    ddb = session.client("dynamodb")
    pages = ddb.get_paginator("scan").paginate(TableName="SupportTable")
    texts += [json.dumps(item) for page in pages for item in page["Items"]]
    s3 = session.client("s3")
    bucket = moto_bucket(container)
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            body = s3.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])[
                "Body"
            ].read()
            texts.append(body.decode("utf-8", "replace"))
    return texts


def moto_bucket(container) -> str:
    return container.settings.evidence_bucket


@pytest.fixture
def erased(moto_stack):
    container = moto_stack.container()
    ctx = seed_tenant(container, "acme")
    story = escalated_ticket(container, ctx)
    # another customer of the same tenant, who must keep everything
    other = Customer(tenant_id="acme", customer_id="cus_2", email="bo@example.net", name="Bo Berg")
    container.store.transact(ctx, Customers(container.store).save_writes(other))
    other_raw = container.sealed_evidence.put_for_customer(
        ctx, "tkt_2", "cus_2", b'{"body":"Bo Berg here"}', "inbound_request"
    )
    before = everything_readable(moto_stack.session, container, ctx)
    assert any(EMAIL in text for text in before)  # the story really stored personal data in the table

    assert cli(["customer", "erase", "--tenant", "acme", "--customer", "cus_1"]) == 0
    return moto_stack, container, ctx, story, other_raw


def test_no_personal_data_of_the_customer_is_readable_anywhere(erased):
    moto_stack, container, ctx, story, _ = erased
    for text in everything_readable(moto_stack.session, container, ctx):
        for value in PERSONAL:
            assert value not in text, f"{value!r} still readable"
    customers = Customers(container.store)
    assert customers.get(ctx, "cus_1") is None
    assert customers.find_by_requester(ctx, "email", EMAIL) is None
    message = container.store.query(ctx, keys.ticket_pk("acme", story.ticket_id), "MSG#")[0].data
    assert message["body_redacted"] == "[erased]" and BODY not in json.dumps(message)
    # sealed evidence is still locked and still hashes right, but cannot be opened any more
    sealed = story.events[0].evidence[0]
    assert container.sealed_evidence.read_sealed(ctx, sealed)  # bytes are there (ciphertext)
    with pytest.raises(Gone):
        container.sealed_evidence.read(ctx, sealed)


def test_audit_verify_still_passes_and_the_erasure_is_on_the_record(erased, capsys):
    _, container, ctx, story, _ = erased
    assert cli(["audit", "verify", "--tenant", "acme"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["ok"] is True
    timeline = container.timeline.timeline(ctx, story.ticket_id)
    assert timeline.chain.ok
    assert timeline.events[-1].type == "customer.erased"
    # the history is still there, from the audit payloads now that the decision evidence is unreadable
    history = container.timeline.rebuild_from_audit(ctx, story.ticket_id)
    assert history.reached == ["received", "triaged", "escalated", "decided", "written_back"]
    assert history.decisions[0].outcome == "escalate" and history.decisions[0].policy_version == 3
    assert history.messages[0]["evidence"][0]["readable"] is False


def test_other_customers_keep_their_data(erased):
    _, container, ctx, _, other_raw = erased
    assert Customers(container.store).find_by_requester(ctx, "email", "bo@example.net").name == "Bo Berg"
    assert container.sealed_evidence.read(ctx, other_raw) == b'{"body":"Bo Berg here"}'


def test_retention_puts_the_tenants_ttl_on_mutable_records_only(moto_stack):
    container = moto_stack.container()
    ctx = seed_tenant(container, "acme", retention_days=30)
    config = container.tenants.get(ctx)
    now = utcnow()
    from deflect.domain.models import Ticket
    from deflect.ports import Put

    ticket_put = Tickets(container.store).save_write(
        Ticket(tenant_id="acme", ticket_id="tkt_r", provider="api", external_id="r")
    )
    audit_like = Put(pk="T#acme#AUDIT#tkt_r", sk="SEQ#0000000000", data={})
    writes = with_retention([ticket_put, audit_like], config, now)
    assert writes[0].ttl_epoch == int(now.timestamp()) + 30 * 86400
    assert writes[1].ttl_epoch is None
    container.store.put(ctx, writes[0])
    raw = moto_stack.session.client("dynamodb").get_item(
        TableName="SupportTable", Key={"PK": {"S": "T#acme#TICKET#tkt_r"}, "SK": {"S": "META"}}
    )["Item"]
    assert int(raw["expires_at"]["N"]) == writes[0].ttl_epoch


def test_data_under_a_holding_key_is_unreadable_from_its_expiry_on(moto_stack):
    import time

    container = moto_stack.container()
    ctx = seed_tenant(container, "acme")
    vault = container.sealed_evidence
    key = f"{keys.s3_prefix('acme')}quarantine/generic/abc.json"
    expiry = int(time.time()) + 2
    vault.put_held(
        ctx, key, "hold_test", b'{"requester":"jo@example.com"}', "quarantine", expires_epoch=expiry
    )
    assert b"jo@example.com" in vault.read_held(ctx, key)
    assert b"jo@example.com" not in container.evidence.read_latest(ctx, key)
    time.sleep(max(0.0, expiry - time.time()) + 1.1)
    # DynamoDB's TTL sweep may lag by days; the key counts as gone from its expiry on.
    with pytest.raises(Gone):
        vault.read_held(ctx, key)
    assert vault.read_held(ctx, f"{keys.s3_prefix('acme')}quarantine/generic/none.json") is None


def test_a_crm_customers_identity_claims_are_erased_and_another_customers_stay(moto_stack):
    from deflect.domain.tenancy import TenantContext
    from deflect.services.tenant_admin import CustomerUpdate

    container = moto_stack.container()
    ctx = seed_tenant(container, "acme")
    admin = TenantContext(tenant_id="acme", actor="admin:crm", via="jwt", roles=frozenset({"admin"}))
    container.tenant_admin.put_customer(
        admin,
        "crm-ana",
        CustomerUpdate(email="ana.claims@example.com", external_ids={"api": "0035g00000AbCdE"}),
    )
    container.tenant_admin.put_customer(admin, "crm-bo", CustomerUpdate(email="bo.claims@example.net"))

    assert cli(["customer", "erase", "--tenant", "acme", "--customer", "crm-ana"]) == 0

    for text in everything_readable(moto_stack.session, container, ctx):
        assert "ana.claims@example.com" not in text and "0035g00000AbCdE" not in text
    customers = Customers(container.store)
    assert customers.claimant(ctx, "email", "bo.claims@example.net") == "crm-bo"
    # The email is free again: a new CRM record may take it.
    container.tenant_admin.put_customer(admin, "crm-ana-2", CustomerUpdate(email="ana.claims@example.com"))
