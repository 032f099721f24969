"""Tenant intent taxonomies: the training file, the trained (versioned) head, where heads are kept, and the
classifier that applies a head to a message's embedding.

A head is a softmax layer over sentence embeddings, a word model of the same examples (deflect.triage.lexicon)
whose log-likelihoods join the logits with a small weight, and an out-of-scope gate. The gate is a small logistic
model over how the head behaved (top probability, margin, entropy, similarity to the predicted intent's examples,
how well the message's words fit that intent), fitted on held-out folds where some intents were hidden to play
"out of scope" (see deflect.embedded.model).
Its output is the probability that the predicted intent is right AND in scope: that is the confidence reported.

Inference here is pure Python (the Lambda layer has no numpy): 384- or 1024-d dot products with a few dozen
intents take a few milliseconds. Training needs numpy and runs from the command line (deflect.embedded.model).
"""

from __future__ import annotations

import base64
import json
import math
import operator
import re
import threading
from array import array
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from deflect.domain.canonical import canonical_json, sha256_hex
from deflect.domain.errors import MalformedPayload
from deflect.domain.models import AccountAction, utcnow
from deflect.domain.tenancy import TenantContext
from deflect.ports import EvidenceStore, IntentPrediction
from deflect.triage.lexicon import LEXICAL_FEATURES, CompiledLexicon, IntentLexicon

INTENT_NAME = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
OUT_OF_SCOPE = "out_of_scope"
UNCLASSIFIED = "unclassified"
IntentKind = Literal["question", "problem", "request", "feedback"]
SENSITIVE_FLAGS = ("billing", "refund", "security", "legal", "privacy", "account_change")


# --------------------------------------------------------------------------- the taxonomy (what tenants write)


