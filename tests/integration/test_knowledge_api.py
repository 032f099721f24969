"""The retrieval function on moto: article PUT/DELETE and search through API Gateway events with authorizer
claims, S3 bulk imports, and versions whose bodies are locked evidence objects."""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlencode

import pytest

from deflect.domain.models import Citation
from deflect.domain.tenancy import TenantContext
from tests.integration.insight_story import seed_tenant
from tests.knowledge_cases.fakes import HashingEmbedder

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Answer:
    status: int
    body: Any


class RetrievalWorld:
    def __init__(self, session: Any, resources: Any, container: Any, module: Any) -> None:
        from infra.local import api as local_api
        from infra.local import template as tpl

        self.session = session
        self.resources = resources
        self.container = container
        self.module = module
        self._api = local_api
        self._routes = local_api.compile_routes(
            [r for r in tpl.routes() if r.function == "RetrievalFunction"]
        )

    def call(self, method: str, path: str, *, tenant: str = "acme", groups: str = "admin", body: Any = None,
             query: dict[str, str] | None = None) -> Answer:  # fmt: skip
        from infra.local.functions import LambdaContext

        route, params = self._api.match(self._routes, method, path)
        event = self._api.rest_event(
            route,
            method=method,
            path=path,
            query=urlencode(query or {}),
            headers=[("Content-Type", "application/json")],
            body=json.dumps(body).encode() if body is not None else b"",
            path_parameters=params,
            claims={"sub": f"{tenant}-user", "custom:tenant_id": tenant, "cognito:groups": groups},
            stage="local",
        )
        result = self.module.handler(event, LambdaContext("RetrievalFunction", timeout_s=30))
        return Answer(result["statusCode"], json.loads(result["body"]) if result.get("body") else None)

    def s3_event(self, bucket: str, key: str, size: int, context: Any = None) -> dict[str, Any]:
        from infra.local.functions import LambdaContext

        event = {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": "us-east-1",
                    "eventTime": "2025-06-01T12:00:00.000Z",
                    "eventName": "ObjectCreated:Put",
                    "userIdentity": {"principalId": "AWS:ADMIN"},
                    "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                    "responseElements": {"x-amz-request-id": "r", "x-amz-id-2": "i"},
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "configurationId": "BulkImport",
                        "bucket": {
                            "name": bucket,
                            "ownerIdentity": {"principalId": "A"},
                            "arn": f"arn:aws:s3:::{bucket}",
                        },
                        "object": {
                            "key": quote_plus(key, safe="/="),
                            "size": size,
                            "eTag": "e",
                            "sequencer": "1",
                        },
                    },
                }
            ]
        }
        return self.module.handler(event, context or LambdaContext("RetrievalFunction", timeout_s=120))

    def next_part(self, context: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Hand the knowledge import queue's next message to the function, as its SQS event source would:
        (the part it asked for, the function's batch answer), or (None, None) when the queue is empty."""
        from infra.local.pollers import sqs_event

        sqs = self.session.client("sqs")
        url = self.resources.queues["KnowledgeImportQueue"]
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, AttributeNames=["All"]).get(
            "Messages", []
        )
        if not messages:
            return None, None
        answer = self.module.handler(
            sqs_event(messages, self.resources.queue_arns["KnowledgeImportQueue"]), context
        )
        if not answer["batchItemFailures"]:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])
        return json.loads(messages[0]["Body"]), answer


class RunsOutOfTime:
    """A Lambda context whose time is plentiful for the first `checks` questions, then gone: a part imports that
    many rows and one more (the import checks before each row after the first)."""

    def __init__(self, checks: int) -> None:
        from infra.local.functions import LambdaContext

        self._inner = LambdaContext("RetrievalFunction", timeout_s=120)
        self._left = checks

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def get_remaining_time_in_millis(self) -> int:
        self._left -= 1
        return 120_000 if self._left >= 0 else 0


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[RetrievalWorld]:
    import boto3
    from moto import mock_aws

    from deflect import bootstrap
    from deflect.bootstrap import Container
    from deflect.embedded.search import EmbeddedKnowledgeIndex
    from deflect.settings import Settings
    from infra.local.resources import create_all

    saved = dict(os.environ)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    try:
        with mock_aws(
            config={"stepfunctions": {"execute_state_machine": False}, "lambda": {"use_docker": False}}
        ):
            session = boto3.session.Session(region_name="us-east-1")
            resources = create_all(session, execute_state_machines=False)
            env = resources.environment("RetrievalFunction")
            os.environ.update(env)
            bootstrap.reset()
            index = EmbeddedKnowledgeIndex(tmp_path_factory.mktemp("knowledge"), HashingEmbedder())
            container = Container(Settings.from_env({**os.environ, **env}), knowledge_index=index)
            spec = importlib.util.spec_from_file_location(
                "retrieval_app_under_test", ROOT / "functions/retrieval/app.py"
            )
            module = importlib.util.module_from_spec(spec)
            assert spec.loader is not None
            spec.loader.exec_module(module)
            module.container = lambda: container  # the handler's composition root, wired to moto
            for tenant in ("acme", "acme-corp"):
                seed_tenant(container, tenant)
            yield RetrievalWorld(session, resources, container, module)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        bootstrap.reset()


