"""How often the extractive composer answers, and how often its answer cites the right article, on data it was not
tuned on. Three sources, each composed through the same search and composer triage uses:
  - StackFAQ (every --stackfaq-step'th judged query against its own corpus): an answer is right when its lead
    citation is a judged-relevant document;
  - banking77 test texts against the demo help center: off-topic, every answer is wrong (also run through the
    whole triage engine: how many it would deflect);
  - the demo help center's judged questions (tests/knowledge_cases: questions.jsonl and identifier_queries.jsonl);
  - customer questions about the demo help center written later from its articles alone
    (tests/knowledge_cases/customer_questions.jsonl): 171 that one article answers, in customers' words, and 80
    on-topic questions no article answers (another app, a limit or detail the articles never state). Every answer
    to those 80 is wrong: it quotes a related article that does not say what was asked.
An answer is a grounded draft whose confidence reaches the answer threshold. Prints one JSON object last.

    python -m bench.eval_answers [--stackfaq-step 4] [--banking-step 10] [--max-passages 3] [--min-passage-score 0.1]
        [--quote-only-passages 5] [--quote-only-floor 0.65]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from bench.fit_calibration import CASES, DATA, _jsonl, stackfaq_tenant


def _answer(composer: Any, search: Any, ctx: Any, text: str, threshold: float) -> str | None:
    """The lead cited article when the composer answers with enough confidence, else None."""
    from deflect.triage import grounding

    results = search.search(ctx, text, k=5, record_gap=False)
    if not results.hits:
        return None
    # As triage does: the other sections of the best articles may hold the answer.
    passages = [*results.hits, *search.sections(ctx, text, results)]
    draft = composer.compose(ctx, text, passages).draft
    if draft is None:
        return None
    cleaned = [grounding.clean_passage(h) for h in passages]
    if not grounding.verify(draft, cleaned, text).ok:
        return None
    if grounding.discount_unmentioned_names(draft, text, cleaned).confidence < threshold:
        return None
    return draft.citations[0].article_id


def _deflected(tenant: Any, text: str) -> bool:
    from deflect.knowledge.models import Audience

    assessment = tenant.engine.assess(
        tenant.ctx,
        text,
        config=tenant.config,
        sla_tier="standard",
        audience=Audience(kind="customer", segments=frozenset()),
        record_gap=False,
    )
    return assessment.outcome == "deflect"


def _tally(rows: list[tuple[str, Callable[[str | None], bool]]], answer: Callable[[str], str | None]) -> dict:
    answered = right = 0
    for text, is_right in rows:
        article = answer(text)
        if article is not None:
            answered += 1
            right += int(is_right(article))
    n = len(rows)
    return {
        "n": n,
        "answered": round(answered / n, 4),
        "right": round(right / n, 4),
        "wrong": round((answered - right) / n, 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stackfaq-step", type=int, default=4)
    parser.add_argument("--banking-step", type=int, default=10)
    parser.add_argument("--answer-threshold", type=float, default=0.55)
    parser.add_argument("--max-passages", type=int, default=None)
    parser.add_argument("--min-passage-score", type=float, default=None)
    parser.add_argument("--quote-only-passages", type=int, default=None)
    parser.add_argument("--quote-only-floor", type=float, default=None)
    args = parser.parse_args()

    from deflect.knowledge.search import KnowledgeSearch
    from deflect.settings import Settings
    from deflect.triage import offline

    tenant = offline.build(model_data_dir=Settings.from_env().model_data_dir)
    composer = tenant.models.composer()
    overrides = {
        "max_passages": args.max_passages,
        "min_passage_score": args.min_passage_score,
        "quote_only_passages": args.quote_only_passages,
        "quote_only_floor": args.quote_only_floor,
    }
    for name, value in overrides.items():
        if value is not None:
            setattr(composer, name, value)
    threshold = args.answer_threshold
    report: dict[str, Any] = {}

    help_center = KnowledgeSearch(tenant.index, tenant.store, threshold_for=lambda _ctx: 0.0)
    judged = [
        (str(row["query"]), lambda article, expected=row["expected"]: article == expected)
        for name in ("questions.jsonl", "identifier_queries.jsonl")
        for row in _jsonl(CASES / name)
        if "expected" in row
    ]
    report["help_center"] = _tally(
        judged, lambda text: _answer(composer, help_center, tenant.ctx, text, threshold)
    )
    customer = _jsonl(CASES / "customer_questions.jsonl")
    answerable = [
        (str(row["query"]), lambda article, expected=row["expected"]: article == expected)
        for row in customer
        if row["kind"] == "answerable"
    ]
    report["customer_questions"] = _tally(
        answerable, lambda text: _answer(composer, help_center, tenant.ctx, text, threshold)
    )
    unanswerable = [
        (str(row["query"]), lambda _article: False) for row in customer if row["kind"] != "answerable"
    ]
    report["on_topic_unanswerable"] = _tally(
        unanswerable, lambda text: _answer(composer, help_center, tenant.ctx, text, threshold)
    )
    report["on_topic_unanswerable_triage_deflected"] = round(
        sum(_deflected(tenant, text) for text, _ in unanswerable) / len(unanswerable), 4
    )
    off_topic = [
        (str(row["text"]), lambda _article: False)
        for row in _jsonl(DATA / "banking77" / "test.jsonl")[:: args.banking_step]
    ]
    report["banking77_off_topic"] = _tally(
        off_topic, lambda text: _answer(composer, help_center, tenant.ctx, text, threshold)
    )
    # The same off-topic questions through the whole triage engine (intent gate, detectors, policy).
    report["banking77_off_topic_triage_deflected"] = round(
        sum(_deflected(tenant, text) for text, _ in off_topic) / len(off_topic), 4
    )

    search, ctx, ids, qrels, queries = stackfaq_tenant(args.stackfaq_step)
    rows = [
        (
            str(q["text"]),
            lambda article, judged=qrels[str(q["id"])]: judged.get(ids.get(article, ""), 0) > 0,
        )
        for q in queries
    ]
    report["stackfaq"] = _tally(rows, lambda text: _answer(composer, search, ctx, text, threshold))
    report["composer"] = {name: getattr(composer, name) for name in overrides}
    for name in (
        "help_center",
        "customer_questions",
        "on_topic_unanswerable",
        "on_topic_unanswerable_triage_deflected",
        "banking77_off_topic",
        "banking77_off_topic_triage_deflected",
        "stackfaq",
    ):
        print(f"{name}: {report[name]}", file=sys.stderr)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
