"""Pure rules every capability relies on: tenant ids, key layout, canonical hashing, the audit chain."""

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deflect.domain import keys
from deflect.domain.audit_chain import GENESIS, seal, verify_chain
from deflect.domain.canonical import canonical_json, sha256_hex
from deflect.domain.errors import InvalidTenant
from deflect.domain.models import AuditEvent, HumanTask
from deflect.domain.tenancy import TenantContext, validate_tenant_id

tenant_ids = st.from_regex(r"[a-z0-9][a-z0-9-]{2,20}", fullmatch=True)


@pytest.mark.parametrize("bad", ["", "ab", "Acme", "acme_corp", "-acme", "acme#x", "a" * 64, "acme/../x", "acme corp"])
def test_invalid_tenant_ids_are_refused(bad):
    with pytest.raises(InvalidTenant):
        validate_tenant_id(bad)


@given(tenant_ids, tenant_ids)
def test_key_prefixes_never_collide_across_tenants(a, b):
    if a == b:
        return
    # `acme` must never be a key prefix of `acme-corp`'s items, for any entity.
    assert not keys.ticket_pk(b, "1").startswith(keys.tenant_pk(a) + "#")
    assert not keys.evidence_key(b, "1", "0" * 64).startswith(keys.s3_prefix(a))


def test_entity_ids_cannot_smuggle_separators():
    with pytest.raises(ValueError):
        keys.ticket_pk("acme", "1#CUST#2")


def test_canonical_json_is_order_independent():
    assert canonical_json({"b": 1, "a": [1, 2]}) == canonical_json({"a": [1, 2], "b": 1})


def _chain(n: int) -> list[AuditEvent]:
    events, prev = [], GENESIS
    for seq in range(n):
        payload = {"step": seq}
        event = seal(
            AuditEvent(
                tenant_id="acme",
                ticket_id="t1",
                seq=seq,
                type="test",
                actor="system",
                at=datetime(2026, 1, 1, tzinfo=UTC),
                payload=payload,
                payload_sha256=sha256_hex(canonical_json(payload)),
                prev_hash=prev,
            )
        )
        events.append(event)
        prev = event.hash
    return events


def test_intact_chain_verifies():
    assert verify_chain(_chain(5)) is None


def test_changed_payload_names_the_broken_link():
    events = _chain(5)
    events[3] = events[3].model_copy(update={"payload": {"step": 99}})
    assert verify_chain(events).seq == 3


def test_reordered_pair_is_detected():
    events = _chain(4)
    events[1], events[2] = events[2], events[1]
    assert verify_chain(events).seq == 1


def test_missing_event_is_detected():
    events: list = _chain(4)
    events[2] = None
    assert verify_chain(events).seq == 2


def test_task_public_view_never_contains_the_token():
    task = HumanTask(
        tenant_id="acme", ticket_id="t1", queue="tier1", due_at=datetime.now(UTC), token_ciphertext="secret", token_sha256="h"
    )
    view = task.public_view()
    assert "token_ciphertext" not in view and "token_sha256" not in view
    assert "secret" not in repr(task)


def test_system_context_is_scoped_to_one_tenant():
    ctx = TenantContext.system("acme")
    assert ctx.tenant_id == "acme" and ctx.has_role("service") and not ctx.has_role("approver")
