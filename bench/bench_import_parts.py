"""A bulk import in parts (run by `make bench`; never a test): the StackFAQ corpus imported once in one run and once
in time-limited parts, as the retrieval function does when an object takes longer than an invocation.

Embedding is the real int8 MiniLM plus a wait per chunk (`--per-chunk-s`, default 50 ms), standing in for one
Bedrock call per chunk: the embedded engine alone imports this corpus in a few seconds, which would never need a
second part. Reports how many parts, the longest part against the budget, the total against one run, and that
every article was imported exactly once.

    python -m bench.bench_import_parts [--budget-s 20] [--reserve-s 5] [--per-chunk-s 0.05]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "stackfaq" / "corpus.jsonl"


class SlowEmbedder:
    """The real embedder, plus a wait per text: what a remote embedding call per chunk costs."""

    def __init__(self, inner: Any, per_text_s: float) -> None:
        self.inner = inner
        self.per_text_s = per_text_s
        self.dimensions = getattr(inner, "dimensions", 384)

    def embed(self, texts: list[str], **kw: Any) -> Any:
        time.sleep(self.per_text_s * len(texts))
        return self.inner.embed(texts, **kw)


def main(argv: list[str] | None = None) -> int:
    from deflect.cli.eval_retrieval import corpus_rows
    from deflect.domain.tenancy import TenantContext
    from deflect.embedded.embeddings import get_embedder
    from deflect.embedded.memory_store import MemoryEvidenceStore, MemorySupportStore
    from deflect.embedded.search import EmbeddedKnowledgeIndex
    from deflect.knowledge.ingestion import KnowledgeIngestion

    parser = argparse.ArgumentParser(prog="bench_import_parts")
    parser.add_argument("--budget-s", type=float, default=20.0, help="time per part (the function's timeout)")
    parser.add_argument("--reserve-s", type=float, default=5.0)
    parser.add_argument("--per-chunk-s", type=float, default=0.05)
    args = parser.parse_args(argv)

    embedder = SlowEmbedder(get_embedder(), args.per_chunk_s)
    ctx = TenantContext(tenant_id="bench", actor="bench", roles=frozenset({"admin"}), via="cli")
    rows = list(corpus_rows(CORPUS, {}))

    def ingestion() -> KnowledgeIngestion:
        return KnowledgeIngestion(
            MemorySupportStore(), MemoryEvidenceStore(), EmbeddedKnowledgeIndex(None, embedder)
        )

    started = time.perf_counter()
    whole = ingestion().import_rows(ctx, rows)
    one_run_s = time.perf_counter() - started

    parted = ingestion()
    parts: list[float] = []
    added = 0
    start: int | None = 0
    started = time.perf_counter()
    while start is not None:
        deadline = time.perf_counter() + args.budget_s
        began = time.perf_counter()
        part = parted.import_rows(
            ctx,
            rows,
            start_row=start,
            time_left=lambda deadline=deadline: deadline - time.perf_counter(),
            reserve_s=args.reserve_s,
        )
        parts.append(time.perf_counter() - began)
        added += part.added
        start = part.next_row
    parts_s = time.perf_counter() - started
    heads = [parted.articles.head(ctx, row.article_id) for row in rows if hasattr(row, "article_id")]
    result = {
        "articles": len(rows),
        "per_chunk_s": args.per_chunk_s,
        "budget_s": args.budget_s,
        "reserve_s": args.reserve_s,
        "one_run_s": round(one_run_s, 1),
        "parts": len(parts),
        "longest_part_s": round(max(parts), 2),
        "parts_total_s": round(parts_s, 1),
        "added_in_parts": added,
        "added_in_one_run": whole.added,
        "articles_not_exactly_once": sum(1 for h in heads if h is None or h.current_version != 1),
    }
    print(json.dumps(result, indent=2))
    print(
        f"import in parts: {len(rows)} articles in {len(parts)} parts of ≤ {max(parts):.1f} s "
        f"(budget {args.budget_s:.0f} s, reserve {args.reserve_s:.0f} s); {parts_s:.1f} s in all vs "
        f"{one_run_s:.1f} s in one run; not exactly once: {result['articles_not_exactly_once']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
