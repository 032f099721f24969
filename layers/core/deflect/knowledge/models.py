"""Governed articles, their stored versions, chunks, and the search request/result shapes both indexes share."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deflect.domain.canonical import canonical_json, sha256_hex
from deflect.domain.models import ArticleRef, EvidenceRef, Versioned, utcnow
from deflect.domain.tenancy import TenantId

Source = Literal["release_notes", "official_kb", "macro", "community"]
# Higher wins when two articles answer equally well: what shipped beats what support wrote beats the forum.
AUTHORITY_RANK: dict[str, int] = {"release_notes": 4, "official_kb": 3, "macro": 2, "community": 1}
Visibility = Literal["public", "internal", "segments"]
ARTICLE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
PRODUCT_AREA_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
SEGMENT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class ArticleMeta(BaseModel):
    """Everything governed about an article except its body."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=300)
    body_format: Literal["markdown", "html"] = "markdown"
    product_area: str = Field(default="general", pattern=PRODUCT_AREA_PATTERN)
    locale: str = Field(default="en", pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
    visibility: Visibility = "public"
    # Customer segments (plans, tiers) that may read a `segments` article. Submitted without a visibility, they
    # make the article `segments`; with `public`, they are refused (ArticleInput).
    segments: list[str] = Field(default_factory=list, max_length=50)
    source: Source = "official_kb"
    # Past this date the article still answers but is flagged stale and ranked lower.
    review_by: date | None = None
    # Past this instant the article is never returned (a promotion ended, a workaround stopped working).
    expires_at: datetime | None = None
    superseded_by: str | None = Field(default=None, pattern=ARTICLE_ID_PATTERN)
    policy_version: int = Field(default=1, ge=1)
    owner: str = Field(default="", max_length=200)
    url: str | None = Field(default=None, max_length=2000)
    tags: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("segments")
    @classmethod
    def _segments(cls, value: list[str]) -> list[str]:
        cleaned = sorted({s.strip().lower() for s in value if s.strip()})
        for segment in cleaned:
            if not re.fullmatch(SEGMENT_PATTERN, segment):
                raise ValueError(f"segment {segment!r} must match {SEGMENT_PATTERN}")
        return cleaned

    @model_validator(mode="after")
    def _segments_needed(self) -> ArticleMeta:
        if self.visibility == "segments" and not self.segments:
            raise ValueError("visibility 'segments' needs at least one segment")
        return self

    @property
    def authority(self) -> int:
        return AUTHORITY_RANK[self.source]


class ArticleInput(ArticleMeta):
    """What an author submits: the PUT body, or one row of an import."""

    body: str = Field(min_length=1, max_length=400_000)

    @model_validator(mode="after")
    def _segments_restrict(self) -> ArticleInput:
        # Segments say the author meant to restrict the article: never publish it to everyone because the
        # visibility line was left out, and refuse a public article that names segments rather than guess.
        if self.segments and self.visibility == "public":
            if "visibility" in self.model_fields_set:
                raise ValueError("segments are read only with visibility 'segments': set it, or remove segments")
            self.visibility = "segments"
        return self

    def content_sha256(self) -> str:
        """Hash of everything submitted: re-submitting the same article is recognised and does no work."""
        return sha256_hex(canonical_json(self.model_dump(mode="json")))

    def meta(self) -> ArticleMeta:
        return ArticleMeta.model_validate(self.model_dump(exclude={"body"}))


class ArticleVersion(Versioned):
    """`T#{t}#KB#{id}` / `V#{n}`: one immutable version. The body is a locked evidence object (`body_ref`)."""

    tenant_id: TenantId
    article_id: str = Field(pattern=ARTICLE_ID_PATTERN)
    article_version: int = Field(ge=1)
    deleted: bool = False
    meta: ArticleMeta | None = None
    content_sha256: str | None = None
    body_ref: EvidenceRef | None = None
    chunk_count: int = 0
    updated_by: str = "system"
    updated_at: datetime = Field(default_factory=utcnow)


class ArticleHead(Versioned):
    """`T#{t}#KB#{id}` / `HEAD`: which version is current. Optimistic locking serialises concurrent writers."""

    tenant_id: TenantId
    article_id: str = Field(pattern=ARTICLE_ID_PATTERN)
    current_version: int = 0
    content_sha256: str | None = None
    deleted: bool = False
    # The version the search index holds. Behind current_version only if indexing failed: a retry repairs it.
    indexed_version: int = 0
    updated_at: datetime = Field(default_factory=utcnow)
    # The latest edit time an import's source (a help center export) gave this article: older rows are refused.
    source_updated_at: datetime | None = None


class Article(BaseModel):
    """One version with its body, as read back for display or to check a citation."""

    tenant_id: str
    article_id: str
    version: int
    meta: ArticleMeta
    body: str
    updated_at: datetime
    body_ref: EvidenceRef


class Chunk(BaseModel):
    """A heading-bounded piece of one article version, carrying the governance fields the index filters on."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str
    article_id: str
    article_version: int
    chunk_id: str
    ordinal: int
    title: str
    heading_path: list[str] = Field(default_factory=list)
    text: str
    # Character offsets into the article's plain text (Markdown as written; HTML after tag removal).
    start: int
    end: int
    product_area: str = "general"
    locale: str = "en"
    visibility: Visibility = "public"
    segments: list[str] = Field(default_factory=list)
    authority: int = AUTHORITY_RANK["official_kb"]
    updated_at: datetime = Field(default_factory=utcnow)
    review_by: date | None = None
    expires_at: datetime | None = None
    superseded: bool = False
    identifiers: list[str] = Field(default_factory=list)
    # The subset the chunk is about (in its title, headings or a table row), which ranks above a passing mention.
    defined_identifiers: list[str] = Field(default_factory=list)
    url: str | None = None

    def embedding_text(self) -> str:
        """What the dense model sees: title and headings say what the section is about; the text says how.

        Markup is dropped and the title is not repeated: the model reads only the first few dozen tokens.
        """
        path = self.heading_path[1:] if self.heading_path[:1] == [self.title] else self.heading_path
        return "\n".join(part for part in (self.title, " > ".join(path), _prose(self.text)) if part)


_HEADING_LINE = re.compile(
    r"^\s{0,3}#{1,6}\s.*$|^\s*[=-]{3,}\s*$|^\s*\|?(?:\s*:?-{3,}:?\s*\|)+\s*:?-*:?\s*$", re.M
)
_MARKUP = re.compile(r"[*`]+|^>+ ?|\s*\|\s*", re.M)


def _prose(text: str) -> str:
    """Chunk text without heading lines, table rules and Markdown punctuation."""
    text = _HEADING_LINE.sub("", text)
    text = _MARKUP.sub(lambda m: " " if "|" in m.group(0) else "", text)
    return re.sub(r"[ \t]+", " ", re.sub(r"\n\s*\n+", "\n", text)).strip()


class Audience(BaseModel):
    """Who will read the results. Customers see public articles and those of their segments; agents see all."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["customer", "agent"] = "customer"
    segments: frozenset[str] = frozenset()

    def may_read(self, visibility: str, segments: list[str] | frozenset[str]) -> bool:
        if self.kind == "agent" or visibility == "public":
            return True
        return visibility == "segments" and bool(self.segments.intersection(segments))


class SearchRequest(BaseModel):
    """What to look for, for whom.

    `locale` is the customer's ("en-GB", "de"); None searches every locale (agents, `deflect kb search`). With a
    locale, ONE language is searched: every locale of the customer's language ("en-GB", "en", "en-US", ...) that
    holds an article the other filters allow (tenant, audience, product area, expiry), else every locale of the help
    center's `default_locale` language, and nothing when neither has any (searched_locales()). A passage in another
    language is never given beside or instead of one in theirs; what their language does not cover is escalated.

    Within that language, closer locales come first: the customer's exact locale ("en-GB"), then their bare language
    ("en"), then other regions ("en-US"). Among the articles found, one is left out when an article in a closer
    locale is in the same product area (outranked()): an en-GB customer asking about tax gets the en-GB tax article,
    not the en-US one, and an en-US-only export article (another product area) still answers them. In the default
    locale's language the same applies with the default locale as the customer's.
    Locales compare case-insensitively, "_" as "-".
    """

    model_config = ConfigDict(frozen=True)

    text: str = Field(min_length=1, max_length=8000)
    k: int = Field(default=5, ge=1, le=50)
    product_area: str | None = Field(default=None, pattern=PRODUCT_AREA_PATTERN)
    audience: Audience = Field(default_factory=Audience)
    now: datetime = Field(default_factory=utcnow)
    locale: str | None = Field(default=None, max_length=35)
    # The help center's default locale: the fallback when nothing is written in the customer's language.
    default_locale: str | None = Field(default=None, max_length=35)

    @field_validator("locale", "default_locale")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value if value is None or value.strip() else None

    def searched_locales(self, present: Iterable[str]) -> set[str] | None:
        """Of the locales the allowed articles are written in (`present`, as stored), those this request searches:
        all of the customer's language, else all of the default locale's. None: every locale (no `locale`)."""
        if self.locale is None:
            return None
        stored = list(present)
        for own in self._own_locales():
            found = {locale for locale in stored if _language(locale) == _language(own)}
            if found:
                return found
        return set()

    def outranked(self, found: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Of the (stored locale, product area) pairs of the articles a search found under searched_locales(),
        those left out: each gives way to one in a closer locale (own, then bare language, then another region) in
        the same product area. The one rule both indexes apply to their candidates before ranking, so `k` hits
        still come back."""
        found = set(found)
        languages = {_language(locale) for locale, _area in found}
        own = next((key for key in self._own_locales() if _language(key) in languages), None)
        if own is None:
            return set()

        def closeness(locale: str) -> int:
            key = _locale_key(locale)
            return 0 if key == own else 1 if key == _language(own) else 2

        closest: dict[str, int] = {}
        for locale, area in found:
            closest[area] = min(closest.get(area, 2), closeness(locale))
        return {(locale, area) for locale, area in found if closeness(locale) > closest[area]}

    def _own_locales(self) -> list[str]:
        """The customer's locale, then the help center's default (compared form); empty without `locale`."""
        if self.locale is None:
            return []
        wanted = [_locale_key(self.locale)]
        if self.default_locale is not None and _locale_key(self.default_locale) not in wanted:
            wanted.append(_locale_key(self.default_locale))
        return wanted


def _locale_key(locale: str) -> str:
    """The form locales are compared in: en_GB and EN-gb are both en-gb."""
    return locale.strip().replace("_", "-").lower()


def _language(locale: str) -> str:
    """en-GB -> en."""
    return _locale_key(locale).split("-")[0]


class SearchHit(BaseModel):
    """One article's best chunk. `score` is comparable across queries (the answer threshold applies to it)."""

    article_id: str
    version: int
    chunk_id: str
    title: str
    heading_path: list[str] = Field(default_factory=list)
    text: str
    start: int
    end: int
    score: float
    lexical: float = 0.0
    dense: float = 0.0
    stale: bool = False
    authority: int = AUTHORITY_RANK["official_kb"]
    product_area: str = "general"
    visibility: Visibility = "public"
    matched_identifiers: list[str] = Field(default_factory=list)
    url: str | None = None
    updated_at: datetime | None = None

    def ref(self) -> ArticleRef:
        return ArticleRef(
            article_id=self.article_id,
            version=self.version,
            title=self.title,
            chunk_id=self.chunk_id,
            heading_path=self.heading_path,
            score=round(self.score, 4),
            stale=self.stale,
            url=self.url,
        )


class KnowledgeGap(Versioned):
    """A search nobody could answer well: what customers ask that the help center does not cover."""

    tenant_id: TenantId
    gap_id: str
    product_area: str | None = None
    query_redacted: str
    best_score: float
    audience: Literal["customer", "agent"] = "customer"
    at: datetime = Field(default_factory=utcnow)


class PutOutcome(BaseModel):
    article_id: str
    status: Literal["added", "updated", "unchanged", "deleted", "absent"]
    version: int
    chunks: int = 0


class Rejection(BaseModel):
    source: str
    reason: str


class ReindexSummary(BaseModel):
    reindexed: int = 0
    chunks: int = 0
    # Articles taken out of the index: deleted or gone from the store, or (also in `refused`, with the reason)
    # left with no visible text under today's chunking rules, or whose stored version cannot be read.
    removed: list[str] = Field(default_factory=list)
    refused: dict[str, str] = Field(default_factory=dict)


class ImportSummary(BaseModel):
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = Field(default_factory=list)
    chunks: int = 0
    seconds: float = 0.0
    # A time-bounded import that stopped before the end: the row to go on from (every row before it is indexed).
    next_row: int | None = None

    def count(self, outcome: PutOutcome) -> None:
        if outcome.status in ("added", "updated", "unchanged"):
            setattr(self, outcome.status, getattr(self, outcome.status) + 1)
        self.chunks += outcome.chunks