ARTICLE = {
    "title": "Error SB-6001: card declined",
    "body": "# Card declined\n\nWe retry the charge after 1, 3 and 5 days.\n\n## Fix\n\nUpdate the card.",
    "product_area": "billing",
}


def test_an_admin_puts_versions_and_agents_search_them(world):
    created = world.call("PUT", "/v1/knowledge/articles/sb-6001", body=ARTICLE)
    same = world.call("PUT", "/v1/knowledge/articles/sb-6001", body=ARTICLE)
    changed = world.call(
        "PUT",
        "/v1/knowledge/articles/sb-6001",
        body={**ARTICLE, "body": ARTICLE["body"] + " Or pay by invoice."},
    )

    assert (created.status, created.body["status"], created.body["version"]) == (201, "added", 1)
    assert (same.status, same.body["status"], same.body["version"]) == (200, "unchanged", 1)
    assert (changed.body["status"], changed.body["version"]) == ("updated", 2)

    found = world.call("GET", "/v1/knowledge/search", groups="agent", query={"q": "SB-6001", "k": "3"})
    assert found.status == 200
    [top, *_] = found.body["hits"]
    assert (top["article_id"], top["version"], top["matched_identifiers"]) == ("sb-6001", 2, ["sb6001"])
    assert set(found.body) == {"hits", "best_score", "answer_threshold", "gap_recorded"}


def test_agents_cannot_edit_knowledge_and_tenants_never_see_each_other(world):
    world.call("PUT", "/v1/knowledge/articles/only-acme", body={**ARTICLE, "title": "Acme secret fix"})

    refused = world.call("PUT", "/v1/knowledge/articles/x", groups="agent", body=ARTICLE)
    assert refused.status == 403
    other = world.call(
        "GET",
        "/v1/knowledge/search",
        tenant="acme-corp",
        groups="agent",
        query={"q": "Acme secret fix SB-6001"},
    )
    assert other.status == 200 and other.body["hits"] == []
    assert other.body["gap_recorded"] is True


def test_invalid_articles_are_refused_with_field_names_and_unknown_deletes_are_404(world):
    bad = world.call(
        "PUT", "/v1/knowledge/articles/bad", body={"title": "", "body": "x", "visibility": "secret"}
    )
    assert bad.status == 422 and any("visibility" in f for f in bad.body["fields"])
    assert world.call("DELETE", "/v1/knowledge/articles/never-existed").status == 404


def test_customer_view_hides_internal_articles_that_agents_see(world):
    world.call(
        "PUT",
        "/v1/knowledge/articles/decline-macro",
        body={**ARTICLE, "visibility": "internal", "source": "macro"},
    )

    as_agent = world.call("GET", "/v1/knowledge/search", groups="agent", query={"q": "card declined retry"})
    as_customer = world.call(
        "GET",
        "/v1/knowledge/search",
        groups="agent",
        query={"q": "card declined retry", "audience": "customer"},
    )

    assert "decline-macro" in {h["article_id"] for h in as_agent.body["hits"]}
    assert "decline-macro" not in {h["article_id"] for h in as_customer.body["hits"]}


def test_a_customer_locale_searches_only_their_language_as_triage_does(world):
    german = {
        "title": "Fehler SB-7001: Export abgebrochen",
        "body": "# Export abgebrochen\n\nStarten Sie den Export erneut unter Berichte.",
        "product_area": "reports",
        "locale": "de",
    }
    world.call("PUT", "/v1/knowledge/articles/sb-7001-de", body=german)
    world.call(
        "PUT",
        "/v1/knowledge/articles/sb-7001-en",
        body={
            **german,
            "title": "Error SB-7001: export stopped",
            "body": "# Export stopped\n\nRun it again.",
            "locale": "en",
        },
    )

    def found(locale):
        query = {"q": "SB-7001", "audience": "customer", **({"locale": locale} if locale else {})}
        return {
            h["article_id"]
            for h in world.call("GET", "/v1/knowledge/search", groups="agent", query=query).body["hits"]
        }

    assert found(None) >= {"sb-7001-de", "sb-7001-en"}
    assert "sb-7001-en" not in found("de-AT") and "sb-7001-de" in found("de-AT")


