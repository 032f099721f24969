"""`deflect eval retrieval --corpus F --queries F --qrels F [--k 10] [--wordy]`

Builds a throwaway tenant from a BEIR-style corpus with the same ingestion and search services the API uses
(in-memory table and evidence, embedded index), runs every query that has judgments, and prints as its last
line one JSON object: {"ndcg@10", "recall@10", "mrr@10", "queries", "docs", "index_s", "p50_ms", "p95_ms"}.
`--wordy` wraps each query in a long, chatty support message to check that quality holds on those too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deflect.cli.files import MALFORMED, UnusableFile, json_lines, reading
from deflect.domain.tenancy import TenantContext
from deflect.knowledge.ingestion import ImportRow
from deflect.knowledge.models import ARTICLE_ID_PATTERN, Rejection

# Chatty openings and closings (no product words), to turn a short question into a realistic long message.
_WORDY = (
    "Hi there, I hope you're doing well. I've been going back and forth on this for a couple of days now and "
    "a colleague of mine couldn't figure it out either. {q} I already looked around a bit but nothing I found "
    "seemed to match my situation. Any help would be really appreciated, thanks so much in advance!",
    "Hello, long time user here. This might be a silly question and I apologise if it has been asked before, "
    "but I honestly could not work it out on my own after spending most of the afternoon on it. Basically: {q} "
    "Let me know if you need any more details from my side. Cheers, Sam",
    "Good morning! So here is the thing: my manager asked me to sort this out before the end of the week and "
    "I am running out of ideas. {q} I tried the obvious things first and nothing changed, so I thought I would "
    "ask you directly. Thank you for your time and patience.",
    "Quick context before my question: we are a small team, I am not very technical, and I inherited this "
    "setup from someone who left last month, so please bear with me. {q} Is there a simple way to do this, "
    "or do I need to ask someone on our side for help? Regards, Priya",
)


def register_eval(evaluations: argparse._SubParsersAction) -> None:
    parser = evaluations.add_parser(
        "retrieval", help="nDCG/recall/MRR of knowledge search on a BEIR-style set"
    )
    parser.add_argument("--corpus", required=True, type=Path, help="corpus.jsonl: {id, title, text}")
    parser.add_argument("--queries", required=True, type=Path, help="queries.jsonl: {id, text}")
    parser.add_argument(
        "--qrels", required=True, type=Path, help="qrels.tsv: query-id, corpus-id, score (header)"
    )
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--wordy", action="store_true", help="wrap each query in a long, chatty message")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N judged queries")
    parser.set_defaults(func=run)


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    return json_lines(path)


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with reading(path), path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or (number == 0 and not parts[2].strip().lstrip("-").isdigit()):
                continue  # header or blank line
            try:
                qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
            except ValueError:
                raise UnusableFile(
                    f"{path} line {number + 1}",
                    "expected query-id, corpus-id and an integer score",
                    code=MALFORMED,
                ) from None
    return qrels


def article_id_for(doc_id: str) -> str:
    """Corpus ids that are not valid article ids get a stable stand-in."""
    if re.fullmatch(ARTICLE_ID_PATTERN, doc_id):
        return doc_id
    return "doc-" + hashlib.sha256(doc_id.encode()).hexdigest()[:24]


def corpus_rows(path: Path, ids: dict[str, str]) -> Iterator[ImportRow | Rejection]:
    from deflect.knowledge.importers import article_row

    for number, doc in enumerate(_jsonl(path), start=1):
        doc_id = str(doc.get("id", ""))
        article_id = article_id_for(doc_id)
        ids[article_id] = doc_id
        title = str(doc.get("title") or "").strip() or doc_id
        text = str(doc.get("text") or "").strip() or title
        yield article_row({"id": article_id, "title": title[:300], "body": text}, f"{path.name}:{number}")


def ndcg(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    gains = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]))
    ideal = sum(g / math.log2(rank + 2) for rank, g in enumerate(sorted(relevant.values(), reverse=True)[:k]))
    return gains / ideal if ideal else 0.0


def recall(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    wanted = {d for d, g in relevant.items() if g > 0}
    return len(wanted.intersection(ranked[:k])) / len(wanted) if wanted else 0.0


def mrr(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    return next((1.0 / (rank + 1) for rank, doc in enumerate(ranked[:k]) if relevant.get(doc, 0) > 0), 0.0)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def run(args: argparse.Namespace) -> int:
    from deflect.embedded.memory_store import MemoryEvidenceStore, MemorySupportStore
    from deflect.embedded.search import EmbeddedKnowledgeIndex
    from deflect.knowledge.ingestion import KnowledgeIngestion
    from deflect.knowledge.search import KnowledgeSearch

    store, evidence = MemorySupportStore(), MemoryEvidenceStore()
    index = getattr(args, "index", None) or EmbeddedKnowledgeIndex(None)
    ingestion = KnowledgeIngestion(store, evidence, index)
    search = KnowledgeSearch(index, store, threshold_for=lambda _ctx: 0.0)
    ctx = TenantContext(
        tenant_id=f"eval-{secrets.token_hex(4)}", actor="cli:eval", roles=frozenset({"admin"}), via="cli"
    )

    # The judgments and queries first: a bad file stops the command before the corpus is indexed.
    qrels = load_qrels(args.qrels)
    queries = [q for q in _jsonl(args.queries) if qrels.get(str(q.get("id")))]
    ids: dict[str, str] = {}
    started = time.perf_counter()
    summary = ingestion.import_rows(ctx, corpus_rows(args.corpus, ids))
    index_s = time.perf_counter() - started
    print(
        f"indexed {summary.added} docs ({summary.chunks} chunks, {len(summary.rejected)} rejected) in {index_s:.1f}s",
        file=sys.stderr,
    )

    if args.limit:
        queries = queries[: args.limit]
    totals = {"ndcg": 0.0, "recall": 0.0, "mrr": 0.0}
    latencies: list[float] = []
    for position, query in enumerate(queries):
        text = str(query.get("text", ""))
        if args.wordy:
            text = _WORDY[position % len(_WORDY)].format(q=text.strip())
        began = time.perf_counter()
        results = search.search(ctx, text, k=args.k, record_gap=False)
        latencies.append((time.perf_counter() - began) * 1000)
        ranked = [ids.get(hit.article_id, hit.article_id) for hit in results.hits]
        relevant = qrels[str(query["id"])]
        totals["ndcg"] += ndcg(ranked, relevant, args.k)
        totals["recall"] += recall(ranked, relevant, args.k)
        totals["mrr"] += mrr(ranked, relevant, args.k)
    count = max(1, len(queries))
    report = {
        f"ndcg@{args.k}": round(totals["ndcg"] / count, 4),
        f"recall@{args.k}": round(totals["recall"] / count, 4),
        f"mrr@{args.k}": round(totals["mrr"] / count, 4),
        "queries": len(queries),
        "docs": summary.added,
        "index_s": round(index_s, 2),
        "p50_ms": round(percentile(latencies, 0.5), 2),
        "p95_ms": round(percentile(latencies, 0.95), 2),
    }
    print(json.dumps(report))
    return 0
