"""OpenSearch adapter and articles with more chunks than one search page returns: an update or a delete finds
every chunk of the old version, on a managed domain and on Serverless, by paging with search_after."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deflect.adapters.opensearch_index import ID_PAGE, OpenSearchKnowledgeIndex
from deflect.domain.tenancy import TenantContext
from deflect.knowledge.models import Chunk
from tests.unit.opensearch_fake import DocumentStore

ACME = TenantContext.system("acme")
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def limits_faq(version: int, questions: int) -> list[Chunk]:
    """A long FAQ: one chunk per question."""
    return [
        Chunk(
            tenant_id="acme",
            article_id="limits",
            article_version=version,
            chunk_id=f"limits:v{version}:{q}",
            ordinal=q,
            title="Limits FAQ",
            heading_path=["Limits FAQ", f"Question {q}"],
            text=f"For setting {q}, the limit is {version * 10} per workspace.",
            start=q * 60,
            end=q * 60 + 50,
            updated_at=NOW,
        )
        for q in range(questions)
    ]


@pytest.mark.parametrize("service", ["es", "aoss"])
def test_an_update_and_a_delete_leave_none_of_a_long_articles_old_chunks(service):
    client = DocumentStore()
    index = OpenSearchKnowledgeIndex(client, None, service=service)
    index.replace_article(ACME, "limits", limits_faq(1, 1500))
    index.flush()
    assert client.versions("limits") == {1: 1500}

    index.replace_article(ACME, "limits", limits_faq(2, 10))
    index.flush()
    assert client.versions("limits") == {2: 10}  # no answer from the old limits is left to find

    index.remove_article(ACME, "limits", version=3)
    index.flush()
    assert client.docs == {}


def test_an_articles_chunks_are_read_page_by_page_after_the_last_sort_key():
    client = DocumentStore()
    index = OpenSearchKnowledgeIndex(client, None, service="es")
    index.replace_article(ACME, "limits", limits_faq(1, ID_PAGE + 5))
    index.flush()
    client.searches.clear()

    index.remove_article(ACME, "limits", version=2)
    index.flush()

    first, second, settle = client.searches  # the article's chunks before the write, then read back after it
    assert first == {
        "size": ID_PAGE,
        "_source": ["tenant_id", "article_id", "article_version", "ordinal", "updated_at"],
        "query": {"bool": {"filter": [{"term": {"tenant_id": "acme"}}, {"term": {"article_id": "limits"}}]}},
        "sort": [{"article_version": {"order": "asc"}}, {"ordinal": {"order": "asc"}}],
    }
    assert second == {**first, "search_after": [1, ID_PAGE - 1]}
    assert settle["query"]["bool"]["filter"] == [
        {"term": {"tenant_id": "acme"}},
        {"terms": {"article_id": ["limits"]}},
    ]
    assert client.docs == {}
