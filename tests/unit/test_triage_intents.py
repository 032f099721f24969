"""Tenant taxonomies: parsing, training a head with an out-of-scope gate, versioned storage, and a classifier that
answers the same in pure Python as the numpy batch path used by evaluations."""

import json

import numpy as np
import pytest

from deflect.domain.errors import MalformedPayload
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemoryEvidenceStore
from deflect.embedded.model import predict_many, train_head, train_taxonomy
from deflect.triage.intents import (
    OUT_OF_SCOPE,
    UNCLASSIFIED,
    EvidenceModelStore,
    FileModelStore,
    IntentSpec,
    LinearIntentClassifier,
    Taxonomy,
    parse_taxonomy,
    starter_taxonomy,
)
from tests.unit.triage_fakes import BagOfWords

DIM = 24


def clusters(rng, centers, per_class, spread=0.12):
    """Unit vectors scattered around each center."""
    rows, labels = [], []
    for label, center in centers.items():
        points = center + spread * rng.standard_normal((per_class, DIM))
        rows.append(points / np.linalg.norm(points, axis=1, keepdims=True))
        labels += [label] * per_class
    return np.vstack(rows).astype(np.float32), labels


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(3)
    names = [f"intent_{i}" for i in range(8)]
    centers = {
        n: v / np.linalg.norm(v) for n, v in zip(names, rng.standard_normal((len(names), DIM)), strict=True)
    }
    vectors, labels = clusters(rng, centers, 40)
    taxonomy = Taxonomy(
        intents=[IntentSpec(name=n, flags=["refund"] if n == "intent_0" else []) for n in names]
    )
    head = train_head(
        tenant_id="acme",
        version=1,
        taxonomy=taxonomy,
        vectors=vectors,
        labels=labels,
        embedding_model_id="toy",
    )
    unseen = rng.standard_normal(DIM)
    return head, centers, unseen / np.linalg.norm(unseen), rng


def test_parse_jsonl_examples_with_intent_metadata():
    text = "\n".join(
        json.dumps(r)
        for r in [
            {"intent": "Refund Request", "product_area": "billing", "flags": ["refund"], "action": "refund"},
            {"text": "give me my money back", "label": "Refund Request"},
            {"text": "refund please", "label": "Refund Request"},
            {"text": "how do I export", "label": "how_to"},
        ]
    )
    taxonomy = parse_taxonomy(text)
    refund = taxonomy.spec("refund_request")
    assert refund.product_area == "billing" and refund.flags == ["refund"] and refund.action == "refund"
    assert refund.examples == ["give me my money back", "refund please"]
    assert taxonomy.spec("how_to").examples == ["how do I export"]


def test_bad_taxonomies_are_refused_with_a_reason():
    with pytest.raises(MalformedPayload, match="line 1"):
        parse_taxonomy('{"text": "no label"}')
    with pytest.raises(MalformedPayload, match="unknown flags"):
        parse_taxonomy('{"intents": [{"name": "x", "flags": ["nuclear"]}]}')
    with pytest.raises(MalformedPayload, match="fewer than 3"):
        Taxonomy(
            intents=[IntentSpec(name="a", examples=["x"]), IntentSpec(name="b", examples=["y"])]
        ).check_trainable()


def test_the_starter_taxonomy_marks_sensitive_intents():
    starter = starter_taxonomy()
    assert starter.spec("refund_request").action == "refund"
    assert "privacy" in starter.spec("account_deletion").flags
    assert starter.spec("talk_to_human").wants_human
    starter.check_trainable()


def test_a_trained_head_recognises_its_intents_and_rejects_what_it_never_saw(trained):
    head, centers, unseen, rng = trained
    tests, labels = clusters(rng, centers, 10)
    predictions = predict_many(head, tests)
    accuracy = np.mean([p[0] == label for p, label in zip(predictions, labels, strict=True)])
    assert accuracy >= 0.9
    far = predict_many(head, unseen[None, :].astype(np.float32))[0]
    assert far[0] == OUT_OF_SCOPE and far[2]


