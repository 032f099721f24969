"""A customer is answered from the articles of their own language (else the help center default's), never with a
passage in another language beside theirs; within it, an article in their exact locale, else their bare language,
is preferred over another region's in the same product area (SearchRequest). Agents and callers without a locale
search every locale."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from opensearchpy.exceptions import NotFoundError

from deflect.adapters.opensearch_index import OpenSearchKnowledgeIndex, document
from deflect.domain.models import DecisionPolicy, TenantConfig
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemoryEvidenceStore, MemorySupportStore
from deflect.embedded.model import ExtractiveComposer
from deflect.embedded.search import EmbeddedKnowledgeIndex
from deflect.knowledge.chunking import chunk_article
from deflect.knowledge.ingestion import KnowledgeIngestion
from deflect.knowledge.models import ArticleInput, Audience, SearchRequest
from deflect.knowledge.search import KnowledgeSearch
from deflect.repositories import TenantConfigs, save
from deflect.triage.classification import Classifier
from deflect.triage.engine import TriageEngine
from tests.knowledge_cases.fakes import HashingEmbedder
from tests.unit.triage_fakes import BagOfWords, RuleIntents

ACME = TenantContext.system("acme")
NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
CUSTOMER = Audience(kind="customer")

EXPORT_EN = ArticleInput(
    title="Export a report",
    locale="en",
    body="# Export a report\n\nTo export a report, open **Reports**, pick the report and click **Export CSV**. "
    "The file downloads to your computer.\n",
)
EXPORT_DE = ArticleInput(
    title="Bericht exportieren",
    locale="de",
    body="# Bericht exportieren\n\nUm einen Bericht zu exportieren, öffnen Sie **Reports**, wählen den Bericht aus "
    "und klicken auf **Export CSV**. Die CSV-Datei wird auf Ihren Computer heruntergeladen.\n",
)
TAX_US = ArticleInput(
    title="Taxes on your invoice",
    locale="en-US",
    body="# Taxes on your invoice\n\nInvoices show sales tax for your state. To add your tax exemption "
    "certificate, open Billing, click Tax settings and upload the certificate.\n",
)
TAX_GB = ArticleInput(
    title="Taxes on your invoice",
    locale="en-GB",
    body="# Taxes on your invoice\n\nInvoices show VAT at 20%. To add your VAT number, open Billing, click Tax "
    "settings and enter the VAT number.\n",
)
TAX_EN = ArticleInput(
    title="Taxes on your invoice",
    locale="en",
    body="# Taxes on your invoice\n\nInvoices show the tax your country charges. To add your tax details, open "
    "Billing and click Tax settings.\n",
)
TAX_QUESTION = "How do I add my tax details to my invoice in Billing tax settings?"
EXPORT_QUESTION = "How do I export a report as CSV from Reports?"


def help_center(*articles: tuple[str, ArticleInput], default_locale: str = "en") -> KnowledgeSearch:
    store = MemorySupportStore()
    config = TenantConfig(tenant_id="acme", display_name="Acme", default_locale=default_locale)
    save(store, ACME, [TenantConfigs(store).save_write(config)])
    index = EmbeddedKnowledgeIndex(None, HashingEmbedder())
    ingestion = KnowledgeIngestion(store, MemoryEvidenceStore(), index)
    for article_id, article in articles:
        ingestion.put(ACME, article_id, article)
    return KnowledgeSearch(index, store, threshold_for=lambda _: 0.0)


def found(
    search: KnowledgeSearch, text: str, locale: str | None, default_locale: str = "en", **kw
) -> set[str]:
    request = SearchRequest(text=text, k=10, now=NOW, locale=locale, default_locale=default_locale, **kw)
    return {h.article_id for h in search.index.search(ACME, request)}


# ---------------------------------------------------------------------------------------------- the embedded index
def test_a_german_customer_is_answered_only_from_the_german_article():
    search = help_center(("export-en", EXPORT_EN), ("export-de", EXPORT_DE))
    assert found(search, "Wie exportiere ich einen Bericht als CSV?", "de") == {"export-de"}
    assert found(search, EXPORT_QUESTION, "en") == {"export-en"}


@pytest.mark.parametrize(
    "locale,article", [("en-GB", "tax-gb"), ("en-US", "tax-us"), ("EN_gb", "tax-gb"), ("en-AU", "tax-en")]
)
def test_a_regional_customer_gets_their_regions_article_else_the_plain_language_one(locale, article):
    search = help_center(("tax-us", TAX_US), ("tax-gb", TAX_GB), ("tax-en", TAX_EN))
    assert found(search, TAX_QUESTION, locale) == {article}


def test_without_their_region_or_plain_language_a_customer_gets_the_other_regions_of_their_language():
    search = help_center(("tax-us", TAX_US), ("tax-gb", TAX_GB), ("export-de", EXPORT_DE))
    assert found(search, TAX_QUESTION, "en-AU", default_locale="de") == {"tax-us", "tax-gb"}


def test_with_nothing_in_their_language_a_customer_gets_the_help_centers_default_locale_only():
    search = help_center(("export-en", EXPORT_EN), ("export-de", EXPORT_DE))
    assert found(search, EXPORT_QUESTION, "fr", default_locale="de") == {"export-de"}
    assert found(search, EXPORT_QUESTION, "fr", default_locale="en-US") == {"export-en"}
    # Neither the customer's language nor the help center's: nothing, rather than a third language.
    assert found(search, EXPORT_QUESTION, "fr", default_locale="es") == set()


def test_the_level_is_chosen_among_the_articles_this_customer_may_read():
    restricted = EXPORT_DE.model_copy(update={"visibility": "segments", "segments": ["enterprise"]})
    search = help_center(("export-en", EXPORT_EN), ("export-de", restricted))
    assert found(search, EXPORT_QUESTION, "de", audience=CUSTOMER) == {"export-en"}
    enterprise = Audience(kind="customer", segments=frozenset({"enterprise"}))
    assert found(search, EXPORT_QUESTION, "de", audience=enterprise) == {"export-de"}


def test_agents_and_callers_without_a_locale_search_every_locale():
    search = help_center(("export-en", EXPORT_EN), ("export-de", EXPORT_DE))
    assert found(search, EXPORT_QUESTION, None) == {"export-en", "export-de"}
    results = search.search(ACME, EXPORT_QUESTION, k=10, audience=Audience(kind="agent"), record_gap=False)
    assert {h.article_id for h in results.hits} == {"export-en", "export-de"}


def test_knowledge_search_falls_back_to_the_tenants_default_locale_and_reads_sections_under_the_same_level():
    search = help_center(("export-en", EXPORT_EN), ("export-de", EXPORT_DE), default_locale="de")
    results = search.search(ACME, EXPORT_QUESTION, k=10, audience=CUSTOMER, record_gap=False, locale="fr")
    assert {h.article_id for h in results.hits} == {"export-de"}
    assert {s.article_id for s in search.sections(ACME, EXPORT_QUESTION, results, audience=CUSTOMER)} <= {
        "export-de"
    }
    # The knowledge search API answers as before: the locales searched are not part of it.
    assert "locale" not in results.model_dump(mode="json")


# A help center written in en-US with one en-GB article (the VAT text), each article in its product area.
EXPORT_US = EXPORT_EN.model_copy(
    update={
        "locale": "en-US",
        "product_area": "reports",
        "body": EXPORT_EN.body + "\n## Schedule an export\n\nTo receive a report every Monday, open the report, "
        "click **Schedule**, choose a weekday and the people to email it to, then save the schedule.\n",
    }
)
TAX_US_BILLING = TAX_US.model_copy(update={"product_area": "billing"})
TAX_GB_BILLING = TAX_GB.model_copy(update={"product_area": "billing"})
MOSTLY_US = (("gs-export", EXPORT_US), ("bill-tax-us", TAX_US_BILLING), ("bill-tax-gb", TAX_GB_BILLING))


def test_a_uk_customer_of_a_us_help_center_still_finds_the_us_how_tos_and_gets_the_uk_tax_article():
    search = help_center(*MOSTLY_US, default_locale="en-US")
    # Before: the one en-GB article hid every en-US one, so the export question found only the VAT text.
    assert "gs-export" in found(search, EXPORT_QUESTION, "en-GB", default_locale="en-US")
    assert found(search, TAX_QUESTION, "en-GB", default_locale="en-US") == {"gs-export", "bill-tax-gb"}
    assert found(search, TAX_QUESTION, "en-US", default_locale="en-US") == {"gs-export", "bill-tax-us"}


def test_a_customer_of_a_region_without_articles_gets_every_region_of_their_language():
    search = help_center(*MOSTLY_US, default_locale="en-US")
    everything = {"gs-export", "bill-tax-us", "bill-tax-gb"}
    assert found(search, TAX_QUESTION, "en", default_locale="en-US") == everything
    assert found(search, TAX_QUESTION, "en-AU", default_locale="en-US") == everything


def test_the_plain_language_article_gives_way_to_the_customers_region_only_in_the_same_product_area():
    tax_en = TAX_EN.model_copy(update={"product_area": "billing"})
    export_en = EXPORT_EN.model_copy(update={"product_area": "reports"})
    search = help_center(("bill-tax-gb", TAX_GB_BILLING), ("bill-tax-en", tax_en), ("gs-export-en", export_en))
    assert found(search, TAX_QUESTION, "en-GB") == {"bill-tax-gb", "gs-export-en"}
    # For the bare language, the plain article beats the regional one in its product area.
    assert found(search, TAX_QUESTION, "en") == {"bill-tax-en", "gs-export-en"}


def test_the_help_centers_default_language_is_searched_whole_with_its_default_locale_first():
    search = help_center(*MOSTLY_US, ("export-de", EXPORT_DE), default_locale="en-GB")
    assert found(search, TAX_QUESTION, "fr", default_locale="en-GB") == {"gs-export", "bill-tax-gb"}
    # The customer's language has an article: the default's language is not searched at all.
    assert found(search, EXPORT_QUESTION, "de-AT", default_locale="en-GB") == {"export-de"}


def test_knowledge_search_answers_a_uk_customer_with_the_us_export_article_and_reads_its_sections():
    search = help_center(*MOSTLY_US, default_locale="en-US")
    results = search.search(ACME, EXPORT_QUESTION, k=3, audience=CUSTOMER, record_gap=False, locale="en-GB")
    assert results.hits[0].article_id == "gs-export"
    assert "bill-tax-us" not in {h.article_id for h in results.hits}
    # Its other section is read under the same language rules as the search.
    sections = search.sections(ACME, EXPORT_QUESTION, results, audience=CUSTOMER)
    assert [s.heading_path[-1] for s in sections] == ["Schedule an export"]


@pytest.mark.parametrize(
    "found_pairs,locale,outranked",
    [
        ({("en-US", "reports"), ("en-GB", "billing")}, "en-GB", set()),
        ({("en-US", "billing"), ("en-GB", "billing")}, "en-GB", {("en-US", "billing")}),
        ({("en-US", "billing"), ("en", "billing")}, "en_gb", {("en-US", "billing")}),
        ({("en", "billing"), ("en-GB", "billing")}, "en-GB", {("en", "billing")}),
        ({("en-US", "billing"), ("en-GB", "billing")}, "en", set()),
        ({("en-US", "billing"), ("en-GB", "billing")}, None, set()),
    ],
)
def test_an_article_gives_way_only_to_one_in_a_closer_locale_in_the_same_product_area(found_pairs, locale, outranked):
    request = SearchRequest(text="tax", locale=locale, default_locale="en-US")
    assert request.outranked(found_pairs) == outranked


# ---------------------------------------------------------------------------------------------- triage
def assess(search: KnowledgeSearch, text: str, locale: str, default_locale: str = "en"):
    engine = TriageEngine(
        Classifier(RuleIntents()),
        search,
        ExtractiveComposer(BagOfWords(), min_passage_score=0.0, min_unit_similarity=0.1),
    )
    config = TenantConfig(
        tenant_id="acme",
        display_name="Acme",
        default_locale=default_locale,
        policy=DecisionPolicy(rollout_default="auto"),
    )
    return engine.assess(ACME, text, config=config, audience=CUSTOMER, locale=locale)


@pytest.mark.parametrize("locale,article", [("en-GB", "tax-gb"), ("en-US", "tax-us")])
def test_triage_answers_a_regional_customer_from_their_regions_article(locale, article):
    search = help_center(("tax-us", TAX_US), ("tax-gb", TAX_GB))
    assessment = assess(search, TAX_QUESTION, locale)
    assert {h.article_id for h in assessment.hits} == {article}
    assert assessment.draft is None or {c.article_id for c in assessment.draft.citations} == {article}


def test_triage_answers_a_uk_customers_export_question_from_the_us_export_article():
    search = help_center(*MOSTLY_US, default_locale="en-US")
    assessment = assess(search, EXPORT_QUESTION, "en-GB", default_locale="en-US")
    assert assessment.hits[0].article_id == "gs-export"
    assert "bill-tax-us" not in {h.article_id for h in assessment.hits}


def test_triage_answers_a_german_customer_of_a_german_help_center_from_the_german_article():
    search = help_center(("export-en", EXPORT_EN), ("export-de", EXPORT_DE), default_locale="de")
    assessment = assess(search, "Wie kann ich einen Bericht als CSV exportieren?", "de", default_locale="de")
    assert {h.article_id for h in assessment.hits} == {"export-de"}
    assert {p.article_id for p in assessment.passages} == {"export-de"}


def test_triage_searches_the_language_the_customer_writes_not_their_browsers():
    # A German browser, a question clearly in English (engine.customer_language): the English article.
    search = help_center(("export-en", EXPORT_EN), ("export-de", EXPORT_DE))
    assessment = assess(search, EXPORT_QUESTION, "de-DE")
    assert {h.article_id for h in assessment.hits} == {"export-en"}


# ---------------------------------------------------------------------------------------------- OpenSearch
class Client:
    """Records every request; answers the locale aggregation and the msearch with canned responses."""

    def __init__(
        self, locales: list[str] | None = None, hits: list[dict] | None = None, missing=False
    ) -> None:
        self.calls: list = []
        self.locales = locales or []
        self.hits = hits or []
        self.missing = missing

    def search(self, index, body):
        self.calls.append(("search", index, body))
        if self.missing:
            raise NotFoundError(404, "index_not_found_exception", {})
        buckets = [{"key": locale, "doc_count": 2} for locale in self.locales]
        return {"hits": {"hits": []}, "aggregations": {"locales": {"buckets": buckets}}}

    def msearch(self, body):
        self.calls.append(("msearch", body))
        return {"responses": [{"hits": {"hits": self.hits}}, {"hits": {"hits": []}}]}


class FixedEmbeddings:
    dimensions = 3

    def embed(self, texts):
        return [[1.0, 0.0, 0.0] for _ in texts]


FILTER = [
    {"term": {"tenant_id": "acme"}},
    {"range": {"expires_epoch": {"gt": int(NOW.timestamp())}}},
    {"bool": {"should": [{"term": {"visibility": "public"}}], "minimum_should_match": 1}},
]
MUST_NOT = [{"term": {"superseded": True}}]
GB_CUSTOMER = SearchRequest(
    text="tax settings", k=3, audience=CUSTOMER, now=NOW, locale="en-GB", default_locale="en"
)


def hit(article_id: str, article: ArticleInput, score: float) -> dict:
    chunk = chunk_article(
        tenant_id="acme",
        article_id=article_id,
        version=1,
        meta=article.meta(),
        body=article.body,
        updated_at=NOW,
    )[0]
    return {"_id": f"acme:{chunk.chunk_id}", "_score": score, "_source": document(chunk, None)}


def test_opensearch_finds_the_customers_language_first_then_filters_both_halves_of_the_search_on_it():
    # The US chunk scores higher and is in the customer's language, but the GB one covers the same product area.
    client = Client(
        locales=["de", "en-GB", "en-US"], hits=[hit("tax-us", TAX_US, 9.0), hit("tax-gb", TAX_GB, 5.0)]
    )

    hits = OpenSearchKnowledgeIndex(client, FixedEmbeddings(), candidates=20).search(ACME, GB_CUSTOMER)

    assert [h.article_id for h in hits] == ["tax-gb"]
    (probe, (kind, body)) = client.calls
    assert probe == (
        "search",
        "deflect-knowledge",
        {
            "size": 0,
            "query": {"bool": {"filter": FILTER, "must_not": MUST_NOT}},
            "aggs": {"locales": {"terms": {"field": "locale", "size": 200}}},
        },
    )
    level = [*FILTER, {"terms": {"locale": ["en-GB", "en-US"]}}]
    assert kind == "msearch"
    assert body[1]["query"]["bool"]["filter"] == level
    assert body[3]["query"]["knn"]["embedding"]["filter"] == {"bool": {"filter": level, "must_not": MUST_NOT}}


def test_opensearch_searches_nothing_when_no_article_is_in_the_customers_or_the_help_centers_language():
    client = Client(locales=["de", "fr"])
    assert OpenSearchKnowledgeIndex(client, FixedEmbeddings()).search(ACME, GB_CUSTOMER) == []
    assert [call[0] for call in client.calls] == ["search"]


def test_opensearch_without_an_index_yet_finds_nothing():
    client = Client(missing=True)
    assert OpenSearchKnowledgeIndex(client, FixedEmbeddings()).search(ACME, GB_CUSTOMER) == []


def test_opensearch_without_a_locale_sends_one_msearch_and_no_locale_filter():
    client = Client(hits=[hit("tax-us", TAX_US, 9.0), hit("tax-gb", TAX_GB, 5.0)])
    request = GB_CUSTOMER.model_copy(update={"locale": None})
    hits = OpenSearchKnowledgeIndex(client, FixedEmbeddings()).search(ACME, request)
    assert {h.article_id for h in hits} == {"tax-us", "tax-gb"}
    [(kind, body)] = client.calls
    assert kind == "msearch" and body[1]["query"]["bool"]["filter"] == FILTER


def test_opensearch_keeps_another_regions_article_in_a_product_area_the_customers_locale_does_not_cover():
    client = Client(
        locales=["en-GB", "en-US"],
        hits=[
            hit("gs-export", EXPORT_US, 9.0),
            hit("bill-tax-us", TAX_US_BILLING, 8.0),
            hit("bill-tax-gb", TAX_GB_BILLING, 5.0),
        ],
    )
    hits = OpenSearchKnowledgeIndex(client, FixedEmbeddings(), candidates=20).search(ACME, GB_CUSTOMER)
    assert {h.article_id for h in hits} == {"gs-export", "bill-tax-gb"}
    [_probe, (_kind, body)] = client.calls
    assert body[1]["query"]["bool"]["filter"][-1] == {"terms": {"locale": ["en-GB", "en-US"]}}
