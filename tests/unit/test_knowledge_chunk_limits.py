"""An article nobody could be answered from is refused with a reason, and no article makes more chunks (each one
embedded while its author waits) than MAX_CHUNKS: one-line sections are merged with their siblings first."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deflect.domain.errors import MalformedPayload
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemoryEvidenceStore, MemorySupportStore
from deflect.embedded.search import EmbeddedKnowledgeIndex
from deflect.knowledge.chunking import MAX_CHUNKS, chunk_article
from deflect.knowledge.ingestion import ImportRow, KnowledgeIngestion
from deflect.knowledge.models import ArticleInput
from deflect.knowledge.search import KnowledgeSearch
from tests.knowledge_cases.fakes import HashingEmbedder

ACME = TenantContext(tenant_id="acme", actor="agent:kb-editor", roles=frozenset({"admin"}), via="jwt")


class World:
    def __init__(self) -> None:
        self.store = MemorySupportStore()
        self.embedder = HashingEmbedder()
        self.index = EmbeddedKnowledgeIndex(None, self.embedder)
        self.evidence = MemoryEvidenceStore()
        self.ingestion = KnowledgeIngestion(self.store, self.evidence, self.index)
        self.search = KnowledgeSearch(self.index, self.store, threshold_for=lambda _: 0.0)


@pytest.fixture
def world() -> World:
    return World()


def chunks_of(body: str, body_format: str = "markdown"):
    article = ArticleInput(title="Guide", body=body, body_format=body_format)
    return chunk_article(
        tenant_id="acme",
        article_id="guide",
        version=1,
        meta=article.meta(),
        body=body,
        updated_at=datetime(2025, 3, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    "body",
    [
        "<script>track()</script><!-- todo: write this -->",
        "<div hidden>Draft: refunds for everyone.</div>",
        "<p> </p>",
    ],
)
def test_an_html_article_with_nothing_visible_is_refused_and_not_added(world, body):
    with pytest.raises(MalformedPayload, match="no visible text"):
        world.ingestion.put(ACME, "blank", ArticleInput(title="Blank", body=body, body_format="html"))

    assert world.ingestion.articles.head(ACME, "blank") is None
    assert world.search.search(ACME, "Blank").hits == []
    assert world.evidence._objects == {}  # no locked copy of a body nobody can use


def test_an_import_reports_the_invisible_article_and_adds_the_rest(world):
    rows = [
        ImportRow(
            "blank", ArticleInput(title="Blank", body="<style>p{}</style>", body_format="html"), "kb.jsonl#1"
        ),
        ImportRow(
            "refunds", ArticleInput(title="Refunds", body="Annual plans are refundable for 30 days."), "#2"
        ),
    ]
    summary = world.ingestion.import_rows(ACME, rows)

    assert summary.added == 1
    assert [(r.source, "no visible text" in r.reason) for r in summary.rejected] == [("kb.jsonl#1", True)]


def test_a_page_of_one_line_sections_is_merged_into_few_chunks(world):
    body = "".join(f"## Code {i}\nx\n" for i in range(40_000))[:400_000]
    outcome = world.ingestion.put(ACME, "codes", ArticleInput(title="Codes", body=body))

    assert outcome.status == "added" and outcome.chunks <= MAX_CHUNKS
    assert world.embedder.embedded <= MAX_CHUNKS  # embedding work bounded, not one call per heading


def test_short_sibling_steps_share_a_chunk_and_a_heading_with_no_text_joins_the_next_section():
    body = (
        "# Export\n\n## Steps\n\n### Step 1\n\nOpen Settings.\n\n### Step 2\n\nClick Export.\n\n"
        "## Formats\n\nCSV files open in any spreadsheet; Parquet files keep column types for analysts.\n"
    )
    chunks = chunks_of(body)

    assert [c.heading_path for c in chunks] == [["Export", "Steps"], ["Export", "Formats"]]
    assert chunks[0].text.startswith("# Export")  # the empty heading is part of the passage it introduces
    assert "Open Settings." in chunks[0].text and "Click Export." in chunks[0].text


def test_an_article_that_would_still_make_too_many_chunks_is_refused_naming_the_limit(world):
    body = "".join(
        f"## Question {i}\n\nThe answer to question {i} is long enough to stand alone as a passage.\n"
        for i in range(MAX_CHUNKS + 100)
    )
    with pytest.raises(MalformedPayload, match=f"at most {MAX_CHUNKS}") as refused:
        world.ingestion.put(ACME, "faq", ArticleInput(title="FAQ", body=body))

    assert "split it" in refused.value.detail
    assert world.ingestion.articles.head(ACME, "faq") is None
    assert world.embedder.embedded == 0
