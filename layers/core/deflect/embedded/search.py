"""Embedded KnowledgeIndex: tantivy BM25 plus MiniLM vectors, fused by the shared ranking; no server needed.

Dev/local only (tantivy, numpy, onnxruntime are not in the Lambda layer). State lives under a data directory
so `make run` keeps its knowledge across restarts, and several processes (the local stack, `deflect kb import`)
can share it:

    <data_dir>/tantivy/       BM25 index (title, headings, body; English stemming and stop words)
    <data_dir>/chunks.jsonl   every indexed chunk with its governance fields
    <data_dir>/vectors.npy    one unit vector per line of chunks.jsonl
    <data_dir>/versions.json  the newest version of every article seen (deletions included) and when it was made
    <data_dir>/state.json     written last: the commit point other processes watch

Writers hold an exclusive `flock` on <data_dir>/.lock; readers reload (under a shared lock) when state.json
changes. Changes become visible at `flush()`. With `data_dir=None` everything stays in memory.

Two writers of one article can flush in either order (two Lambda invocations, the local stack and `deflect kb
import`): under the lock, a queued write older than the newest version already seen for that article, a deletion
included, is dropped, so a superseded or deleted version never comes back.

The tenant filter, the visibility filter, the exclusion of expired and superseded chunks and the customer's
language (SearchRequest) are applied here, on every search: each tenant gets its own view (matrix, columns), and
lexical hits are re-checked against it. Among the candidates, an article gives way to one in a locale closer to the
customer's in the same product area (SearchRequest.outranked) before ranking.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from deflect.domain.models import utcnow
from deflect.domain.tenancy import TenantContext
from deflect.knowledge import ranking
from deflect.knowledge.chunking import identifiers
from deflect.knowledge.models import Chunk, SearchHit, SearchRequest

SCHEMA_VERSION = 1
# Document side: title + headings + the start of the section. Embedding cost grows with length and bounds
# indexing speed on a laptop CPU; 48 tokens keep StackFAQ quality (0.952 vs 0.951 at 256 tokens) and the demo help
# center's identifier cases (97.6% first) while 32 tokens lose some of both.
DOC_TOKENS = 48
# Query side: long, wordy questions keep their first 128 tokens (quality equal to 256 on padded StackFAQ queries).
QUERY_TOKENS = 128
NEVER = 2**62
_TEXT_FIELDS = {"title": 2.0, "headings": 1.5, "body": 1.0}
_QUERY_NOISE = re.compile(r"[^\w]+")
_VISIBILITY = {"public": 0, "internal": 1, "segments": 2}
_WRITER_HEAP = 64_000_000
# OpenBLAS starts worker threads for larger matrix-vector products; on a busy machine (tests, the local stack)
# waking them costs ten times the product itself, so similarities are computed in single-threaded blocks.
_BLOCK_ROWS = 1024


def _tantivy() -> Any:
    import tantivy

    return tantivy


def _analyzer() -> Any:
    tv = _tantivy()
    return (
        tv.TextAnalyzerBuilder(tv.Tokenizer.simple())
        .filter(tv.Filter.remove_long(40))
        .filter(tv.Filter.lowercase())
        .filter(tv.Filter.stopword("english"))
        .filter(tv.Filter.stemmer("english"))
        .build()
    )


def _schema() -> Any:
    builder = _tantivy().SchemaBuilder()
    builder.add_text_field("key", stored=True, tokenizer_name="raw", index_option="basic")
    for name in ("tenant", "article", "area", "visibility", "segment", "superseded"):
        builder.add_text_field(name, tokenizer_name="raw", index_option="basic")
    builder.add_integer_field("expires", indexed=True, fast=True)
    for name in _TEXT_FIELDS:
        builder.add_text_field(name, tokenizer_name="kb", index_option="freq")
    return builder.build()


def _epoch(moment: Any) -> int:
    return int(moment.timestamp()) if moment is not None else NEVER


def _row_key(chunk: Chunk) -> str:
    return f"{chunk.tenant_id}/{chunk.chunk_id}"


def _micros(moment: datetime) -> int:
    return round(moment.timestamp() * 1_000_000)


@dataclass(frozen=True)
class _Write:
    """A queued replace (chunks) or removal (none). `version` None: an unversioned call, always applied."""

    tenant_id: str
    article_id: str
    chunks: list[Chunk]
    version: int | None = None
    at: int = 0  # when that version was made (microseconds since the epoch)

    @property
    def article(self) -> tuple[str, str]:
        return (self.tenant_id, self.article_id)


def _stale(write: _Write, newest: tuple[int, int] | None) -> bool:
    """Older than the newest version seen. A lower version made later is not stale: the article store was reset
    under a kept index (the local stack's moto forgets everything on restart; a table restored from a backup)."""
    if write.version is None or newest is None:
        return False
    version, at = newest
    return write.version < version and write.at <= at


def _similarities(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    out = np.empty(len(matrix), dtype=np.float32)
    for start in range(0, len(matrix), _BLOCK_ROWS):
        np.dot(matrix[start : start + _BLOCK_ROWS], vector, out=out[start : start + _BLOCK_ROWS])
    return out


@dataclass
class _View:
    """One tenant's chunks as columns, so every filter is a vectorised mask."""

    keys: list[str]
    chunks: list[Chunk]
    matrix: np.ndarray
    visibility: np.ndarray
    expires: np.ndarray
    superseded: np.ndarray
    area: np.ndarray
    article: np.ndarray
    segment_rows: dict[str, np.ndarray]
    locale_rows: dict[str, np.ndarray]
    identifier_rows: dict[str, list[int]]
    position: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, keys: list[str], chunks: list[Chunk], vectors: list[np.ndarray], dims: int) -> _View:
        segment_rows: dict[str, list[int]] = {}
        identifier_rows: dict[str, list[int]] = {}
        locale_rows: dict[str, list[int]] = {}
        for row, chunk in enumerate(chunks):
            locale_rows.setdefault(chunk.locale, []).append(row)
            if chunk.visibility == "segments":
                for segment in chunk.segments:
                    segment_rows.setdefault(segment, []).append(row)
            for identifier in chunk.identifiers:
                identifier_rows.setdefault(identifier, []).append(row)
        return cls(
            keys=keys,
            chunks=chunks,
            matrix=np.vstack(vectors).astype(np.float32) if vectors else np.zeros((0, dims), np.float32),
            visibility=np.array([_VISIBILITY[c.visibility] for c in chunks], dtype=np.int8),
            expires=np.array([_epoch(c.expires_at) for c in chunks], dtype=np.int64),
            superseded=np.array([c.superseded for c in chunks], dtype=bool),
            area=np.array([c.product_area for c in chunks], dtype=object),
            article=np.array([f"{c.tenant_id}/{c.article_id}" for c in chunks], dtype=object),
            segment_rows={s: np.array(rows) for s, rows in segment_rows.items()},
            locale_rows={locale: np.array(rows) for locale, rows in locale_rows.items()},
            identifier_rows=identifier_rows,
            position={key: row for row, key in enumerate(keys)},
        )

    def allowed(self, request: SearchRequest) -> np.ndarray:
        mask = (~self.superseded) & (self.expires > int(request.now.timestamp()))
        if request.product_area:
            mask &= self.area == request.product_area
        if request.audience.kind != "agent":
            readable = self.visibility == _VISIBILITY["public"]
            for segment in request.audience.segments:
                rows = self.segment_rows.get(segment)
                if rows is not None:
                    readable[rows] = True
            mask &= readable
        # Last: the language searched is the first holding any chunk the filters above allow.
        locales = request.searched_locales(locale for locale, rows in self.locale_rows.items() if mask[rows].any())
        if locales is not None:
            in_level = np.zeros(len(mask), dtype=bool)
            for locale in locales:
                in_level[self.locale_rows[locale]] = True
            mask &= in_level
        return mask


class EmbeddedKnowledgeIndex:
    def __init__(
        self,
        data_dir: str | Path | None,
        embedder: Any | None = None,
        *,
        doc_tokens: int = DOC_TOKENS,
        query_tokens: int = QUERY_TOKENS,
    ) -> None:
        self._dir = Path(data_dir) if data_dir is not None else None
        self._embedder = embedder
        self._doc_tokens = doc_tokens
        self._query_tokens = query_tokens
        self._lock = threading.RLock()
        self._chunks: dict[str, Chunk] = {}
        self._vectors: dict[str, np.ndarray] = {}
        self._by_article: dict[tuple[str, str], list[str]] = {}
        # (tenant, article) -> (version, microseconds) of the newest version applied, deletions included.
        self._newest: dict[tuple[str, str], tuple[int, int]] = {}
        self._pending: list[_Write] = []
        self._views: dict[str, _View] = {}
        self._seen: tuple[int, int, int] | None = None
        self._schema = _schema()
        if self._dir is None:
            self._index = _tantivy().Index(self._schema)
        else:
            (self._dir / "tantivy").mkdir(parents=True, exist_ok=True)
            self._index = _tantivy().Index(self._schema, path=str(self._dir / "tantivy"), reuse=True)
        self._index.register_tokenizer("kb", _analyzer())
        if self._dir is not None:
            with self._file_lock(exclusive=True):
                self._load()

    # ------------------------------------------------------------------ KnowledgeIndex port
    def replace_article(
        self,
        ctx: TenantContext,
        article_id: str,
        chunks: list[Chunk],
        *,
        version: int | None = None,
        updated_at: datetime | None = None,
    ) -> None:
        """`version`/`updated_at` default to the chunks' own (an article without text has no chunks to say)."""
        foreign = [c for c in chunks if c.tenant_id != ctx.tenant_id or c.article_id != article_id]
        if foreign:
            raise ValueError("chunks must belong to the caller's tenant and article")
        if chunks:
            version = chunks[0].article_version if version is None else version
            updated_at = updated_at or chunks[0].updated_at
        self._queue(_Write(ctx.tenant_id, article_id, list(chunks), version, _micros(updated_at or utcnow())))

    def remove_article(
        self,
        ctx: TenantContext,
        article_id: str,
        *,
        version: int | None = None,
        updated_at: datetime | None = None,
    ) -> None:
        """`version`: the deletion's own (tombstone) version, so that older writes still queued elsewhere lose."""
        self._queue(_Write(ctx.tenant_id, article_id, [], version, _micros(updated_at or utcnow())))

    def _queue(self, write: _Write) -> None:
        with self._lock:
            self._pending.append(write)

    def flush(self) -> None:
        with self._lock:
            if not self._pending:
                return
            # Embedding is the slow part: one length-sorted pass over every pending chunk, before any lock.
            vectors = self._vectors_for([c for write in self._pending for c in write.chunks])
            with self._file_lock(exclusive=True):
                if self._dir is not None and self._changed_on_disk():
                    self._load()
                writer = self._index.writer(_WRITER_HEAP, 1)
                for write in self._pending:
                    # Decided here, under the lock and after reloading: another process may have flushed a
                    # newer version (or the deletion) since this one was queued.
                    if not _stale(write, self._newest.get(write.article)):
                        self._apply(writer, write, vectors)
                writer.commit()
                writer.wait_merging_threads()
                self._index.reload()
                self._pending.clear()
                self._views.clear()
                if self._dir is not None:
                    self._persist()

    def search(self, ctx: TenantContext, request: SearchRequest) -> list[SearchHit]:
        with self._lock:
            self._reload_if_changed()
            view = self._view(ctx.tenant_id)
        if view is None:
            return []
        allowed = view.allowed(request)
        if not allowed.any():
            return []
        query_vector = self._embedder_().embed([request.text], max_tokens=self._query_tokens)[0]
        dense = _similarities(view.matrix, np.asarray(query_vector, dtype=np.float32))
        masked = np.where(allowed, dense, -np.inf)
        take = min(ranking.CANDIDATES, int(allowed.sum()))
        rows = set(np.argpartition(-masked, take - 1)[:take].tolist())
        lexical = self._lexical(ctx.tenant_id, request, view, allowed)
        rows.update(lexical)
        query_ids = identifiers(request.text)
        for identifier in query_ids:
            rows.update(r for r in view.identifier_rows.get(identifier, ()) if allowed[r])
        candidates = []
        for row in rows:
            chunk = view.chunks[row]
            candidates.append(
                ranking.Candidate(
                    article_id=chunk.article_id,
                    chunk_id=chunk.chunk_id,
                    lexical=lexical.get(row, 0.0),
                    dense=float(dense[row]),
                    matched_identifiers=[i for i in query_ids if i in chunk.identifiers],
                    defined_matches=sum(1 for i in query_ids if i in chunk.defined_identifiers),
                    authority=chunk.authority,
                    updated_at=chunk.updated_at,
                    stale=ranking.is_stale(chunk.review_by, request.now),
                    payload=chunk,
                )
            )
        outranked = request.outranked({(c.payload.locale, c.payload.product_area) for c in candidates})
        if outranked:
            candidates = [c for c in candidates if (c.payload.locale, c.payload.product_area) not in outranked]
        ranked = ranking.rank(candidates, query_identifiers=len(query_ids), k=request.k, now=request.now)
        return [self._hit(c) for c in ranked]

    def sections(
        self, ctx: TenantContext, request: SearchRequest, articles: Sequence[tuple[str, int]]
    ) -> list[SearchHit]:
        """Every chunk of these article versions that `search(ctx, request)` could return, in reading order."""
        with self._lock:
            self._reload_if_changed()
            view = self._view(ctx.tenant_id)
            order = {pair: i for i, pair in enumerate(dict.fromkeys((a, int(v)) for a, v in articles))}
            keys = [(key, a, v) for a, v in order for key in self._by_article.get((ctx.tenant_id, a), ())]
        if view is None or not keys:
            return []
        # The tenant's own view and its filters, exactly as search applies them.
        allowed = view.allowed(request)
        out: list[SearchHit] = []
        for key, article_id, version in keys:
            row = view.position.get(key)
            if row is None or not allowed[row]:
                continue
            chunk = view.chunks[row]
            if chunk.tenant_id != ctx.tenant_id or (chunk.article_id, chunk.article_version) != (
                article_id,
                version,
            ):
                continue
            out.append(_section_hit(chunk, request))
        return sorted(out, key=lambda h: (order[(h.article_id, h.version)], h.start))

    def indexed_articles(self, ctx: TenantContext) -> dict[str, int]:
        with self._lock:
            self._reload_if_changed()
            found: dict[str, int] = {}
            for (tenant_id, article_id), keys in self._by_article.items():
                if tenant_id != ctx.tenant_id:
                    continue
                versions = [self._chunks[k].article_version for k in keys if k in self._chunks]
                if versions:
                    found[article_id] = max(versions)
            return found

    # ------------------------------------------------------------------ searching
    def _lexical(
        self, tenant_id: str, request: SearchRequest, view: _View, allowed: np.ndarray
    ) -> dict[int, float]:
        text = _QUERY_NOISE.sub(" ", request.text).strip()
        if not text:
            return {}
        tv = _tantivy()
        query, _errors = self._index.parse_query_lenient(text, list(_TEXT_FIELDS), field_boosts=_TEXT_FIELDS)
        must, must_not = tv.Occur.Must, tv.Occur.MustNot
        clauses = [
            (must, query),
            (must, tv.Query.term_query(self._schema, "tenant", tenant_id)),
            (must_not, tv.Query.term_query(self._schema, "superseded", "1")),
            (
                must,
                tv.Query.range_query(
                    self._schema,
                    "expires",
                    tv.FieldType.Integer,
                    int(request.now.timestamp()),
                    None,
                    False,
                    True,
                ),
            ),
        ]
        if request.product_area:
            clauses.append((must, tv.Query.term_query(self._schema, "area", request.product_area)))
        if request.audience.kind != "agent":
            readable = [(tv.Occur.Should, tv.Query.term_query(self._schema, "visibility", "public"))]
            readable += [
                (tv.Occur.Should, tv.Query.term_query(self._schema, "segment", s))
                for s in request.audience.segments
            ]
            clauses.append((must, tv.Query.boolean_query(readable)))
        if request.locale is not None and len(view.locale_rows) > 1:
            # The searched language's articles only: chunks in others would take the BM25 candidates' places.
            articles = np.unique(view.article[allowed]).tolist()
            clauses.append((must, tv.Query.term_set_query(self._schema, "article", articles)))
        searcher = self._index.searcher()
        found: dict[int, float] = {}
        for score, address in searcher.search(
            tv.Query.boolean_query(clauses), ranking.CANDIDATES, count=False
        ).hits:
            row = view.position.get(searcher.doc(address)["key"][0])
            # The view is the authority: a lexical hit outside this tenant's allowed rows is dropped.
            if row is not None and allowed[row]:
                found[row] = float(score)
        return found

    @staticmethod
    def _hit(candidate: ranking.Candidate) -> SearchHit:
        return _chunk_hit(
            candidate.payload,
            score=candidate.score,
            stale=candidate.stale,
            lexical=candidate.lexical,
            dense=candidate.dense,
            matched_identifiers=candidate.matched_identifiers,
        )

    def _reload_if_changed(self) -> None:
        """Read what another process flushed since (the caller holds self._lock)."""
        if self._dir is not None and self._changed_on_disk():
            with self._file_lock(exclusive=False):
                self._load()

    def _view(self, tenant_id: str) -> _View | None:
        view = self._views.get(tenant_id)
        if view is None:
            keys = sorted(k for k, c in self._chunks.items() if c.tenant_id == tenant_id)
            if not keys:
                return None
            chunks = [self._chunks[k] for k in keys]
            view = _View.build(keys, chunks, [self._vectors[k] for k in keys], self._dims())
            self._views[tenant_id] = view
        return view

    # ------------------------------------------------------------------ writing
    def _apply(self, writer: Any, write: _Write, vectors: dict[str, np.ndarray]) -> None:
        if write.version is not None:
            self._newest[write.article] = (write.version, write.at)
        for key in self._by_article.pop(write.article, []):
            self._chunks.pop(key, None)
            self._vectors.pop(key, None)
        writer.delete_documents_by_term("article", f"{write.tenant_id}/{write.article_id}")
        if not write.chunks:
            return
        keys = [_row_key(c) for c in write.chunks]
        self._by_article[write.article] = keys
        for key, chunk in zip(keys, write.chunks, strict=True):
            self._chunks[key] = chunk
            self._vectors[key] = vectors[key]
            writer.add_document(self._document(key, chunk))

    def _vectors_for(self, chunks: list[Chunk]) -> dict[str, np.ndarray]:
        """Vectors by row key. Sections an edit left unchanged keep the vectors they already have."""
        texts = {_row_key(c): c.embedding_text() for c in chunks}
        known: dict[str, np.ndarray] = {}
        for article in {(c.tenant_id, c.article_id) for c in chunks}:
            for key in self._by_article.get(article, ()):
                known[self._chunks[key].embedding_text()] = self._vectors[key]
        missing = list(dict.fromkeys(t for t in texts.values() if t not in known))
        if missing:
            known.update(
                zip(missing, self._embedder_().embed(missing, max_tokens=self._doc_tokens), strict=True)
            )
        return {key: known[text] for key, text in texts.items()}

    def _document(self, key: str, chunk: Chunk) -> Any:
        document = _tantivy().Document()
        document.add_text("key", key)
        document.add_text("tenant", chunk.tenant_id)
        document.add_text("article", f"{chunk.tenant_id}/{chunk.article_id}")
        document.add_text("area", chunk.product_area)
        document.add_text("visibility", chunk.visibility)
        if chunk.visibility == "segments":
            for segment in chunk.segments:
                document.add_text("segment", segment)
        document.add_text("superseded", "1" if chunk.superseded else "0")
        document.add_integer("expires", _epoch(chunk.expires_at))
        document.add_text("title", chunk.title)
        document.add_text("headings", " ".join(chunk.heading_path))
        document.add_text("body", chunk.text)
        return document

    def _embed_documents(self, chunks: list[Chunk]) -> np.ndarray:
        return self._embedder_().embed([c.embedding_text() for c in chunks], max_tokens=self._doc_tokens)

    def _embedder_(self) -> Any:
        if self._embedder is None:
            from deflect.embedded.embeddings import get_embedder

            self._embedder = get_embedder()
        return self._embedder

    def _dims(self) -> int:
        return int(getattr(self._embedder_(), "dimensions", 384))

    def _model_id(self) -> str:
        return str(getattr(self._embedder_(), "model_id", type(self._embedder_()).__name__))

    # ------------------------------------------------------------------ persistence
    @contextlib.contextmanager
    def _file_lock(self, *, exclusive: bool) -> Iterator[None]:
        if self._dir is None:
            yield
            return
        with (self._dir / ".lock").open("a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _stamp(self) -> tuple[int, int, int] | None:
        assert self._dir is not None
        try:
            stat = (self._dir / "state.json").stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def _changed_on_disk(self) -> bool:
        return self._stamp() != self._seen

    def _load(self) -> None:
        """Read the committed state; rebuild what is missing or was made by another model or schema."""
        assert self._dir is not None
        self._chunks, self._vectors, self._by_article, self._views = {}, {}, {}, {}
        self._newest = {}
        state_path = self._dir / "state.json"
        state = json.loads(state_path.read_text()) if state_path.exists() else {}
        chunks_path, vectors_path = self._dir / "chunks.jsonl", self._dir / "vectors.npy"
        chunks: list[Chunk] = []
        if state and chunks_path.exists():
            with chunks_path.open(encoding="utf-8") as handle:
                chunks = [Chunk.model_validate_json(line) for line in handle if line.strip()]
        vectors = np.load(vectors_path) if chunks and vectors_path.exists() else None
        same_model = state.get("model_id") == self._model_id() and state.get("dimensions") == self._dims()
        if chunks and (vectors is None or len(vectors) != len(chunks) or not same_model):
            vectors = self._embed_documents(chunks)
        versions_path = self._dir / "versions.json"
        if state and versions_path.exists():
            for article, (version, at) in json.loads(versions_path.read_text()).items():
                tenant_id, _, article_id = article.partition("/")
                self._newest[(tenant_id, article_id)] = (int(version), int(at))
        for row, chunk in enumerate(chunks):
            key = _row_key(chunk)
            self._chunks[key] = chunk
            self._vectors[key] = vectors[row]  # type: ignore[index]
            self._by_article.setdefault((chunk.tenant_id, chunk.article_id), []).append(key)
            # Data written before versions.json existed: its chunks say which version they are.
            self._newest.setdefault(
                (chunk.tenant_id, chunk.article_id), (chunk.article_version, _micros(chunk.updated_at))
            )
        self._index.reload()
        if state.get("schema_version") != SCHEMA_VERSION or self._index.searcher().num_docs != len(chunks):
            self._rebuild_lexical()
        if not same_model and chunks:
            self._persist()
        self._seen = self._stamp()

    def _rebuild_lexical(self) -> None:
        writer = self._index.writer(_WRITER_HEAP, 1)
        writer.delete_all_documents()
        for key, chunk in self._chunks.items():
            writer.add_document(self._document(key, chunk))
        writer.commit()
        writer.wait_merging_threads()
        self._index.reload()

    def _persist(self) -> None:
        assert self._dir is not None
        keys = list(self._chunks)
        _atomic_write(
            self._dir / "chunks.jsonl", "".join(self._chunks[k].model_dump_json() + "\n" for k in keys)
        )
        matrix = (
            np.vstack([self._vectors[k] for k in keys]) if keys else np.zeros((0, self._dims()), np.float32)
        )
        tmp = self._dir / "vectors.npy.tmp"
        with tmp.open("wb") as handle:
            np.save(handle, matrix.astype(np.float32))
        os.replace(tmp, self._dir / "vectors.npy")
        _atomic_write(
            self._dir / "versions.json",
            json.dumps({f"{t}/{a}": list(newest) for (t, a), newest in sorted(self._newest.items())}),
        )
        state = {
            "schema_version": SCHEMA_VERSION,
            "model_id": self._model_id(),
            "dimensions": self._dims(),
            "chunks": len(keys),
            "generation": (json.loads((self._dir / "state.json").read_text()).get("generation", 0) + 1)
            if (self._dir / "state.json").exists()
            else 1,
        }
        _atomic_write(self._dir / "state.json", json.dumps(state))
        self._seen = self._stamp()


def _section_hit(chunk: Chunk, request: SearchRequest) -> SearchHit:
    """A section read by article, not ranked: its score is its article's hit's, set by the caller."""
    return _chunk_hit(chunk, score=0.0, stale=ranking.is_stale(chunk.review_by, request.now))


def _chunk_hit(
    chunk: Chunk,
    *,
    score: float,
    stale: bool,
    lexical: float = 0.0,
    dense: float = 0.0,
    matched_identifiers: Sequence[str] = (),
) -> SearchHit:
    return SearchHit(
        article_id=chunk.article_id,
        version=chunk.article_version,
        chunk_id=chunk.chunk_id,
        title=chunk.title,
        heading_path=chunk.heading_path,
        text=chunk.text,
        start=chunk.start,
        end=chunk.end,
        score=score,
        lexical=lexical,
        dense=dense,
        stale=stale,
        authority=chunk.authority,
        product_area=chunk.product_area,
        visibility=chunk.visibility,
        matched_identifiers=list(matched_identifiers),
        url=chunk.url,
        updated_at=chunk.updated_at,
    )


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
