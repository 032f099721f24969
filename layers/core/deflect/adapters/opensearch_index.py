"""KnowledgeIndex on Amazon OpenSearch Service (`es`) or OpenSearch Serverless (`aoss`), SigV4-signed.

Hybrid search is one `_msearch`: BM25 over the analysed fields (plus exact identifier terms) and k-NN over the
chunk embeddings, both under the same filters; the two lists are fused client-side by the shared ranking, so
results match the embedded index in shape and scoring (and no search pipeline is needed, which Serverless
lacks). The tenant filter, the visibility filter and the expiry/superseded exclusions are built here, never by
callers, and every hit is re-checked against its own `_source` before it is returned. A search for a customer's
locale is preceded by one aggregation under the same filters: which locales the allowed articles are in, so that
both halves search only the language SearchRequest chooses; among the hits, an article then gives way to one in a
locale closer to the customer's in the same product area (SearchRequest.outranked), as in the embedded index.

Serverless differences handled: no custom document ids in vector collections (old chunks are found by query and
deleted by their generated ids), no delete-by-query, and no refresh API.

Writers of one article can flush in either order: a write older than the version the index already holds for the
article is dropped (its stored `article_version`, compared at flush), and whatever is older than the kept version
is deleted. Two writers flushing at the same moment both read before either writes; each then reads its articles
back (one search per 100 articles) and deletes every version but the winner, so the last to read removes the
loser (on Serverless, within its few seconds of search visibility). The index keeps no record of deletions;
ingestion removes again an article deleted while one of its versions was on its way here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from deflect.domain.errors import Throttled, TransientFailure
from deflect.domain.tenancy import TenantContext
from deflect.knowledge import ranking
from deflect.knowledge.chunking import identifiers
from deflect.knowledge.models import Chunk, SearchHit, SearchRequest

DEFAULT_INDEX = "deflect-knowledge"
NEVER = 2**62
BULK_LINES = 500
# Ids of an article's indexed chunks are read in pages of this many (an article can have thousands of chunks).
ID_PAGE = 1000
# After a flush, the written articles are read back (to remove a version a simultaneous writer left) this many at a
# time: one search per batch, not one per article.
SETTLE_ARTICLES = 100
LEXICAL_FIELDS = ["title^2", "headings^1.5", "text"]
IDENTIFIER_BOOST = 10.0
_SOURCE = {"excludes": ["embedding"]}
# Chunks read back for the articles a search found (the other sections of one or two articles).
SECTIONS_MAX = 200
# Locales one tenant's articles may be written in (Zendesk Guide offers about 40).
LOCALES_MAX = 200


def index_body(dimensions: int) -> dict[str, Any]:
    """Settings and mappings of the knowledge index (infra/opensearch/knowledge-index-template.json mirrors it)."""
    english = {"type": "text", "analyzer": "english"}
    keyword = {"type": "keyword"}
    return {
        "settings": {"index": {"knn": True}},
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "tenant_id": keyword,
                "article_id": keyword,
                "article_version": {"type": "integer"},
                "chunk_id": keyword,
                "ordinal": {"type": "integer"},
                "title": english,
                "heading_path": keyword,
                "headings": english,
                "text": english,
                "start": {"type": "integer"},
                "end": {"type": "integer"},
                "product_area": keyword,
                "locale": keyword,
                "visibility": keyword,
                "segments": keyword,
                "authority": {"type": "byte"},
                "updated_at": {"type": "date"},
                "review_by": {"type": "date", "format": "strict_date"},
                "expires_epoch": {"type": "long"},
                "superseded": {"type": "boolean"},
                "identifiers": keyword,
                "defined_identifiers": keyword,
                "url": {"type": "keyword", "index": False},
                "embedding": {
                    "type": "knn_vector",
                    "dimension": dimensions,
                    "method": {
                        "name": "hnsw",
                        "engine": "lucene",
                        "space_type": "cosinesimil",
                        "parameters": {"m": 16, "ef_construction": 128},
                    },
                },
            },
        },
    }


def opensearch_client(
    endpoint: str, *, service: str, region: str, session: Any = None, timeout: float = 10.0
) -> Any:
    """A SigV4-signed client for a managed domain (`es`) or a Serverless collection (`aoss`)."""
    from opensearchpy import AWSV4SignerAuth, OpenSearch, RequestsHttpConnection

    if service not in ("es", "aoss"):
        raise ValueError("service must be 'es' or 'aoss'")
    if session is None:
        import boto3

        session = boto3.session.Session(region_name=region)
    parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
    return OpenSearch(
        hosts=[{"host": parsed.hostname, "port": parsed.port or (443 if parsed.scheme == "https" else 80)}],
        http_auth=AWSV4SignerAuth(session.get_credentials(), region, service),
        use_ssl=parsed.scheme == "https",
        verify_certs=True,
        connection_class=RequestsHttpConnection,
        timeout=timeout,
        pool_maxsize=20,
    )


@contextlib.contextmanager
def _translated(operation: str) -> Iterator[None]:
    from opensearchpy.exceptions import ConnectionError as OsConnectionError
    from opensearchpy.exceptions import TransportError

    try:
        yield
    except OsConnectionError as error:  # includes timeouts
        raise TransientFailure(f"{operation}: {type(error).__name__}") from error
    except TransportError as error:
        status = error.status_code if isinstance(error.status_code, int) else 0
        if status == 429:
            raise Throttled(f"{operation}: throttled") from error
        raise TransientFailure(f"{operation}: status {status}") from error


def filters(
    tenant_id: str, request: SearchRequest, locales: Sequence[str] | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(filter, must_not) clauses every query carries. `locales`: the stored locales of the language searched."""
    clauses: list[dict[str, Any]] = [
        {"term": {"tenant_id": tenant_id}},
        {"range": {"expires_epoch": {"gt": int(request.now.timestamp())}}},
    ]
    if request.product_area:
        clauses.append({"term": {"product_area": request.product_area}})
    if request.audience.kind != "agent":
        readable: list[dict[str, Any]] = [{"term": {"visibility": "public"}}]
        if request.audience.segments:
            segments = sorted(request.audience.segments)
            readable.append(
                {
                    "bool": {
                        "filter": [{"term": {"visibility": "segments"}}, {"terms": {"segments": segments}}]
                    }
                }
            )
        clauses.append({"bool": {"should": readable, "minimum_should_match": 1}})
    if locales is not None:
        clauses.append({"terms": {"locale": sorted(locales)}})
    return clauses, [{"term": {"superseded": True}}]


