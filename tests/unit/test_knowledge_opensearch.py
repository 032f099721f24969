"""OpenSearch adapter at its boundary: the exact requests it sends, what it does with the answers, and a lexical
round trip through openmock. Bedrock embeddings through botocore's Stubber."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from openmock import openmock

from deflect.adapters.bedrock_embeddings import BedrockEmbeddings
from deflect.adapters.opensearch_index import (
    NEVER,
    OpenSearchKnowledgeIndex,
    document,
    index_body,
    opensearch_client,
)
from deflect.domain.errors import Throttled, TransientFailure
from deflect.domain.tenancy import TenantContext
from deflect.knowledge.chunking import chunk_article
from deflect.knowledge.models import ArticleInput, Audience, SearchRequest

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
ACME = TenantContext.system("acme")


class Indices:
    def __init__(self, calls: list) -> None:
        self.calls = calls

    def exists(self, index):
        self.calls.append(("indices.exists", index))
        return True

    def create(self, index, body):  # pragma: no cover - exists() answers True
        self.calls.append(("indices.create", index, body))

    def refresh(self, index):
        self.calls.append(("indices.refresh", index))


class RecordingClient:
    """Records every request; answers with canned responses."""

    def __init__(self, *, search=None, msearch=None) -> None:
        self.calls: list = []
        self.indices = Indices(self.calls)
        self._search = search or {"hits": {"hits": []}}
        self._msearch = msearch or {"responses": [{"hits": {"hits": []}}, {"hits": {"hits": []}}]}

    def search(self, index, body):
        self.calls.append(("search", index, body))
        return self._search

    def msearch(self, body):
        self.calls.append(("msearch", body))
        return self._msearch

    def bulk(self, body):
        self.calls.append(("bulk", body))
        return {"errors": False, "items": []}


class FixedEmbeddings:
    dimensions = 3

    def embed(self, texts):
        return [[1.0, 0.0, 0.0] for _ in texts]


def chunks(tenant="acme", article_id="refunds", **meta):
    article = ArticleInput(title="Refund policy", body="# Refunds\n\nError SB-6001 explained.", **meta)
    return chunk_article(
        tenant_id=tenant,
        article_id=article_id,
        version=2,
        meta=article.meta(),
        body=article.body,
        updated_at=NOW,
    )


REQUEST = SearchRequest(
    text="what is SB-6001",
    k=3,
    product_area="billing",
    audience=Audience(segments=frozenset({"team", "business"})),
    now=NOW,
)
FILTER = [
    {"term": {"tenant_id": "acme"}},
    {"range": {"expires_epoch": {"gt": int(NOW.timestamp())}}},
    {"term": {"product_area": "billing"}},
    {
        "bool": {
            "should": [
                {"term": {"visibility": "public"}},
                {
                    "bool": {
                        "filter": [
                            {"term": {"visibility": "segments"}},
                            {"terms": {"segments": ["business", "team"]}},
                        ]
                    }
                },
            ],
            "minimum_should_match": 1,
        }
    },
]
MUST_NOT = [{"term": {"superseded": True}}]


def test_a_hybrid_search_is_one_msearch_whose_both_halves_carry_every_filter():
    client = RecordingClient()
    OpenSearchKnowledgeIndex(client, FixedEmbeddings(), candidates=20).search(ACME, REQUEST)

    [(kind, body)] = client.calls
    assert kind == "msearch"
    assert body == [
        {"index": "deflect-knowledge"},
        {
            "size": 20,
            "_source": {"excludes": ["embedding"]},
            "query": {
                "bool": {
                    "must": [
                        {
                            "bool": {
                                "should": [
                                    {
                                        "multi_match": {
                                            "query": "what is SB-6001",
                                            "fields": ["title^2", "headings^1.5", "text"],
                                            "type": "most_fields",
                                        }
                                    },
                                    {"terms": {"identifiers": ["sb6001"], "boost": 10.0}},
                                ],
                                "minimum_should_match": 1,
                            }
                        }
                    ],
                    "filter": FILTER,
                    "must_not": MUST_NOT,
                }
            },
        },
        {"index": "deflect-knowledge"},
        {
            "size": 20,
            "_source": {"excludes": ["embedding"]},
            "query": {
                "knn": {
                    "embedding": {
                        "vector": [1.0, 0.0, 0.0],
                        "k": 20,
                        "filter": {"bool": {"filter": FILTER, "must_not": MUST_NOT}},
                    }
                }
            },
        },
    ]


def test_agents_get_no_visibility_filter_but_keep_the_tenant_and_expiry_filters():
    client = RecordingClient()
    agent = SearchRequest(text="refunds", audience=Audience(kind="agent"), now=NOW)
    OpenSearchKnowledgeIndex(client, None).search(ACME, agent)

    [(kind, index, body)] = client.calls
    assert (kind, index) == ("search", "deflect-knowledge")
    assert body["query"]["bool"]["filter"] == [
        {"term": {"tenant_id": "acme"}},
        {"range": {"expires_epoch": {"gt": int(NOW.timestamp())}}},
    ]
    assert body["query"]["bool"]["must_not"] == MUST_NOT


def hit(doc_id, score, **source):
    base = document(chunks(product_area="billing")[0], None)
    return {"_id": doc_id, "_score": score, "_source": {**base, **source}}


def test_answers_are_fused_and_anything_the_filters_should_have_excluded_is_dropped():
    lexical = [
        hit("acme:refunds:v2:0", 12.0),
        hit("x", 30.0, tenant_id="acme-corp", article_id="theirs", chunk_id="theirs:v1:0"),
        hit("y", 25.0, visibility="internal", article_id="internal", chunk_id="internal:v1:0"),
        hit("z", 25.0, superseded=True, article_id="old", chunk_id="old:v1:0"),
        hit(
            "w",
            25.0,
            expires_epoch=int((NOW - timedelta(seconds=1)).timestamp()),
            article_id="gone",
            chunk_id="gone:v1:0",
        ),
    ]
    dense = [
        hit("acme:refunds:v2:0", 0.9),
        hit("s", 0.7, article_id="stale", chunk_id="stale:v1:0", review_by="2025-01-01"),
    ]
    client = RecordingClient(msearch={"responses": [{"hits": {"hits": lexical}}, {"hits": {"hits": dense}}]})

    hits = OpenSearchKnowledgeIndex(client, FixedEmbeddings()).search(ACME, REQUEST)

    assert [h.article_id for h in hits] == ["refunds", "stale"]
    refunds, stale = hits
    assert refunds.version == 2 and refunds.matched_identifiers == ["sb6001"]
    assert refunds.dense == pytest.approx(0.8)  # cosinesimil score (1 + cos) / 2 = 0.9
    assert refunds.lexical == 12.0
    assert stale.stale and not refunds.stale
    assert 0.0 <= stale.score < refunds.score <= 1.0


def test_es_flush_indexes_with_stable_ids_deletes_stale_chunks_and_refreshes():
    old = {"_id": "acme:refunds:v1:0", "_source": {"tenant_id": "acme", "article_id": "refunds"}}
    prefix_cousin = {
        "_id": "acme:refunds-2:v1:0",
        "_source": {"tenant_id": "acme", "article_id": "refunds-2"},
    }
    client = RecordingClient(search={"hits": {"hits": [old, prefix_cousin]}})
    index = OpenSearchKnowledgeIndex(client, FixedEmbeddings())

    index.replace_article(ACME, "refunds", chunks())
    assert client.calls == []  # nothing is sent before flush
    index.flush()

    assert client.calls[0] == ("indices.exists", "deflect-knowledge")
    assert client.calls[1] == (
        "search",
        "deflect-knowledge",
        {
            "size": 1000,
            "_source": ["tenant_id", "article_id", "article_version", "ordinal", "updated_at"],
            "query": {
                "bool": {"filter": [{"term": {"tenant_id": "acme"}}, {"term": {"article_id": "refunds"}}]}
            },
            "sort": [{"article_version": {"order": "asc"}}, {"ordinal": {"order": "asc"}}],
        },
    )
    (_, actions) = client.calls[2]
    assert actions[0] == {"index": {"_index": "deflect-knowledge", "_id": "acme:refunds:v2:0"}}
    assert actions[1]["tenant_id"] == "acme" and actions[1]["embedding"] == [1.0, 0.0, 0.0]
    assert actions[1]["expires_epoch"] == NEVER and actions[1]["identifiers"] == ["sb6001"]
    assert actions[2:] == [{"delete": {"_index": "deflect-knowledge", "_id": "acme:refunds:v1:0"}}]
    assert client.calls[3] == ("indices.refresh", "deflect-knowledge")


def test_serverless_flush_lets_the_collection_choose_ids_and_never_calls_refresh():
    old = {"_id": "generated-1", "_source": {"tenant_id": "acme", "article_id": "refunds"}}
    client = RecordingClient(search={"hits": {"hits": [old]}})
    index = OpenSearchKnowledgeIndex(client, FixedEmbeddings(), service="aoss")

    index.replace_article(ACME, "refunds", chunks())
    index.flush()

    (_, actions) = client.calls[2]
    assert actions[0] == {"index": {"_index": "deflect-knowledge"}}
    assert actions[-1] == {"delete": {"_index": "deflect-knowledge", "_id": "generated-1"}}
    assert all(call[0] != "indices.refresh" for call in client.calls)


def test_the_index_template_in_infra_matches_what_the_adapter_creates():
    template = json.loads((ROOT / "infra/opensearch/knowledge-index-template.json").read_text())
    assert template["template"] == index_body(1024)
    assert template["index_patterns"] == ["deflect-knowledge*"]


def test_opensearch_errors_become_domain_errors():
    from opensearchpy.exceptions import ConnectionTimeout, TransportError

    class Failing(RecordingClient):
        def __init__(self, error):
            super().__init__()
            self.error = error

        def search(self, index, body):
            raise self.error

    with pytest.raises(Throttled):
        OpenSearchKnowledgeIndex(Failing(TransportError(429, "too_many_requests", {})), None).search(
            ACME, REQUEST
        )
    with pytest.raises(TransientFailure):
        OpenSearchKnowledgeIndex(Failing(ConnectionTimeout("TIMEOUT", "read timed out", None)), None).search(
            ACME, REQUEST
        )


@pytest.mark.parametrize("service", ["es", "aoss"])
def test_requests_are_sigv4_signed_for_the_managed_or_serverless_service(service):
    import requests

    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name="eu-west-1"
    )
    client = opensearch_client(
        f"https://search.example.{service}.amazonaws.com",
        service=service,
        region="eu-west-1",
        session=session,
    )
    auth = client.transport.kwargs["http_auth"]

    prepared = requests.Request(
        "POST", f"https://search.example.{service}.amazonaws.com/_msearch", data=b"{}"
    ).prepare()
    signed = auth(prepared)
    assert f"/eu-west-1/{service}/aws4_request" in signed.headers["Authorization"]
    assert signed.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")


@openmock
def test_lexical_round_trip_through_openmock_keeps_tenants_and_audiences_apart():
    from opensearchpy import OpenSearch

    client = OpenSearch(hosts=[{"host": "localhost", "port": 9200}])
    index = OpenSearchKnowledgeIndex(client, None, service="es")
    corp = TenantContext.system("acme-corp")
    index.replace_article(ACME, "refunds", chunks())
    index.replace_article(ACME, "playbook", chunks(article_id="playbook", visibility="internal"))
    index.replace_article(ACME, "old", chunks(article_id="old", superseded_by="refunds"))
    index.replace_article(corp, "refunds", chunks(tenant="acme-corp"))
    index.flush()

    customer = SearchRequest(text="refund", now=NOW)
    assert [(h.article_id, h.version) for h in index.search(ACME, customer)] == [("refunds", 2)]
    agent = SearchRequest(text="refund", audience=Audience(kind="agent"), now=NOW)
    assert {h.article_id for h in index.search(ACME, agent)} == {"refunds", "playbook"}
    assert [h.article_id for h in index.search(corp, agent)] == ["refunds"]

    index.remove_article(ACME, "refunds")
    index.flush()
    assert index.search(ACME, customer) == []
    assert [h.article_id for h in index.search(corp, customer)] == ["refunds"]


# ---------------------------------------------------------------------------------------------- Bedrock


def bedrock():
    return boto3.client(
        "bedrock-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def answer(vector):
    raw = json.dumps({"embedding": vector, "inputTextTokenCount": 3}).encode()
    return {"body": StreamingBody(io.BytesIO(raw), len(raw)), "contentType": "application/json"}


def test_titan_v2_requests_carry_dimensions_and_normalize_and_vectors_come_back_in_order():
    client = bedrock()
    embeddings = BedrockEmbeddings(client, dimensions=256, workers=1)
    with Stubber(client) as stub:
        for text, vector in (("first", [3.0, 4.0]), ("second", [0.0, 2.0])):
            stub.add_response(
                "invoke_model",
                answer(vector),
                {
                    "modelId": "amazon.titan-embed-text-v2:0",
                    "body": json.dumps({"inputText": text, "dimensions": 256, "normalize": True}),
                    "contentType": "application/json",
                    "accept": "application/json",
                },
            )
        vectors = embeddings.embed(["first", "second"])
        stub.assert_no_pending_responses()

    assert vectors == [pytest.approx([0.6, 0.8]), pytest.approx([0.0, 1.0])]


def test_the_model_id_is_configurable_and_v1_sends_only_the_text():
    client = bedrock()
    embeddings = BedrockEmbeddings(client, "amazon.titan-embed-text-v1", workers=1)
    with Stubber(client) as stub:
        stub.add_response(
            "invoke_model",
            answer([1.0, 0.0]),
            {
                "modelId": "amazon.titan-embed-text-v1",
                "body": json.dumps({"inputText": "hello"}),
                "contentType": "application/json",
                "accept": "application/json",
            },
        )
        assert embeddings.embed(["hello"]) == [[1.0, 0.0]]
    assert embeddings.dimensions == 1536


def test_bedrock_throttling_becomes_throttled():
    client = bedrock()
    with Stubber(client) as stub:
        stub.add_client_error("invoke_model", service_error_code="ThrottlingException", http_status_code=429)
        with pytest.raises(Throttled):
            BedrockEmbeddings(client, workers=1).embed(["hello"])


def test_unsupported_titan_v2_dimensions_are_refused():
    with pytest.raises(ValueError):
        BedrockEmbeddings(bedrock(), dimensions=300)


def test_review_dates_are_sent_as_dates():
    doc = document(chunks(review_by=date(2026, 1, 31))[0], None)
    assert doc["review_by"] == "2026-01-31" and "embedding" not in doc
