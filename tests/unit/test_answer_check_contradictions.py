"""An answer that contradicts what it quotes, or what the customer said, is not sent: a person takes the ticket.

The audit found three wrong answers passing the answer check in auto mode:
- the Okta steps sent to a customer who said "we don't have Okta" (both composers);
- a Bedrock sentence turning its quote around ("…on the Enterprise plan only" backing "…available on the Starter
  plan", or "…not available on the Enterprise plan"): word overlap ignores "not", "only" and one plan name;
- a Bedrock sentence sending the customer to a link no article holds ("[this guide](https://…evil.example/login)").
Each now escalates as draft_rejected:<why>. Paraphrases that keep the quote's meaning are still sent."""

import pytest

from deflect.domain.models import Citation, Draft
from deflect.embedded.model import ExtractiveComposer
from deflect.knowledge.models import SearchHit
from deflect.repositories import TenantConfigs
from deflect.triage import grounding
from tests.unit.triage_fakes import (
    EXPORT_ARTICLE,
    SSO_ARTICLE,
    Article,
    BagOfWords,
    bedrock_writing,
    make_world,
    save,
)

OKTA = Article(
    "sso-okta",
    "Set up SSO with Okta",
    "# Set up SSO with Okta\n\nTo set up SSO with Okta, open Settings, then Security, then Single sign-on, choose "
    "Okta and paste your Okta metadata URL.\n",
    ("sso",),
)
OKTA_STEPS = (
    "To set up SSO with Okta, open Settings, then Security, then Single sign-on, choose Okta and paste your Okta "
    "metadata URL."
)
ENTERPRISE_SSO = Article(
    "sec-saml",
    "SAML single sign-on",
    "# SAML single sign-on\n\nSAML single sign-on (SSO) is available on the Enterprise plan only. Starter and Pro "
    "plans sign in with Google or email. To turn SAML SSO on, open Settings, then Security, then SAML.\n",
    ("saml", "sso"),
)
ENTERPRISE_ONLY = "SAML single sign-on (SSO) is available on the Enterprise plan only."
EXPORT_QUOTE = "Open Reports and click Export CSV to download the report as a CSV file."
EXPORT_LIMITS = Article(
    "gs-export-limits",
    "Export limits",
    "# Export limits\n\nEach export includes up to 10,000 rows. Larger reports are split into several files.\n",
    ("export",),
)
ROWS = "Each export includes up to 10,000 rows."


def _reaches_a_person_not_the_customer(world, result, reason: str) -> None:
    assert result.outcome == "escalate" and result.reply is None
    assert result.reasons == [f"draft_rejected:{reason}"]
    assert world.sent == []  # nothing queued for the customer
    assert len(world.started) == 1  # a person takes the ticket


def _sent(world, result, words: str) -> None:
    assert result.outcome == "deflect" and words in result.reply
    assert world.sent and world.started == []


def _bedrock(sentence: str, quote: str, articles, *, locale: str | None = None):
    world = make_world(articles=list(articles))
    if locale:
        configs = TenantConfigs(world.store)
        config = configs.find(world.ctx)
        save(
            world.store, world.ctx, [configs.save_write(config.model_copy(update={"default_locale": locale}))]
        )
    world.service.engine.composer = bedrock_writing(sentence, quote)
    return world


# ---------------------------------------------------------------------------------------------------- negated names

NOT_OKTA = [
    "How do I set up SSO? We don't have Okta.",
    "Our SSO provider is not Okta. How do I set up SSO?",
    "We do not use Okta. How do I set up SSO for my team?",
    "How do I set up SSO? My SSO is NOT Okta.",
    "How do I set up SSO without Okta?",
    "We use Google, not Okta. How do I set up SSO?",
    "How do I set up SSO with a provider other than Okta?",
    "We don't use Okta or OneLogin. How do I set up SSO?",
]


@pytest.mark.parametrize("question", NOT_OKTA)
def test_the_okta_steps_are_not_sent_to_a_customer_who_said_they_do_not_have_okta(question):
    world = make_world(articles=[OKTA])

    result = world.triage("tkt-1", question)

    _reaches_a_person_not_the_customer(world, result, "negated_name")


@pytest.mark.parametrize("question", NOT_OKTA[:3])
def test_a_bedrock_answer_with_the_okta_steps_is_not_sent_either(question):
    world = _bedrock(OKTA_STEPS, OKTA_STEPS, [OKTA])

    result = world.triage("tkt-1", question)

    _reaches_a_person_not_the_customer(world, result, "negated_name")


