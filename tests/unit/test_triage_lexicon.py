"""The word model beside the embedding head: sibling intents told apart by their words, one answer from the
pure-Python and numpy paths, and heads stored before the word model still classifying as they did."""

import json

import numpy as np
import pytest

from deflect.domain.tenancy import TenantContext
from deflect.embedded.model import predict_many, train_head
from deflect.triage.intents import (
    IntentHead,
    IntentSpec,
    LinearIntentClassifier,
    Taxonomy,
    _Compiled,
    predict,
)
from deflect.triage.lexicon import IntentLexicon, terms

DIM = 16

# Pairs of intents whose messages mean nearly the same to a sentence embedding and differ by a word or two.
SIBLINGS = {
    "disposable_card": ["disposable", "single use", "one time"],
    "physical_card": ["physical", "plastic", "metal"],
    "topup_failed": ["failed", "declined", "did not go through"],
    "topup_reverted": ["reverted", "returned", "cancelled afterwards"],
}
STEMS = {
    "disposable_card": "card",
    "physical_card": "card",
    "topup_failed": "top up",
    "topup_reverted": "top up",
}
PHRASES = [
    "how can I get a {w} {s}",
    "I want a {w} {s} please",
    "my {w} {s} question",
    "tell me about {w} {s}",
]


def sibling_examples(rng):
    """Texts that name the distinguishing word; vectors that only know the shared topic (the blur at its worst)."""
    topics = {
        stem: v / np.linalg.norm(v)
        for stem, v in (("card", rng.standard_normal(DIM)), ("top up", rng.standard_normal(DIM)))
    }
    texts, labels, vectors = [], [], []
    for label, words in SIBLINGS.items():
        stem = STEMS[label]
        for word in words:
            for phrase in PHRASES:
                texts.append(phrase.format(w=word, s=stem))
                labels.append(label)
                vectors.append(topics[stem])
    return texts, labels, np.asarray(vectors, dtype=np.float32), topics


@pytest.fixture(scope="module")
def siblings():
    rng = np.random.default_rng(11)
    texts, labels, vectors, topics = sibling_examples(rng)
    taxonomy = Taxonomy(intents=[IntentSpec(name=n) for n in SIBLINGS])
    common = dict(tenant_id="acme", version=1, taxonomy=taxonomy, vectors=vectors, labels=labels)
    with_words = train_head(**common, texts=texts, embedding_model_id="toy")
    without = train_head(**common, embedding_model_id="toy")
    return with_words, without, topics, rng


def _queries(topics, rng):
    cases = [
        ("is a single use card free", "disposable_card", "card"),
        ("can I order a plastic card", "physical_card", "card"),
        ("why was my top up declined", "topup_failed", "top up"),
        ("my top up got reverted", "topup_reverted", "top up"),
    ]
    return [(text, label, topics[stem].astype(np.float32)) for text, label, stem in cases]


def test_intents_that_differ_by_a_word_are_told_apart_only_with_the_word_model(siblings):
    with_words, without, topics, rng = siblings
    queries = _queries(topics, rng)
    vectors = np.vstack([v for _, _, v in queries])
    texts = [t for t, _, _ in queries]
    truth = [label for _, label, _ in queries]
    ungated = {"gate": None}
    worded = [p[0] for p in predict_many(with_words.model_copy(update=ungated), vectors, texts)]
    blurred = [p[0] for p in predict_many(without.model_copy(update=ungated), vectors, texts)]
    assert worded == truth
    assert sum(p == t for p, t in zip(blurred, truth, strict=True)) < len(truth)
    assert with_words.lexical_weight > 0 and without.lexical_weight == 0 and without.lexicon is None


def test_the_classifier_and_the_batch_path_give_the_same_answer_with_words(siblings):
    with_words, _, topics, rng = siblings
    compiled = _Compiled(with_words)
    for text, _, vector in _queries(topics, rng):
        single = predict(with_words, compiled, vector.tolist(), text)
        batch = predict_many(with_words, vector[None, :], [text])[0]
        assert single.intent == batch[0]
        assert single.confidence == pytest.approx(batch[1], abs=1e-3)


def test_a_head_stored_before_the_word_model_still_loads_and_classifies_as_before(siblings):
    _, without, topics, rng = siblings
    stored = json.loads(without.model_dump_json())
    for key in ("lexicon", "lexical_weight"):
        stored.pop(key)
    old = IntentHead.model_validate(stored)
    text, _, vector = _queries(topics, rng)[0]
    before = predict(without, _Compiled(without), vector.tolist(), text)
    after = predict(old, _Compiled(old), vector.tolist(), text)
    assert (after.intent, after.confidence) == (before.intent, before.confidence)


def test_the_word_model_is_built_from_the_tenants_examples_and_survives_storage(siblings):
    with_words, _, topics, rng = siblings
    reloaded = IntentHead.model_validate_json(with_words.model_dump_json())
    assert reloaded.lexicon == with_words.lexicon
    text, label, vector = _queries(topics, rng)[3]

    class OneVector:
        model_id = "toy"

        def embed(self, texts, **_):
            return vector[None, :]

    class Store:
        def current_version(self, tenant_id):
            return 1

        def load(self, tenant_id, version):
            return reloaded

    classifier = LinearIntentClassifier(OneVector(), Store())
    prediction = classifier.classify(TenantContext.system("acme"), f"Hi there! {text}")
    assert prediction.intent in (label, "out_of_scope")
    assert prediction.alternatives[0][0] == label


def test_terms_drop_function_words_and_keep_word_pairs():
    assert terms("How do I get a disposable virtual card?") == [
        "disposable",
        "virtual",
        "card",
        "disposable virtual",
        "virtual card",
    ]
    lexicon = IntentLexicon.fit(["refund my order", "order status"], [0, 1], 2).compile()
    assert lexicon.known("where is my refund?") == ["refund"]
    fit = lexicon.word_fit(lexicon.known("refund order"), 0)
    assert fit[2] > 0 and fit[3] == 0.0
    assert lexicon.word_fit([], 0) == [0.0, 0.0, 0.0, 1.0]
