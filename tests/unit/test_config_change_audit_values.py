"""A tenant configuration change (PUT /v1/tenants/{id}/config, `deflect policy set`) keeps the old and new value of
every field it set on the audit chain, so an auditor can rebuild the configuration at any past moment: a suspension
can be told from a reactivation, and which helpdesks were trusted for emails when."""

from deflect.domain.tenancy import TenantContext
from deflect.services.tenant_admin import CONFIG_CHAIN, TenantAdmin, TenantConfigUpdate
from tests.unit.triage_fakes import make_world

DANA = TenantContext(tenant_id="acme", actor="agent:dana", roles=frozenset({"admin"}), via="jwt")


def config_events(world):
    _, found = world.audit.load(world.ctx, CONFIG_CHAIN)
    return [e for e in found if e.type in ("tenant.config_updated", "policy.changed")]


def put(world, **fields):
    TenantAdmin(world.store, None, world.audit).update_config(DANA, "acme", TenantConfigUpdate(**fields))


def test_a_suspension_and_a_reactivation_are_told_apart_on_the_audit_chain():
    world = make_world()
    put(world, status="suspended")
    put(world, status="active")
    put(world, email_vouching_providers=["zendesk", "jira"], retention_days=30)

    suspended, reactivated, trusted = config_events(world)
    assert suspended.payload["values"] == {"status": {"old": "active", "new": "suspended"}}
    assert reactivated.payload["values"] == {"status": {"old": "suspended", "new": "active"}}
    assert trusted.payload["values"] == {
        "email_vouching_providers": {"old": [], "new": ["zendesk", "jira"]},
        "retention_days": {"old": 365, "new": 30},
    }
    assert suspended.actor == suspended.payload["actor"] == "agent:dana"
    assert world.audit.verify(world.ctx, CONFIG_CHAIN).ok


def test_fields_set_together_with_a_policy_keep_their_values_on_the_policy_event():
    world = make_world()
    put(world, status="suspended", policy={"answer_threshold": 0.9})
    [event] = config_events(world)
    assert event.type == "policy.changed"
    assert event.payload["values"] == {"status": {"old": "active", "new": "suspended"}}
    assert event.payload["to_version"] == 2  # the policy itself: versioned snapshots, not copied here


def test_every_config_field_is_a_deliberate_choice_of_recorded_or_not():
    # A field added later (a secret, say) is not recorded by accident, and not silently left out either.
    from deflect.services.tenant_admin import AUDITED_CONFIG_VALUES, UNAUDITED_CONFIG_VALUES

    settable = set(TenantConfigUpdate.model_fields) - {"expected_version"}
    assert settable == AUDITED_CONFIG_VALUES | UNAUDITED_CONFIG_VALUES
    assert not AUDITED_CONFIG_VALUES & UNAUDITED_CONFIG_VALUES
