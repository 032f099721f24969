"""Triage evaluations, through the same code production runs; each prints one JSON object as its last line.

`deflect eval classify --train F --test F [--oos-label oos] [--holdout-intents N --seed S]`
    Trains an intent head exactly as `deflect intents train` does (MiniLM embeddings, softmax, out-of-scope gate
    calibrated on held-out folds) and scores the test file:
    {"accuracy", "macro_f1", "n"} and, with out-of-scope examples, {"in_scope_accuracy", "oos_recall",
    "oos_precision"}. `--holdout-intents N` hides N intents (chosen with `--seed`) from training and labels their
    test examples out-of-scope; the split is reported in the JSON. Embeddings are cached under
    MODEL_DATA_DIR/cache (keyed by model and text hash).

`deflect eval triage --cases F [--kb corpus.jsonl] [--intents train.jsonl] [--gate-seed S]`
    Runs each case {id, text, should_escalate[, category, segments, sla_tier, article]} through the triage engine of a throwaway tenant whose help center
    is `--kb` (default: the demo help center) and whose taxonomy is `--intents` (default: the starter taxonomy):
    {"escalation_recall", "escalation_precision", "deflection_rate", "n"} plus per-category escalation rates, and,
    when cases name the article (or articles) answering them, how many answers led with it. `--answer-thresholds`
    repeats the report at other answer thresholds, deciding on the same evidence.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deflect.cli.files import UnusableFile, json_lines

OOS = "__oos__"


def register_eval(evaluations: argparse._SubParsersAction) -> None:
    classify = evaluations.add_parser("classify", help="intent accuracy / macro-F1 / out-of-scope detection")
    classify.add_argument("--train", required=True, type=Path, help="JSONL {text, label}")
    classify.add_argument("--test", required=True, type=Path, help="JSONL {text, label}")
    classify.add_argument("--oos-label", default=None, help="label that marks out-of-scope examples")
    classify.add_argument(
        "--holdout-intents", type=int, default=0, help="hide N training intents as out-of-scope"
    )
    classify.add_argument(
        "--seed", type=int, default=7, help="seed of the held-out intents and of calibration"
    )
    classify.add_argument(
        "--max-in-scope-loss", type=float, default=0.025, help="gate budget on held-out folds"
    )
    classify.add_argument(
        "--model-data-dir", default=None, help="embedding cache root (default MODEL_DATA_DIR)"
    )
    classify.set_defaults(func=run_classify)

    triage = evaluations.add_parser("triage", help="escalation recall/precision and deflection rate on cases")
    triage.add_argument(
        "--cases", required=True, type=Path, help="JSONL {id, text, should_escalate[, category, article]}"
    )
    triage.add_argument("--kb", type=Path, default=None, help="help center: folder, Zendesk export or JSONL")
    triage.add_argument("--intents", type=Path, default=None, help="taxonomy (JSONL {text,label} or JSON)")
    triage.add_argument("--model-data-dir", default=None)
    triage.add_argument(
        "--gate-seed", type=int, default=None, help="train the taxonomy with this seed for the gate's folds"
    )
    triage.add_argument("--show", action="store_true", help="print every wrong case to stderr")
    triage.add_argument(
        "--answer-thresholds",
        type=_thresholds,
        default=[],
        help="also decide every case at these answer thresholds (e.g. 0.5,0.55,0.6): no second search or draft",
    )
    triage.set_defaults(func=run_triage)


def _thresholds(text: str) -> list[float]:
    """A comma-separated list of answer thresholds, each within 0..1 (DecisionPolicy's bounds)."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from error
    if not values or any(not 0.0 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"answer thresholds lie between 0 and 1: {text!r}")
    return sorted(set(values))


def _jsonl(path: Path, *require: str) -> Iterator[dict[str, Any]]:
    return json_lines(path, require=require)


def _model_dir(args: argparse.Namespace) -> str:
    if args.model_data_dir:
        return args.model_data_dir
    from deflect.settings import Settings

    return Settings.from_env().model_data_dir


# --------------------------------------------------------------------------- classification


def macro_f1(truth: list[str], predicted: list[str]) -> float:
    labels = sorted(set(truth))
    scores = []
    for label in labels:
        tp = sum(1 for t, p in zip(truth, predicted, strict=True) if t == label and p == label)
        fp = sum(1 for t, p in zip(truth, predicted, strict=True) if t != label and p == label)
        fn = sum(1 for t, p in zip(truth, predicted, strict=True) if t == label and p != label)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def holdout_split(labels: list[str], count: int, seed: int) -> list[str]:
    """The intents hidden from training: `count` of the sorted labels, drawn with a fixed seed."""
    import numpy as np

    names = sorted(set(labels))
    if not 0 < count < len(names) - 1:
        raise SystemExit(f"--holdout-intents must be between 1 and {len(names) - 2}")
    return sorted(np.random.default_rng(seed).choice(names, size=count, replace=False).tolist())


def classification_report(truth: list[str], predicted: list[str], *, has_oos: bool) -> dict[str, Any]:
    n = len(truth)
    report: dict[str, Any] = {
        "accuracy": round(sum(t == p for t, p in zip(truth, predicted, strict=True)) / max(1, n), 4),
        "macro_f1": round(macro_f1(truth, predicted), 4),
        "n": n,
    }
    if has_oos:
        in_scope = [(t, p) for t, p in zip(truth, predicted, strict=True) if t != OOS]
        oos_truth = sum(1 for t in truth if t == OOS)
        oos_predicted = sum(1 for p in predicted if p == OOS)
        oos_hits = sum(1 for t, p in zip(truth, predicted, strict=True) if t == OOS and p == OOS)
        report.update(
            in_scope_accuracy=round(sum(t == p for t, p in in_scope) / max(1, len(in_scope)), 4),
            oos_recall=round(oos_hits / max(1, oos_truth), 4),
            oos_precision=round(oos_hits / max(1, oos_predicted), 4),
        )
    return report


def run_classify(args: argparse.Namespace) -> int:
    import numpy as np

    from deflect.embedded.embeddings import arithmetic_probe, get_embedder
    from deflect.embedded.model import DiskEmbeddingCache, predict_many, train_head
    from deflect.triage.intents import IntentSpec, Taxonomy

    train = list(_jsonl(args.train, "text", "label"))
    test = list(_jsonl(args.test, "text", "label"))
    held: list[str] = []
    if args.holdout_intents:
        held = holdout_split([str(r["label"]) for r in train], args.holdout_intents, args.seed)
    hidden = set(held) | ({args.oos_label} if args.oos_label else set())
    train = [r for r in train if str(r["label"]) not in hidden]
    truth = [OOS if str(r["label"]) in hidden else str(r["label"]) for r in test]
    has_oos = OOS in truth

    embeddings = DiskEmbeddingCache(get_embedder(), Path(_model_dir(args)) / "cache")
    started = time.perf_counter()
    x_train = embeddings.embed([str(r["text"]) for r in train])
    x_test = embeddings.embed([str(r["text"]) for r in test])
    embed_s = time.perf_counter() - started

    labels = [str(r["label"]) for r in train]
    taxonomy = Taxonomy(intents=[IntentSpec(name=_name(label)) for label in sorted(set(labels))])
    started = time.perf_counter()
    head = train_head(
        tenant_id="eval",
        version=0,
        taxonomy=taxonomy,
        vectors=x_train,
        labels=[_name(label) for label in labels],
        texts=[str(r["text"]) for r in train],
        embedding_model_id=embeddings.model_id,
        seed=args.seed,
        max_in_scope_loss=args.max_in_scope_loss,
    )
    train_s = time.perf_counter() - started
    rename = {_name(label): label for label in labels}
    test_texts = [str(r["text"]) for r in test]
    if has_oos:
        predicted = [
            OOS if oos else rename[label]
            for label, _, oos in predict_many(head, np.asarray(x_test), test_texts)
        ]
    else:
        # Without out-of-scope examples the gate can only cost accuracy: score the closed-set prediction.
        ungated = head.model_copy(update={"gate": None})
        predicted = [rename[label] for label, _, _ in predict_many(ungated, np.asarray(x_test), test_texts)]
    report = classification_report(truth, predicted, has_oos=has_oos)
    if held:
        report.update(held_out_intents=held, seed=args.seed, train_intents=len(set(labels)))
    report.update(
        oos_threshold=round(head.gate.threshold, 4) if head.gate else None,
        embed_s=round(embed_s, 1),
        train_s=round(train_s, 1),
        embedding=arithmetic_probe(get_embedder()),
    )
    print(
        f"trained {len(set(labels))} intents on {len(train)} examples; gate on folds: {head.gate.folds if head.gate else None}",
        file=sys.stderr,
    )
    print(json.dumps(report))
    return 0


def _name(label: str) -> str:
    from deflect.triage.intents import _slug

    return _slug(label)


# --------------------------------------------------------------------------- triage cases


def run_triage(args: argparse.Namespace) -> int:
    from deflect.cli.intents import read_taxonomy
    from deflect.knowledge.models import Audience
    from deflect.triage import offline

    cases = list(_jsonl(args.cases, "text", "should_escalate"))
    taxonomy = read_taxonomy(args.intents) if args.intents else None
    if args.kb is not None and not args.kb.exists():
        raise UnusableFile(args.kb, "no such file or folder")
    if args.kb is not None and args.kb.is_file() and args.kb.suffix == ".jsonl":
        next(json_lines(args.kb), None)  # its first row tells an article file from a corpus: it must be JSON
    started = time.perf_counter()
    tenant = offline.build(
        knowledge=args.kb, model_data_dir=_model_dir(args), taxonomy=taxonomy, gate_seed=args.gate_seed
    )
    print(
        f"tenant ready: {tenant.articles} articles in {time.perf_counter() - started:.1f}s", file=sys.stderr
    )
    needless: Counter[str] = Counter()
    assessments: list[Any] = []
    latencies: list[float] = []
    for position, case in enumerate(cases):
        began = time.perf_counter()
        # A case may say who asks: the customer's segments (plan) decide which articles they may read.
        audience = Audience(kind="customer", segments=frozenset(case.get("segments") or []))
        assessment = tenant.engine.assess(
            tenant.ctx,
            str(case["text"]),
            config=tenant.config,
            sla_tier=str(case.get("sla_tier", "standard")),
            audience=audience,
            record_gap=False,
        )
        latencies.append((time.perf_counter() - began) * 1000)
        assessments.append(assessment)
        went_up = assessment.outcome == "escalate"
        if went_up and not case["should_escalate"]:
            needless[escalation_stage(assessment.decision.reasons)] += 1
        if args.show and went_up != bool(case["should_escalate"]):
            print(
                f"[{case.get('id', position)}] expected escalate={case['should_escalate']} got {assessment.outcome} "
                f"{assessment.decision.reasons} intent={assessment.classification.intent}"
                f"({assessment.classification.intent_confidence}) :: {str(case['text'])[:90]}",
                file=sys.stderr,
            )
    report = outcome_report(cases, assessments, [a.outcome for a in assessments])
    # Where the answerable cases that went to a person were stopped.
    report["needless_escalations_by_stage"] = {stage: needless[stage] for stage in ESCALATION_STAGES}
    if args.answer_thresholds:
        policy = tenant.config.policy
        report["answer_thresholds"] = []
        for threshold in args.answer_thresholds:
            # The threshold was range-checked as an argument; the rest of the tenant's policy stays as stored.
            tried = policy.model_copy(update={"answer_threshold": threshold})
            outcomes = [a.decided_under(tried).outcome for a in assessments]
            report["answer_thresholds"].append(
                {"answer_threshold": threshold, **outcome_report(cases, assessments, outcomes)}
            )
    ordered = sorted(latencies)
    report["p95_ms"] = round(ordered[int(0.95 * (len(ordered) - 1))], 1) if ordered else 0.0
    if args.gate_seed is not None:
        report["gate_seed"] = args.gate_seed
    report["embedding"] = _embedding_probe(tenant.models.embeddings)
    print(json.dumps(report))
    return 0


def _embedding_probe(embedder: Any) -> dict[str, Any]:
    """Which embeddings the numbers came from, and on what arithmetic (deflect.embedded.embeddings.PROBE_TEXT)."""
    from deflect.embedded.embeddings import MiniLMEmbedder, arithmetic_probe

    embedder = getattr(embedder, "inner", embedder)  # behind the in-process cache
    if not isinstance(embedder, MiniLMEmbedder):
        return {"model_id": getattr(embedder, "model_id", type(embedder).__name__), "probe_cosine": None}
    return arithmetic_probe(embedder)


def outcome_report(
    cases: list[dict[str, Any]], assessments: list[Any], outcomes: list[str]
) -> dict[str, Any]:
    """Recall, precision and deflection of these outcomes; which must-escalate cases were not escalated; the share of
    each category escalated; and, for cases that name the `article` answering them, whether each answer led with
    it: a deflected how-to that cites another article is a wrong answer, not a saved escalation."""
    expected = [bool(c["should_escalate"]) for c in cases]
    report = triage_report(expected, [o == "escalate" for o in outcomes], [o == "deflect" for o in outcomes])
    report["outcomes"] = dict(Counter(outcomes))
    report["missed_escalations"] = [
        str(c.get("id", i))
        for i, (c, o) in enumerate(zip(cases, outcomes, strict=True))
        if c["should_escalate"] and o != "escalate"
    ]
    by_category: dict[str, list[int]] = {}
    for case, outcome in zip(cases, outcomes, strict=True):
        counts = by_category.setdefault(str(case.get("category", "all")), [0, 0])
        counts[0] += 1
        counts[1] += int(outcome == "escalate")
    report["by_category"] = {k: round(up / n, 3) for k, (n, up) in sorted(by_category.items())}
    # Deflections only: a request for diagnostics may carry the draft too, and is not judged here.
    named = [
        (str(case.get("id", i)), case, assessment)
        for i, (case, assessment, outcome) in enumerate(zip(cases, assessments, outcomes, strict=True))
        if case.get("article") and outcome == "deflect"
    ]
    if any(case.get("article") for case in cases):
        other = [id_ for id_, c, a in named if _lead_article(a) not in _expected(c["article"])]
        report["answers"] = {
            "with_expected_article": sum(1 for case in cases if case.get("article")),
            # The measure: answerable questions (the help center states the answer) sent to a person.
            "escalated": sum(
                1
                for case, outcome in zip(cases, outcomes, strict=True)
                if case.get("article") and outcome == "escalate"
            ),
            "answered": len(named),
            "led_with_expected_article": len(named) - len(other),
            "led_with_another_article": other,
        }
    return report


def _expected(article: str | list[str]) -> set[str]:
    """A case names the article that answers it, or a list when each of several states the whole answer."""
    return {article} if isinstance(article, str) else set(article)


def _lead_article(assessment: Any) -> str | None:
    draft = assessment.draft
    return draft.citations[0].article_id if draft is not None and draft.citations else None


# Where triage sends a message to a person, in the policy's order (triage/policy.always_escalate_reasons): the
# detectors' rules (sensitive flags, actions, a request for a person, injection, P1, repeat contact, language),
# a model failure, the intent head (out of scope or unsure), and last the answer (none, or not confident).
ESCALATION_STAGES = ("detectors", "model", "intent", "answer")
_DETECTOR_PREFIXES = ("sensitive:", "action:", "language:", "severity:")
_DETECTOR_REASONS = frozenset({"wants_human", "suspected_prompt_injection", "repeat_contact_same_answer"})


def escalation_stage(reasons: list[str]) -> str:
    """The first stage that sent the message to a person, read from the decision's reasons."""
    if any(r.startswith(_DETECTOR_PREFIXES) or r in _DETECTOR_REASONS for r in reasons):
        return "detectors"
    if any(r.startswith("model_error") for r in reasons):
        return "model"
    if any(r in ("out_of_scope", "low_classification_confidence") for r in reasons):
        return "intent"
    return "answer"


def triage_report(expected: list[bool], escalated: list[bool], deflected: list[bool]) -> dict[str, Any]:
    """Recall/precision of escalation against `should_escalate`; deflection rate = share answered outright."""
    pairs = list(zip(expected, escalated, strict=True))
    should = sum(expected)
    did = sum(escalated)
    hits = sum(1 for e, g in pairs if e and g)
    return {
        "escalation_recall": round(hits / should, 4) if should else 1.0,
        "escalation_precision": round(hits / did, 4) if did else 1.0,
        "deflection_rate": round(sum(deflected) / max(1, len(pairs)), 4),
        "n": len(pairs),
    }