@pytest.mark.parametrize(
    "question",
    [
        "How do I set up SSO with Okta?",
        "We use Okta. How do I set up SSO?",
        # A problem with what they use, not a tool ruled out.
        "I can't sign in with Okta. How do I set up SSO again?",
    ],
)
def test_a_customer_who_uses_okta_still_gets_the_okta_steps(question):
    world = make_world(articles=[OKTA])

    result = world.triage("tkt-1", question)

    _sent(world, result, "choose Okta")


def test_a_ruled_out_name_the_answer_is_not_about_does_not_reject_it():
    # The generic SSO steps name no Okta. (The engine still discounts the answer for naming nothing the customer
    # uses: discount_unmentioned_names.)
    hit = SearchHit(
        article_id=SSO_ARTICLE.article_id,
        version=1,
        chunk_id="sec-sso:v1:0",
        title=SSO_ARTICLE.title,
        text=SSO_ARTICLE.text,
        start=0,
        end=len(SSO_ARTICLE.text),
        score=0.9,
    )
    question = "We don't use Okta. How do I set up SSO for my team?"
    draft = ExtractiveComposer(BagOfWords()).compose(None, question, [hit]).draft

    assert draft is not None
    assert grounding.verify(draft, [grounding.clean_passage(hit)], question).ok


@pytest.mark.parametrize(
    ("question", "ruled_out"),
    [
        ("How do I set up SSO? We don't have Okta.", ["okta"]),
        ("We don't use Okta or OneLogin. How do I set up SSO?", ["okta", "onelogin"]),
        ("Wir haben kein Okta. Wie richte ich SSO ein?", ["okta"]),
        ("No usamos Okta. ¿Cómo configuro el SSO?", ["okta"]),
        ("Nous n'utilisons pas Okta. Comment configurer le SSO ?", ["okta"]),
        ("Okta isn't working for us. How do I set up SSO?", []),
        ("I can't sign in with Okta.", []),
        ("We don't have SSO enabled yet. How do I turn on SSO?", []),
        ("We're not on the Business plan. Can we use SSO?", []),
        ("I'm not an Admin. Can I export reports?", []),
        ("We don't use Okta for SSO, but Okta is our directory.", []),
    ],
)
def test_which_names_a_customer_rules_out(question, ruled_out):
    assert grounding.negated_names(question) == ruled_out


# ------------------------------------------------------------------------------ sentences that turn their quote around


@pytest.mark.parametrize(
    ("sentence", "quote", "article", "question", "reason"),
    [
        # The audit's two: another plan than the quote's only one, and the quote's fact negated.
        (
            "Yes, SAML single sign-on is available on the Starter plan.",
            ENTERPRISE_ONLY,
            ENTERPRISE_SSO,
            "Can I use SAML SSO on my Starter plan?",
            "limit_dropped",
        ),
        (
            "SAML single sign-on is not available on the Enterprise plan.",
            ENTERPRISE_ONLY,
            ENTERPRISE_SSO,
            "Is SAML SSO available on the Enterprise plan?",
            "polarity_changed",
        ),
        (
            "SAML single sign-on (SSO) is available on the Starter plan.",
            "SAML single sign-on (SSO) is available on the Enterprise plan",
            ENTERPRISE_SSO,
            "Is SAML SSO available on the Starter plan?",
            "name_not_in_quote",
        ),
        (
            "Each export includes up to 50,000 rows.",
            ROWS,
            EXPORT_LIMITS,
            "How many rows can one export have?",
            "number_not_in_quote",
        ),
    ],
)
def test_a_bedrock_sentence_that_contradicts_its_quote_reaches_a_person(
    sentence, quote, article, question, reason
):
    world = _bedrock(sentence, quote, [article])

    result = world.triage("tkt-1", question)

    _reaches_a_person_not_the_customer(world, result, reason)


SSO_DE = Article(
    "sec-sso-de",
    "SAML-SSO",
    "# SAML-SSO\n\nSAML-SSO ist nur im Enterprise-Tarif verfügbar. Öffnen Sie dazu Einstellungen → Sicherheit.\n",
    ("sso",),
)
SSO_ES = Article(
    "sec-sso-es",
    "SSO con SAML",
    "# SSO con SAML\n\nEl SSO con SAML está disponible solo en el plan Enterprise. Ábralo en Configuración → "
    "Seguridad.\n",
    ("sso",),
)
SSO_FR = Article(
    "sec-sso-fr",
    "SSO SAML",
    "# SSO SAML\n\nLe SSO SAML est disponible uniquement avec le plan Enterprise. Ouvrez Paramètres → Sécurité.\n",
    ("sso",),
)


