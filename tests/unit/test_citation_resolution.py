"""A citation in an answer resolves to the exact article version it quotes, however the article marks up the quoted
words (bold, code, wrapped lines), and never to text the article hides."""

from __future__ import annotations

import pytest

from deflect.domain.errors import NotFound
from deflect.domain.models import Citation
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemoryEvidenceStore, MemorySupportStore
from deflect.embedded.model import ExtractiveComposer
from deflect.embedded.search import EmbeddedKnowledgeIndex
from deflect.knowledge.articles import ArticleRepository
from deflect.knowledge.chunking import chunk_article
from deflect.knowledge.importers import read_path
from deflect.knowledge.ingestion import ImportRow, KnowledgeIngestion
from deflect.knowledge.models import ArticleInput
from deflect.knowledge.search import KnowledgeSearch
from deflect.triage import grounding
from tests.knowledge_cases.fakes import HELP_CENTER, HashingEmbedder
from tests.unit.triage_fakes import BagOfWords

ACME = TenantContext(tenant_id="acme", actor="agent:kb-editor", roles=frozenset({"admin"}), via="jwt")


class World:
    def __init__(self) -> None:
        self.store = MemorySupportStore()
        self.evidence = MemoryEvidenceStore()
        self.index = EmbeddedKnowledgeIndex(None, HashingEmbedder())
        self.ingestion = KnowledgeIngestion(self.store, self.evidence, self.index)
        self.search = KnowledgeSearch(self.index, self.store, threshold_for=lambda _: 0.0)
        self.articles = ArticleRepository(self.store, self.evidence)


@pytest.fixture
def world() -> World:
    return World()


def test_every_quotable_unit_of_the_demo_help_center_resolves(world):
    quoted = 0
    for row in read_path(HELP_CENTER):
        assert isinstance(row, ImportRow), row
        outcome = world.ingestion.put(ACME, row.article_id, row.article)
        article = world.articles.read(ACME, row.article_id)
        chunks = chunk_article(
            tenant_id=ACME.tenant_id,
            article_id=row.article_id,
            version=outcome.version,
            meta=article.meta,
            body=article.body,
            updated_at=article.updated_at,
        )
        # Exactly what the composer may quote: the units of each passage as grounding cleans it.
        for chunk in chunks:
            for unit in grounding.units(grounding.clean_text(chunk.text)[0]):
                citation = Citation(article_id=row.article_id, version=outcome.version, quote=unit.text)
                assert world.articles.resolve(ACME, citation).version == outcome.version, unit.text
                quoted += 1
    assert quoted >= 300


BODIES = {
    "bold": "# Export a report\n\nTo export a report, open **Reports** and click **Export CSV**.\n",
    "wrapped": "# Export a report\n\nTo export a report, open Reports\nand click Export CSV in the top bar.\n",
    "code": "# Export a report\n\nTo export a report, run `deflect export --csv` from the Reports page.\n",
}


@pytest.mark.parametrize("markup", list(BODIES))
def test_the_citations_of_a_fresh_answer_resolve(world, markup):
    world.ingestion.put(ACME, "export", ArticleInput(title="Export a report", body=BODIES[markup]))
    question = "How do I export a report?"
    hits = world.search.search(ACME, question).hits
    composer = ExtractiveComposer(BagOfWords(), min_passage_score=0.0, min_unit_similarity=0.0)
    draft = composer.compose(ACME, question, hits).draft

    assert draft is not None and draft.citations
    assert grounding.verify(draft, [grounding.clean_passage(h) for h in hits]).ok
    for citation in draft.citations:
        assert world.articles.resolve(ACME, citation).version == 1


def test_a_quote_of_hidden_or_absent_text_does_not_resolve(world):
    body = (
        "# Refunds\n\nMonthly plans are **not** refundable.\n\n"
        '<div style="display:none">Annual plans are refunded at any time.</div>\n'
    )
    world.ingestion.put(ACME, "refunds", ArticleInput(title="Refunds", body=body))

    assert world.articles.resolve(
        ACME, Citation(article_id="refunds", version=1, quote="Monthly plans are not refundable.")
    )
    for quote in ("Annual plans are refunded at any time.", "Monthly plans are refundable."):
        with pytest.raises(NotFound):
            world.articles.resolve(ACME, Citation(article_id="refunds", version=1, quote=quote))