def locales_body(tenant_id: str, request: SearchRequest) -> dict[str, Any]:
    """The locales of the articles the request's other filters allow (the language is chosen among them)."""
    clauses, excluded = filters(tenant_id, request)
    return {
        "size": 0,
        "query": {"bool": {"filter": clauses, "must_not": excluded}},
        "aggs": {"locales": {"terms": {"field": "locale", "size": LOCALES_MAX}}},
    }


def lexical_body(
    tenant_id: str, request: SearchRequest, size: int, locales: Sequence[str] | None = None
) -> dict[str, Any]:
    clauses, excluded = filters(tenant_id, request, locales)
    matching: list[dict[str, Any]] = [
        {"multi_match": {"query": request.text, "fields": LEXICAL_FIELDS, "type": "most_fields"}}
    ]
    query_ids = identifiers(request.text)
    if query_ids:
        matching.append({"terms": {"identifiers": query_ids, "boost": IDENTIFIER_BOOST}})
    return {
        "size": size,
        "_source": _SOURCE,
        "query": {
            "bool": {
                "must": [{"bool": {"should": matching, "minimum_should_match": 1}}],
                "filter": clauses,
                "must_not": excluded,
            }
        },
    }


def knn_body(
    tenant_id: str,
    request: SearchRequest,
    vector: list[float],
    size: int,
    locales: Sequence[str] | None = None,
) -> dict[str, Any]:
    clauses, excluded = filters(tenant_id, request, locales)
    return {
        "size": size,
        "_source": _SOURCE,
        "query": {
            "knn": {
                "embedding": {
                    "vector": vector,
                    "k": size,
                    "filter": {"bool": {"filter": clauses, "must_not": excluded}},
                }
            }
        },
    }


def sections_body(
    tenant_id: str, request: SearchRequest, articles: Sequence[tuple[str, int]], size: int
) -> dict[str, Any]:
    """The chunks of these article versions, under the same filters as every search."""
    clauses, excluded = filters(tenant_id, request)
    wanted = [
        {"bool": {"filter": [{"term": {"article_id": a}}, {"term": {"article_version": int(v)}}]}}
        for a, v in articles
    ]
    return {
        "size": size,
        "_source": _SOURCE,
        "query": {
            "bool": {
                "filter": [*clauses, {"bool": {"should": wanted, "minimum_should_match": 1}}],
                "must_not": excluded,
            }
        },
        "sort": [{"article_id": "asc"}, {"ordinal": "asc"}],
    }


