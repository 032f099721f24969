"""A how-to whose answer sits in another section of the article search found is answered from that section, and
the sections read back for it never include another tenant's chunks, an internal article or an old version."""

from __future__ import annotations

from datetime import UTC, datetime

from deflect.adapters.opensearch_index import OpenSearchKnowledgeIndex, document
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemoryEvidenceStore, MemorySupportStore
from deflect.embedded.model import ExtractiveComposer
from deflect.embedded.search import EmbeddedKnowledgeIndex
from deflect.knowledge.chunking import chunk_article
from deflect.knowledge.ingestion import KnowledgeIngestion
from deflect.knowledge.models import ArticleInput, Audience, SearchHit, SearchRequest
from deflect.knowledge.search import KnowledgeSearch, SearchResults
from deflect.triage import grounding
from tests.knowledge_cases.fakes import HashingEmbedder
from tests.unit.triage_fakes import BagOfWords

ACME = TenantContext.system("acme")
GLOBEX = TenantContext.system("globex")
CUSTOMER = Audience(kind="customer")
QUESTION = "How can I give a colleague read-only access?"
TEAM = """# Invite teammates and assign roles

## Invite a colleague

To invite a colleague, open Settings, then Team, and click Invite. The colleague gets an email with a link to join
your workspace.

## Roles

| Role | What it allows |
| --- | --- |
| Editor | Create and change beams, start runs |
| Viewer | Read-only access to beams, runs and run logs; cannot change anything |
"""
VIEWER_ROW = "Viewer | Read-only access to beams, runs and run logs; cannot change anything"


def knowledge() -> tuple[EmbeddedKnowledgeIndex, KnowledgeSearch]:
    store, evidence = MemorySupportStore(), MemoryEvidenceStore()
    index = EmbeddedKnowledgeIndex(None, HashingEmbedder())
    ingestion = KnowledgeIngestion(store, evidence, index)
    ingestion.put(ACME, "team", ArticleInput(title="Invite teammates and assign roles", body=TEAM))
    return index, KnowledgeSearch(index, store, threshold_for=lambda _: 0.0)


def composer() -> ExtractiveComposer:
    return ExtractiveComposer(BagOfWords(), min_passage_score=0.0, min_unit_similarity=0.1)


def test_a_howto_answered_in_another_section_of_the_found_article_gets_a_cited_answer():
    _, search = knowledge()
    results = search.search(ACME, QUESTION, audience=CUSTOMER, record_gap=False)
    # The search finds the article through its invitation section: the roles table is another chunk.
    assert [h.article_id for h in results.hits] == ["team"]
    assert VIEWER_ROW not in results.hits[0].text

    sections = search.sections(ACME, QUESTION, results, audience=CUSTOMER)
    passages = [*results.hits, *sections]
    draft = composer().compose(ACME, QUESTION, passages).draft

    assert draft is not None
    assert any(c.quote == VIEWER_ROW for c in draft.citations)
    assert {(c.article_id, c.version) for c in draft.citations} == {("team", 1)}
    assert grounding.verify(draft, [grounding.clean_passage(p) for p in passages]).ok
    # Sections carry their article's retrieval score, never a better one.
    assert sections and all(s.score == results.hits[0].score for s in sections)


def test_without_the_other_sections_the_roles_table_cannot_be_quoted():
    _, search = knowledge()
    results = search.search(ACME, QUESTION, audience=CUSTOMER, record_gap=False)
    draft = composer().compose(ACME, QUESTION, results.hits).draft

    assert draft is None or all(c.quote != VIEWER_ROW for c in draft.citations)