@pytest.mark.parametrize(
    ("locale", "article", "sentence", "question", "reason"),
    [
        ("de", SSO_DE, "SAML-SSO ist im Starter-Tarif verfügbar.", "Hallo, ist SAML-SSO bei uns im Starter-Tarif verfügbar? Danke",
         "limit_dropped"),
        ("de", SSO_DE, "SAML-SSO ist im Enterprise-Tarif nicht verfügbar.", "Hallo, ist SAML-SSO bei uns im Enterprise-Tarif verfügbar? Danke",
         "polarity_changed"),
        ("es", SSO_ES, "El SSO con SAML no está disponible en el plan Enterprise.",
         "¿Está disponible el SSO con SAML en el plan Enterprise?", "polarity_changed"),
        ("es", SSO_ES, "El SSO con SAML está disponible en el plan Enterprise.",
         "¿Está disponible el SSO con SAML en mi plan?", "limit_dropped"),
        ("fr", SSO_FR, "Le SSO SAML n'est pas disponible avec le plan Enterprise.",
         "Est-ce que le SSO SAML est disponible avec le plan Enterprise ?", "polarity_changed"),
        ("fr", SSO_FR, "Le SSO SAML est disponible avec le plan Enterprise.",
         "Est-ce que le SSO SAML est disponible avec mon plan ?", "limit_dropped"),
    ],
)  # fmt: skip
def test_the_same_contradictions_in_german_spanish_and_french_reach_a_person(
    locale, article, sentence, question, reason
):
    quote = article.text.split("\n\n")[1].split(". ")[0] + "."
    world = _bedrock(sentence, quote, [article], locale=locale)

    result = world.triage("tkt-1", question)

    _reaches_a_person_not_the_customer(world, result, reason)


ADMINS = Article(
    "sec-audit-log",
    "Audit log",
    "# Audit log\n\nOnly admins can export the audit log. Open Settings, then Audit log, then Export.\n",
    ("audit",),
)
STARTER = Article(
    "sec-sso-plans",
    "SSO and plans",
    "# SSO and plans\n\nSSO is not available on Starter. Upgrade to Enterprise to turn it on.\n",
    ("sso",),
)


@pytest.mark.parametrize(
    ("sentence", "quote", "article", "question"),
    [
        ("Only admins can export audit logs.", "Only admins can export the audit log.", ADMINS,
         "Can I export the audit log?"),
        ("SSO isn't available on the Starter plan.", "SSO is not available on Starter.", STARTER,
         "Can we use SSO on Starter?"),
        ("SAML SSO is available on the Enterprise plan only.", ENTERPRISE_ONLY, ENTERPRISE_SSO,
         "Which plan has SAML SSO?"),
        ("SAML single sign-on is only available on the Enterprise plan.", ENTERPRISE_ONLY, ENTERPRISE_SSO,
         "Which plan has SAML SSO?"),
        ("1. Open Reports and click Export CSV.", EXPORT_QUOTE, EXPORT_ARTICLE, "How do I export a report?"),
        ("Each export includes up to 10000 rows.", ROWS, EXPORT_LIMITS, "How many rows can one export have?"),
    ],
)  # fmt: skip
def test_a_paraphrase_that_keeps_its_quotes_meaning_is_still_sent(sentence, quote, article, question):
    world = _bedrock(sentence, quote, [article])

    result = world.triage("tkt-1", question)

    _sent(world, result, sentence)


@pytest.mark.parametrize(
    ("sentence", "quote"),
    [
        ("SAML-SSO gibt es nur im Enterprise-Tarif.", "SAML-SSO ist nur im Enterprise-Tarif verfügbar."),
        ("Le SSO est disponible uniquement sur le plan Enterprise.",
         "Le SSO n'est disponible que sur le plan Enterprise."),
        ("Die automatische Verlängerung können Sie unter Einstellungen → Abrechnung ausschalten.",
         "Die automatische Verlängerung schalten Sie unter Einstellungen → Abrechnung aus."),
        ("Exports are limited to 10000 rows.", "Exports are limited to 10,000 rows."),
    ],
)  # fmt: skip
def test_paraphrases_in_other_words_and_languages_keep_their_quotes_meaning(sentence, quote):
    assert grounding.unsupported(sentence, quote) is None