def test_pure_python_inference_matches_the_numpy_batch_path(trained):
    head, centers, unseen, _ = trained
    store = _single(head)
    classifier = LinearIntentClassifier(_Fixed(np.vstack([centers["intent_3"], unseen])), store)
    ctx = TenantContext.system("acme")
    from deflect.triage.intents import _Compiled, predict

    compiled = _Compiled(head)
    for vector in (centers["intent_3"], unseen):
        single = predict(head, compiled, vector.tolist())
        batch = predict_many(head, vector[None, :].astype(np.float32))[0]
        assert single.intent == batch[0]
        assert single.confidence == pytest.approx(batch[1], abs=1e-3)
    prediction = classifier.classify(ctx, "first")
    assert prediction.intent == "intent_3" and prediction.taxonomy_version == 1
    assert prediction.model_id == "intents:acme:v1:toy"


def test_risk_is_the_mass_on_intents_that_always_go_to_a_human(trained):
    head, centers, _, _ = trained
    from deflect.triage.intents import _Compiled, predict

    risky = predict(head, _Compiled(head), centers["intent_0"].tolist())
    safe = predict(head, _Compiled(head), centers["intent_5"].tolist())
    assert risky.flags == ("refund",) and risky.risk > 0.5
    assert safe.risk < 0.2


def test_heads_on_other_embeddings_or_missing_heads_classify_nothing(trained, tmp_path):
    head, centers, _, _ = trained
    store = _single(head)
    other = _Fixed(np.vstack([centers["intent_1"]]), model_id="another-model")
    mismatched = LinearIntentClassifier(other, store).classify(TenantContext.system("acme"), "x")
    assert mismatched.intent == UNCLASSIFIED
    empty = LinearIntentClassifier(other, FileModelStore(tmp_path))
    prediction = empty.classify(TenantContext.system("acme"), "x")
    assert prediction.intent == UNCLASSIFIED and prediction.confidence == 0.0
    # Nothing says such a message is harmless: it must escalate under any risk tolerance a tenant can set.
    assert mismatched.risk == 1.0 and prediction.risk == 1.0


def test_file_store_versions_are_immutable_and_activation_picks_the_current_one(trained, tmp_path):
    head, _, _, _ = trained
    store = FileModelStore(tmp_path)
    store.save(head)
    with pytest.raises(FileExistsError):
        store.save(head)
    second = head.model_copy(update={"version": 2})
    store.save(second)
    assert store.current_version("acme") is None
    store.activate("acme", 2)
    assert store.current_version("acme") == 2 and store.versions("acme") == [1, 2]
    assert store.load("acme", 1).version == 1


def test_evidence_store_keeps_heads_as_locked_objects_under_the_tenant(trained):
    head, _, _, _ = trained
    evidence = MemoryEvidenceStore()
    store = EvidenceModelStore(evidence)
    store.save(head)
    store.activate("acme", 1)
    assert store.current_version("acme") == 1
    assert store.load("acme", 1).taxonomy_sha256 == head.taxonomy_sha256
    assert store.current_version("acme-corp") is None  # prefix collisions do not leak


def test_training_from_text_examples_end_to_end():
    taxonomy = parse_taxonomy(
        "\n".join(
            json.dumps({"text": t, "label": label})
            for label, texts in {
                "export": ["export a report to csv", "download the report as csv", "csv export of reports"],
                "invite": ["invite a teammate", "add a colleague to the team", "invite people to my team"],
                "password": ["reset my password", "forgot my password", "change the password"],
            }.items()
            for t in texts
        )
    )
    head = train_taxonomy(BagOfWords(), taxonomy, tenant_id="acme", version=1)
    classifier = LinearIntentClassifier(BagOfWords(), _single(head))
    assert (
        classifier.classify(TenantContext.system("acme"), "how do I export the report to csv").intent
        == "export"
    )


class _Fixed:
    """Embeddings that hand out the given rows in turn."""

    def __init__(self, rows: np.ndarray, model_id: str = "toy") -> None:
        self.rows = list(rows)
        self.model_id = model_id

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.vstack([self.rows.pop(0) for _ in texts])


def _single(head):
    from deflect.triage.offline import _MemoryHeads

    return _MemoryHeads(head)
