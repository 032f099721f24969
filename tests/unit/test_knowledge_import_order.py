"""Imports whose outcome does not depend on delivery order or repetition: an older help center export processed
late does not undo a newer one, an object naming an article twice imports the first row only, S3 delivering the
same object again changes nothing, and text that is not UTF-8 is refused instead of published garbled."""

from __future__ import annotations

import json

import pytest

from deflect.domain.models import TenantConfig
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemoryEvidenceStore, MemorySupportStore
from deflect.embedded.search import EmbeddedKnowledgeIndex
from deflect.knowledge.articles import ArticleRepository
from deflect.knowledge.bulk_import import BulkImports, ImportObject
from deflect.knowledge.importers import read_object
from deflect.knowledge.ingestion import ImportRow, KnowledgeIngestion
from deflect.knowledge.models import ArticleInput, Rejection
from deflect.repositories import TenantConfigs
from tests.knowledge_cases.fakes import HashingEmbedder

ACME = TenantContext(tenant_id="acme", actor="s3-import:kb", roles=frozenset({"service"}), via="system")


class World:
    def __init__(self) -> None:
        self.store = MemorySupportStore()
        self.evidence = MemoryEvidenceStore()
        self.ingestion = KnowledgeIngestion(
            self.store, self.evidence, EmbeddedKnowledgeIndex(None, HashingEmbedder())
        )
        self.articles = ArticleRepository(self.store, self.evidence)

    def import_object(self, key: str, body: bytes):
        return self.ingestion.import_rows(ACME, read_object(key, body))


@pytest.fixture
def world() -> World:
    return World()


def zendesk_export(body: str, updated_at: str) -> bytes:
    article = {"id": 7, "title": "Refunds", "body": body, "updated_at": updated_at}
    return json.dumps({"articles": [article]}).encode()


def test_an_older_zendesk_export_processed_late_does_not_undo_the_newer_one(world):
    newer = world.import_object(
        "tenant=acme/hc-06-02.json", zendesk_export("<p>Refunds within 30 days.</p>", "2025-06-02T10:00:00Z")
    )
    older = world.import_object(
        "tenant=acme/hc-06-01.json", zendesk_export("<p>Refunds within 14 days.</p>", "2025-06-01T10:00:00Z")
    )

    assert newer.added == 1
    assert (older.added, older.updated, older.unchanged) == (0, 0, 0)
    [skipped] = older.rejected
    assert skipped.source == "tenant=acme/hc-06-01.json#articles[1]"
    assert "2025-06-01T10:00:00" in skipped.reason and "later edit of 2025-06-02T10:00:00" in skipped.reason
    current = world.articles.read(ACME, "zd-7")
    assert (current.version, "30 days" in current.body) == (1, True)

    # An editor's PUT keeps the source's edit time: the old export is still refused after it...
    world.ingestion.put(ACME, "zd-7", ArticleInput(title="Refunds", body="<p>Refunds within 31 days.</p>"))
    assert world.import_object(
        "tenant=acme/hc-06-01.json", zendesk_export("<p>Refunds within 14 days.</p>", "2025-06-01T10:00:00Z")
    ).rejected
    # ...and a newer export still updates the article.
    latest = world.import_object(
        "tenant=acme/hc-06-03.json", zendesk_export("<p>Refunds within 45 days.</p>", "2025-06-03T10:00:00Z")
    )
    assert latest.updated == 1 and "45 days" in world.articles.read(ACME, "zd-7").body


def test_an_object_naming_an_article_twice_imports_the_first_row_and_rejects_the_repeat(world):
    jsonl = (
        b'{"id":"a1","title":"Refunds","body":"Refunds within 14 days."}\n'
        b'{"id":"a1","title":"Refunds","body":"Refunds within 30 days."}\n'
    )

    rows = list(read_object("tenant=acme/kb.jsonl", jsonl))
    summary = world.import_object("tenant=acme/kb.jsonl", jsonl)

    assert isinstance(rows[0], ImportRow) and rows[1] == Rejection(
        source="tenant=acme/kb.jsonl:2",
        reason="article id 'a1' repeats tenant=acme/kb.jsonl:1: only the first row of an article is imported",
    )
    assert (summary.added, [r.source for r in summary.rejected]) == (1, ["tenant=acme/kb.jsonl:2"])
    assert "14 days" in world.articles.read(ACME, "a1").body
    assert len(world.articles.versions(ACME, "a1")) == 1


def test_s3_delivering_the_same_object_again_writes_no_new_version(world):
    world.store.put(
        ACME, TenantConfigs(world.store).save_write(TenantConfig(tenant_id="acme", display_name="Acme"))
    )
    jsonl = (
        b'{"id":"a1","title":"Refunds","body":"Refunds within 14 days."}\n'
        b'{"id":"a2","title":"Invoices","body":"Invoices are sent monthly."}\n'
        b'{"id":"a1","title":"Refunds","body":"Refunds within 30 days."}\n'
    )
    imports = BulkImports(world.ingestion, lambda bucket, key, etag: (jsonl, '"etag-1"'))
    event = ImportObject(bucket="kb", key="tenant=acme/kb.jsonl", size=len(jsonl))

    first = imports.run(event).summary
    again = imports.run(event).summary  # S3 delivers at least once

    assert (first.added, len(first.rejected)) == (2, 1)
    assert (again.added, again.updated, again.unchanged, len(again.rejected)) == (0, 0, 2, 1)
    assert [len(world.articles.versions(ACME, a)) for a in ("a1", "a2")] == [1, 1]


def test_a_file_that_is_not_utf8_is_rejected_with_the_reason_instead_of_imported_garbled(world):
    cp1252 = "# Café hours\n\nOpen 9 – 5 on weekdays.".encode("cp1252")

    summary = world.import_object("tenant=acme/cafe.md", cp1252)

    assert summary.added == 0
    [rejected] = summary.rejected
    assert rejected.source == "tenant=acme/cafe.md"
    assert rejected.reason.startswith("not UTF-8 text (byte 0xe9 at offset 5)")
    assert world.articles.head(ACME, "cafe") is None