# ---------------------------------------------------------------------------------------------------------- links


@pytest.mark.parametrize(
    "sentence",
    [
        f"{EXPORT_QUOTE[:-1]}, as shown in [this guide](https://acme-support.evil.example/login).",
        f"{EXPORT_QUOTE[:-1]} from https://evil.example/dl now.",
        f"{EXPORT_QUOTE[:-1]} at www.acme-support.example/export.",
        f"{EXPORT_QUOTE[:-1]}, or email the report to reports@evil.example.",
        f"{EXPORT_QUOTE[:-1]} as [described here](/login).",
    ],
)
def test_a_bedrock_sentence_with_a_link_no_article_holds_reaches_a_person(sentence):
    world = _bedrock(sentence, EXPORT_QUOTE, [EXPORT_ARTICLE])

    result = world.triage("tkt-1", "How do I export a report as CSV?")

    _reaches_a_person_not_the_customer(world, result, "unlisted_link")


def test_a_link_its_own_quote_holds_is_still_sent():
    quote = "Open Reports and click Export CSV; the formats are listed at https://help.acme.example/formats."
    article = Article("gs-export", "Export a report", f"# Export a report\n\n{quote}\n", ("export",))
    sentence = "Open Reports and click Export CSV; the formats are at https://help.acme.example/formats."
    world = _bedrock(sentence, quote, [article])

    result = world.triage("tkt-1", "How do I export a report as CSV?")

    _sent(world, result, "https://help.acme.example/formats")


def _passage(url: str | None) -> grounding.CleanPassage:
    return grounding.CleanPassage("gs-export", 1, "Export a report", EXPORT_QUOTE, 0.9, False, url=url)


def _written(sentence: str) -> Draft:
    citation = Citation(article_id="gs-export", version=1, quote=EXPORT_QUOTE)
    return Draft(text=f"{sentence} [gs-export v1]", citations=[citation], grounded=True)


def test_a_link_to_the_cited_article_or_its_site_is_allowed_and_another_site_is_not():
    sentence = f"{EXPORT_QUOTE[:-1]} (see {{}})."
    article = "https://help.acme.example/articles/export"

    assert grounding.verify(_written(sentence.format(article)), [_passage(article)]).ok
    assert grounding.verify(
        _written(sentence.format("https://help.acme.example/csv")), [_passage(article)]
    ).ok
    assert (
        grounding.verify(
            _written(sentence.format("https://help.acme.example.evil.example/csv")), [_passage(article)]
        ).reason
        == "unlisted_link"
    )
    assert grounding.verify(_written(sentence.format(article)), [_passage(None)]).reason == "unlisted_link"


def test_an_extractive_quote_is_judged_by_itself_not_by_a_longer_quote_holding_its_words():
    longer = "Open Reports and click Export CSV. You cannot undo an export."
    shorter = "Open Reports and click Export CSV."
    passage = grounding.CleanPassage(
        "gs-export", 1, "Export a report", f"1. {longer}\n\n{shorter}\n", 0.9, False
    )
    draft = Draft(
        text=f'From "Export a report" [gs-export v1]:\n> {longer}\n> {shorter}',
        citations=[Citation(article_id="gs-export", version=1, quote=q) for q in (longer, shorter)],
        grounded=True,
    )

    assert grounding.verify(draft, [passage]).ok


def test_the_okta_section_of_an_sso_article_does_not_make_its_azure_steps_an_okta_answer():
    def section(heading: str, text: str) -> grounding.CleanPassage:
        return grounding.CleanPassage(
            "sec-sso", 1, "Single sign-on", text, 0.9, False, heading_path=(heading,)
        )

    azure = "In Azure AD, add Acme as an enterprise app and paste its metadata URL into Settings → Security."
    passages = [
        section("Okta", "In Okta, add the Acme app and copy its metadata URL."),
        section("Azure AD", azure),
    ]
    draft = Draft(
        text=f'From "Single sign-on" [sec-sso v1]:\nAzure AD:\n> {azure}',
        citations=[Citation(article_id="sec-sso", version=1, quote=azure)],
        grounded=True,
    )
    question = "We use Azure AD, not Okta. How do I set up SSO?"

    assert grounding.verify(draft, passages, question).ok
    # The section it does quote is about what the customer ruled out.
    assert (
        grounding.verify(draft, passages, "We don't use Azure AD. How do I set up SSO?").reason
        == "negated_name"
    )
