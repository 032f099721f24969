"""Knowledge search for customers and agents, and the knowledge gaps it reveals.

Every search whose best score is under the tenant's answer threshold is recorded as a gap (tenant, product
area, redacted query, time) so the help center team sees what customers ask that nothing answers well.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from deflect.domain import keys
from deflect.domain.errors import DeflectError
from deflect.domain.models import DecisionPolicy, TenantConfig, new_id, utcnow
from deflect.domain.tenancy import TenantContext
from deflect.knowledge.models import Audience, KnowledgeGap, SearchHit, SearchRequest
from deflect.ports import KnowledgeIndex, Put, SupportStore

GAP_RETENTION_DAYS = 400
DEFAULT_ANSWER_THRESHOLD = DecisionPolicy().answer_threshold
# Articles whose other sections a composer may quote: the answer is often in the found article, not its best chunk.
SECTION_ARTICLES = 2

# Greetings, thanks and sign-offs carry no meaning for retrieval but cost embedding time on long messages.
_PLEASANTRY = re.compile(
    r"^\s*(?:(?:hi|hello|hey|dear|greetings|good (?:morning|afternoon|evening))\b[^.!?\n]{0,40}[,.!?\n]?\s*$"
    r"|(?:many |huge |a lot of )?(?:thanks|thank you|thx|cheers|regards|best|kind regards|best regards"
    r"|warm regards|sincerely)\b.{0,60}$"
    r"|.{0,40}\b(?:(?:any|all) help (?:would be|is) (?:much |greatly |really )?appreciated|thanks? (?:you )?in advance"
    r"|hope (?:you(?:'re| are)|this finds you) (?:doing )?well|sent from my)\b.{0,60}$)",
    re.IGNORECASE,
)
# The same run into the question itself: "Good morning, is there…", "Hey team, hope you're well :) how do I…",
# "Quick question: how…".
_PREAMBLE = re.compile(
    r"^\s*(?:(?:hi|hello|hey|dear|greetings|good (?:morning|afternoon|evening))"
    r"(?:\s+(?:there|team|all|everyone|folks|guys|support))?\s*[,!:;.-]+"
    r"|i?\s*hope (?:you(?:'re| are)|all is|this finds you) (?:doing )?well\b[\s,!.:;)(-]*(?:[:;]-?[)D])?"
    r"|(?:a |one )?(?:quick|small|simple) question\s*[:,-]"
    r")\s*",
    re.IGNORECASE,
)
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")


def focus(text: str) -> str:
    """The question without greetings and sign-offs (kept whole if nothing else would remain)."""
    sentences = [s for s in _SENTENCES.split(text.strip()) if s.strip()]
    # "Hello, I was charged twice" is a greeting before a sentence that counts, not a pleasantry to drop.
    kept = [s for s in map(_unprefixed, sentences) if s and not _PLEASANTRY.match(s)]
    return " ".join(kept) if kept else text.strip()


def _unprefixed(sentence: str) -> str:
    previous = None
    while previous != sentence:
        previous = sentence
        sentence = _PREAMBLE.sub("", sentence, count=1)
    return sentence.strip()


class SearchResults(BaseModel):
    hits: list[SearchHit] = Field(default_factory=list)
    best_score: float = 0.0
    answer_threshold: float = DEFAULT_ANSWER_THRESHOLD
    gap_recorded: bool = False
    # The locales searched (SearchRequest), so that sections() reads under the same ones; not part of the API answer.
    locale: str | None = Field(default=None, exclude=True)
    default_locale: str | None = Field(default=None, exclude=True)


class KnowledgeGaps:
    """`T#{t}#KBGAP#{yyyy-mm}` / `{at}#{id}`: one partition per tenant and month, read without a Scan."""

    def __init__(self, store: SupportStore) -> None:
        self.store = store

    @staticmethod
    def partition(tenant_id: str, at: datetime) -> str:
        return f"{keys.tenant_pk(tenant_id)}#KBGAP#{at:%Y-%m}"

    def write(self, gap: KnowledgeGap) -> Put:
        expires = gap.at + timedelta(days=GAP_RETENTION_DAYS)
        return Put(
            pk=self.partition(gap.tenant_id, gap.at),
            sk=f"{gap.at.isoformat()}#{gap.gap_id}",
            data=gap.model_dump(mode="json"),
            expect="new",
            ttl_epoch=int(expires.timestamp()),
        )

    def month(self, ctx: TenantContext, at: datetime, limit: int | None = None) -> list[KnowledgeGap]:
        items = self.store.query(ctx, self.partition(ctx.tenant_id, at), limit=limit, newest_first=True)
        return [KnowledgeGap.model_validate(i.data) for i in items]


class KnowledgeSearch:
    def __init__(
        self,
        index: KnowledgeIndex,
        store: SupportStore,
        *,
        redact: Callable[[str], str] | None = None,
        threshold_for: Callable[[TenantContext], float] | None = None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.index = index
        self.gaps = KnowledgeGaps(store)
        self._store = store
        self._redact = redact or _default_redact()
        self._threshold_for = threshold_for or self._tenant_threshold
        self._now = now

    def search(
        self,
        ctx: TenantContext,
        text: str,
        *,
        k: int = 5,
        product_area: str | None = None,
        audience: Audience | None = None,
        record_gap: bool = True,
        locale: str | None = None,
        default_locale: str | None = None,
    ) -> SearchResults:
        """`locale`: the customer's; their language is searched, own locale first (SearchRequest). None: every locale.
        `default_locale`: the help center's fallback, read from the tenant's configuration when not given."""
        now = self._now()
        if locale and not default_locale:
            default_locale = self._tenant_default_locale(ctx)
        request = SearchRequest(
            text=focus(text)[:8000],
            k=k,
            product_area=product_area,
            audience=audience or Audience(),
            now=now,
            locale=locale,
            default_locale=default_locale,
        )
        hits = self.index.search(ctx, request)
        best = hits[0].score if hits else 0.0
        threshold = self._threshold_for(ctx)
        gap = best < threshold
        if gap and record_gap:
            self._record_gap(ctx, request, best, now)
        return SearchResults(
            hits=hits,
            best_score=round(best, 4),
            answer_threshold=threshold,
            gap_recorded=gap and record_gap,
            locale=request.locale,
            default_locale=request.default_locale,
        )

    def sections(
        self,
        ctx: TenantContext,
        text: str,
        results: SearchResults,
        *,
        articles: int = SECTION_ARTICLES,
        audience: Audience | None = None,
    ) -> list[SearchHit]:
        """The other sections of the best `articles` hits: the same article versions, read through the index under
        the same tenant and audience filters as the search, each carrying its article's retrieval score (the
        article was found; which of its sections answers is the composer's call). Empty for an index without it."""
        top = results.hits[:articles]
        read = getattr(self.index, "sections", None)
        if not top or read is None:
            return []
        request = SearchRequest(
            text=focus(text)[:8000],
            k=len(top),
            audience=audience or Audience(),
            now=self._now(),
            locale=results.locale,
            default_locale=results.default_locale,
        )
        found = {h.chunk_id for h in results.hits}
        by_article = {(h.article_id, h.version): h for h in top}
        out = []
        for section in read(ctx, request, list(by_article)):
            parent = by_article.get((section.article_id, section.version))
            if parent is None or section.chunk_id in found:
                continue
            out.append(section.model_copy(update={"score": parent.score}))
        return out

    def record_unanswered(
        self, ctx: TenantContext, text: str, results: SearchResults, audience: Audience | None = None
    ) -> bool:
        """Record a gap for a search the caller made with `record_gap=False` and then could not answer from (triage
        knows only after drafting: a weak best hit can still ground an answer)."""
        if results.best_score >= results.answer_threshold:
            return False
        now = self._now()
        request = SearchRequest(text=focus(text)[:8000], k=1, audience=audience or Audience(), now=now)
        self._record_gap(ctx, request, results.best_score, now)
        return True

    def _record_gap(self, ctx: TenantContext, request: SearchRequest, best: float, now: datetime) -> None:
        gap = KnowledgeGap(
            tenant_id=ctx.tenant_id,
            gap_id=new_id("gap_"),
            product_area=request.product_area,
            query_redacted=self._redact(request.text)[:1000],
            best_score=round(best, 4),
            audience=request.audience.kind,
            at=now,
        )
        # Analytics must never fail a customer's search.
        with contextlib.suppress(DeflectError):
            self._store.put(ctx, self.gaps.write(gap))

    def _tenant_threshold(self, ctx: TenantContext) -> float:
        config = self._tenant_config(ctx)
        return config.policy.answer_threshold if config else DEFAULT_ANSWER_THRESHOLD

    def _tenant_default_locale(self, ctx: TenantContext) -> str | None:
        config = self._tenant_config(ctx)
        return config.default_locale if config else None

    def _tenant_config(self, ctx: TenantContext) -> TenantConfig | None:
        from deflect.repositories import TenantConfigs

        try:
            return TenantConfigs(self._store).find(ctx)
        except DeflectError:
            return None


def _default_redact() -> Callable[[str], str]:
    from deflect.pii import redact

    return redact
