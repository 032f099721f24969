"""What a search may never return: another tenant's chunk, an internal article to a customer, an expired or
superseded article. Checked on the embedded index (the local default) with a deterministic embedder."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deflect.domain.tenancy import TenantContext
from deflect.embedded.search import EmbeddedKnowledgeIndex
from deflect.knowledge.chunking import chunk_article
from deflect.knowledge.models import ArticleInput, Audience, SearchRequest
from tests.knowledge_cases.fakes import HashingEmbedder

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
BODY = "# Refunds\n\nAnnual plans can be refunded within 30 days. Error SB-6001 means the card was declined."


def index_article(index, tenant_id: str, article_id: str, body: str = BODY, **meta) -> None:
    article = ArticleInput(title=meta.pop("title", "Refund policy"), body=body, **meta)
    chunks = chunk_article(
        tenant_id=tenant_id,
        article_id=article_id,
        version=1,
        meta=article.meta(),
        body=article.body,
        updated_at=meta.get("updated_at", NOW - timedelta(days=200)),
    )
    index.replace_article(TenantContext.system(tenant_id), article_id, chunks)


def search(index, tenant_id: str, text: str = "refund annual plan SB-6001", **kw):
    request = SearchRequest(text=text, k=kw.pop("k", 10), now=kw.pop("now", NOW), **kw)
    return index.search(TenantContext.system(tenant_id), request)


@pytest.fixture(scope="module")
def embedder():
    return HashingEmbedder()


# Tenant ids that share prefixes, the way real ones do (acme, acme-corp, acme-corp-eu, acme2).
tenant_ids = st.lists(
    st.builds(
        lambda base, suffix: base + suffix,
        st.sampled_from(["acme", "acm", "acme-corp", "globex"]),
        st.sampled_from(["", "-corp", "-eu", "2", "-corp-eu"]),
    ),
    min_size=2,
    max_size=5,
    unique=True,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tenants=tenant_ids, shared=st.booleans())
def test_a_tenant_never_retrieves_another_tenants_chunk(embedder, tenants, shared):
    index = EmbeddedKnowledgeIndex(None, embedder)
    for tenant in tenants:
        # Same article id and (optionally) the same words in every tenant: only the tenant filter separates them.
        body = BODY if shared else f"{BODY}\n\nNotes for {tenant} only."
        index_article(index, tenant, "refunds", body=body, title=f"Refunds at {tenant}")
        index_article(index, tenant, f"extra-{tenant}", body=f"# {tenant}\n\nRefund notes for {tenant}.")
    index.flush()

    for tenant in tenants:
        for audience in (Audience(), Audience(kind="agent")):
            hits = search(index, tenant, f"refund {' '.join(tenants)}", audience=audience)
            assert hits, "own articles are found"
            assert {h.title for h in hits} <= {f"Refunds at {tenant}", "Refund policy"}
            assert {h.article_id for h in hits} <= {"refunds", f"extra-{tenant}"}


def test_customers_never_see_internal_articles_and_see_segment_articles_only_in_their_segment(embedder):
    index = EmbeddedKnowledgeIndex(None, embedder)
    index_article(index, "acme", "public-refunds")
    index_article(index, "acme", "internal-playbook", visibility="internal", source="macro")
    index_article(index, "acme", "business-refunds", visibility="segments", segments=["business"])
    index.flush()

    customer = {h.article_id for h in search(index, "acme")}
    business = {
        h.article_id for h in search(index, "acme", audience=Audience(segments=frozenset({"business"})))
    }
    agent = {h.article_id for h in search(index, "acme", audience=Audience(kind="agent"))}

    assert customer == {"public-refunds"}
    assert business == {"public-refunds", "business-refunds"}
    assert agent == {"public-refunds", "internal-playbook", "business-refunds"}
    # Even a query naming the internal article's exact words finds nothing internal for a customer.
    assert all(h.visibility != "internal" for h in search(index, "acme", "playbook internal macro refunds"))


def test_expired_and_superseded_articles_are_never_returned(embedder):
    index = EmbeddedKnowledgeIndex(None, embedder)
    index_article(index, "acme", "current")
    index_article(index, "acme", "promo", expires_at=NOW - timedelta(minutes=1))
    index_article(index, "acme", "old-policy", superseded_by="current")
    index_article(index, "acme", "later", expires_at=NOW + timedelta(days=1))
    index.flush()

    for audience in (Audience(), Audience(kind="agent")):
        assert {h.article_id for h in search(index, "acme", audience=audience)} == {"current", "later"}
    # The same promotion was returned while it was valid.
    assert "promo" in {h.article_id for h in search(index, "acme", now=NOW - timedelta(days=1))}


def test_stale_articles_are_flagged_and_ranked_below_an_equally_good_fresh_one(embedder):
    index = EmbeddedKnowledgeIndex(None, embedder)
    index_article(index, "acme", "stale", review_by=date(2025, 1, 1))
    index_article(index, "acme", "fresh", review_by=date(2026, 1, 1))
    index.flush()

    hits = search(index, "acme")
    assert [(h.article_id, h.stale) for h in hits] == [("fresh", False), ("stale", True)]


def test_higher_authority_wins_a_tie_and_product_area_narrows_the_search(embedder):
    index = EmbeddedKnowledgeIndex(None, embedder)
    index_article(index, "acme", "forum-post", source="community", product_area="billing")
    index_article(index, "acme", "release-note", source="release_notes", product_area="billing")
    index_article(index, "acme", "other-area", product_area="integrations")
    index.flush()

    assert [h.article_id for h in search(index, "acme", product_area="billing")] == [
        "release-note",
        "forum-post",
    ]


def test_an_exact_error_code_outranks_a_closer_paraphrase(embedder):
    index = EmbeddedKnowledgeIndex(None, embedder)
    index_article(
        index,
        "acme",
        "declined",
        title="Error SB-6001: card declined",
        body="# Card declined\n\nUpdate the card.",
    )
    index_article(
        index,
        "acme",
        "payments",
        title="Payments",
        body="# Payments\n\nWhat does it mean when my payment card error happens",
    )
    index.flush()

    assert search(index, "acme", "what does payment card error sb6001 mean")[0].article_id == "declined"


def test_the_index_survives_a_restart_and_sees_other_processes_changes(tmp_path, embedder):
    first = EmbeddedKnowledgeIndex(tmp_path, embedder)
    index_article(first, "acme", "refunds")
    first.flush()

    second = EmbeddedKnowledgeIndex(tmp_path, embedder)  # another process, or the next `make run`
    assert [h.article_id for h in search(second, "acme")] == ["refunds"]

    embedded_before = embedder.embedded
    index_article(second, "acme", "refunds")  # same sections again: vectors are reused, not recomputed
    index_article(second, "acme", "billing", body="# Billing\n\nRefund annual plan invoices.")
    second.remove_article(TenantContext.system("acme"), "refunds")
    second.flush()
    assert embedder.embedded - embedded_before == 1

    assert [h.article_id for h in search(first, "acme")] == ["billing"]
    third = EmbeddedKnowledgeIndex(tmp_path, embedder)
    assert [h.article_id for h in search(third, "acme")] == ["billing"]


def test_chunks_for_another_tenant_are_refused_at_the_door(embedder):
    index = EmbeddedKnowledgeIndex(None, embedder)
    article = ArticleInput(title="T", body="Body")
    chunks = chunk_article(
        tenant_id="acme-corp", article_id="a", version=1, meta=article.meta(), body="Body", updated_at=NOW
    )
    with pytest.raises(ValueError):
        index.replace_article(TenantContext.system("acme"), "a", chunks)
