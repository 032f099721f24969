"""A message the taxonomy has no intent for may be answered when the head leans away from intents for a person: so the
head must say so only when it can weigh the message, each of its sentences is still read, and an answered one is
not a knowledge gap."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np
import pytest

from deflect.domain.models import DecisionPolicy, Draft
from deflect.domain.tenancy import TenantContext
from deflect.embedded.model import train_head
from deflect.insight.analytics import knowledge_gaps
from deflect.insight.facts import Fact
from deflect.ports import IntentPrediction
from deflect.triage.classification import Classifier
from deflect.triage.engine import weighable_risk
from deflect.triage.intents import IntentSpec, Taxonomy, _Compiled, message_risk, predict
from deflect.triage.policy import PolicyInputs, decide

CTX = TenantContext.system("acme")
GERMAN_DISPUTE = "Auf unserer letzten Rechnung ist ein Fehler, die Mehrwertsteuer wurde berechnet, obwohl wir befreit sind."


def _head(taxonomy: Taxonomy, texts: dict[str, str] | None):
    rng = np.random.default_rng(5)
    names = [i.name for i in taxonomy.intents]
    vectors, labels = [], []
    for name, center in zip(names, rng.standard_normal((len(names), 16)), strict=True):
        points = center + 0.1 * rng.standard_normal((30, 16))
        vectors.append(points / np.linalg.norm(points, axis=1, keepdims=True))
        labels += [name] * 30
    return train_head(
        tenant_id="acme",
        version=1,
        taxonomy=taxonomy,
        vectors=np.vstack(vectors).astype(np.float32),
        labels=labels,
        embedding_model_id="toy",
        texts=[texts[label] for label in labels] if texts else None,
    )


def _unit(dimensions: int) -> list[float]:
    vector = np.random.default_rng(9).standard_normal(dimensions)
    return (vector / np.linalg.norm(vector)).tolist()


TAXONOMY = Taxonomy(
    intents=[IntentSpec(name="how_to"), IntentSpec(name="refund_request", flags=["refund"], action="refund")]
)
EXAMPLES = {
    "how_to": "how do I export a report",
    "refund_request": "I want my money back for the last invoice",
}


@pytest.fixture(scope="module")
def english_head():
    return _head(TAXONOMY, EXAMPLES)


def test_the_head_records_its_examples_language_and_weighs_messages_in_it(english_head):
    assert english_head.language == "en"
    # how_to first, refund_request second: 0.04 on the intent for a person.
    assert message_risk(english_head, [0.96, 0.04], out_of_scope=True) == pytest.approx(0.04)


def test_a_message_in_another_language_counts_as_entirely_on_intents_for_a_person(english_head):
    # An English head puts next to nothing on "refund" for a German invoice dispute: that says nothing.
    prediction = predict(english_head, _Compiled(english_head), _unit(16), GERMAN_DISPUTE)
    for out_of_scope in (True, False):
        unsure = dataclasses.replace(prediction, out_of_scope=out_of_scope, risk=0.04)
        assert weighable_risk(unsure, "de") == 1.0


def test_a_short_message_read_as_the_help_centers_language_is_not_weighed_by_a_head_in_another(english_head):
    # "Doppelt abgebucht!" is too short to tell on its own; triage reads it as German for a German help center.
    prediction = predict(english_head, _Compiled(english_head), _unit(16), "Doppelt abgebucht!")
    assert prediction.head_language == "en"
    unsure = dataclasses.replace(prediction, out_of_scope=True, risk=0.05)
    assert weighable_risk(unsure, "de") == 1.0
    assert weighable_risk(unsure, "en") == 0.05


def test_a_head_trained_before_it_recorded_its_language_never_lets_an_out_of_scope_message_through(
    english_head,
):
    older = english_head.model_copy(update={"language": None})
    assert message_risk(older, [0.96, 0.04], out_of_scope=True) == 1.0
    # An in-scope low-confidence message is weighed as it always was.
    assert message_risk(older, [0.96, 0.04], out_of_scope=False) == pytest.approx(0.04)


def test_a_taxonomy_without_intents_for_a_person_cannot_weigh_any_message():
    plain = _head(Taxonomy(intents=[IntentSpec(name="how_to"), IntentSpec(name="billing_question")]), None)
    assert message_risk(plain, [0.5, 0.5], out_of_scope=True) == 1.0
    assert message_risk(plain, [0.5, 0.5], out_of_scope=False) == 1.0


class OutOfScopeWithACancellation:
    """The whole message is out of scope and leans away from people; its last sentence alone is a cancellation."""

    SENTENCE = "btw we'd like to cancel at the end of the year."

    def classify(self, ctx, text):
        if text == self.SENTENCE:
            return IntentPrediction(
                intent="cancel_subscription",
                confidence=0.8,
                flags=("billing", "account_change"),
                action="cancel_subscription",
                kind="request",
                risk=0.95,
            )
        return IntentPrediction(intent="out_of_scope", confidence=0.05, out_of_scope=True, risk=0.10)


def test_a_request_in_its_own_sentence_of_an_out_of_scope_message_escalates():
    text = "What Zendesk data does Syncbeam sync? " + OutOfScopeWithACancellation.SENTENCE
    result = Classifier(OutOfScopeWithACancellation()).classify(CTX, text)
    assert result.classification.requested_action.kind == "cancel_subscription"
    decision = decide(
        DecisionPolicy(),
        PolicyInputs(
            classification=result.classification,
            draft=Draft(text="Syncbeam syncs tickets and users.", confidence=0.9, grounded=True),
            intent_risk=result.prediction.risk,
            risk_tolerance=0.15,
        ),
    )
    assert decision.outcome == "escalate" and "action:cancel_subscription" in decision.reasons


def _decision(outcome: str) -> Fact:
    return Fact(
        ticket_id="t",
        seq=1,
        type="decision.made",
        stage="triage",
        at=datetime.now(UTC),
        outcome=outcome,
        out_of_scope=True,
        grounded=True,
        retrieved=3,
        confidence=0.9,
        product_area="api",
        intent="out_of_scope",
    )


def test_an_out_of_scope_message_answered_from_the_help_center_is_not_a_knowledge_gap():
    assert knowledge_gaps([_decision("deflect")], threshold=0.6) == []
    [gap] = knowledge_gaps([_decision("escalate")], threshold=0.6)
    assert (gap.question, gap.unanswered) == ("out_of_scope", 1)