class IntentSpec(BaseModel):
    """One intent of a tenant's taxonomy and what it implies for triage."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=INTENT_NAME)
    description: str = ""
    product_area: str = "general"
    kind: IntentKind = "question"
    # Flags every message of this intent carries (a "refund_request" intent is always refund-sensitive).
    flags: list[str] = Field(default_factory=list)
    # The account-changing action this intent asks for, if any (refund_request → "refund").
    action: AccountAction | None = None
    # Messages of this intent ask for a person ("talk_to_human").
    wants_human: bool = False
    examples: list[str] = Field(default_factory=list)

    @field_validator("flags")
    @classmethod
    def _known_flags(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(SENSITIVE_FLAGS))
        if unknown:
            raise ValueError(f"unknown flags {unknown}; known: {list(SENSITIVE_FLAGS)}")
        return sorted(set(value))


class Taxonomy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intents: list[IntentSpec]

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.intents]

    def spec(self, name: str) -> IntentSpec | None:
        return next((i for i in self.intents if i.name == name), None)

    def examples(self) -> tuple[list[str], list[str]]:
        texts, labels = [], []
        for intent in self.intents:
            for text in intent.examples:
                texts.append(text)
                labels.append(intent.name)
        return texts, labels

    def sha256(self) -> str:
        return sha256_hex(canonical_json(self.model_dump(mode="json")))

    def check_trainable(self, min_examples: int = 3) -> None:
        if len(self.intents) < 2:
            raise MalformedPayload("a taxonomy needs at least two intents")
        thin = [i.name for i in self.intents if len(set(i.examples)) < min_examples]
        if thin:
            raise MalformedPayload(f"intents with fewer than {min_examples} distinct examples: {thin}")


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "_", label.strip().lower()).strip("_")[:64] or "intent"


_SPEC_FIELDS = ("product_area", "kind", "flags", "description", "action", "wants_human")


def parse_taxonomy(text: str) -> Taxonomy:
    """A JSON taxonomy ({"intents": [...]}) or JSONL rows: {"text","label"} examples, optionally with
    {"intent", "product_area", "kind", "flags", "description"} rows describing an intent."""
    stripped = text.strip()
    if stripped.startswith("{") and '"intents"' in stripped[:200]:
        try:
            return Taxonomy.model_validate_json(stripped)
        except (ValueError, RecursionError) as error:
            raise MalformedPayload(f"taxonomy is not valid: {error}") from error
    specs: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(stripped.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as error:
            raise MalformedPayload(f"line {number} is not JSON") from error
        if not isinstance(row, dict):
            raise MalformedPayload(f'line {number} is not an object: rows are {{"text", "label"}}')
        if "intent" in row and "text" not in row:
            name = _slug(str(row["intent"]))
            spec = specs.setdefault(name, {"name": name, "examples": []})
            spec.update({k: v for k, v in row.items() if k in _SPEC_FIELDS})
            continue
        if not isinstance(row.get("text"), str) or row.get("label") in (None, ""):
            raise MalformedPayload(f"line {number} needs 'text' and 'label'")
        name = _slug(str(row["label"]))
        specs.setdefault(name, {"name": name, "examples": []})["examples"].append(row["text"])
    try:
        return Taxonomy(intents=[IntentSpec.model_validate(s) for s in specs.values()])
    except ValueError as error:
        raise MalformedPayload(f"taxonomy is not valid: {error}") from error


def starter_taxonomy() -> Taxonomy:
    """The built-in support taxonomy a tenant gets until it trains its own."""
    return Taxonomy.model_validate_json(
        (Path(__file__).parent / "starter_intents.json").read_text(encoding="utf-8")
    )


# --------------------------------------------------------------------------- arrays in JSON


def pack(values: Sequence[float] | Any, shape: Sequence[int]) -> dict[str, Any]:
    """Float32 little-endian, base64: compact and exact enough for weights and unit vectors."""
    flat = array("f", (float(v) for v in values))
    return {"dtype": "float32", "shape": list(shape), "b64": base64.b64encode(flat.tobytes()).decode()}


def unpack(packed: dict[str, Any]) -> array:
    data = array("f")
    data.frombytes(base64.b64decode(packed["b64"]))
    expected = math.prod(packed["shape"])
    if len(data) != expected:
        raise ValueError("packed array does not match its shape")
    return data


# --------------------------------------------------------------------------- the trained head


class OutOfScopeGate(BaseModel):
    """P(prediction right and in scope) = sigmoid(coef · standardised(features) + intercept)."""

    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    threshold: float
    # How the threshold was chosen, measured on the held-out folds (reported by `deflect intents train`).
    folds: dict[str, float] = Field(default_factory=dict)


class IntentHead(BaseModel):
    """A trained, versioned intent head for one tenant. Immutable once stored."""

    schema_version: int = 1
    tenant_id: str
    version: int
    taxonomy: Taxonomy
    taxonomy_sha256: str
    embedding_model_id: str
    dimensions: int
    labels: list[str]
    weights: dict[str, Any]  # packed (K, d)
    bias: list[float]
    exemplars: dict[str, Any]  # packed (n, d) unit vectors
    exemplar_labels: list[int]
    gate: OutOfScopeGate | None = None
    # Heads trained before the word model have none (weight 0): they predict exactly as they did.
    lexicon: IntentLexicon | None = None
    lexical_weight: float = 0.0
    # The language most training examples are written in. Its probabilities say little about a message in another
    # language (engine.weighable_risk), and heads trained before it recorded none (message_risk).
    language: str | None = None
    trained_by: str = "system"
    trained_at: datetime = Field(default_factory=utcnow)
    metrics: dict[str, float] = Field(default_factory=dict)

    @property
    def model_id(self) -> str:
        return f"intents:{self.tenant_id}:v{self.version}:{self.embedding_model_id}"


class _Compiled:
    """Rows of the head as Python lists, built once per head: the per-message work is dot products."""

    def __init__(self, head: IntentHead) -> None:
        d = head.dimensions
        weights = unpack(head.weights)
        self.rows = [weights[k * d : (k + 1) * d].tolist() for k in range(len(head.labels))]
        exemplars = unpack(head.exemplars)
        self.by_label: dict[int, list[list[float]]] = {}
        for n, label in enumerate(head.exemplar_labels):
            self.by_label.setdefault(label, []).append(exemplars[n * d : (n + 1) * d].tolist())
        self.lexicon: CompiledLexicon | None = head.lexicon.compile() if head.lexicon else None


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(map(operator.mul, a, b))


def softmax(logits: Sequence[float]) -> list[float]:
    top = max(logits)
    exps = [math.exp(v - top) for v in logits]
    total = sum(exps)
    return [e / total for e in exps]


GATE_FEATURES = ("top", "margin", "entropy", "nearest_same_intent")


def gate_features(probabilities: Sequence[float], nearest_same_intent: float) -> list[float]:
    ordered = sorted(probabilities, reverse=True)
    second = ordered[1] if len(ordered) > 1 else 0.0
    entropy = -sum(p * math.log(p) for p in probabilities if p > 0)
    return [ordered[0], ordered[0] - second, entropy, nearest_same_intent]


def gate_probability(gate: OutOfScopeGate, features: Sequence[float]) -> float:
    z = gate.intercept + sum(
        c * (f - m) / s for c, f, m, s in zip(gate.coef, features, gate.mean, gate.scale, strict=True)
    )
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def uses_words(gate: OutOfScopeGate) -> bool:
    return tuple(gate.features[len(GATE_FEATURES) :]) == LEXICAL_FEATURES


def predict(
    head: IntentHead, compiled: _Compiled, vector: Sequence[float], text: str = ""
) -> IntentPrediction:
    """Apply a head to one unit-length embedding of `text`."""
    vector = [float(v) for v in vector]
    logits = [_dot(row, vector) + b for row, b in zip(compiled.rows, head.bias, strict=True)]
    lexicon = compiled.lexicon
    known = lexicon.known(text) if lexicon is not None else []
    if lexicon is not None and head.lexical_weight:
        words = lexicon.log_likelihoods(known)
        logits = [v + head.lexical_weight * w for v, w in zip(logits, words, strict=True)]
    probabilities = softmax(logits)
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    nearest = max((_dot(e, vector) for e in compiled.by_label.get(best, [])), default=0.0)
    ranked = sorted(range(len(probabilities)), key=lambda k: -probabilities[k])[:3]
    alternatives = tuple((head.labels[k], round(probabilities[k], 4)) for k in ranked)
    if head.gate is None:
        confidence, out_of_scope = probabilities[best], False
    else:
        features = gate_features(probabilities, nearest)
        if uses_words(head.gate):
            features += lexicon.word_fit(known, best) if lexicon else [0.0, 0.0, 0.0, 1.0]
        confidence = gate_probability(head.gate, features)
        out_of_scope = confidence < head.gate.threshold
    risk = message_risk(head, probabilities, out_of_scope=out_of_scope)
    return prediction(head, head.labels[best], confidence, out_of_scope, alternatives, risk=risk)


def message_risk(head: IntentHead, probabilities: Sequence[float], *, out_of_scope: bool) -> float:
    """The probability on intents that always go to a human, which policy lets an uncertain message through on when
    it is small. 1 (nothing known to be harmless) when the head cannot weigh that: its taxonomy has no such intent,
    or, for an out-of-scope message, the head predates recording its language. (A message in another language than
    the head's is the engine's to judge, with the language triage read: deflect.triage.engine.weighable_risk.)"""
    risky = head_risky(head)
    if not any(risky) or (out_of_scope and head.language is None):
        return 1.0
    return sum(p for p, r in zip(probabilities, risky, strict=True) if r)


def head_risky(head: IntentHead) -> list[bool]:
    """Per label: does this intent always go to a human (flags, an action, or a request for a person)?"""
    specs = [head.taxonomy.spec(label) for label in head.labels]
    return [bool(s and (s.flags or s.action or s.wants_human)) for s in specs]


def prediction(
    head: IntentHead,
    label: str,
    confidence: float,
    out_of_scope: bool,
    alternatives: tuple[tuple[str, float], ...] = (),
    *,
    risk: float = 0.0,
) -> IntentPrediction:
    spec = None if out_of_scope else head.taxonomy.spec(label)
    return IntentPrediction(
        intent=OUT_OF_SCOPE if out_of_scope else label,
        confidence=round(confidence, 4),
        out_of_scope=out_of_scope,
        alternatives=alternatives,
        model_id=head.model_id,
        taxonomy_version=head.version,
        product_area=spec.product_area if spec else None,
        kind=spec.kind if spec else None,
        flags=tuple(spec.flags) if spec else (),
        action=spec.action if spec else None,
        wants_human=spec.wants_human if spec else False,
        risk=round(risk, 4),
        head_language=head.language,
    )


# --------------------------------------------------------------------------- where heads are kept


class IntentModelStore(Protocol):
    """Versioned heads per tenant. `activate` makes a stored version the one triage uses."""

    def save(self, head: IntentHead) -> None: ...

    def activate(self, tenant_id: str, version: int) -> None: ...

    def current_version(self, tenant_id: str) -> int | None: ...

    def load(self, tenant_id: str, version: int) -> IntentHead | None: ...

    def versions(self, tenant_id: str) -> list[int]: ...


class FileModelStore:
    """`<MODEL_DATA_DIR>/tenants/<tenant>/intents/v000001.json` plus `current` (embedded default, local stack)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _dir(self, tenant_id: str) -> Path:
        from deflect.domain.tenancy import validate_tenant_id

        return self.root / "tenants" / validate_tenant_id(tenant_id) / "intents"

    def save(self, head: IntentHead) -> None:
        folder = self._dir(head.tenant_id)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"v{head.version:06d}.json"
        if path.exists():
            raise FileExistsError(f"{path} exists: versions are immutable")
        _atomic_write(path, head.model_dump_json())

    def activate(self, tenant_id: str, version: int) -> None:
        _atomic_write(self._dir(tenant_id) / "current", str(version))

    def current_version(self, tenant_id: str) -> int | None:
        pointer = self._dir(tenant_id) / "current"
        return int(pointer.read_text().strip()) if pointer.exists() else None

    def load(self, tenant_id: str, version: int) -> IntentHead | None:
        path = self._dir(tenant_id) / f"v{version:06d}.json"
        return IntentHead.model_validate_json(path.read_bytes()) if path.exists() else None

    def versions(self, tenant_id: str) -> list[int]:
        folder = self._dir(tenant_id)
        return sorted(int(p.stem[1:]) for p in folder.glob("v*.json")) if folder.exists() else []


