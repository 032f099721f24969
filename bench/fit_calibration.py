"""Fit the knowledge score's logistic calibration (deflect.knowledge.ranking CALIBRATION_SLOPE/INTERCEPT).

Each judged query is searched with the calibration switched off, and its top-1 raw fused score is labelled
"answers the question" (top hit is a judged-relevant article) or not. Three sources, weighted equally so the
large one does not decide alone what a probability means:
  - the demo help center with its judged questions (tests/knowledge_cases: how-to and identifier queries);
  - StackFAQ (every --stackfaq-step'th judged query against its own corpus);
  - banking77 test texts against the demo help center: off-topic, never right.
Prints the fitted constants (and the raw score that maps to the default answer threshold) as the last line.

    python -m bench.fit_calibration [--stackfaq-step 4] [--banking-step 10]
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"  # ../shared beside the checkout
CASES = ROOT / "tests" / "knowledge_cases"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _top(search, ctx, text: str):
    hits = search.search(ctx, text, k=1, record_gap=False).hits
    return (hits[0].article_id, hits[0].score) if hits else (None, 0.0)


def help_center_rows(banking_step: int) -> tuple[list[tuple[float, int]], list[tuple[float, int]]]:
    from deflect.knowledge.search import KnowledgeSearch
    from deflect.settings import Settings
    from deflect.triage import offline

    tenant = offline.build(model_data_dir=Settings.from_env().model_data_dir)
    search = KnowledgeSearch(tenant.index, tenant.store, threshold_for=lambda _ctx: 0.0)
    judged = []
    for name in ("questions.jsonl", "identifier_queries.jsonl"):
        for row in _jsonl(CASES / name):
            if "expected" not in row:
                continue  # audience checks (a forbidden article) judge no answer
            article, score = _top(search, tenant.ctx, row["query"])
            judged.append((score, int(article == row["expected"])))
    off_topic = [
        (_top(search, tenant.ctx, row["text"])[1], 0)
        for row in _jsonl(DATA / "banking77" / "test.jsonl")[::banking_step]
    ]
    return judged, off_topic


def stackfaq_tenant(step: int) -> tuple[Any, Any, dict[str, str], dict[str, dict[str, int]], list[dict]]:
    """StackFAQ loaded into a throwaway in-memory tenant: (search, ctx, article id -> corpus id, qrels, every
    `step`'th judged query)."""
    from deflect.cli.eval_retrieval import corpus_rows, load_qrels
    from deflect.domain.tenancy import TenantContext
    from deflect.embedded.memory_store import MemoryEvidenceStore, MemorySupportStore
    from deflect.embedded.search import EmbeddedKnowledgeIndex
    from deflect.knowledge.ingestion import KnowledgeIngestion
    from deflect.knowledge.search import KnowledgeSearch

    root = DATA / "stackfaq"
    store, evidence = MemorySupportStore(), MemoryEvidenceStore()
    index = EmbeddedKnowledgeIndex(None)
    ctx = TenantContext(
        tenant_id=f"bench-{secrets.token_hex(4)}", actor="cli:bench", roles=frozenset({"admin"}), via="cli"
    )
    ids: dict[str, str] = {}
    KnowledgeIngestion(store, evidence, index).import_rows(ctx, corpus_rows(root / "corpus.jsonl", ids))
    search = KnowledgeSearch(index, store, threshold_for=lambda _ctx: 0.0)
    qrels = load_qrels(root / "qrels.tsv")
    queries = [q for q in _jsonl(root / "queries.jsonl") if qrels.get(str(q["id"]))][::step]
    return search, ctx, ids, qrels, queries


def stackfaq_rows(step: int) -> list[tuple[float, int]]:
    search, ctx, ids, qrels, queries = stackfaq_tenant(step)
    rows = []
    for query in queries:
        article, score = _top(search, ctx, str(query["text"]))
        rows.append((score, int(qrels[str(query["id"])].get(ids.get(article or "", ""), 0) > 0)))
    return rows


def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = 1e-3) -> tuple[float, float]:
    """Weighted 1-D logistic regression by Newton's method (tiny ridge keeps separable data finite)."""
    a, b = 1.0, 0.0
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(a * x + b)))
        g = np.array([np.sum(w * (p - y) * x) + l2 * a, np.sum(w * (p - y))])
        s = w * p * (1 - p)
        h = np.array([[np.sum(s * x * x) + l2, np.sum(s * x)], [np.sum(s * x), np.sum(s)]])
        step = np.linalg.solve(h, g)
        a, b = a - step[0], b - step[1]
        if np.max(np.abs(step)) < 1e-9:
            break
    return float(a), float(b)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stackfaq-step", type=int, default=4)
    parser.add_argument("--banking-step", type=int, default=10)
    parser.add_argument("--answer-threshold", type=float, default=0.55)
    args = parser.parse_args()

    from deflect.knowledge import ranking

    ranking.calibrated = lambda raw: raw  # type: ignore[assignment]  # fit on the raw fused score
    judged, off_topic = help_center_rows(args.banking_step)
    stackfaq = stackfaq_rows(args.stackfaq_step)
    sources = {"help_center": judged, "banking77_off_topic": off_topic, "stackfaq": stackfaq}
    x, y, w = [], [], []
    for rows in sources.values():
        for score, label in rows:
            x.append(score)
            y.append(label)
            w.append(1.0 / len(rows))
    slope, intercept = fit(np.asarray(x), np.asarray(y, dtype=float), np.asarray(w))
    threshold = args.answer_threshold
    raw_at_threshold = (math.log(threshold / (1 - threshold)) - intercept) / slope
    for name, rows in sources.items():
        right = sum(label for _, label in rows)
        print(f"{name}: {len(rows)} top hits, {right} right", file=sys.stderr)
    print(
        json.dumps(
            {
                "slope": round(slope, 2),
                "intercept": round(intercept, 2),
                "raw_at_answer_threshold": round(raw_at_threshold, 3),
                "rows": {name: len(rows) for name, rows in sources.items()},
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
