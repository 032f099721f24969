"""A tenant's decision policy changed through the admin service (what `PUT /v1/tenants/{id}/config` and
`deflect policy set` call): every change is a new version, kept, audited with who made it, and the version is what
later decisions record."""

import pytest
from pydantic import ValidationError

from deflect.domain.errors import Conflict, MalformedPayload, NotFound
from deflect.domain.models import DecisionPolicy, TenantConfig
from deflect.domain.tenancy import TenantContext
from deflect.repositories import TenantConfigs, Tickets, save
from deflect.services.tenant_admin import PolicyVersionNotSettable, TenantAdmin, TenantConfigUpdate
from deflect.triage.policy import POLICY_CHAIN, policy_history
from tests.unit.triage_fakes import make_world

SSO_QUESTION = "How do I set up SSO for my team?"
DANA = TenantContext(tenant_id="acme", actor="agent:dana", roles=frozenset({"admin"}), via="jwt")


def admin_of(world) -> TenantAdmin:
    return TenantAdmin(world.store, None, world.audit)


def events(world):
    _, found = world.audit.load(world.ctx, POLICY_CHAIN)
    return found


def test_a_policy_change_through_the_admin_service_is_versioned_kept_and_audited_with_its_actor():
    world = make_world(policy=DecisionPolicy(rollout_default="auto"))
    config = admin_of(world).update_config(
        DANA, "acme", TenantConfigUpdate(policy={"rollout_default": "shadow", "answer_threshold": 0.9})
    )
    assert config.policy.version == 2 and config.policy.rollout_default == "shadow"
    assert TenantConfigs(world.store).get(world.ctx).policy.version == 2

    history = policy_history(world.store, world.ctx)
    assert [h["policy_version"] for h in history] == [2, 1]
    assert history[0]["changed_by"] == "agent:dana"
    assert history[1]["policy"]["rollout_default"] == "auto"  # v1 as it was, readable after it is replaced

    [event] = events(world)
    assert event.type == "policy.changed" and event.actor == "agent:dana"
    assert {k: event.payload[k] for k in ("actor", "from_version", "to_version", "changed", "fields")} == {
        "actor": "agent:dana",
        "from_version": 1,
        "to_version": 2,
        "changed": ["answer_threshold", "rollout_default"],
        "fields": ["policy"],
    }
    assert world.audit.verify(world.ctx, POLICY_CHAIN).ok


def test_the_same_policy_again_keeps_its_version_and_writes_nothing():
    world = make_world()
    admin = admin_of(world)
    changed = admin.update_config(DANA, "acme", TenantConfigUpdate(policy={"answer_threshold": 0.8}))
    again = admin.update_config(DANA, "acme", TenantConfigUpdate(policy={"answer_threshold": 0.8}))
    assert again.policy.version == changed.policy.version == 2
    assert again.version == changed.version  # the config record was not rewritten either
    assert len(events(world)) == 1 and len(policy_history(world.store, world.ctx)) == 2


def test_fields_left_out_of_a_policy_update_keep_their_current_value():
    world = make_world()
    admin = admin_of(world)
    admin.update_config(DANA, "acme", TenantConfigUpdate(policy={"rollout_default": "shadow"}))
    config = admin.update_config(
        DANA, "acme", TenantConfigUpdate(policy={"rollout_by_intent": {"how_to": "auto"}})
    )
    assert config.policy.rollout_default == "shadow"  # not reset to the default (assist)
    assert config.policy.version == 3
    assert events(world)[-1].payload["changed"] == ["rollout_by_intent"]


def test_a_client_cannot_set_the_policy_version_or_unknown_policy_fields():
    world = make_world()
    admin = admin_of(world)
    with pytest.raises(PolicyVersionNotSettable) as refused:
        admin.update_config(DANA, "acme", TenantConfigUpdate(policy={"version": 9, "answer_threshold": 0.8}))
    assert isinstance(refused.value, MalformedPayload)  # → 400
    with pytest.raises(ValidationError):  # → 422 at the API edge; a typo is not a silent no-op
        TenantConfigUpdate(policy={"answer_treshold": 0.8})
    with pytest.raises(ValidationError):
        TenantConfigUpdate(policy_history=[])
    assert TenantConfigs(world.store).get(world.ctx).policy.version == 1 and events(world) == []