def test_delete_removes_from_search_but_cited_versions_still_resolve_from_locked_evidence(world):
    world.call(
        "PUT",
        "/v1/knowledge/articles/pinned",
        body={**ARTICLE, "title": "Pinned", "body": "Refunds within 14 days."},
    )
    hit = world.call(
        "GET", "/v1/knowledge/search", groups="agent", query={"q": "Pinned refunds within 14 days"}
    ).body["hits"][0]
    world.call(
        "PUT",
        "/v1/knowledge/articles/pinned",
        body={**ARTICLE, "title": "Pinned", "body": "Refunds within 30 days."},
    )
    deleted = world.call("DELETE", "/v1/knowledge/articles/pinned")

    assert (deleted.status, deleted.body["status"], deleted.body["version"]) == (200, "deleted", 3)
    after = world.call("GET", "/v1/knowledge/search", groups="agent", query={"q": "Pinned refunds"})
    assert "pinned" not in {h["article_id"] for h in after.body["hits"]}

    ctx = TenantContext.system("acme")
    article = world.container.knowledge_articles.resolve(
        ctx, Citation(article_id="pinned", version=hit["version"], quote="Refunds within 14 days.")
    )
    assert article.version == 1 and article.body == "Refunds within 14 days."
    # The cited body is a locked object version: nobody can delete it to rewrite what was cited.
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        world.session.client("s3").delete_object(
            Bucket=world.resources.buckets["EvidenceBucket"],
            Key=article.body_ref.key,
            VersionId=article.body_ref.version_id,
        )


def test_an_object_dropped_in_the_import_bucket_is_imported_into_the_tenant_its_key_names(world):
    bucket = world.resources.buckets["KnowledgeImportBucket"]
    lines = [
        json.dumps(
            {
                "id": "bulk-1",
                "title": "Bulk invoices",
                "body": "Download invoices as PDF.",
                "product_area": "billing",
            }
        ),
        json.dumps({"id": "bulk-2", "title": "Bulk sso", "body": "Set up SAML single sign-on."}),
        json.dumps({"id": "bulk-3", "title": ""}),
    ]
    body = "\n".join(lines).encode()
    key = "tenant=globex/imports/help center.jsonl"
    seed_tenant(world.container, "globex")
    world.session.client("s3").put_object(Bucket=bucket, Key=key, Body=body)

    result = world.s3_event(bucket, key, len(body))

    [report] = result["imports"]
    assert report["tenant_id"] == "globex" and report["key"] == key
    assert (report["summary"]["added"], len(report["summary"]["rejected"])) == (2, 1)
    found = world.call(
        "GET", "/v1/knowledge/search", tenant="globex", groups="agent", query={"q": "download invoices pdf"}
    )
    assert found.body["hits"][0]["article_id"] == "bulk-1"
    again = world.s3_event(bucket, key, len(body))
    assert again["imports"][0]["summary"]["unchanged"] == 2


def test_an_object_the_import_cannot_place_is_reported_not_retried(world):
    """A key outside `tenant=…/` or naming a tenant that does not exist is rejected with the reason in the report
    (and the function's log); the invoke succeeds, so S3 does not retry it, and nothing is imported."""
    bucket = world.resources.buckets["KnowledgeImportBucket"]
    body = json.dumps({"id": "ghost-1", "title": "Ghost article", "body": "Nobody reads this."}).encode()
    s3 = world.session.client("s3")
    reasons = {}
    for key in ("loose/help.jsonl", "tenant=Not_Valid/help.jsonl", "tenant=initech/help.jsonl"):
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        [report] = world.s3_event(bucket, key, len(body))["imports"]
        assert report["summary"]["added"] == 0
        [rejection] = report["summary"]["rejected"]
        reasons[key] = rejection["reason"]

    assert "tenant={tenant_id}/" in reasons["loose/help.jsonl"]
    assert "tenant id must match" in reasons["tenant=Not_Valid/help.jsonl"]
    assert "unknown tenant 'initech'" in reasons["tenant=initech/help.jsonl"]
    found = world.call(
        "GET", "/v1/knowledge/search", tenant="initech", groups="agent", query={"q": "ghost article"}
    )
    assert found.status == 404


