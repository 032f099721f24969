"""Ingestion: a PUT makes a new version, a DELETE a tombstone, an import many of either; unchanged content does
no work. Order of effects: locked body → one DynamoDB transaction (HEAD guard + new version) → search index →
HEAD records the indexed version. A failure after the transaction leaves HEAD.indexed_version behind, and the
next PUT of the same content repairs the index instead of answering "unchanged".

Writers of one article can reach the index in any order, so every index write names its version (a tombstone's
too) and the index keeps the newest. An import row that says when its source last edited the article is refused
when the article already holds a later edit: an old export processed late does not undo a newer one.

An import row whose source says the article is not published (a draft, unpublished, archived) is never imported:
it is reported, and a published article of that id is deleted as a DELETE would delete it (a tombstone version
by the importer, the index told), so customers' answers stop quoting it. The same rule on edit times applies: an
old export saying "draft" does not remove a newer published edit, and once a newer export said "draft", an older
one saying "published" does not bring the article back. Importing it published again later adds it again.

Every change customers can notice is audited in the same transaction as the version it writes, on the article's
own chain `knowledge-<article id>`: `knowledge.published` (new, or back after a delete), `knowledge.updated`,
`knowledge.withdrawn` (deleted, or unpublished at the import's source). One event per article change, however many
chunks it has; "unchanged" and index repairs are not changes. One chain per article, not per tenant: writers of
different articles (the API, the S3 trigger and queued import parts run in parallel) then never race for the same
link, as they never race for the same version; only writers of one article contend, and lose on its version anyway.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from deflect.domain.errors import Conflict, MalformedPayload, NotFound
from deflect.domain.models import utcnow
from deflect.domain.tenancy import TenantContext
from deflect.knowledge.articles import ArticleRepository
from deflect.knowledge.chunking import chunk_article
from deflect.knowledge.models import (
    ARTICLE_ID_PATTERN,
    ArticleHead,
    ArticleInput,
    ArticleMeta,
    ArticleVersion,
    ImportSummary,
    PutOutcome,
    ReindexSummary,
    Rejection,
)
from deflect.ports import EvidenceStore, KnowledgeIndex, SupportStore
from deflect.services.audit import AuditLog

# A bulk import makes its changes searchable in batches of this many articles (and once at the end).
FLUSH_EVERY = 250
# With a time limit, smaller batches: the import can stop at any batch boundary, and a batch's embedding time
# (at flush) must fit in what is left.
TIMED_FLUSH_EVERY = 25
# An article's audit chain is this prefix and its id. No ticket id (`tkt_...`, `cnv_...`) nor other chain
# (`tenant-config`, `customer-<id>`, `account-<id>`, `quarantine`) starts with it, and an article id
# (ARTICLE_ID_PATTERN) holds no '#' or '/', which separate the chain's table and bucket keys.
KNOWLEDGE_CHAIN_PREFIX = "knowledge-"
# Governed fields whose old and new values an update event keeps: who may read the article, and where it answers.
AUDITED_META = ("visibility", "segments", "locale", "product_area", "source")


@dataclass
class _Pace:
    """What a time-limited import has measured so far: staging a row (versions, evidence) and flushing a staged
    article (its embeddings: with Bedrock the larger part). The first staged article is flushed alone, so the
    flush cost is measured before a batch of them waits on it."""

    rows: int = 0
    staging_s: float = 0.0
    flushed: int = 0
    flushing_s: float = 0.0

    def staged_one(self, seconds: float) -> None:
        self.rows += 1
        self.staging_s += seconds

    def flushed_some(self, articles: int, seconds: float) -> None:
        self.flushed += articles
        self.flushing_s += seconds

    def flush_every(self) -> int:
        return TIMED_FLUSH_EVERY if self.flushed else 1

    def cost_of_next(self, staged: int) -> float:
        """Seconds to import one more row and flush it with the `staged` articles waiting."""
        per_row = self.staging_s / self.rows if self.rows else 0.0
        per_article = self.flushing_s / self.flushed if self.flushed else per_row
        return per_row + per_article * (staged + 1)


@dataclass(frozen=True)
class ImportRow:
    article_id: str
    article: ArticleInput
    source: str
    # When the source (a help center export) last edited the article, if it says.
    source_updated_at: datetime | None = None


class Unpublished(Rejection):
    """An import row whose source says the article is not published: `reason` says how ("draft article (draft:
    true)"). A rejection (never imported), which ingestion also applies: a published article of that id is removed
    from answers."""

    article_id: str
    # When the source made that change, if it says: an older one does not remove a newer published edit.
    source_updated_at: datetime | None = None


Progress = Callable[[ImportRow | Rejection, PutOutcome | None], None]


class KnowledgeIngestion:
    def __init__(
        self,
        store: SupportStore,
        evidence: EvidenceStore,
        index: KnowledgeIndex,
        *,
        now: Callable[[], datetime] = utcnow,
        timer: Callable[[], float] = time.perf_counter,
        audit: AuditLog | None = None,
    ) -> None:
        self.store = store
        self.articles = ArticleRepository(store, evidence)
        self.index = index
        # Never optional in effect: a caller without the container's (observed) log still gets a locked record.
        self.audit = audit or AuditLog(store, evidence)
        self._now = now
        # Paces a time-limited import; a parameter so that pacing can be shown without depending on machine load.
        self._timer = timer

    def put(self, ctx: TenantContext, article_id: str, article: ArticleInput) -> PutOutcome:
        outcome, staged = self._stage(ctx, article_id, article)
        if staged:
            self._flush(ctx, [staged])
        return outcome

    def delete(self, ctx: TenantContext, article_id: str) -> PutOutcome:
        """Tombstone: a new version marked deleted; earlier versions stay readable for the citations they back."""
        _check_id(article_id)
        head = self.articles.head(ctx, article_id)
        now = self._now()
        if head is None or head.deleted:
            # Idempotent, and clears anything a failed delete left (never a version newer than this answer).
            self.index.remove_article(
                ctx,
                article_id,
                version=head.current_version if head else 0,
                updated_at=head.updated_at if head else now,
            )
            self.index.flush()
            return PutOutcome(
                article_id=article_id, status="absent", version=head.current_version if head else 0
            )
        version = self._tombstone(ctx, head, now, reason="deleted")
        self.index.flush()
        self._mark_indexed(ctx, [(article_id, version)])
        return PutOutcome(article_id=article_id, status="deleted", version=version)

    def import_rows(
        self,
        ctx: TenantContext,
        rows: Iterable[ImportRow | Rejection],
        *,
        progress: Progress | None = None,
        start_row: int = 0,
        time_left: Callable[[], float] | None = None,
        reserve_s: float = 10.0,
    ) -> ImportSummary:
        """Add or update every row; rejected rows (and rows that fail validation here) are reported, not fatal.
        A row saying its article is not published is reported too, and takes a published article of that id out
        of answers (`_withdraw`).

        `start_row` skips rows an earlier part imported. With `time_left` (seconds), the import stops before the
        next row when what is left would not cover importing it and flushing what is staged, plus `reserve_s`;
        `next_row` then says where to go on. At least one row is imported per call, so a continuation always
        moves forward.
        """
        started = self._timer()
        summary = ImportSummary()
        staged: list[tuple[str, int]] = []
        pace = _Pace()
        for number, row in enumerate(itertools.islice(rows, start_row, None), start=start_row):
            out_of_time = (
                time_left is not None
                and number > start_row
                and time_left() < reserve_s + pace.cost_of_next(len(staged))
            )
            if out_of_time:
                summary.next_row = number
                break
            began = self._timer()
            outcome: PutOutcome | None = None
            if isinstance(row, Unpublished):
                try:
                    outcome, pending = self._withdraw(ctx, row)
                except (MalformedPayload, Conflict) as error:
                    summary.rejected.append(
                        Rejection(source=row.source, reason=f"{row.reason}: {error.detail}")
                    )
                else:
                    summary.rejected.append(Rejection(source=row.source, reason=_withdrawn(row, outcome)))
                    if pending:
                        staged.append(pending)
            elif isinstance(row, Rejection):
                summary.rejected.append(row)
            else:
                try:
                    outcome, pending = self._stage(
                        ctx, row.article_id, row.article, source_updated_at=row.source_updated_at, source=row.source
                    )
                except (MalformedPayload, Conflict) as error:
                    summary.rejected.append(Rejection(source=row.source, reason=error.detail))
                else:
                    summary.count(outcome)
                    if pending:
                        staged.append(pending)
            pace.staged_one(self._timer() - began)
            if len(staged) >= (FLUSH_EVERY if time_left is None else pace.flush_every()):
                pace.flushed_some(len(staged), self._flush(ctx, staged))
                staged = []
            if progress:
                progress(row, outcome)
        if staged:
            self._flush(ctx, staged)
        summary.seconds = round(self._timer() - started, 3)
        return summary

    def reindex(self, ctx: TenantContext) -> ReindexSummary:
        """Re-chunk every article the index holds for this tenant from its stored current version, with today's
        chunking rules (after an upgrade that changed them: text an article hides is no longer indexed). No new
        version is written and no body is stored again; what a citation resolves to is unchanged. An article the
        store no longer has, or has deleted, leaves the index; one left with no visible text leaves it too."""
        summary = ReindexSummary()
        staged: list[tuple[str, int]] = []
        for article_id in sorted(self.index.indexed_articles(ctx)):
            head = self.articles.head(ctx, article_id)
            if head is None or head.deleted:
                self.index.remove_article(
                    ctx,
                    article_id,
                    version=head.current_version if head else None,
                    updated_at=head.updated_at if head else None,
                )
                summary.removed.append(article_id)
                continue
            try:
                article = self.articles.read(ctx, article_id, head.current_version)
                chunks = self._chunks(
                    ctx, article_id, article.version, article.meta, article.body, article.updated_at
                )
            except (MalformedPayload, NotFound) as refused:
                # Nothing today's rules would index (or no stored text to cite): customers must not get it.
                self.index.remove_article(
                    ctx, article_id, version=head.current_version, updated_at=head.updated_at
                )
                summary.removed.append(article_id)
                summary.refused[article_id] = refused.detail
                continue
            self.index.replace_article(
                ctx, article_id, chunks, version=article.version, updated_at=article.updated_at
            )
            staged.append((article_id, article.version))
            summary.chunks += len(chunks)
            if len(staged) >= FLUSH_EVERY:
                self._flush(ctx, staged)
                summary.reindexed += len(staged)
                staged = []
        self._flush(ctx, staged)
        summary.reindexed += len(staged)
        return summary

    def _flush(self, ctx: TenantContext, staged: list[tuple[str, int]]) -> float:
        """Make staged articles searchable (embedding happens here), then record them as indexed; the seconds."""
        began = self._timer()
        self.index.flush()
        self._mark_indexed(ctx, staged)
        return self._timer() - began

    # ------------------------------------------------------------------ internals
    def _stage(
        self,
        ctx: TenantContext,
        article_id: str,
        article: ArticleInput,
        *,
        source_updated_at: datetime | None = None,
        source: str | None = None,
    ) -> tuple[PutOutcome, tuple[str, int] | None]:
        """Write the version (and its audit event) and hand its chunks to the index (not yet flushed).
        `source_updated_at`: when the import's source edited this content; a change older than the edit the article
        holds raises Conflict. `source`: the import row it came from, for the audit event."""
        _check_id(article_id)
        head = self.articles.head(ctx, article_id)
        known = head.source_updated_at if head else None
        # A PUT without a source time keeps the last one: an old export still must not undo a newer import.
        source_time = max(filter(None, (source_updated_at, known)), default=None)
        digest = article.content_sha256()
        if head and not head.deleted and head.content_sha256 == digest:
            if source_time != known:
                self._note_source_time(ctx, head, source_time)
            if head.indexed_version == head.current_version:
                return PutOutcome(
                    article_id=article_id, status="unchanged", version=head.current_version
                ), None
            record = self.articles.version(ctx, article_id, head.current_version)
            made = record.updated_at if record else head.updated_at
            chunks = self._chunks(ctx, article_id, head.current_version, article.meta(), article.body, made)
            self.index.replace_article(ctx, article_id, chunks, version=head.current_version, updated_at=made)
            outcome = PutOutcome(
                article_id=article_id, status="unchanged", version=head.current_version, chunks=len(chunks)
            )
            return outcome, (article_id, head.current_version)
        if source_updated_at and known and source_updated_at < known:
            raise Conflict(
                f"skipped: the source edited this row at {source_updated_at.isoformat()}, but article "
                f"{article_id!r} already holds the source's later edit of {known.isoformat()}"
            )
        now = self._now()
        version = (head.current_version if head else 0) + 1
        # Chunk first: an article refused for its content (no visible text, too many chunks) leaves no locked copy.
        chunks = self._chunks(ctx, article_id, version, article.meta(), article.body, now)
        body_ref = self.articles.store_body(ctx, article_id, version, article)
        record = ArticleVersion(
            tenant_id=ctx.tenant_id,
            article_id=article_id,
            article_version=version,
            meta=article.meta(),
            content_sha256=digest,
            body_ref=body_ref,
            chunk_count=len(chunks),
            updated_by=ctx.actor,
            updated_at=now,
        )
        new_head = ArticleHead(
            tenant_id=ctx.tenant_id,
            article_id=article_id,
            version=head.version if head else 0,
            current_version=version,
            content_sha256=digest,
            indexed_version=head.indexed_version if head else 0,
            updated_at=now,
            source_updated_at=source_time,
        )
        status = "added" if head is None or head.deleted else "updated"
        payload = {
            "article_id": article_id,
            "version": version,
            "content_sha256": digest,
            **_audience(record.meta),
            "chunks": len(chunks),
            **_origin(ctx, source),
        }
        if head is not None:
            payload.update(previous_version=head.current_version, previous_sha256=head.content_sha256)
        if status == "updated":
            payload.update(self._changes(ctx, head, article))
        self.audit.append(
            ctx,
            knowledge_chain(article_id),
            "knowledge.published" if status == "added" else "knowledge.updated",
            payload,
            evidence=[body_ref],
            writes=ArticleRepository.version_writes(new_head, record),
        )
        self.index.replace_article(ctx, article_id, chunks, version=version, updated_at=now)
        return PutOutcome(article_id=article_id, status=status, version=version, chunks=len(chunks)), (
            article_id,
            version,
        )

    def _tombstone(
        self,
        ctx: TenantContext,
        head: ArticleHead,
        now: datetime,
        *,
        reason: str,
        source_time: datetime | None = None,
        source: str | None = None,
    ) -> int:
        """Delete a live article: a new version marked deleted (by the caller's actor), HEAD on it and the
        `knowledge.withdrawn` event, in one transaction; the index is told (not flushed). `source_time`: when an
        import's source unpublished it; `source`: that import row."""
        version = head.current_version + 1
        record = ArticleVersion(
            tenant_id=ctx.tenant_id,
            article_id=head.article_id,
            article_version=version,
            deleted=True,
            updated_by=ctx.actor,
            updated_at=now,
        )
        tombstoned = head.model_copy(
            update={
                "current_version": version,
                "content_sha256": None,
                "deleted": True,
                "updated_at": now,
                "source_updated_at": max(filter(None, (source_time, head.source_updated_at)), default=None),
            }
        )
        self.audit.append(
            ctx,
            knowledge_chain(head.article_id),
            "knowledge.withdrawn",
            {
                "article_id": head.article_id,
                "version": version,
                "previous_version": head.current_version,
                "previous_sha256": head.content_sha256,
                "reason": reason,
                **_origin(ctx, source),
            },
            writes=ArticleRepository.version_writes(tombstoned, record),
        )
        self.index.remove_article(ctx, head.article_id, version=version, updated_at=now)
        return version

    def _withdraw(self, ctx: TenantContext, row: Unpublished) -> tuple[PutOutcome, tuple[str, int] | None]:
        """The source says the article is not published: delete it if it is (as `delete` does; the index is told,
        not flushed), else only remember when the source said so. Conflict if the article holds a later edit."""
        article_id = row.article_id
        _check_id(article_id)
        head = self.articles.head(ctx, article_id)
        known = head.source_updated_at if head else None
        said = row.source_updated_at
        if said and known and said < known:
            raise Conflict(
                f"skipped: the source unpublished this row at {said.isoformat()}, but article {article_id!r} "
                f"already holds the source's later edit of {known.isoformat()}"
            )
        source_time = max(filter(None, (said, known)), default=None)
        if head is not None and not head.deleted:
            version = self._tombstone(
                ctx, head, self._now(), reason=row.reason, source_time=source_time, source=row.source
            )
            return PutOutcome(article_id=article_id, status="deleted", version=version), (article_id, version)
        # Nothing customers can read. The source's time is remembered all the same: an older export that still
        # says "published", processed late, is then refused instead of publishing the article.
        if head is None and source_time is not None:
            marker = ArticleHead(
                tenant_id=ctx.tenant_id,
                article_id=article_id,
                deleted=True,
                updated_at=self._now(),
                source_updated_at=source_time,
            )
            self.store.put(ctx, ArticleRepository.head_write(marker))
        elif head is not None and source_time != known:
            self._note_source_time(ctx, head, source_time)
        pending = None
        if head is not None and head.indexed_version != head.current_version:
            # A delete that failed before the index heard of it: finish it.
            self.index.remove_article(
                ctx, article_id, version=head.current_version, updated_at=head.updated_at
            )
            pending = (article_id, head.current_version)
        version = head.current_version if head else 0
        return PutOutcome(article_id=article_id, status="absent", version=version), pending

    def _changes(self, ctx: TenantContext, head: ArticleHead, article: ArticleInput) -> dict[str, Any]:
        """What an update changed: the governed fields (and `body`), with old and new values of AUDITED_META."""
        previous = self.articles.version(ctx, head.article_id, head.current_version)
        if previous is None or previous.meta is None:
            return {}  # nothing to compare with: the hashes still tell the versions apart
        old, new = previous.meta.model_dump(mode="json"), article.meta().model_dump(mode="json")
        fields = [name for name in new if old.get(name) != new[name]]
        # The previous governed fields with this body hash to the previous content only if the body is the same.
        try:
            same_body = (
                ArticleInput.model_validate({**old, "body": article.body}).content_sha256() == head.content_sha256
            )
        except ValueError:
            same_body = False
        if not same_body:
            fields.append("body")
        values = {name: {"old": old.get(name), "new": new[name]} for name in AUDITED_META if name in fields}
        return {"fields": sorted(fields), "values": values}

    @staticmethod
    def _chunks(
        ctx: TenantContext, article_id: str, version: int, meta: ArticleMeta, body: str, at: datetime
    ) -> list:
        return chunk_article(
            tenant_id=ctx.tenant_id,
            article_id=article_id,
            version=version,
            meta=meta,
            body=body,
            updated_at=at,
        )

    def _note_source_time(self, ctx: TenantContext, head: ArticleHead, source_time: datetime | None) -> None:
        """Same content, later source edit: remember it, so that an export between the two is still refused."""
        # Conflict: a concurrent writer moved HEAD on, and its own content and time stand.
        with contextlib.suppress(Conflict):
            self.store.put(
                ctx, ArticleRepository.head_write(head.model_copy(update={"source_updated_at": source_time}))
            )

    def _mark_indexed(self, ctx: TenantContext, staged: list[tuple[str, int]]) -> None:
        deleted_meanwhile: list[ArticleHead] = []
        for article_id, version in staged:
            head = self.articles.head(ctx, article_id)
            if head is not None and head.deleted and head.current_version > version:
                deleted_meanwhile.append(head)
            if head is None or head.current_version != version or head.indexed_version == version:
                continue
            try:
                self.store.put(
                    ctx, ArticleRepository.head_write(head.model_copy(update={"indexed_version": version}))
                )
            except Conflict:
                continue  # a newer write landed meanwhile and records its own indexing
        if deleted_meanwhile:
            # The article was deleted while this version was on its way to the index. An index that keeps no
            # record of deletions (OpenSearch) took it back in: remove it again, as of the tombstone's version.
            for head in deleted_meanwhile:
                self.index.remove_article(
                    ctx, head.article_id, version=head.current_version, updated_at=head.updated_at
                )
            self.index.flush()


def _audience(meta: ArticleMeta | None) -> dict[str, Any]:
    """Who may read the version and where it answers (labels only: no title, owner or body in a locked event)."""
    if meta is None:
        return {}
    return {
        "visibility": meta.visibility,
        "segments": meta.segments,
        "locale": meta.locale,
        "product_area": meta.product_area,
        "article_source": meta.source,
    }


def _origin(ctx: TenantContext, source: str | None) -> dict[str, Any]:
    """Who made the change, through what, and from which import row (None for a single PUT or DELETE)."""
    return {"actor": ctx.actor, "via": ctx.via, "source": source}


def _withdrawn(row: Unpublished, outcome: PutOutcome) -> str:
    """The import report's line for an unpublished row."""
    if outcome.status == "deleted":
        return (
            f"{row.reason}: not published; article {row.article_id!r} was published, so it was deleted "
            f"(version {outcome.version}) and no longer answers customers"
        )
    return f"{row.reason}: not published"


def knowledge_chain(article_id: str) -> str:
    """The audit chain of an article's changes: what `deflect audit verify --ticket` takes."""
    _check_id(article_id)
    return f"{KNOWLEDGE_CHAIN_PREFIX}{article_id}"


def _check_id(article_id: str) -> None:
    if not re.fullmatch(ARTICLE_ID_PATTERN, article_id or ""):
        raise MalformedPayload(f"article id must match {ARTICLE_ID_PATTERN}")
