"""Writers of different articles never refuse each other: the API's PUT and DELETE, the S3 trigger and queued import
parts run in parallel (the retrieval function has no reserved concurrency), and each change is audited on its
article's own chain, so none of them waits for, or loses to, another article's audit event.

Parallel writers are made certain rather than left to timing: every writer still writing reads its chain's tail
and locks its event before any of them commits (`Rounds`), or another article's write lands while the import locks
its event (`WritesMeanwhile`). The store reports a cancelled transaction item by item, as DynamoDB does, which is
what lets the audit log tell a lost link (retried) from a lost version (refused).
"""

from __future__ import annotations

import threading
from collections import Counter

from deflect.domain.errors import Conflict
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemoryEvidenceStore, MemorySupportStore
from deflect.embedded.search import EmbeddedKnowledgeIndex
from deflect.knowledge.ingestion import ImportRow, KnowledgeIngestion, Unpublished
from deflect.knowledge.models import ArticleInput
from deflect.services.audit import AuditLog
from tests.knowledge_cases.fakes import HashingEmbedder

ACME = TenantContext(tenant_id="acme", actor="agent:acme-admin", roles=frozenset({"admin"}), via="jwt")
IMPORTER = TenantContext(
    tenant_id="acme", actor="s3-import:kb-bucket", roles=frozenset({"service"}), via="system"
)
WRITERS = 8


class DynamoLikeStore(MemorySupportStore):
    """As DynamoSupportStore: a cancelled transaction names each item's reason (ConditionalCheckFailed or None)."""

    def transact(self, ctx, writes):
        writes = list(writes)
        with self._lock:
            try:
                return super().transact(ctx, writes)
            except Conflict:
                raise Conflict("transaction cancelled", reasons=[self._reason(w) for w in writes]) from None

    def _reason(self, write) -> str:
        current = self._live((write.pk, write.sk))
        expect = getattr(write, "expect", None)
        failed = (expect == "new" and current is not None) or (
            expect == "version" and (current is None or current.version != write.expected_version)
        )
        return "ConditionalCheckFailed" if failed else "None"


class Rounds:
    """Every writer still writing meets the others at its audit event's locked put (its chain's tail read, nothing
    committed yet); all go on together. The worst case of parallel writers, every time."""

    def __init__(self, writers: int) -> None:
        self._met = threading.Condition()
        self._writing = writers
        self._arrived = 0
        self._round = 0

    def arrive(self) -> None:
        with self._met:
            mine = self._round
            self._arrived += 1
            self._go_on_if_all_met()
            # A guard against a hang if the rounds were miscounted, not a measure of anything.
            assert self._met.wait_for(lambda: self._round != mine, timeout=60), "writers never met"

    def done(self) -> None:
        with self._met:
            self._writing -= 1
            self._go_on_if_all_met()

    def _go_on_if_all_met(self) -> None:
        if self._writing and self._arrived >= self._writing:
            self._round, self._arrived = self._round + 1, 0
            self._met.notify_all()


class MeetingEvidence(MemoryEvidenceStore):
    def __init__(self, rounds: Rounds) -> None:
        super().__init__()
        self.rounds = rounds

    def put_locked(self, ctx, key, body, kind):
        if kind == "audit":
            self.rounds.arrive()
        return super().put_locked(ctx, key, body, kind)


def article(n: int) -> ArticleInput:
    return ArticleInput.model_validate(
        {"title": f"Setting {n}", "body": f"# Setting {n}\n\nTurn on setting {n}."}
    )


def events_by_article(audit: AuditLog, ctx: TenantContext) -> Counter:
    """Knowledge events per article, over every chain `deflect audit verify --tenant` checks."""
    found: Counter = Counter()
    for chain in audit.audited_tickets(ctx):
        _, events = audit.load(ctx, chain)
        found.update(e.payload["article_id"] for e in events if e and e.type.startswith("knowledge."))
    return found


def test_parallel_puts_of_different_articles_all_succeed_with_one_event_each():
    rounds = Rounds(WRITERS)
    store, evidence = DynamoLikeStore(), MeetingEvidence(rounds)
    audit = AuditLog(store, evidence)
    ingestion = KnowledgeIngestion(
        store, evidence, EmbeddedKnowledgeIndex(None, HashingEmbedder()), audit=audit
    )
    refused: dict[str, str] = {}

    def writer(n: int) -> None:
        try:
            ingestion.put(ACME, f"kb-{n}", article(n))
        except Conflict as error:  # what the API answers 409 for
            refused[f"kb-{n}"] = error.detail
        finally:
            rounds.done()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert refused == {}, f"{len(refused)} of {WRITERS} PUTs of different articles refused"
    assert events_by_article(audit, ACME) == {f"kb-{n}": 1 for n in range(WRITERS)}
    reports = audit.verify_tenant(ACME)
    assert all(r.ok for r in reports)
    # A lost append leaves its locked event behind for good: there is none to report.
    assert [w for r in reports for w in r.warnings] == []


class WritesMeanwhile(MemoryEvidenceStore):
    """While the import locks its withdrawal event, an agent's PUT of another article lands, on every attempt: the
    API and other import parts keep writing."""

    def __init__(self) -> None:
        super().__init__()
        self.ingestion: KnowledgeIngestion | None = None
        self.landed: list[str] = []

    def put_locked(self, ctx, key, body, kind):
        if kind == "audit" and b"knowledge.withdrawn" in body and len(self.landed) < 10:
            n = len(self.landed)
            self.landed.append(self.ingestion.put(ACME, f"kb-other-{n}", article(n)).status)
        return super().put_locked(ctx, key, body, kind)


def test_an_import_withdraws_an_unpublished_article_while_other_articles_are_written():
    store, evidence = DynamoLikeStore(), WritesMeanwhile()
    index = EmbeddedKnowledgeIndex(None, HashingEmbedder())
    audit = AuditLog(store, evidence)
    evidence.ingestion = ingestion = KnowledgeIngestion(store, evidence, index, audit=audit)
    ingestion.import_rows(IMPORTER, [ImportRow("kb-legacy", article(99), source="help.jsonl:1")])

    summary = ingestion.import_rows(
        IMPORTER,
        [Unpublished(source="help.jsonl:1", reason="draft article (draft: true)", article_id="kb-legacy")],
    )

    [report] = summary.rejected
    assert "was deleted" in report.reason, report.reason  # not "audit append kept racing"
    assert ingestion.articles.head(IMPORTER, "kb-legacy").deleted
    assert "kb-legacy" not in index.indexed_articles(IMPORTER)  # customers are no longer answered from it
    assert evidence.landed and set(evidence.landed) == {"added"}
    counts = events_by_article(audit, IMPORTER)
    assert counts["kb-legacy"] == 2 and all(counts[f"kb-other-{n}"] == 1 for n in range(len(evidence.landed)))
    assert all(r.ok and not r.warnings for r in audit.verify_tenant(IMPORTER))