def test_a_token_naming_a_tenant_that_does_not_exist_reads_and_writes_nothing(world):
    from datetime import UTC, datetime

    from deflect.knowledge.search import KnowledgeGaps

    ghost = world.call(
        "GET", "/v1/knowledge/search", tenant="ghost-tenant", groups="agent", query={"q": "hello"}
    )
    unknown = world.call(
        "GET", "/v1/knowledge/search", tenant="initech", groups="agent", query={"q": "hello"}
    )
    assert ghost.status == unknown.status == 404 and ghost.body == unknown.body
    assert "gap_recorded" not in ghost.body
    written = world.container.store.query(
        TenantContext.system("ghost-tenant"), KnowledgeGaps.partition("ghost-tenant", datetime.now(UTC)), ""
    )
    assert written == []
    refused = world.call("PUT", "/v1/knowledge/articles/x", tenant="ghost-tenant", body=ARTICLE)
    assert refused.status == 404


def _help_center(prefix: str, count: int) -> bytes:
    rows = [
        {
            "id": f"{prefix}-{n}",
            "title": f"Part article {n}",
            "body": f"How to configure widget {n} for teams.",
        }
        for n in range(count)
    ]
    return "\n".join(json.dumps(r) for r in rows).encode()


def test_an_import_longer_than_one_invocation_goes_on_in_parts_until_every_article_is_in(world):
    bucket = world.resources.buckets["KnowledgeImportBucket"]
    key, body = "tenant=partsco/big.jsonl", _help_center("big", 11)
    ctx = seed_tenant(world.container, "partsco")
    world.session.client("s3").put_object(Bucket=bucket, Key=key, Body=body)

    [first] = world.s3_event(bucket, key, len(body), RunsOutOfTime(3))["imports"]

    assert first["continued"] and (first["summary"]["added"], first["summary"]["next_row"]) == (4, 4)
    asked = []
    while (part := world.next_part(RunsOutOfTime(3)))[0] is not None:
        message, answer = part
        assert answer == {"batchItemFailures": []}
        asked.append((message["tenant_id"], message["key"], message["part"], message["start_row"]))
    # 11 rows, 4 a part: two more parts, each going on where the one before stopped; every article once.
    assert asked == [("partsco", key, 2, 4), ("partsco", key, 3, 8)]
    heads = [world.container.knowledge_articles.head(ctx, f"big-{n}") for n in range(11)]
    assert [h.current_version if h else None for h in heads] == [1] * 11
    found = world.call(
        "GET", "/v1/knowledge/search", tenant="partsco", groups="agent", query={"q": "configure widget 10"}
    )
    assert found.body["hits"][0]["article_id"] == "big-10"


def test_a_part_of_an_object_replaced_meanwhile_stops_and_the_new_upload_starts_over(world):
    bucket = world.resources.buckets["KnowledgeImportBucket"]
    key = "tenant=replaceco/help.jsonl"
    ctx = seed_tenant(world.container, "replaceco")
    s3 = world.session.client("s3")
    old = _help_center("old", 6)
    s3.put_object(Bucket=bucket, Key=key, Body=old)
    [first] = world.s3_event(bucket, key, len(old), RunsOutOfTime(1))["imports"]
    assert first["continued"] and first["summary"]["added"] == 2

    new = _help_center("new", 3)
    s3.put_object(Bucket=bucket, Key=key, Body=new)  # S3 sends an event of its own for this
    message, answer = world.next_part(RunsOutOfTime(100))

    assert message["start_row"] == 2 and answer == {"batchItemFailures": []}
    assert world.next_part(RunsOutOfTime(100)) == (None, None)  # the stale part is done with, not retried
    assert world.container.knowledge_articles.head(ctx, "old-2") is None  # nothing of the old rest was read
    [fresh] = world.s3_event(bucket, key, len(new))["imports"]
    assert fresh["summary"]["added"] == 3 and not fresh["continued"]


def test_a_queued_part_naming_another_tenants_object_is_refused(world):
    from deflect.adapters.sqs_queue import SqsWorkQueue

    bucket = world.resources.buckets["KnowledgeImportBucket"]
    key, body = "tenant=victimco/help.jsonl", _help_center("victim", 2)
    victim = seed_tenant(world.container, "victimco")
    seed_tenant(world.container, "attackco")
    world.session.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
    queue = SqsWorkQueue(world.session.client("sqs"), world.resources.queues["KnowledgeImportQueue"])
    queue.send(TenantContext.system("attackco"), {"bucket": bucket, "key": key, "start_row": 0})

    message, answer = world.next_part(RunsOutOfTime(100))

    assert message["key"] == key and len(answer["batchItemFailures"]) == 1  # retried, then the DLQ (alarmed)
    assert world.container.knowledge_articles.head(victim, "victim-0") is None
