"""Per-intent rollout overrides trust an intent, not a guess at it: a message the classifier is unsure about (or
finds out of scope) gets the stricter of the tenant's default and the guessed intent's override."""

import pytest

from deflect.domain.models import DecisionPolicy
from deflect.ports import IntentPrediction
from tests.unit.triage_fakes import make_world

SSO_QUESTION = "How do I set up SSO for my team?"


def guessed(confidence, *, out_of_scope=False):
    return IntentPrediction(
        intent="how_to",
        confidence=confidence,
        kind="question",
        product_area="general",
        risk=0.9,
        out_of_scope=out_of_scope,
    )


def test_an_unconfident_guess_at_an_auto_intent_sends_nothing_and_starts_no_escalation():
    policy = DecisionPolicy(rollout_default="shadow", rollout_by_intent={"how_to": "auto"})
    world = make_world(policy=policy, rules=[("cancel", guessed(0.2))])

    result = world.triage("tkt-9", "cancel my whatever thing now")

    assert result.outcome == "escalate" and "low_classification_confidence" in result.reasons
    assert result.rollout_mode == "shadow"
    # What the customer and the agents would notice: no acknowledgement, no workflow, no ticket status change.
    assert world.sent == [] and world.started == [] and not result.escalated
    assert result.outbox_ids == []


def test_an_out_of_scope_message_does_not_take_the_override_of_the_intent_it_resembles():
    policy = DecisionPolicy(rollout_default="assist", rollout_by_intent={"how_to": "auto"})
    world = make_world(policy=policy, rules=[("sso", guessed(0.95, out_of_scope=True))])

    assert world.triage("tkt-1", SSO_QUESTION).rollout_mode == "assist"


def test_a_stricter_override_still_holds_for_an_unconfident_guess():
    policy = DecisionPolicy(rollout_default="auto", rollout_by_intent={"how_to": "shadow"})
    world = make_world(policy=policy, rules=[("sso", guessed(0.3))])

    result = world.triage("tkt-1", SSO_QUESTION)

    assert result.rollout_mode == "shadow" and world.sent == [] and world.started == []


@pytest.mark.parametrize(("confidence", "mode"), [(0.5, "auto"), (0.49, "shadow")])
def test_the_override_applies_from_the_classification_threshold_on(confidence, mode):
    policy = DecisionPolicy(
        rollout_default="shadow", rollout_by_intent={"how_to": "auto"}, classification_threshold=0.5
    )
    world = make_world(policy=policy, rules=[("sso", guessed(confidence))])

    assert world.triage("tkt-1", SSO_QUESTION).rollout_mode == mode