def document(chunk: Chunk, vector: list[float] | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "tenant_id": chunk.tenant_id,
        "article_id": chunk.article_id,
        "article_version": chunk.article_version,
        "chunk_id": chunk.chunk_id,
        "ordinal": chunk.ordinal,
        "title": chunk.title,
        "heading_path": chunk.heading_path,
        "headings": " > ".join(chunk.heading_path),
        "text": chunk.text,
        "start": chunk.start,
        "end": chunk.end,
        "product_area": chunk.product_area,
        "locale": chunk.locale,
        "visibility": chunk.visibility,
        "segments": chunk.segments,
        "authority": chunk.authority,
        "updated_at": chunk.updated_at.isoformat(),
        "review_by": chunk.review_by.isoformat() if chunk.review_by else None,
        "expires_epoch": int(chunk.expires_at.timestamp()) if chunk.expires_at else NEVER,
        "superseded": chunk.superseded,
        "identifiers": chunk.identifiers,
        "defined_identifiers": chunk.defined_identifiers,
        "url": chunk.url,
    }
    if vector is not None:
        doc["embedding"] = [float(v) for v in vector]
    return doc


@dataclass(frozen=True)
class _Write:
    """A queued replace (chunks) or removal (none). `version` None: an unversioned call, always applied."""

    tenant_id: str
    article_id: str
    chunks: list[Chunk]
    version: int | None = None
    at: datetime | None = None  # when that version was made


@dataclass(frozen=True)
class _Indexed:
    doc_id: str
    version: int
    at: datetime | None


def _stale(write: _Write, newest: _Indexed | None) -> bool:
    """Older than the version the index holds. A lower version made later is not stale: the article store was
    reset under a kept index (a table restored from a backup)."""
    if write.version is None or newest is None:
        return False
    made_later = write.at is not None and newest.at is not None and write.at > newest.at
    return write.version < newest.version and not made_later


def _indexed_doc(doc_id: str, source: dict[str, Any]) -> _Indexed:
    return _Indexed(doc_id, int(source.get("article_version") or 0), _parse_time(source.get("updated_at")))


def _winner(docs: list[_Indexed]) -> int:
    """The version of an article's chunks that stays when several are indexed: the one `_stale` lets win over
    the others (the latest made, so a store reset's lower version too; a higher version when times are equal or
    unknown)."""
    if all(d.at is not None for d in docs):
        return max(docs, key=lambda d: (d.at, d.version)).version
    return max(d.version for d in docs)


def _admissible(
    source: dict[str, Any], tenant_id: str, request: SearchRequest, locales: Sequence[str] | None = None
) -> bool:
    """The same rules as the query filters, checked on the hit itself: nothing foreign ever leaves the adapter."""
    if source.get("tenant_id") != tenant_id or source.get("superseded"):
        return False
    if locales is not None and source.get("locale") not in locales:
        return False
    if int(source.get("expires_epoch", NEVER)) <= int(request.now.timestamp()):
        return False
    if request.product_area and source.get("product_area") != request.product_area:
        return False
    return request.audience.may_read(str(source.get("visibility")), source.get("segments") or [])