class EvidenceModelStore:
    """Heads as locked objects in the evidence bucket (production): a decision's model can always be re-read."""

    def __init__(self, evidence: EvidenceStore) -> None:
        self.evidence = evidence

    @staticmethod
    def _prefix(tenant_id: str) -> str:
        from deflect.domain import keys

        return f"{keys.s3_prefix(tenant_id)}models/intents/"

    def save(self, head: IntentHead) -> None:
        ctx = TenantContext.system(head.tenant_id, "triage:intents")
        key = f"{self._prefix(head.tenant_id)}v{head.version:06d}.json"
        self.evidence.put_locked(ctx, key, head.model_dump_json().encode(), "intent_model")
        index = self._index(head.tenant_id)
        index["versions"] = sorted({*index.get("versions", []), head.version})
        self.evidence.put_locked(
            ctx, f"{self._prefix(head.tenant_id)}index.json", json.dumps(index).encode(), "intent_model"
        )

    def activate(self, tenant_id: str, version: int) -> None:
        ctx = TenantContext.system(tenant_id, "triage:intents")
        index = {**self._index(tenant_id), "current": version}
        self.evidence.put_locked(
            ctx, f"{self._prefix(tenant_id)}index.json", json.dumps(index).encode(), "intent_model"
        )

    def _index(self, tenant_id: str) -> dict[str, Any]:
        ctx = TenantContext.system(tenant_id, "triage:intents")
        raw = self.evidence.read_latest(ctx, f"{self._prefix(tenant_id)}index.json")
        return json.loads(raw) if raw else {}

    def current_version(self, tenant_id: str) -> int | None:
        return self._index(tenant_id).get("current")

    def load(self, tenant_id: str, version: int) -> IntentHead | None:
        ctx = TenantContext.system(tenant_id, "triage:intents")
        raw = self.evidence.read_latest(ctx, f"{self._prefix(tenant_id)}v{version:06d}.json")
        return IntentHead.model_validate_json(raw) if raw else None

    def versions(self, tenant_id: str) -> list[int]:
        return list(self._index(tenant_id).get("versions", []))


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


