"""Two writers of one article whose index writes land out of order (two Lambda invocations; the local stack and
`deflect kb import` on one data directory): customers are never served a superseded or deleted version, whichever
flush comes last, with the embedded index and with OpenSearch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from deflect.adapters.opensearch_index import OpenSearchKnowledgeIndex
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemoryEvidenceStore, MemorySupportStore
from deflect.embedded.search import EmbeddedKnowledgeIndex
from deflect.knowledge.articles import ArticleRepository
from deflect.knowledge.ingestion import KnowledgeIngestion
from deflect.knowledge.models import ArticleInput, Audience
from deflect.knowledge.search import KnowledgeSearch
from tests.knowledge_cases.fakes import HashingEmbedder
from tests.unit.opensearch_fake import DocumentStore

ACME = TenantContext(tenant_id="acme", actor="agent:kb-editor", roles=frozenset({"admin"}), via="jwt")
OLD = "# Refunds\n\nAnnual plans can be refunded within 14 days of payment."
NEW = "# Refunds\n\nAnnual plans can be refunded within 30 days of payment."
QUESTION = "refund annual plan days"


def refunds(body: str) -> ArticleInput:
    return ArticleInput(title="Refund policy", body=body, product_area="billing")


class Shared:
    """What every writer shares: DynamoDB and S3 (and, here, one clock that moves on with each call)."""

    def __init__(self) -> None:
        self.store = MemorySupportStore()
        self.evidence = MemoryEvidenceStore()
        self.at = datetime(2025, 6, 1, tzinfo=UTC)

    def now(self) -> datetime:
        self.at += timedelta(seconds=1)
        return self.at

    def writer(self, index) -> KnowledgeIngestion:
        return KnowledgeIngestion(self.store, self.evidence, index, now=self.now)

    def head(self):
        return ArticleRepository(self.store, self.evidence).head(ACME, "refunds")


def customer_hits(index, shared: Shared) -> list:
    search = KnowledgeSearch(index, shared.store, threshold_for=lambda ctx: 0.0)
    return search.search(ACME, QUESTION, audience=Audience(kind="customer")).hits


def test_an_older_version_flushed_last_does_not_replace_the_newer_one(tmp_path):
    shared = Shared()
    a = shared.writer(EmbeddedKnowledgeIndex(tmp_path, HashingEmbedder()))  # process A
    b = shared.writer(EmbeddedKnowledgeIndex(tmp_path, HashingEmbedder()))  # process B

    _, slow = a._stage(ACME, "refunds", refunds(OLD))  # A's v1 is committed; its index write waits
    b.put(ACME, "refunds", refunds(NEW))  # B's v2 is committed and indexed
    a._flush(ACME, [slow])  # A's index write lands last

    reader = EmbeddedKnowledgeIndex(tmp_path, HashingEmbedder())  # a third process, e.g. the next `make run`
    [hit] = customer_hits(reader, shared)
    assert (hit.version, "30 days" in hit.text) == (2, True)
    assert (shared.head().current_version, shared.head().indexed_version) == (2, 2)


def test_a_deleted_article_stays_deleted_when_an_earlier_put_is_flushed_after_the_delete(tmp_path):
    shared = Shared()
    a = shared.writer(EmbeddedKnowledgeIndex(tmp_path, HashingEmbedder()))
    b = shared.writer(EmbeddedKnowledgeIndex(tmp_path, HashingEmbedder()))
    a.put(ACME, "refunds", refunds(OLD))

    _, slow = a._stage(ACME, "refunds", refunds(NEW))  # v2 committed, index write waits
    assert b.delete(ACME, "refunds").version == 3
    a._flush(ACME, [slow])

    assert customer_hits(EmbeddedKnowledgeIndex(tmp_path, HashingEmbedder()), shared) == []

    # Made again under the same id, it is searchable again: versions go on counting after the tombstone.
    again = b.put(ACME, "refunds", refunds(NEW))
    [hit] = customer_hits(EmbeddedKnowledgeIndex(tmp_path, HashingEmbedder()), shared)
    assert (again.status, again.version, hit.version) == ("added", 4, 4)


def test_after_the_article_store_is_reset_under_a_kept_index_new_versions_are_indexed(tmp_path):
    """The local stack: moto starts empty on every `make run`, the index directory stays."""
    before = Shared()
    writer = before.writer(EmbeddedKnowledgeIndex(tmp_path, HashingEmbedder()))
    for body in (OLD, NEW, OLD + " Ask billing."):
        writer.put(ACME, "refunds", refunds(body))  # the index has seen v3

    after = Shared()
    after.at = before.at + timedelta(hours=1)
    added = after.writer(EmbeddedKnowledgeIndex(tmp_path, HashingEmbedder())).put(
        ACME, "refunds", refunds(NEW)
    )

    [hit] = customer_hits(EmbeddedKnowledgeIndex(tmp_path, HashingEmbedder()), after)
    assert (added.version, hit.version, "30 days" in hit.text) == (1, 1, True)


@pytest.mark.parametrize("service", ["es", "aoss"])
def test_opensearch_keeps_the_newest_version_and_the_deletion_whichever_flush_lands_last(service):
    shared = Shared()
    client = DocumentStore()  # one collection, two Lambda invocations
    a = shared.writer(OpenSearchKnowledgeIndex(client, None, service=service))
    b = shared.writer(OpenSearchKnowledgeIndex(client, None, service=service))

    _, slow = a._stage(ACME, "refunds", refunds(OLD))
    b.put(ACME, "refunds", refunds(NEW))
    a._flush(ACME, [slow])
    assert client.versions("refunds") == {2: 1}
    assert (shared.head().current_version, shared.head().indexed_version) == (2, 2)

    _, slow = a._stage(ACME, "refunds", refunds(OLD))  # v3, index write waits
    b.delete(ACME, "refunds")  # tombstone v4
    a._flush(ACME, [slow])
    assert client.docs == {}

    b.put(ACME, "refunds", refunds(NEW))
    assert client.versions("refunds") == {5: 1}


@pytest.mark.parametrize("service", ["es", "aoss"])
def test_opensearch_flushes_at_the_same_moment_leave_only_the_newer_version(service):
    """Both writers read the index before either writes (neither sees the other's version): the newer one stays."""
    shared = Shared()
    client = DocumentStore()
    a_index = OpenSearchKnowledgeIndex(client, None, service=service)
    b_index = OpenSearchKnowledgeIndex(client, None, service=service)
    a, b = shared.writer(a_index), shared.writer(b_index)
    _, slow = a._stage(ACME, "refunds", refunds(OLD))  # v1
    _, fast = b._stage(ACME, "refunds", refunds(NEW))  # v2
    write = a_index._bulk

    def b_flushes_between_a_reading_and_writing(actions):
        a_index._bulk = write  # once
        b._flush(ACME, [fast])
        write(actions)

    a_index._bulk = b_flushes_between_a_reading_and_writing
    a._flush(ACME, [slow])

    assert client.versions("refunds") == {2: 1}
    assert (shared.head().current_version, shared.head().indexed_version) == (2, 2)


def test_opensearch_after_an_article_store_reset_the_version_made_later_stays():
    """A lower version made later (the store was restored or reset) wins over what the index held, as in flush."""
    shared = Shared()
    client = DocumentStore()
    a_index = OpenSearchKnowledgeIndex(client, None, service="aoss")
    b_index = OpenSearchKnowledgeIndex(client, None, service="aoss")
    writer = shared.writer(a_index)
    for body in (OLD, NEW):
        writer.put(ACME, "refunds", refunds(body))  # v2 indexed
    after = Shared()
    after.at = shared.at + timedelta(hours=1)
    _, again = after.writer(b_index)._stage(ACME, "refunds", refunds(OLD))  # v1 of the new store, made later
    _, late = writer._stage(ACME, "refunds", refunds(OLD + " Ask billing."))  # v3 of the old store
    write = b_index._bulk

    def old_store_flushes_meanwhile(actions):
        b_index._bulk = write
        writer._flush(ACME, [late])
        write(actions)

    b_index._bulk = old_store_flushes_meanwhile
    after.writer(b_index)._flush(ACME, [again])

    assert client.versions("refunds") == {1: 1}
