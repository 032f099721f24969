"""Ingestion and search services: versions, tombstones, unchanged content, citations that stay true, gaps."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from deflect.domain import keys
from deflect.domain.errors import Conflict, EvidenceTampered, MalformedPayload, NotFound, TransientFailure
from deflect.domain.models import Citation, DecisionPolicy, TenantConfig
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemoryEvidenceStore, MemorySupportStore
from deflect.embedded.search import EmbeddedKnowledgeIndex
from deflect.knowledge.articles import ArticleRepository, version_sk
from deflect.knowledge.importers import read_path
from deflect.knowledge.ingestion import KnowledgeIngestion
from deflect.knowledge.models import ArticleInput, Audience, Rejection
from deflect.knowledge.search import KnowledgeSearch, focus
from deflect.repositories import TenantConfigs
from tests.knowledge_cases.fakes import HELP_CENTER, HashingEmbedder

ACME = TenantContext(tenant_id="acme", actor="agent:kb-editor", roles=frozenset({"admin"}), via="jwt")
V1 = "# Refunds\n\nAnnual plans can be refunded within 14 days of payment."
V2 = "# Refunds\n\nAnnual plans can be refunded within 30 days of the first annual payment."


class World:
    def __init__(self) -> None:
        self.store = MemorySupportStore()
        self.evidence = MemoryEvidenceStore()
        self.embedder = HashingEmbedder()
        self.index = EmbeddedKnowledgeIndex(None, self.embedder)
        self.clock = [datetime.now(UTC).replace(microsecond=0)]
        self.ingestion = KnowledgeIngestion(self.store, self.evidence, self.index, now=lambda: self.clock[0])
        self.search = KnowledgeSearch(self.index, self.store, now=lambda: self.clock[0])
        self.articles = ArticleRepository(self.store, self.evidence)


@pytest.fixture
def world() -> World:
    return World()


def refund(body: str = V1, **meta) -> ArticleInput:
    return ArticleInput(title="Refund policy", body=body, product_area="billing", **meta)


def test_a_put_adds_then_updates_and_identical_content_does_no_work(world):
    added = world.ingestion.put(ACME, "refunds", refund())
    calls = len(world.embedder.calls)
    again = world.ingestion.put(ACME, "refunds", refund())
    updated = world.ingestion.put(ACME, "refunds", refund(V2))

    assert (added.status, added.version) == ("added", 1)
    assert (again.status, again.version) == ("unchanged", 1)
    assert (updated.status, updated.version) == ("updated", 2)
    assert len(world.embedder.calls) == calls + 1  # only the update embedded anything
    [hit] = world.search.search(ACME, "refund annual plans").hits
    assert (hit.article_id, hit.version) == ("refunds", 2)
    assert "30 days" in hit.text


def test_earlier_citations_still_resolve_to_the_text_they_cited_after_an_update(world):
    world.ingestion.put(ACME, "refunds", refund())
    cited = world.search.search(ACME, "refund").hits[0]
    citation = Citation(article_id=cited.article_id, version=cited.version, quote="within 14 days")

    world.ingestion.put(ACME, "refunds", refund(V2))
    world.ingestion.delete(ACME, "refunds")

    pinned = world.articles.resolve(ACME, citation)
    assert pinned.version == 1 and "within 14 days of payment" in pinned.body
    assert world.articles.read(ACME, "refunds", 2).body == V2
    with pytest.raises(NotFound):
        world.articles.resolve(ACME, citation.model_copy(update={"version": 2}))  # v2 never said that
    with pytest.raises(NotFound):
        world.articles.read(ACME, "refunds")  # the current version is a tombstone


def test_article_metadata_and_bodies_live_under_the_tenant(world):
    world.ingestion.put(ACME, "refunds", refund())
    record = world.articles.version(ACME, "refunds", 1)

    assert world.store.get(ACME, keys.article_pk("acme", "refunds"), version_sk(1)) is not None
    assert record.body_ref.key.startswith("tenant=acme/knowledge/articles/refunds/v000001-")
    stored = json.loads(world.evidence.read(ACME, record.body_ref))
    assert (stored["version"], stored["body"]) == (1, V1)


def test_a_changed_body_object_is_detected_when_read(world):
    world.ingestion.put(ACME, "refunds", refund())
    record = world.articles.version(ACME, "refunds", 1)
    world.evidence.tamper(record.body_ref.key, b'{"body": "Refunds any time, no questions asked."}')

    with pytest.raises(EvidenceTampered):
        world.articles.read(ACME, "refunds", 1)


def test_delete_is_a_tombstone_that_leaves_search_and_a_later_put_revives_the_article(world):
    world.ingestion.put(ACME, "refunds", refund())
    deleted = world.ingestion.delete(ACME, "refunds")
    again = world.ingestion.delete(ACME, "refunds")

    assert (deleted.status, deleted.version) == ("deleted", 2)
    assert again.status == "absent"
    assert world.search.search(ACME, "refund annual plans").hits == []
    assert [v.deleted for v in world.articles.versions(ACME, "refunds")] == [False, True]

    revived = world.ingestion.put(ACME, "refunds", refund())
    assert (revived.status, revived.version) == ("added", 3)
    assert world.search.search(ACME, "refund annual plans").hits[0].version == 3


def test_an_index_failure_after_the_write_is_repaired_by_putting_the_same_content_again(world, monkeypatch):
    def broken() -> None:
        raise TransientFailure("index unavailable")

    monkeypatch.setattr(world.index, "flush", broken)
    with pytest.raises(TransientFailure):
        world.ingestion.put(ACME, "refunds", refund())
    monkeypatch.undo()
    world.index._pending.clear()  # what a crashed process would have lost

    repaired = world.ingestion.put(ACME, "refunds", refund())
    assert (repaired.status, repaired.version, repaired.chunks) == ("unchanged", 1, 1)
    assert world.search.search(ACME, "refund annual plans").hits[0].version == 1
    assert world.articles.head(ACME, "refunds").indexed_version == 1


def test_a_concurrent_writer_that_read_an_older_head_gets_a_conflict(world, monkeypatch):
    world.ingestion.put(ACME, "refunds", refund())
    stale_head = world.articles.head(ACME, "refunds")
    world.ingestion.put(ACME, "refunds", refund(V2))
    monkeypatch.setattr(world.ingestion.articles, "head", lambda ctx, article_id: stale_head)

    with pytest.raises(Conflict):
        world.ingestion.put(ACME, "refunds", refund(V2 + "\n\nMore."))


def test_invalid_article_ids_are_refused(world):
    with pytest.raises(MalformedPayload):
        world.ingestion.put(ACME, "no spaces/allowed", refund())


def test_an_import_reports_added_updated_unchanged_and_rejected(world):
    first = world.ingestion.import_rows(ACME, read_path(HELP_CENTER))
    seen: list[str] = []
    rows = [*read_path(HELP_CENTER), Rejection(source="x.md", reason="broken")]
    second = world.ingestion.import_rows(
        ACME, rows, progress=lambda row, outcome: seen.append(type(row).__name__)
    )

    assert first.added >= 25 and first.rejected == [] and first.chunks > first.added
    assert (second.added, second.updated, second.unchanged) == (0, 0, first.added)
    assert second.rejected == [Rejection(source="x.md", reason="broken")]
    assert len(seen) == len(rows)


def test_an_import_with_a_time_limit_stops_with_what_it_did_searchable_and_goes_on_where_it_stopped(world):
    rows = list(read_path(HELP_CENTER))
    clock = iter([60.0] * 4 + [0.0])  # plenty for four more rows, then nothing
    first = world.ingestion.import_rows(ACME, rows, time_left=lambda: next(clock))

    assert first.next_row == 5 and first.added == 5
    # what the part staged was flushed before it stopped: its articles can be cited now
    assert all(world.articles.head(ACME, r.article_id).indexed_version == 1 for r in rows[:5])
    assert world.articles.head(ACME, rows[5].article_id) is None

    rest = world.ingestion.import_rows(ACME, rows, start_row=first.next_row, time_left=lambda: 60.0)
    assert rest.next_row is None and (rest.added, rest.unchanged) == (len(rows) - 5, 0)


def test_an_import_with_a_time_limit_counts_the_embedding_time_of_what_it_has_staged(world):
    """Embeddings are made when staged articles are flushed (with Bedrock, most of an import's time): the first
    article is flushed alone to measure that, and the import stops while the staged ones still fit."""

    seconds = [0.0]  # the import's clock: staging takes no time, each flush 0.2 s

    class SlowFlush:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def flush(self):
            seconds[0] += 0.2
            self.inner.flush()

    ingestion = KnowledgeIngestion(world.store, world.evidence, SlowFlush(world.index), timer=lambda: seconds[0])
    rows = list(read_path(HELP_CENTER))
    part = ingestion.import_rows(ACME, rows, time_left=lambda: 0.5, reserve_s=0.0)

    # The first was flushed alone and took 0.2 s, so the import counts 0.2 s per staged article: with two staged,
    # a fourth row would need 0.6 s of the 0.5 s. (Without measuring the flush it would have gone on to the end.)
    assert (part.added, part.next_row) == (3, 3)
    assert all(world.articles.head(ACME, r.article_id).indexed_version == 1 for r in rows[:3])


def test_an_import_out_of_time_still_moves_forward_one_row(world):
    rows = list(read_path(HELP_CENTER))
    part = world.ingestion.import_rows(ACME, rows, start_row=3, time_left=lambda: 0.0)

    assert (part.added, part.next_row) == (1, 4)
    assert world.articles.head(ACME, rows[3].article_id).indexed_version == 1


def test_searches_below_the_answer_threshold_are_recorded_as_redacted_gaps(world):
    world.ingestion.put(ACME, "refunds", refund())
    answered = world.search.search(ACME, "refunds annual plans refunded within days of payment")
    missed = world.search.search(
        ACME, "Can jane.doe@example.com export her calendar?", product_area="billing"
    )

    assert not answered.gap_recorded
    assert missed.gap_recorded and missed.best_score < missed.answer_threshold
    [gap] = world.search.gaps.month(ACME, world.clock[0])
    assert gap.product_area == "billing" and gap.tenant_id == "acme"
    assert "jane.doe@example.com" not in gap.query_redacted and "export her calendar" in gap.query_redacted


def test_a_caller_that_answered_from_a_weak_hit_records_no_gap_and_one_that_could_not_records_one(world):
    # Triage searches without recording, drafts, and only then knows whether the question went unanswered.
    world.ingestion.put(ACME, "refunds", refund())
    strong = world.search.search(ACME, "refunds annual plans refunded within days of payment", record_gap=False)
    weak = world.search.search(ACME, "Can jane.doe@example.com export her calendar?", record_gap=False)

    assert world.search.record_unanswered(ACME, "refunds annual plans", strong) is False
    assert world.search.record_unanswered(ACME, "Can jane.doe@example.com export her calendar?", weak) is True
    [gap] = world.search.gaps.month(ACME, world.clock[0])
    assert "jane.doe@example.com" not in gap.query_redacted and "export her calendar" in gap.query_redacted


def test_the_answer_threshold_comes_from_the_tenants_policy(world):
    world.store.put(ACME, TenantConfigs(world.store).save_write(
        TenantConfig(tenant_id="acme", display_name="Acme", policy=DecisionPolicy(answer_threshold=0.0))
    ))  # fmt: skip
    world.ingestion.put(ACME, "refunds", refund())

    results = world.search.search(ACME, "calendar export")
    assert results.answer_threshold == 0.0 and not results.gap_recorded


def test_customer_searches_through_the_service_keep_internal_articles_out(world):
    world.ingestion.put(ACME, "refunds", refund())
    world.ingestion.put(ACME, "refund-macro", refund(visibility="internal", source="macro"))

    assert [h.article_id for h in world.search.search(ACME, "refund annual").hits] == ["refunds"]
    agent = world.search.search(ACME, "refund annual", audience=Audience(kind="agent"))
    assert {h.article_id for h in agent.hits} == {"refunds", "refund-macro"}


def test_greetings_and_sign_offs_are_not_part_of_the_question():
    message = (
        "Hi there,\nI hope you're doing well. How do I rotate an API key without downtime? "
        "Thanks in advance!\nCheers, Sam"
    )
    assert focus(message) == "How do I rotate an API key without downtime?"
    assert focus("Thanks!") == "Thanks!"  # nothing else to keep


def test_review_dates_in_the_past_flag_results_as_stale(world):
    world.ingestion.put(ACME, "refunds", refund(review_by=(world.clock[0] - timedelta(days=1)).date()))
    [hit] = world.search.search(ACME, "refund annual plans").hits
    assert hit.stale and hit.ref().stale
