"""Retrieval: knowledge search and article ingestion. Thin: parse → service → mapped errors.

The caller's tenant and roles come from the authorizer's claims only. Bulk imports arrive as S3 events from the
knowledge import bucket (objects under `tenant={t}/`); the parts of imports too large for one invocation arrive
from the knowledge import queue.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit

from deflect import __version__
from deflect.bootstrap import container
from deflect.domain.errors import NotFound
from deflect.http import agent_context, build_resolver, require_role
from deflect.insight.metering import metered
from deflect.knowledge.models import PRODUCT_AREA_PATTERN, ArticleInput, Audience
from deflect.observability import logger, metrics

app = build_resolver()

KNOWLEDGE_EDITORS = ("admin", "supervisor")
KNOWLEDGE_READERS = ("agent", "approver", "supervisor", "admin")


@app.get("/v1/retrieval/ping")
def ping() -> dict[str, Any]:
    return {"status": "ok", "function": "retrieval", "version": __version__}


@app.put("/v1/knowledge/articles/<article_id>")
def put_article(article_id: str, article: ArticleInput) -> Response[dict[str, Any]]:
    ctx = agent_context(app)
    require_role(ctx, *KNOWLEDGE_EDITORS)
    outcome = container().knowledge_ingestion.put(ctx, article_id, article)
    metrics().add_metric(name=f"KnowledgeArticle_{outcome.status}", unit=MetricUnit.Count, value=1)
    return Response(
        status_code=201 if outcome.status == "added" else 200,
        content_type=content_types.APPLICATION_JSON,
        body=outcome.model_dump(mode="json"),
    )


@app.delete("/v1/knowledge/articles/<article_id>")
def delete_article(article_id: str) -> dict[str, Any]:
    ctx = agent_context(app)
    require_role(ctx, *KNOWLEDGE_EDITORS)
    outcome = container().knowledge_ingestion.delete(ctx, article_id)
    metrics().add_metric(name=f"KnowledgeArticle_{outcome.status}", unit=MetricUnit.Count, value=1)
    if outcome.status == "absent" and outcome.version == 0:
        raise NotFound("article not found")
    return outcome.model_dump(mode="json")


@app.get("/v1/knowledge/search")
def search(
    q: Annotated[str, Query(min_length=1, max_length=4000)],
    k: Annotated[int, Query(ge=1, le=50)] = 5,
    product_area: Annotated[str | None, Query(pattern=PRODUCT_AREA_PATTERN)] = None,
    audience: Annotated[Literal["agent", "customer"], Query()] = "agent",
    segments: Annotated[
        str | None, Query(max_length=500, description="comma-separated customer segments")
    ] = None,
    locale: Annotated[
        str | None,
        Query(max_length=35, description="the customer's locale: their language only, own locale first"),
    ] = None,
) -> dict[str, Any]:
    """Agents see every article; `audience=customer` (with `segments`, `locale`) shows what a customer would get."""
    ctx = agent_context(app)
    require_role(ctx, *KNOWLEDGE_READERS)
    chosen = Audience(
        kind=audience, segments=frozenset(s.strip().lower() for s in (segments or "").split(",") if s.strip())
    )
    results = container().knowledge_search.search(
        ctx, q, k=k, product_area=product_area, audience=chosen, locale=locale
    )
    metrics().add_metric(name="KnowledgeSearches", unit=MetricUnit.Count, value=1)
    if results.gap_recorded:
        metrics().add_metric(name="KnowledgeGaps", unit=MetricUnit.Count, value=1)
    return results.model_dump(mode="json")


def bulk_import(items: list[Any], context: Any) -> list[Any]:
    """Import each object (or its next part) within the invocation's time; log and count what happened."""

    def time_left() -> float:
        return context.get_remaining_time_in_millis() / 1000 if context is not None else float("inf")

    reports = [container().bulk_imports.run(item, time_left) for item in items]
    for report in reports:
        logger().info(
            "knowledge import",
            extra={
                "tenant_id": report.tenant_id,
                "key": report.key,
                "part": report.part,
                "continued": report.continued,
                **report.summary.model_dump(mode="json"),
            },
        )
        metrics().add_metric(
            name="KnowledgeArticlesImported",
            unit=MetricUnit.Count,
            value=report.summary.added + report.summary.updated,
        )
    return reports


def import_parts(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The knowledge import queue: parts of large imports. A part that fails is retried (then the DLQ)."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    from deflect.knowledge.bulk_import import continuation_of

    def on_part(record: Any) -> None:
        bulk_import([continuation_of(record.body)], context)

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=on_part, processor=processor, context=context)


@logger().inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@metrics().log_metrics
@metered
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from deflect.knowledge.bulk_import import is_s3_event, is_sqs_event, objects_in

    if is_s3_event(event):
        return {"imports": [r.model_dump(mode="json") for r in bulk_import(objects_in(event), context)]}
    if is_sqs_event(event):
        return import_parts(event, context)
    return app.resolve(event, context)
