"""What an auditor reads afterwards: every erasure is on the customer's own audit chain (`customer-<id>`), also of a
CRM customer with no ticket, naming who asked and whether a data key was destroyed; and what writeback held back
under the tenant's rollout policy says why and under which policy version, also in the audit-only rebuild."""

from __future__ import annotations

import json

import pytest

from deflect.domain.models import Customer, DecisionPolicy
from deflect.domain.tenancy import TenantContext
from deflect.insight.timeline import TimelineService
from deflect.repositories import Customers, TenantConfigs
from deflect.triage.policy import change_policy
from tests.cli_shell import deflect
from tests.integration.test_writeback_rollout_switch import TENANT, decided_reply, dispatch, stored_ticket
from tests.integration.writeback_support import auto_mode_world

EMAIL, NAME = "zoe@example.org", "Zoe Quinn"


# ---------------------------------------------------------------- erasure


def _customer_chain(container, ctx, customer_id):
    _, events = container.audit.load(ctx, f"customer-{customer_id}")
    return [e for e in events if e is not None]


def test_erasing_a_crm_customer_without_tickets_is_recorded_once_on_its_own_chain(moto_stack, capsys):
    from deflect.cli.operator import admin_context
    from deflect.services.tenant_admin import CustomerUpdate

    container = moto_stack.container()
    container.tenant_admin.create("erase-rec", "Erase", providers=["generic"], actor="test")
    ctx = admin_context("erase-rec", "admin:crm")
    container.tenant_admin.put_customer(ctx, "crm_7", CustomerUpdate(email=EMAIL, name=NAME))
    erase = ["customer", "erase", "--tenant", "erase-rec", "--customer", "crm_7", "--actor", "dpo:maria"]

    code, out, _ = deflect(capsys, *erase)
    assert code == 0 and json.loads(out)["tickets"] == []
    code, _, _ = deflect(capsys, *erase)  # a retry: already erased, nothing new to record
    assert code == 0

    chain = _customer_chain(container, ctx, "crm_7")
    assert [e.type for e in chain] == ["customer.created", "customer.erased"]
    erased = chain[-1]
    assert erased.actor == "dpo:maria"
    assert erased.payload["deleted_items"] == 3 and erased.payload["key_destroyed"] is False
    assert EMAIL not in json.dumps(erased.payload) and "Zoe" not in json.dumps(erased.payload)
    assert container.audit.verify(ctx, "customer-crm_7").ok


def test_the_record_says_a_data_key_was_destroyed_only_when_one_was(moto_stack, capsys):
    container = moto_stack.container()
    container.tenant_admin.create("erase-key", "Erase", providers=["generic"], actor="test")
    ctx = TenantContext.system("erase-key")
    customer = Customer(tenant_id="erase-key", customer_id="cus_k", email=EMAIL)
    container.store.transact(ctx, Customers(container.store).save_writes(customer))
    raw = container.sealed_evidence.put_for_customer(
        ctx, "tkt_k", "cus_k", b'{"body":"hi"}', "inbound_request"
    )
    assert container.sealed_evidence.read(ctx, raw)

    code, out, _ = deflect(capsys, "customer", "erase", "--tenant", "erase-key", "--customer", "cus_k")

    assert code == 0 and json.loads(out)["key_destroyed"] is True
    [erased] = _customer_chain(container, ctx, "cus_k")
    assert erased.type == "customer.erased" and erased.payload["key_destroyed"] is True
    assert container.customer_keys.key(ctx, "cus_k", create=False) is None


def test_an_erasure_request_for_an_unknown_id_starts_no_chain(moto_stack, capsys):
    container = moto_stack.container()
    container.tenant_admin.create("erase-typo", "Erase", providers=["generic"], actor="test")

    code, _, _ = deflect(
        capsys, "customer", "erase", "--tenant", "erase-typo", "--customer", "cus_typo", "--thorough"
    )

    assert code == 1
    assert container.audit.entries(TenantContext.system("erase-typo"), "customer-cus_typo") == []


# ---------------------------------------------------------------- held back by the rollout policy


@pytest.fixture
def desk():
    with auto_mode_world(TENANT) as (aws, helpdesks):
        yield aws, helpdesks


def _switch(aws, mode: str) -> int:
    ctx = TenantContext.system(TENANT, "operator:ops")
    change_policy(aws.container.store, aws.container.audit, ctx, DecisionPolicy(rollout_default=mode))
    return TenantConfigs(aws.container.store).get(ctx).policy.version


def _writeback_events(aws, ticket_id):
    _, events = aws.container.audit.load(TenantContext.system(TENANT), ticket_id)
    return [e for e in events if e is not None and e.type.startswith("writeback.")]


def test_a_reply_sent_as_a_note_after_a_switch_to_assist_says_so_and_under_which_policy(desk):
    aws, helpdesks = desk
    ticket, _ = stored_ticket(aws, helpdesks)
    item = decided_reply(aws, ticket)  # decided under auto: a public reply
    version = _switch(aws, "assist")

    assert dispatch(aws, item).outcome == "delivered"

    [event] = _writeback_events(aws, ticket.ticket_id)
    assert (event.type, event.payload["kind"]) == ("writeback.delivered", "internal_note")
    assert "assist" in event.payload["held_reason"] and "internal note" in event.payload["held_reason"]
    assert (event.payload["policy_version"], event.payload["rollout_mode"]) == (version, "assist")
    assert event.payload["decided_rollout_mode"] == "auto"


def test_a_reply_sent_as_decided_names_the_policy_and_nothing_held(desk):
    aws, helpdesks = desk
    ticket, _ = stored_ticket(aws, helpdesks)
    item = decided_reply(aws, ticket)

    assert dispatch(aws, item).outcome == "delivered"

    [event] = _writeback_events(aws, ticket.ticket_id)
    assert event.payload["kind"] == "public_reply" and event.payload["held_reason"] is None
    assert (event.payload["policy_version"], event.payload["rollout_mode"]) == (1, "auto")


def test_a_suppressed_reply_names_the_policy_version_and_is_in_the_audit_only_rebuild(desk):
    aws, helpdesks = desk
    ticket, _ = stored_ticket(aws, helpdesks)
    item = decided_reply(aws, ticket)
    version = _switch(aws, "shadow")

    assert dispatch(aws, item).outcome == "suppressed"

    [event] = _writeback_events(aws, ticket.ticket_id)
    assert "shadow" in event.payload["held_reason"] and event.payload["policy_version"] == version
    history = TimelineService(aws.container.audit, aws.container.evidence).rebuild_from_audit(
        TenantContext.system(TENANT), ticket.ticket_id
    )
    [rebuilt] = history.writebacks
    assert (rebuilt["type"], rebuilt["outbox_id"], rebuilt["policy_version"]) == (
        "writeback.suppressed",
        item.outbox_id,
        version,
    )