class OpenSearchKnowledgeIndex:
    def __init__(
        self,
        client: Any,
        embeddings: Any | None,
        *,
        index_name: str = DEFAULT_INDEX,
        service: str = "es",
        candidates: int = ranking.CANDIDATES,
    ) -> None:
        self._client = client
        self._embeddings = embeddings  # None: lexical only (a deployment without Bedrock access)
        self.index_name = index_name
        self._service = service
        self._candidates = candidates
        self._pending: list[_Write] = []
        self._ready = False

    # ------------------------------------------------------------------ writes
    def ensure_index(self) -> None:
        if self._ready:
            return
        with _translated("indices.exists"):
            exists = self._client.indices.exists(index=self.index_name)
        if not exists:
            dimensions = int(getattr(self._embeddings, "dimensions", 1024))
            with _translated("indices.create"):
                self._client.indices.create(index=self.index_name, body=index_body(dimensions))
        self._ready = True

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
        if any(c.tenant_id != ctx.tenant_id or c.article_id != article_id for c in chunks):
            raise ValueError("chunks must belong to the caller's tenant and article")
        if chunks:
            version = chunks[0].article_version if version is None else version
            updated_at = updated_at or chunks[0].updated_at
        self._pending.append(_Write(ctx.tenant_id, article_id, list(chunks), version, updated_at))

    def remove_article(
        self,
        ctx: TenantContext,
        article_id: str,
        *,
        version: int | None = None,
        updated_at: datetime | None = None,
    ) -> None:
        """`version`: the deletion's own (tombstone) version; chunks of a later version (the article made again)
        are kept."""
        self._pending.append(_Write(ctx.tenant_id, article_id, [], version, updated_at))

    def flush(self) -> None:
        if not self._pending:
            return
        self.ensure_index()
        everything = [c for write in self._pending for c in write.chunks]
        vectors: list[Any] = [None] * len(everything)
        if self._embeddings is not None and everything:
            vectors = list(self._embeddings.embed([c.embedding_text() for c in everything]))
        by_chunk = {(c.tenant_id, c.chunk_id): v for c, v in zip(everything, vectors, strict=True)}
        actions: list[dict[str, Any]] = []
        for write in self._pending:
            indexed = self._indexed(write.tenant_id, write.article_id)
            newest = max(indexed, key=lambda d: d.version, default=None)
            if newest is not None and _stale(write, newest):
                # A newer version got here first: it stays, and only what is older than it goes.
                garbage = {d.doc_id for d in indexed if d.version < newest.version}
            else:
                garbage = {d.doc_id for d in indexed}
                for chunk in write.chunks:
                    header: dict[str, Any] = {"_index": self.index_name}
                    if self._service == "es":
                        header["_id"] = self.document_id(chunk)
                        garbage.discard(header["_id"])
                    actions += [
                        {"index": header},
                        document(chunk, by_chunk[(chunk.tenant_id, chunk.chunk_id)]),
                    ]
            actions += [{"delete": {"_index": self.index_name, "_id": doc_id}} for doc_id in sorted(garbage)]
        self._bulk(actions)
        self._refresh()
        written = {(write.tenant_id, write.article_id) for write in self._pending}
        self._pending.clear()
        self._settle(written)

    def _settle(self, articles: set[tuple[str, str]]) -> None:
        """Two writers that flush one article at the same moment both read the index before either writes, so
        both versions end up indexed. Read the articles back and delete every version but the one `_stale` lets
        win (the latest made; a higher version on a tie): whichever writer reads last removes the loser."""
        by_tenant: dict[str, list[str]] = {}
        for tenant_id, article_id in sorted(articles):
            by_tenant.setdefault(tenant_id, []).append(article_id)
        garbage: list[str] = []
        for tenant_id, article_ids in by_tenant.items():
            for start in range(0, len(article_ids), SETTLE_ARTICLES):
                batch = article_ids[start : start + SETTLE_ARTICLES]
                found = self._every_hit(
                    [{"term": {"tenant_id": tenant_id}}, {"terms": {"article_id": batch}}],
                    sort=("article_id", "article_version", "ordinal"),
                    extra=("updated_at",),
                )
                versions: dict[str, list[_Indexed]] = {}
                for doc_id, source in found.items():
                    if source.get("tenant_id") == tenant_id and source.get("article_id") in batch:
                        versions.setdefault(str(source["article_id"]), []).append(
                            _indexed_doc(doc_id, source)
                        )
                for docs in versions.values():
                    winner = _winner(docs)
                    garbage += [d.doc_id for d in docs if d.version != winner]
        if garbage:
            self._bulk([{"delete": {"_index": self.index_name, "_id": doc_id}} for doc_id in garbage])
            self._refresh()

    def _refresh(self) -> None:
        if self._service == "es":  # Serverless has no refresh API: its writes become visible within seconds
            with _translated("indices.refresh"):
                self._client.indices.refresh(index=self.index_name)

    @staticmethod
    def document_id(chunk: Chunk) -> str:
        return f"{chunk.tenant_id}:{chunk.chunk_id}"

    def indexed_articles(self, ctx: TenantContext) -> dict[str, int]:
        """Every article of the tenant with chunks in the index, and its newest version there."""
        found: dict[str, int] = {}
        hits = self._every_hit(
            [{"term": {"tenant_id": ctx.tenant_id}}], sort=("article_id", "article_version", "ordinal")
        )
        for source in hits.values():
            if source.get("tenant_id") == ctx.tenant_id and source.get("article_id"):
                article_id, version = str(source["article_id"]), int(source.get("article_version") or 0)
                found[article_id] = max(version, found.get(article_id, 0))
        return found

    def _indexed(self, tenant_id: str, article_id: str) -> list[_Indexed]:
        """Every indexed chunk of the article."""
        hits = self._every_hit(
            [{"term": {"tenant_id": tenant_id}}, {"term": {"article_id": article_id}}],
            sort=("article_version", "ordinal"),
            extra=("updated_at",),
        )
        return [
            _indexed_doc(hit_id, source)
            for hit_id, source in hits.items()
            if source.get("tenant_id") == tenant_id and source.get("article_id") == article_id
        ]

    def _every_hit(
        self, filters: list[dict[str, Any]], *, sort: tuple[str, ...], extra: tuple[str, ...] = ()
    ) -> dict[str, dict[str, Any]]:
        """Document id -> the sort fields (and `extra`) of every document the filters match, page by page:
        search_after on `sort`, which must be unique among the matches."""
        found: dict[str, dict[str, Any]] = {}
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {
                "size": ID_PAGE,
                "_source": ["tenant_id", "article_id", *sort, *extra],
                "query": {"bool": {"filter": filters}},
                "sort": [{field: {"order": "asc"}} for field in sort],
            }
            if after is not None:
                body["search_after"] = after
            with _translated("search"):
                response = self._client.search(index=self.index_name, body=body)
            hits = response.get("hits", {}).get("hits", [])
            for hit in hits:
                found[hit["_id"]] = hit.get("_source", {})
            if len(hits) < ID_PAGE:
                return found
            last = hits[-1].get("_source", {})
            key = [last.get(field) for field in sort]
            if after is not None and key <= after:
                return found  # no further page (a backend that ignores search_after would repeat this one)
            after = key

    def _bulk(self, actions: list[dict[str, Any]]) -> None:
        start = 0
        while start < len(actions):
            end = min(len(actions), start + BULK_LINES)
            if "index" in actions[end - 1]:
                end += 1  # never split an action from its document
            with _translated("bulk"):
                response = self._client.bulk(body=actions[start:end])
            if response.get("errors"):
                failed = [i for i in response.get("items", []) if next(iter(i.values())).get("error")]
                first = next(iter(failed[0].values())).get("error") if failed else "unknown"
                reason = first.get("type", "error") if isinstance(first, dict) else str(first)
                raise TransientFailure(f"bulk: {len(failed)} actions failed ({reason})")
            start = end

    # ------------------------------------------------------------------ search
    def search(self, ctx: TenantContext, request: SearchRequest) -> list[SearchHit]:
        size = self._candidates
        locales = self._locales(ctx.tenant_id, request)
        if locales is not None and not locales:
            return []  # nothing in the customer's language nor the help center's
        lexical_request = lexical_body(ctx.tenant_id, request, size, locales)
        if self._embeddings is None:
            with _translated("search"):
                responses = [self._client.search(index=self.index_name, body=lexical_request)]
        else:
            vector = [float(v) for v in self._embeddings.embed([request.text])[0]]
            body = [
                {"index": self.index_name},
                lexical_request,
                {"index": self.index_name},
                knn_body(ctx.tenant_id, request, vector, size, locales),
            ]
            with _translated("msearch"):
                responses = self._client.msearch(body=body).get("responses", [])
        for response in responses:
            if response.get("error"):
                if response.get("status") == 404:
                    return []  # no article indexed yet
                raise TransientFailure(f"msearch: status {response.get('status')}")
        return self._fuse(ctx.tenant_id, request, responses, locales)

    def _locales(self, tenant_id: str, request: SearchRequest) -> list[str] | None:
        """The stored locales of the language the request searches (SearchRequest.searched_locales); None: all."""
        if request.locale is None:
            return None
        from opensearchpy.exceptions import NotFoundError

        with _translated("search"):
            try:
                response = self._client.search(index=self.index_name, body=locales_body(tenant_id, request))
            except NotFoundError:
                return []  # no article indexed yet
        buckets = response.get("aggregations", {}).get("locales", {}).get("buckets", [])
        present = [str(b["key"]) for b in buckets if b.get("doc_count", 0) > 0 and b.get("key")]
        return sorted(request.searched_locales(present) or ())

    def sections(
        self, ctx: TenantContext, request: SearchRequest, articles: Sequence[tuple[str, int]]
    ) -> list[SearchHit]:
        """Every chunk of these article versions that `search(ctx, request)` could return, in reading order.

        The language is not chosen again: an article is written in one locale, and these came from a search."""
        order = {pair: i for i, pair in enumerate(dict.fromkeys((a, int(v)) for a, v in articles))}
        if not order:
            return []
        body = sections_body(ctx.tenant_id, request, list(order), SECTIONS_MAX)
        with _translated("search"):
            response = self._client.search(index=self.index_name, body=body)
        out = []
        for hit in response.get("hits", {}).get("hits", []):
            source = hit.get("_source", {})
            pair = (source.get("article_id"), int(source.get("article_version", -1)))
            # The filters again, on the hit itself: nothing foreign or unreadable leaves the adapter.
            if pair not in order or not _admissible(source, ctx.tenant_id, request):
                continue
            review_by = source.get("review_by")
            out.append(
                _hit(
                    ranking.Candidate(
                        article_id=source["article_id"],
                        chunk_id=source["chunk_id"],
                        lexical=0.0,
                        dense=None,
                        matched_identifiers=[],
                        defined_matches=0,
                        authority=int(source.get("authority", 3)),
                        updated_at=_parse_time(source.get("updated_at")),
                        stale=bool(review_by) and str(review_by) < request.now.date().isoformat(),
                        payload=source,
                    )
                )
            )
        return sorted(out, key=lambda h: (order[(h.article_id, h.version)], h.start))

    def _fuse(
        self,
        tenant_id: str,
        request: SearchRequest,
        responses: list[dict[str, Any]],
        locales: Sequence[str] | None = None,
    ) -> list[SearchHit]:
        lexical = {h["_id"]: h for h in responses[0].get("hits", {}).get("hits", [])}
        dense = (
            {h["_id"]: h for h in responses[1].get("hits", {}).get("hits", [])} if len(responses) > 1 else {}
        )
        # cosinesimil scores are (1 + cos) / 2; a chunk outside the k-NN list is at most as close as its last hit.
        cosines = {doc_id: 2.0 * float(h.get("_score") or 0.0) - 1.0 for doc_id, h in dense.items()}
        floor = min(cosines.values()) if cosines else 0.0
        query_ids = identifiers(request.text)
        candidates = []
        for doc_id, hit in {**lexical, **dense}.items():
            source = hit.get("_source", {})
            if not _admissible(source, tenant_id, request, locales):
                continue
            review_by = source.get("review_by")
            candidates.append(
                ranking.Candidate(
                    article_id=source["article_id"],
                    chunk_id=source["chunk_id"],
                    lexical=float(lexical[doc_id].get("_score") or 0.0) if doc_id in lexical else 0.0,
                    dense=cosines.get(doc_id, floor) if len(responses) > 1 else None,
                    matched_identifiers=[i for i in query_ids if i in (source.get("identifiers") or [])],
                    defined_matches=sum(
                        1 for i in query_ids if i in (source.get("defined_identifiers") or [])
                    ),
                    authority=int(source.get("authority", 3)),
                    updated_at=_parse_time(source.get("updated_at")),
                    stale=bool(review_by) and str(review_by) < request.now.date().isoformat(),
                    payload=source,
                )
            )
        outranked = request.outranked({_locale_and_area(c.payload) for c in candidates})
        if outranked:
            candidates = [c for c in candidates if _locale_and_area(c.payload) not in outranked]
        ranked = ranking.rank(candidates, query_identifiers=len(query_ids), k=request.k, now=request.now)
        return [_hit(c) for c in ranked]


def _locale_and_area(source: dict[str, Any]) -> tuple[str, str]:
    return str(source.get("locale", "en")), str(source.get("product_area", "general"))


def _parse_time(value: Any) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def _hit(candidate: ranking.Candidate) -> SearchHit:
    source = candidate.payload
    return SearchHit(
        article_id=source["article_id"],
        version=int(source["article_version"]),
        chunk_id=source["chunk_id"],
        title=source.get("title", ""),
        heading_path=list(source.get("heading_path") or []),
        text=source.get("text", ""),
        start=int(source.get("start", 0)),
        end=int(source.get("end", 0)),
        score=candidate.score,
        lexical=candidate.lexical,
        dense=candidate.dense or 0.0,
        stale=candidate.stale,
        authority=candidate.authority,
        product_area=source.get("product_area", "general"),
        visibility=source.get("visibility", "public"),
        matched_identifiers=candidate.matched_identifiers,
        url=source.get("url"),
        updated_at=candidate.updated_at,
    )
