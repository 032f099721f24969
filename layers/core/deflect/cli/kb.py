"""`deflect kb import PATH --tenant T`: load a JSONL file, a folder of Markdown files (front matter) or a Zendesk
Help Center export into a tenant's knowledge, with a progress bar and a summary (added, updated, unchanged,
rejected with reasons). Re-importing unchanged content does no work.

`deflect kb search "question" --tenant T` shows what the search service returns (agent view by default).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from deflect.cli.files import reading
from deflect.cli.operator import add_actor, operator_name
from deflect.domain.tenancy import TenantContext

BAR_WIDTH = 30


def register(commands: argparse._SubParsersAction) -> None:
    kb = commands.add_parser("kb", help="knowledge base: import articles, try searches").add_subparsers(
        dest="kb_command", required=True
    )
    importing = kb.add_parser(
        "import", help="import .jsonl, .md (front matter) or a Zendesk Help Center export"
    )
    importing.add_argument("path", type=Path, help="a file or a folder")
    importing.add_argument("--tenant", required=True)
    importing.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_actor(importing)
    importing.set_defaults(func=run_import)

    reindexing = kb.add_parser(
        "reindex",
        help="re-chunk every indexed article from its stored version with today's rules (run after an upgrade)",
    )
    reindexing.add_argument("--tenant", required=True)
    reindexing.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_actor(reindexing)
    reindexing.set_defaults(func=run_reindex)

    searching = kb.add_parser("search", help="run a knowledge search")
    searching.add_argument("query")
    searching.add_argument("--tenant", required=True)
    searching.add_argument("--k", type=int, default=5)
    searching.add_argument("--product-area")
    searching.add_argument("--customer", action="store_true", help="what a customer would see (public only)")
    searching.add_argument("--segment", action="append", default=[], help="customer segment; repeatable")
    searching.add_argument(
        "--locale",
        help="the customer's locale (de, en-GB): only their language is searched, own locale first",
    )
    searching.set_defaults(func=run_search)


def _context(args: argparse.Namespace) -> TenantContext:
    return TenantContext(
        tenant_id=args.tenant,
        actor=operator_name(getattr(args, "actor", None)),
        roles=frozenset({"admin"}),
        via="cli",
    )


def _container(args: argparse.Namespace) -> Any:
    found = getattr(args, "container", None)  # tests pass one in; the command line uses the composition root
    if found is None:
        from deflect.bootstrap import container

        found = container()
    return found


def _tenant_exists(container: Any, ctx: TenantContext) -> bool:
    from deflect.repositories import TenantConfigs

    if TenantConfigs(container.knowledge_ingestion.store).find(ctx) is None:
        print(f"unknown tenant {ctx.tenant_id!r}: create it first (deflect tenant create)", file=sys.stderr)
        return False
    return True


class ProgressBar:
    """One line, redrawn in place: `[#####.....]  12/25  added 7 · updated 2 · unchanged 3 · rejected 0`."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = max(1, total)
        self.done = 0
        self.counts = {"added": 0, "updated": 0, "unchanged": 0, "rejected": 0}
        self.stream = stream

    def advance(self, status: str) -> None:
        self.done += 1
        self.counts[status] = self.counts.get(status, 0) + 1
        filled = BAR_WIDTH * self.done // self.total
        tallies = " · ".join(f"{name} {count}" for name, count in self.counts.items())
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.done:>5}/{self.total}  {tallies}"
        )
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def run_import(args: argparse.Namespace) -> int:
    from deflect.knowledge.importers import read_path
    from deflect.knowledge.models import Rejection

    if not args.path.exists():
        print(f"no such file or folder: {args.path}", file=sys.stderr)
        return 2
    ctx = _context(args)
    container = _container(args)
    if not _tenant_exists(container, ctx):
        return 2
    with reading(args.path):  # a file or folder we may not read: one line, not a traceback
        rows = list(read_path(args.path))
    bar = ProgressBar(len(rows), sys.stderr)

    def progress(row: Any, outcome: Any) -> None:
        bar.advance("rejected" if isinstance(row, Rejection) or outcome is None else outcome.status)

    summary = container.knowledge_ingestion.import_rows(ctx, rows, progress=progress)
    bar.close()
    if args.json:
        print(json.dumps(summary.model_dump(mode="json")))
    else:
        print(
            f"{args.tenant}: {summary.added} added, {summary.updated} updated, {summary.unchanged} unchanged, "
            f"{len(summary.rejected)} rejected; {summary.chunks} chunks indexed in {summary.seconds:.1f}s"
        )
        for rejection in summary.rejected:
            print(f"  rejected {rejection.source}: {rejection.reason}")
    return 1 if summary.rejected and not (summary.added or summary.updated or summary.unchanged) else 0


def run_reindex(args: argparse.Namespace) -> int:
    ctx = _context(args)
    container = _container(args)
    if not _tenant_exists(container, ctx):
        return 2
    summary = container.knowledge_ingestion.reindex(ctx)
    if args.json:
        print(json.dumps(summary.model_dump(mode="json")))
        return 0
    print(
        f"{args.tenant}: {summary.reindexed} articles re-chunked into {summary.chunks} chunks; "
        f"{len(summary.removed)} taken out of the index"
    )
    for article_id in summary.removed:
        print(f"  removed {article_id}: {summary.refused.get(article_id, 'deleted or no longer stored')}")
    return 0


def run_search(args: argparse.Namespace) -> int:
    from deflect.knowledge.models import Audience

    audience = Audience(
        kind="customer" if args.customer or args.segment else "agent", segments=frozenset(args.segment)
    )
    results = _container(args).knowledge_search.search(
        _context(args),
        args.query,
        k=args.k,
        product_area=args.product_area,
        audience=audience,
        locale=args.locale,
        record_gap=False,  # an operator trying questions is not a customer going unanswered
    )
    for rank, hit in enumerate(results.hits, start=1):
        where = " > ".join([hit.title, *hit.heading_path])
        flags = " [stale]" if hit.stale else ""
        print(f"{rank:>2}. {hit.score:.3f}  {hit.article_id} v{hit.version}  {where}{flags}")
    # The retrieval score, not triage's confidence: triage drafts from these passages and judges its draft.
    print(
        f"best retrieval score {results.best_score:.3f} (how well the best passage matches the question, from "
        f"search alone), answer threshold {results.answer_threshold:.2f}"
    )
    if results.best_score < results.answer_threshold:
        print(
            "  under the threshold, yet triage may still answer: it drafts a reply from these passages and weighs "
            "the draft's own confidence against the threshold, and records a knowledge gap only when it cannot "
            "draft one. The search API (GET /v1/knowledge/search) records a gap for a score this low; "
            "`deflect kb search` never does."
        )
    return 0
