"""Article versions: metadata in SupportTable (`T#{t}#KB#{id}` / `HEAD`, `V#{n}`), bodies as locked evidence.

A version is never rewritten, and its body object is write-once and re-hashed on read, so a citation
(article id + version) resolves to the exact text that was cited, whatever happened to the article since.
"""

from __future__ import annotations

import json

from deflect.domain import keys
from deflect.domain.canonical import canonical_json
from deflect.domain.errors import NotFound
from deflect.domain.models import Citation, EvidenceRef
from deflect.domain.tenancy import TenantContext
from deflect.knowledge.models import Article, ArticleHead, ArticleInput, ArticleVersion
from deflect.ports import EvidenceStore, Put, SupportStore
from deflect.repositories import put_new, put_versioned

HEAD_SK = "HEAD"


def version_sk(version: int) -> str:
    # Zero-padded so versions sort numerically within the article's partition.
    return f"V#{version:06d}"


def body_key(tenant_id: str, article_id: str, version: int, sha256: str) -> str:
    return f"{keys.s3_prefix(tenant_id)}knowledge/articles/{article_id}/v{version:06d}-{sha256[:16]}.json"


class ArticleRepository:
    def __init__(self, store: SupportStore, evidence: EvidenceStore) -> None:
        self.store = store
        self.evidence = evidence

    # -- reads
    def head(self, ctx: TenantContext, article_id: str) -> ArticleHead | None:
        item = self.store.get(ctx, keys.article_pk(ctx.tenant_id, article_id), HEAD_SK)
        return ArticleHead.model_validate(item.data) if item else None

    def version(self, ctx: TenantContext, article_id: str, version: int) -> ArticleVersion | None:
        item = self.store.get(ctx, keys.article_pk(ctx.tenant_id, article_id), version_sk(version))
        return ArticleVersion.model_validate(item.data) if item else None

    def versions(self, ctx: TenantContext, article_id: str) -> list[ArticleVersion]:
        items = self.store.query(ctx, keys.article_pk(ctx.tenant_id, article_id), "V#")
        return [ArticleVersion.model_validate(i.data) for i in items]

    def read(self, ctx: TenantContext, article_id: str, version: int | None = None) -> Article:
        """The article as it was at `version` (default: current). Tombstones and unknown versions are NotFound."""
        if version is None:
            head = self.head(ctx, article_id)
            if head is None or head.deleted:
                raise NotFound("article not found")
            version = head.current_version
        record = self.version(ctx, article_id, version)
        if record is None or record.deleted or record.body_ref is None or record.meta is None:
            raise NotFound("article version not found")
        stored = json.loads(self.evidence.read(ctx, record.body_ref))
        return Article(
            tenant_id=ctx.tenant_id,
            article_id=article_id,
            version=version,
            meta=record.meta,
            body=stored["body"],
            updated_at=record.updated_at,
            body_ref=record.body_ref,
        )

    def resolve(self, ctx: TenantContext, citation: Citation) -> Article:
        """The exact version a citation names; raises NotFound if its quote is not in that version's text.

        The quote is looked for as the composer took it and `grounding.verify` checks it: in the text a reader
        sees, without Markdown marks or line breaks, never in hidden text."""
        from deflect.knowledge.chunking import plain_text
        from deflect.triage import grounding

        article = self.read(ctx, citation.article_id, citation.version)
        visible, _ = grounding.clean_text(plain_text(article.body, article.meta.body_format))
        quote = grounding.normal_form(citation.quote)
        if quote and quote not in grounding.normal_form(visible):
            raise NotFound("quote not found in the cited version")
        return article

    # -- writes
    def store_body(
        self, ctx: TenantContext, article_id: str, version: int, article: ArticleInput
    ) -> EvidenceRef:
        document = {
            "tenant_id": ctx.tenant_id,
            "article_id": article_id,
            "version": version,
            "content_sha256": article.content_sha256(),
            "meta": article.meta().model_dump(mode="json"),
            "body": article.body,
        }
        key = body_key(ctx.tenant_id, article_id, version, article.content_sha256())
        return self.evidence.put_locked(ctx, key, canonical_json(document), "knowledge_article")

    @staticmethod
    def version_writes(head: ArticleHead, record: ArticleVersion) -> list[Put]:
        """HEAD guarded on the version read (a concurrent writer gets Conflict) plus the new immutable version."""
        pk = keys.article_pk(head.tenant_id, head.article_id)
        return [put_versioned(pk, HEAD_SK, head), put_new(pk, version_sk(record.article_version), record)]

    @staticmethod
    def head_write(head: ArticleHead) -> Put:
        return put_versioned(keys.article_pk(head.tenant_id, head.article_id), HEAD_SK, head)
