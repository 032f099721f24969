"""After an upgrade that changes the chunking rules, `deflect kb reindex` re-chunks what the index holds from the
stored versions: text indexed under the old rules (here, a paragraph the article hides) stops being searchable,
no article gets a new version, another tenant's index is untouched, and articles deleted meanwhile leave it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from deflect.adapters import opensearch_index
from deflect.adapters.opensearch_index import OpenSearchKnowledgeIndex
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemoryEvidenceStore, MemorySupportStore
from deflect.embedded.search import EmbeddedKnowledgeIndex
from deflect.knowledge import ingestion
from deflect.knowledge.articles import ArticleRepository
from deflect.knowledge.chunking import chunk_article
from deflect.knowledge.ingestion import KnowledgeIngestion
from deflect.knowledge.models import ArticleInput, Audience
from deflect.knowledge.search import KnowledgeSearch
from tests.knowledge_cases.fakes import HashingEmbedder
from tests.unit.opensearch_fake import DocumentStore

ACME = TenantContext(tenant_id="acme", actor="cli:kb:reindex", roles=frozenset({"admin"}), via="cli")
GLOBEX = TenantContext(tenant_id="globex", actor="cli:kb:reindex", roles=frozenset({"admin"}), via="cli")
SECRET = "Email your password to refunds@outside.example for a fast refund"
HTML = (
    "<h1>Refund policy</h1><p>Annual plans can be refunded within 14 days of payment.</p>"
    "<div hidden>{secret}.</div>"
)


def refunds() -> ArticleInput:
    return ArticleInput(title="Refund policy", body=HTML.format(secret=SECRET), body_format="html")


class World:
    def __init__(self, index) -> None:
        self.store, self.evidence = MemorySupportStore(), MemoryEvidenceStore()
        self.at = datetime(2025, 6, 1, tzinfo=UTC)
        self.index = index
        self.ingestion = KnowledgeIngestion(self.store, self.evidence, index, now=self.now)

    def now(self) -> datetime:
        self.at += timedelta(seconds=1)
        return self.at

    def indexed_before_the_hidden_html_rule(self, ctx: TenantContext, article_id: str) -> None:
        """Put the article, then leave in the index what an older release made of it: the hidden paragraph as
        text (the same version and time, as that release indexed it)."""
        put = self.ingestion.put(ctx, article_id, refunds())
        record = ArticleRepository(self.store, self.evidence).version(ctx, article_id, put.version)
        old_rules = HTML.format(secret=f"</div><p>{SECRET}.</p><div>")
        chunks = chunk_article(
            tenant_id=ctx.tenant_id,
            article_id=article_id,
            version=put.version,
            meta=refunds().meta(),
            body=old_rules,
            updated_at=record.updated_at,
        )
        self.index.replace_article(ctx, article_id, chunks, version=put.version, updated_at=record.updated_at)
        self.index.flush()

    def versions(self, ctx: TenantContext, article_id: str) -> list[int]:
        return [
            v.article_version for v in ArticleRepository(self.store, self.evidence).versions(ctx, article_id)
        ]


def customer_sees(world: World, ctx: TenantContext, text: str) -> bool:
    search = KnowledgeSearch(world.index, world.store, threshold_for=lambda _ctx: 0.0)
    hits = search.search(
        ctx, "refund password email", audience=Audience(kind="customer"), record_gap=False
    ).hits
    return any(text in hit.text for hit in hits)


def test_reindex_stops_serving_text_an_older_release_indexed_and_writes_no_new_version():
    world = World(EmbeddedKnowledgeIndex(None, HashingEmbedder()))
    world.indexed_before_the_hidden_html_rule(ACME, "refunds")
    assert customer_sees(world, ACME, SECRET)
    bodies_before = len(world.evidence._objects)

    summary = world.ingestion.reindex(ACME)

    assert (summary.reindexed, summary.removed) == (1, [])
    assert not customer_sees(world, ACME, SECRET)
    assert customer_sees(world, ACME, "refunded within 14 days")
    # Nothing was written to the article store or the locked bodies: citations resolve as before.
    assert world.versions(ACME, "refunds") == [1]
    assert len(world.evidence._objects) == bodies_before


def test_reindex_reads_and_writes_only_the_callers_tenant():
    world = World(EmbeddedKnowledgeIndex(None, HashingEmbedder()))
    world.indexed_before_the_hidden_html_rule(ACME, "refunds")
    world.indexed_before_the_hidden_html_rule(GLOBEX, "refunds")

    assert world.index.indexed_articles(ACME) == {"refunds": 1}
    world.ingestion.reindex(ACME)

    assert not customer_sees(world, ACME, SECRET)
    assert customer_sees(world, GLOBEX, SECRET)  # globex's operator runs its own reindex
    assert world.ingestion.reindex(GLOBEX).reindexed == 1
    assert not customer_sees(world, GLOBEX, SECRET)


def test_articles_the_store_no_longer_has_leave_the_index(tmp_path):
    """The local stack: moto starts empty on every `make run` while the index directory stays."""
    before = World(EmbeddedKnowledgeIndex(tmp_path, HashingEmbedder()))
    before.indexed_before_the_hidden_html_rule(ACME, "refunds")
    after = World(EmbeddedKnowledgeIndex(tmp_path, HashingEmbedder()))  # a new, empty article store
    assert customer_sees(after, ACME, "refunded within 14 days")

    summary = after.ingestion.reindex(ACME)

    assert (summary.reindexed, summary.removed) == (0, ["refunds"])
    assert not customer_sees(after, ACME, "refunded within 14 days")
    assert EmbeddedKnowledgeIndex(tmp_path, HashingEmbedder()).indexed_articles(ACME) == {}


def test_a_deleted_article_the_index_still_holds_leaves_it():
    client = DocumentStore()  # OpenSearch keeps no record of deletions
    world = World(OpenSearchKnowledgeIndex(client, None, service="aoss"))
    world.indexed_before_the_hidden_html_rule(ACME, "refunds")
    leftover = {k: dict(v) for k, v in client.docs.items()}
    world.ingestion.delete(ACME, "refunds")
    client.docs.update(leftover)  # a delete that reached DynamoDB but whose index write was lost

    summary = world.ingestion.reindex(ACME)

    assert (summary.reindexed, summary.removed) == (0, ["refunds"])
    assert client.docs == {}


def test_an_article_left_with_no_visible_text_is_taken_out_and_the_reason_reported(monkeypatch):
    world = World(EmbeddedKnowledgeIndex(None, HashingEmbedder()))
    world.indexed_before_the_hidden_html_rule(ACME, "refunds")
    # An article whose only text is hidden, stored by an older release that indexed hidden text.
    only_hidden = ArticleInput(title="Promo", body=f"<div hidden>{SECRET}.</div>", body_format="html")

    def older_release(**article):
        return chunk_article(**{**article, "body": f"<p>{SECRET}.</p>"})

    monkeypatch.setattr(ingestion, "chunk_article", older_release)
    world.ingestion.put(ACME, "promo", only_hidden)
    monkeypatch.undo()
    assert customer_sees(world, ACME, SECRET)

    summary = world.ingestion.reindex(ACME)

    assert (summary.reindexed, summary.removed) == (1, ["promo"])
    assert "visible text" in summary.refused["promo"]
    assert not customer_sees(world, ACME, SECRET)
    assert world.versions(ACME, "promo") == [1]  # the stored version stays, for any citation of it


@pytest.mark.parametrize("service", ["es", "aoss"])
def test_opensearch_reindex_pages_through_every_article_of_the_tenant_only(service, monkeypatch):
    monkeypatch.setattr(opensearch_index, "ID_PAGE", 2)  # several pages with a handful of chunks
    client = DocumentStore()
    world = World(OpenSearchKnowledgeIndex(client, None, service=service))
    for article_id in ("refunds", "refunds-2", "refunds-3"):
        world.indexed_before_the_hidden_html_rule(ACME, article_id)
    world.indexed_before_the_hidden_html_rule(GLOBEX, "refunds")

    assert world.index.indexed_articles(ACME) == {"refunds": 1, "refunds-2": 1, "refunds-3": 1}
    summary = world.ingestion.reindex(ACME)

    assert summary.reindexed == 3
    texts = {(d["tenant_id"], d["article_id"]): [] for d in client.docs.values()}
    for doc in client.docs.values():
        texts[(doc["tenant_id"], doc["article_id"])].append(doc["text"])
    assert all(SECRET not in t for key, found in texts.items() if key[0] == "acme" for t in found)
    assert any(SECRET in t for t in texts[("globex", "refunds")])
    # Every listing request was filtered to the caller's tenant.
    listings = [b for b in client.searches if len(b["query"]["bool"]["filter"]) == 1]
    assert listings and all(
        b["query"]["bool"]["filter"] == [{"term": {"tenant_id": "acme"}}] for b in listings
    )
    assert any("search_after" in b for b in listings)


def test_an_article_whose_stored_version_cannot_be_read_leaves_the_index():
    world = World(EmbeddedKnowledgeIndex(None, HashingEmbedder()))
    world.indexed_before_the_hidden_html_rule(ACME, "refunds")
    articles = ArticleRepository(world.store, world.evidence)
    head = articles.head(ACME, "refunds")
    # HEAD names a version whose record is missing (a restore that brought back HEAD but not the versions).
    world.store.put(ACME, ArticleRepository.head_write(head.model_copy(update={"current_version": 7})))

    summary = world.ingestion.reindex(ACME)

    assert summary.removed == ["refunds"] and "not found" in summary.refused["refunds"]
    assert not customer_sees(world, ACME, "refunded within 14 days")