# --------------------------------------------------------------------------- the classifier


class LinearIntentClassifier:
    """IntentClassifier over any Embeddings port (local MiniLM, Bedrock Titan) and the tenant's current head.

    With no trained head the tenant gets `fallback(tenant_id)` (the starter taxonomy, where one can be built);
    with neither every message is "unclassified" at confidence 0, which policy escalates.
    """

    def __init__(
        self,
        embeddings: Any,
        store: IntentModelStore,
        *,
        fallback: Any | None = None,
        refresh_s: float = 60.0,
        clock: Any = None,
        query_tokens: int | None = None,
    ) -> None:
        self.embeddings = embeddings
        self.store = store
        self.fallback = fallback
        self._refresh_s = refresh_s
        # Embed the question as the search index does (greetings dropped, same token limit): one cached vector.
        self._query_tokens = query_tokens
        self._clock = clock or (lambda: utcnow().timestamp())
        self._lock = threading.Lock()
        self._heads: dict[str, tuple[float, IntentHead | None, _Compiled | None]] = {}

    def head(self, tenant_id: str) -> tuple[IntentHead | None, _Compiled | None]:
        now = self._clock()
        with self._lock:
            cached = self._heads.get(tenant_id)
        if cached and now - cached[0] < self._refresh_s:
            return cached[1], cached[2]
        version = self.store.current_version(tenant_id)
        head = None
        if (
            cached
            and cached[1] is not None
            and cached[1].version == version
            and cached[1].tenant_id == tenant_id
        ):
            head, compiled = cached[1], cached[2]
        else:
            head = self.store.load(tenant_id, version) if version else None
            if head is None and self.fallback is not None:
                head = self.fallback(tenant_id)
            compiled = _Compiled(head) if head is not None else None
        with self._lock:
            self._heads[tenant_id] = (now, head, compiled)
        return head, compiled

    def embed(self, text: str) -> list[float]:
        from deflect.knowledge.search import focus

        if self._query_tokens:
            vectors = self.embeddings.embed([focus(text)], max_tokens=self._query_tokens)
        else:
            vectors = self.embeddings.embed([focus(text)])
        return [float(v) for v in vectors[0]]

    def classify(self, ctx: TenantContext, text: str) -> IntentPrediction:
        head, compiled = self.head(ctx.tenant_id)
        if head is None or compiled is None:
            # No head: nothing says the message is harmless, so it counts as entirely on intents for a person.
            return IntentPrediction(
                intent=UNCLASSIFIED, confidence=0.0, out_of_scope=True, model_id="none", risk=1.0
            )
        model_id = getattr(self.embeddings, "model_id", "")
        if model_id and model_id != head.embedding_model_id:
            # A head trained on other embeddings would answer confidently and wrongly: refuse instead.
            return IntentPrediction(
                intent=UNCLASSIFIED,
                confidence=0.0,
                out_of_scope=True,
                model_id=f"mismatch:{head.model_id}",
                risk=1.0,
            )
        from deflect.knowledge.search import focus

        # The word model reads what the embedding reads: the question without greetings.
        return predict(head, compiled, self.embed(text), focus(text))


def next_version(store: IntentModelStore, tenant_id: str) -> int:
    return max(store.versions(tenant_id), default=0) + 1


def read_lines(paths: Iterable[Path]) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in paths)