def test_another_tenants_or_an_internal_articles_chunks_are_never_used():
    index, search = knowledge()
    store_g, evidence_g = MemorySupportStore(), MemoryEvidenceStore()
    secret = "Viewer | Read-only access is granted by emailing the globex admin password"
    KnowledgeIngestion(store_g, evidence_g, index).put(
        GLOBEX,
        "team",
        ArticleInput(
            title="Invite teammates",
            body=f"# Team\n\n## Roles\n\n| Role | x |\n| --- | --- |\n| {secret} |\n",
        ),
    )
    KnowledgeIngestion(MemorySupportStore(), MemoryEvidenceStore(), index).put(
        ACME,
        "team-internal",
        ArticleInput(
            title="Team roles (agents only)",
            body="# Team roles\n\n## Roles\n\nRead-only access for a colleague: grant it from the admin console.",
            visibility="internal",
        ),
    )
    index.flush()
    results = search.search(ACME, QUESTION, audience=CUSTOMER, record_gap=False)
    # A caller asking for the internal article and another version by name still gets none of them.
    forged = SearchResults(
        hits=[
            *results.hits,
            results.hits[0].model_copy(update={"article_id": "team-internal", "chunk_id": "forged-1"}),
            results.hits[0].model_copy(update={"version": 7, "chunk_id": "forged-2"}),
        ]
    )

    sections = search.sections(ACME, QUESTION, forged, articles=3, audience=CUSTOMER)

    assert sections and {(s.article_id, s.version) for s in sections} == {("team", 1)}
    assert all(secret not in s.text and "admin console" not in s.text for s in sections)
    request = SearchRequest(text=QUESTION, audience=CUSTOMER, now=datetime.now(UTC))
    assert index.sections(ACME, request, [("team-internal", 1)]) == []
    assert [s.article_id for s in index.sections(GLOBEX, request, [("team", 1)])] == ["team"]
    assert all("Invite a colleague" not in s.text for s in index.sections(GLOBEX, request, [("team", 1)]))
    agent = SearchRequest(text=QUESTION, audience=Audience(kind="agent"), now=datetime.now(UTC))
    assert index.sections(ACME, agent, [("team-internal", 1)])  # agents read internal articles, as in search


def test_no_sections_of_an_article_outside_the_top_hits():
    _, search = knowledge()
    results = search.search(ACME, QUESTION, audience=CUSTOMER, record_gap=False)
    assert search.sections(ACME, QUESTION, SearchResults(), audience=CUSTOMER) == []
    assert search.sections(ACME, QUESTION, results, articles=0, audience=CUSTOMER) == []


# --------------------------------------------------------------------------- OpenSearch adapter


NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


class RecordingClient:
    def __init__(self, hits: list[dict]) -> None:
        self.calls: list = []
        self._hits = hits

    def search(self, index, body):
        self.calls.append((index, body))
        return {"hits": {"hits": self._hits}}


def source(tenant: str, article_id: str, version: int = 1, **overrides) -> dict:
    [chunk] = chunk_article(
        tenant_id=tenant,
        article_id=article_id,
        version=version,
        meta=ArticleInput(title="Roles", body="# Roles\n\nViewers have read-only access.").meta(),
        body="# Roles\n\nViewers have read-only access.",
        updated_at=NOW,
    )
    return {"_id": chunk.chunk_id, "_score": None, "_source": {**document(chunk, None), **overrides}}


def test_opensearch_sections_are_one_search_carrying_every_filter_and_the_article_versions():
    client = RecordingClient(
        [
            source("acme", "team"),
            source("globex", "team"),
            source("acme", "team", visibility="internal"),
            source("acme", "team", version=2),
            source("acme", "other"),
        ]
    )
    request = SearchRequest(text=QUESTION, audience=Audience(segments=frozenset({"team"})), now=NOW)

    sections = OpenSearchKnowledgeIndex(client, None).sections(ACME, request, [("team", 1)])

    [(index, body)] = client.calls
    assert index == "deflect-knowledge"
    assert body == {
        "size": 200,
        "_source": {"excludes": ["embedding"]},
        "query": {
            "bool": {
                "filter": [
                    {"term": {"tenant_id": "acme"}},
                    {"range": {"expires_epoch": {"gt": int(NOW.timestamp())}}},
                    {
                        "bool": {
                            "should": [
                                {"term": {"visibility": "public"}},
                                {
                                    "bool": {
                                        "filter": [
                                            {"term": {"visibility": "segments"}},
                                            {"terms": {"segments": ["team"]}},
                                        ]
                                    }
                                },
                            ],
                            "minimum_should_match": 1,
                        }
                    },
                    {
                        "bool": {
                            "should": [
                                {
                                    "bool": {
                                        "filter": [
                                            {"term": {"article_id": "team"}},
                                            {"term": {"article_version": 1}},
                                        ]
                                    }
                                }
                            ],
                            "minimum_should_match": 1,
                        }
                    },
                ],
                "must_not": [{"term": {"superseded": True}}],
            }
        },
        "sort": [{"article_id": "asc"}, {"ordinal": "asc"}],
    }
    # Whatever the cluster answers, only this tenant's readable chunks of the asked versions come back.
    assert [(s.article_id, s.version, s.visibility) for s in sections] == [("team", 1, "public")]
    assert isinstance(sections[0], SearchHit) and sections[0].score == 0.0


def test_opensearch_sections_of_nothing_send_no_request():
    client = RecordingClient([])
    request = SearchRequest(text=QUESTION, audience=CUSTOMER, now=NOW)
    assert OpenSearchKnowledgeIndex(client, None).sections(ACME, request, []) == []
    assert client.calls == []