def test_other_config_fields_in_the_same_update_are_written_with_the_policy_in_one_event():
    world = make_world()
    admin = admin_of(world)
    config = admin.update_config(
        DANA, "acme", TenantConfigUpdate(default_locale="de", policy={"answer_threshold": 0.7})
    )
    assert (config.default_locale, config.policy.version) == ("de", 2)
    [event] = events(world)
    assert event.type == "policy.changed" and event.payload["fields"] == ["default_locale", "policy"]
    # without a policy change the update is audited as before
    admin.update_config(
        DANA, "acme", TenantConfigUpdate(default_locale="fr", policy={"answer_threshold": 0.7})
    )
    assert [(e.type, e.payload["fields"]) for e in events(world)][-1] == (
        "tenant.config_updated",
        ["default_locale"],
    )
    assert TenantConfigs(world.store).get(world.ctx).policy.version == 2


def test_decisions_after_a_policy_change_record_the_new_version():
    world = make_world(policy=DecisionPolicy(rollout_default="auto"))
    before = world.triage("tkt-1", SSO_QUESTION)
    admin_of(world).update_config(DANA, "acme", TenantConfigUpdate(policy={"rollout_default": "shadow"}))
    after = world.triage("tkt-2", SSO_QUESTION)
    [first] = Tickets(world.store).decisions(world.ctx, "tkt-1")
    [second] = Tickets(world.store).decisions(world.ctx, "tkt-2")
    assert (first.policy_version, before.rollout_mode) == (1, "auto")
    assert (second.policy_version, after.rollout_mode) == (2, "shadow")
    # the version a decision names can be read back
    recorded = {h["policy_version"]: h["policy"] for h in policy_history(world.store, world.ctx)}
    assert recorded[second.policy_version]["rollout_default"] == "shadow"


def test_an_admin_cannot_change_another_tenants_policy():
    world = make_world()
    other = TenantContext.system("globex")
    save(
        world.store,
        other,
        [TenantConfigs(world.store).save_write(TenantConfig(tenant_id="globex", display_name="G"))],
    )
    with pytest.raises(NotFound):
        admin_of(world).update_config(DANA, "globex", TenantConfigUpdate(policy={"rollout_default": "auto"}))
    assert TenantConfigs(world.store).get(other).policy.version == 1
    assert policy_history(world.store, other) == []


def test_concurrent_policy_changes_lose_no_version_the_second_writer_gets_a_conflict():
    world = make_world()
    admin = admin_of(world)
    stale = admin.tenants.find(DANA)  # both writers read the same config
    admin.update_config(DANA, "acme", TenantConfigUpdate(policy={"answer_threshold": 0.7}))
    admin.tenants.find = lambda ctx: stale  # the second writer still holds the first read
    with pytest.raises(Conflict):
        admin.update_config(DANA, "acme", TenantConfigUpdate(policy={"answer_threshold": 0.8}))
    assert TenantConfigs(world.store).get(world.ctx).policy.answer_threshold == 0.7
    assert [h["policy_version"] for h in policy_history(world.store, world.ctx)] == [2, 1]
    assert [e.payload["to_version"] for e in events(world)] == [2]
    # a client-side lock on what was read is refused the same way
    with pytest.raises(Conflict):
        admin.update_config(
            DANA, "acme", TenantConfigUpdate(expected_version=stale.version, policy={"answer_threshold": 0.9})
        )


class _Secrets:
    def __init__(self) -> None:
        self.values: dict[tuple[str, str], list[str]] = {}

    def put_secret(self, tenant_id: str, name: str, value: str, *, keep_previous: bool) -> None:
        self.values[(tenant_id, name)] = [value]

    def secrets(self, tenant_id: str, name: str) -> list[str]:
        return self.values.get((tenant_id, name), [])


def test_a_new_tenants_first_policy_version_names_who_created_it():
    world = make_world()
    admin = TenantAdmin(world.store, _Secrets(), world.audit)
    admin.create("initech", "Initech", providers=["generic"], actor="cli:ops")
    ctx = TenantContext(tenant_id="initech", actor="agent:bob", roles=frozenset({"admin"}), via="jwt")
    [v1] = policy_history(world.store, ctx)
    assert (v1["policy_version"], v1["changed_by"]) == (1, "cli:ops")
    admin.update_config(ctx, "initech", TenantConfigUpdate(policy={"answer_threshold": 0.6}))
    assert [(h["policy_version"], h["changed_by"]) for h in policy_history(world.store, ctx)] == [
        (2, "agent:bob"),
        (1, "cli:ops"),
    ]
