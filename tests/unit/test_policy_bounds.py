"""A tenant's decision policy stays within meaningful ranges: thresholds compared with confidences lie in [0, 1],
the two-person money threshold is not negative. `PUT /v1/tenants/{id}/config` refuses anything else with a 422
naming the field and keeps the stored policy; a policy stored before the bounds still loads and decides as stored.

Calls go through functions/intake/app.py's handler with API Gateway events, its composition root holding the real
TenantAdmin over the in-memory store."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from deflect.bootstrap import Container
from deflect.domain.models import DecisionPolicy
from deflect.repositories import TenantConfigs
from deflect.services.tenant_admin import TenantAdmin
from deflect.settings import Settings
from deflect.triage.policy import POLICY_CHAIN, policy_history
from tests.unit.triage_fakes import World, make_world

SSO_QUESTION = "How do I set up SSO for my team?"


class ConfigApi:
    def __init__(self, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
        from deflect import bootstrap
        from infra.local import template as tpl
        from infra.local.functions import LocalFunctions

        self.world = world
        # the composition root the handler asks for; anything else it needs is built over this in-memory store
        root = Container(
            Settings.from_env({}),
            store=world.store,
            evidence=world.evidence,
            audit=world.audit,
            tenant_admin=TenantAdmin(world.store, None, world.audit),
        )
        self.functions = LocalFunctions({"IntakeFunction": tpl.functions()["IntakeFunction"]})
        monkeypatch.setattr(bootstrap, "container", lambda: root)
        monkeypatch.setattr(self.functions.module("IntakeFunction"), "container", lambda: root)
        self.routes = [r for r in tpl.routes() if r.function == "IntakeFunction"]

    def put(self, body: dict[str, Any]) -> tuple[int, Any]:
        from infra.local import api

        path = f"/v1/tenants/{self.world.ctx.tenant_id}/config"
        route, params = api.match(api.compile_routes(self.routes), "PUT", path)  # type: ignore[misc]
        event = api.rest_event(
            route,
            method="PUT",
            path=path,
            query="",
            headers=[("content-type", "application/json")],
            body=json.dumps(body).encode(),
            path_parameters=params,
            claims={"sub": "dana", "custom:tenant_id": self.world.ctx.tenant_id, "cognito:groups": "admin"},
            stage="local",
        )
        reply = self.functions.invoke("IntakeFunction", event)
        return reply["statusCode"], json.loads(reply["body"]) if reply.get("body") else None

    def stored_policy(self) -> DecisionPolicy:
        return TenantConfigs(self.world.store).get(self.world.ctx).policy

    def policy_events(self) -> list[Any]:
        _, events = self.world.audit.load(self.world.ctx, POLICY_CHAIN)
        return [e for e in events if e.type == "policy.changed"]


def _api(world: World, monkeypatch: pytest.MonkeyPatch):
    from deflect.observability import metrics

    yield ConfigApi(world, monkeypatch)
    metrics().clear_metrics()


@pytest.fixture
def config_api(monkeypatch):
    yield from _api(make_world(), monkeypatch)


def _legacy_policy() -> DecisionPolicy:
    """What PUT config stored before the bounds: model_copy skips validation, as that write did not check."""
    return DecisionPolicy(rollout_default="auto").model_copy(
        update={
            "answer_threshold": 5.0,
            "classification_threshold": -1.0,
            "two_person_amount_threshold": Decimal("-5"),
        }
    )


@pytest.fixture
def legacy_api(monkeypatch):
    yield from _api(make_world(policy=_legacy_policy()), monkeypatch)


@pytest.mark.parametrize(
    ("policy", "fields"),
    [
        ({"answer_threshold": 5}, ["answer_threshold"]),
        (
            {"answer_threshold": -1, "two_person_amount_threshold": "-5"},
            ["answer_threshold", "two_person_amount_threshold"],
        ),
        ({"classification_threshold": 1.01}, ["classification_threshold"]),
        ({"classification_threshold": -0.1, "rollout_default": "shadow"}, ["classification_threshold"]),
        ({"two_person_amount_threshold": "Infinity"}, ["two_person_amount_threshold"]),
    ],
)
def test_an_out_of_range_threshold_is_refused_with_a_422_and_the_stored_policy_is_unchanged(
    config_api, policy, fields
):
    before = config_api.stored_policy()

    status, body = config_api.put({"policy": policy})

    assert status == 422 and body["error"] == "invalid_request"
    assert body["fields"] == [f"body.policy.{field}" for field in fields]
    assert config_api.stored_policy() == before
    assert config_api.policy_events() == []
    assert policy_history(config_api.world.store, config_api.world.ctx) == []  # no version was written


def test_the_ends_of_each_range_are_accepted(config_api):
    status, body = config_api.put(
        {"policy": {"answer_threshold": 1, "classification_threshold": 0, "two_person_amount_threshold": "0"}}
    )

    assert status == 200 and body["policy"]["version"] == 2
    stored = config_api.stored_policy()
    assert (stored.answer_threshold, stored.classification_threshold, stored.two_person_amount_threshold) == (
        1.0,
        0.0,
        Decimal("0"),
    )


def test_a_policy_built_in_code_is_range_checked_too():
    with pytest.raises(ValidationError, match="answer_threshold"):
        DecisionPolicy(answer_threshold=1.5)
    with pytest.raises(ValidationError, match="two_person_amount_threshold"):
        DecisionPolicy(two_person_amount_threshold=Decimal("-0.01"))
    with pytest.raises(ValidationError, match="version"):
        DecisionPolicy(version=0)


def test_a_policy_stored_before_the_bounds_loads_as_stored_and_still_decides(legacy_api):
    stored = legacy_api.stored_policy()

    assert (stored.answer_threshold, stored.classification_threshold, stored.two_person_amount_threshold) == (
        5.0,
        -1.0,
        Decimal("-5"),
    )
    # answer_threshold 5 meant "never answer automatically", and still does: the question goes to a person
    result = legacy_api.world.triage("tkt-1", SSO_QUESTION)
    assert result.outcome == "escalate" and result.reasons == ["low_answer_confidence"]
    assert make_world().triage("tkt-1", SSO_QUESTION).outcome == "deflect"  # (what the default policy does)


def test_a_policy_stored_before_the_bounds_is_repaired_by_setting_it_in_range(legacy_api):
    status, body = legacy_api.put(
        {
            "policy": {
                "answer_threshold": 0.6,
                "classification_threshold": 0.5,
                "two_person_amount_threshold": "500",
            }
        }
    )

    assert status == 200 and body["policy"]["version"] == 2
    stored = legacy_api.stored_policy()
    assert (stored.answer_threshold, stored.classification_threshold, stored.two_person_amount_threshold) == (
        0.6,
        0.5,
        Decimal("500"),
    )
    assert legacy_api.world.triage("tkt-1", SSO_QUESTION).outcome == "deflect"


def test_a_stored_policy_of_the_wrong_type_is_still_an_error():
    from deflect.domain.models import TenantConfig

    with pytest.raises(ValidationError):
        TenantConfig.model_validate(
            {"tenant_id": "acme", "display_name": "Acme", "policy": {"answer_threshold": "high"}}
        )


def test_a_tenant_with_a_policy_stored_before_the_bounds_can_still_change_its_other_settings(legacy_api):
    status, body = legacy_api.put({"display_name": "Acme Support"})
    assert status == 200 and body["display_name"] == "Acme Support"
    assert legacy_api.stored_policy().answer_threshold == _legacy_policy().answer_threshold == 5.0
    # Setting the policy again must bring every field into range; the refusal names what is still out of it.
    status, body = legacy_api.put({"policy": {"answer_threshold": 0.6}})
    assert status == 400 and "two_person_amount_threshold" in body["detail"]
