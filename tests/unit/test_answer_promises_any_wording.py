"""A customer is never told that an account action was done, whatever the wording or the language: a draft whose
sentence says so is discarded and a person takes the ticket. Two independent checks stand in the way: the wording
check (grounding.promises_action, English and the languages the detectors read requests in) and a support check
that needs no wording at all: every sentence a model writes must be backed by its own cited quote, and a sentence
naming an account action by a quote naming the same action. Help-center how-tos, English or German, still answer."""

import re
from pathlib import Path

import pytest

from deflect.domain.models import Citation, Draft
from deflect.knowledge.models import SearchHit
from deflect.repositories import TenantConfigs
from deflect.triage import grounding
from tests.unit.triage_fakes import (
    EXPORT_ARTICLE,
    RENEWAL_ARTICLE,
    RENEWAL_QUOTE,
    Article,
    BagOfWords,
    bedrock_writing,
    make_world,
    save,
)

HELP_CENTER = Path(__file__).resolve().parents[2] / "infra" / "local" / "demo" / "helpcenter"

RENEWAL, QUOTE = RENEWAL_ARTICLE, RENEWAL_QUOTE
ASKED = "I asked to stop renewing last week. Is that done?"

# The audit's reproductions: each reached the customer in auto mode as a grounded Bedrock answer.
AUDIT_ENGLISH = [
    "Done: your subscription is cancelled now, so it will not renew.",
    "Your auto-renewal is turned off now, so your plan will not renew.",
    "Yes, that is done: your plan will not renew.",
    "Your refund of $50 has been issued.",
    "A refund of $50 has been issued to your card.",
    "Your refund of $50 has gone through.",
    "Your refund went through.",
    "Done! Your subscription is cancelled now.",
    "Your plan got upgraded to Business.",
    "$50 has been returned to your card.",
    "The money has been sent back to your card.",
    "We've sent the money back to your card.",
    "You got a refund of $50.",
    "A refund of $50 is on its way to your card.",
    "Your login email now is new@example.com.",
    "Your email address is now new@example.com.",
    "Your account email is changed to new@example.com.",
    "Your workspace is on the Business plan now.",
    "The Business features are unlocked for your workspace.",
    "I unlocked the Business features for your workspace.",
    "We enabled the audit log for your workspace.",
    "Your seats were increased to 20.",
    "Your limit has been raised to 10,000 runs.",
    "Consider it done: no more charges.",
    "Your subscription will end today.",
    "You won't be charged again.",
    "You will not be billed again.",
    "Your data is erased.",
    "Your data has been erased.",
    "All your data was wiped.",
    "Your trial is extended by 14 days.",
    "Your trial got extended by 14 days.",
    "Refund approved.",
    "Refund issued: $50.",
    "Cancellation confirmed.",
    "Your cancellation is confirmed.",
    "Your refund is confirmed.",
    "Billing refunded the charge.",
]

# Account news in the languages the detectors read requests in: (help center locale, article, quote, question,
# the model's sentence).
VERLAENGERUNG = Article(
    "bill-renewal-de",
    "Automatische Verlängerung",
    "# Automatische Verlängerung\n\nTarife verlängern sich automatisch am Ende jedes Abrechnungszeitraums. "
    "Die automatische Verlängerung schalten Sie unter Einstellungen → Abrechnung aus.\n",
    ("verlängerung",),
)
QUOTE_DE = "Tarife verlängern sich automatisch am Ende jedes Abrechnungszeitraums."
ASKED_DE = "Ich hatte gebeten, die automatische Verlängerung auszuschalten. Ist das erledigt?"
RENOVACION = Article(
    "bill-renewal-es",
    "Renovación automática",
    "# Renovación automática\n\nLos planes se renuevan automáticamente al final de cada periodo de facturación. "
    "Puede desactivar la renovación automática en Configuración → Facturación.\n",
    ("renov", "renuev"),
)
QUOTE_ES = "Los planes se renuevan automáticamente al final de cada periodo de facturación."
ASKED_ES = "Hola, ¿cómo se renueva mi plan? Es para saber qué pasa al final del periodo, gracias."
RENOUVELLEMENT = Article(
    "bill-renewal-fr",
    "Renouvellement automatique",
    "# Renouvellement automatique\n\nLes abonnements se renouvellent automatiquement à la fin de chaque période "
    "de facturation. Vous pouvez désactiver le renouvellement dans Paramètres → Facturation.\n",
    ("renouvel",),
)
QUOTE_FR = "Les abonnements se renouvellent automatiquement à la fin de chaque période de facturation."
ASKED_FR = "Bonjour, est-ce que mon abonnement se renouvelle automatiquement ?"
ABROAD = {
    "de": (VERLAENGERUNG, QUOTE_DE, ASKED_DE),
    "es": (RENOVACION, QUOTE_ES, ASKED_ES),
    "fr": (RENOUVELLEMENT, QUOTE_FR, ASKED_FR),
}
AUDIT_ABROAD = [
    ("de", "Wir haben Ihr Abonnement gekündigt."),
    ("de", "Ihr Abonnement wurde gekündigt"),
    ("de", "Ihr Abonnement wurde gekündigt und verlängert sich nicht mehr."),
    ("de", "Ihre Rückerstattung wurde veranlasst."),
    ("de", "Ihr Konto wurde gelöscht."),
    ("es", "Hemos cancelado su suscripción."),
    ("es", "Hemos reembolsado su pago."),
    ("es", "Su suscripción ha sido cancelada."),
    ("fr", "Nous avons résilié votre abonnement."),
    ("fr", "Votre abonnement a été résilié."),
    ("fr", "Votre paiement a été remboursé."),
]


def _world_in(locale: str | None, article: Article):
    world = make_world(articles=[article])  # rollout: auto, so a grounded answer is sent with no human
    if locale:
        configs = TenantConfigs(world.store)
        config = configs.find(world.ctx)
        save(
            world.store, world.ctx, [configs.save_write(config.model_copy(update={"default_locale": locale}))]
        )
    return world


def _bedrock_answers(sentence: str, quote: str, *, locale: str | None = None, article=RENEWAL, asked=ASKED):
    world = _world_in(locale, article)
    world.service.engine.composer = bedrock_writing(sentence, quote)
    return world, world.triage("tkt-1", asked)


def _reaches_a_person_not_the_customer(world, result) -> None:
    assert result.outcome == "escalate" and result.reply is None
    assert [r for r in result.reasons if r.startswith("draft_rejected:")], result.reasons
    assert world.sent == []  # nothing queued for the customer
    assert len(world.started) == 1  # a person takes the ticket


@pytest.mark.parametrize("news", AUDIT_ENGLISH)
def test_account_news_in_any_english_wording_reaches_a_person_not_the_customer(news):
    world, result = _bedrock_answers(news, QUOTE)

    _reaches_a_person_not_the_customer(world, result)


@pytest.mark.parametrize("news", AUDIT_ENGLISH)
def test_the_wording_check_alone_reads_each_english_wording_as_account_news(news):
    assert grounding.promises_action(news)


@pytest.mark.parametrize(("locale", "news"), AUDIT_ABROAD)
def test_account_news_in_the_help_centers_language_reaches_a_person_not_the_customer(locale, news):
    article, quote, asked = ABROAD[locale]
    world, result = _bedrock_answers(news, quote, locale=locale, article=article, asked=asked)

    _reaches_a_person_not_the_customer(world, result)


@pytest.mark.parametrize(
    "news",
    [
        *(news for _, news in AUDIT_ABROAD),
        "Ihr Abonnement ist jetzt gekündigt.",
        "Wir werden Ihnen den Betrag erstatten.",
        "Ich habe die Zwei-Faktor-Authentifizierung zurückgesetzt.",
        "Nachdem Sie angerufen haben, wurde Ihr Abonnement gekündigt.",
        "Se ha cancelado su suscripción.",
        "Le reembolsaremos el importe.",
        "Hemos eliminado su cuenta.",
        "Votre compte a bien été supprimé.",
        "J'ai annulé votre abonnement.",
        "Nous vous rembourserons la différence.",
        "Sua assinatura foi cancelada.",
        "Il suo abbonamento è stato annullato.",
        "Abbiamo rimborsato il pagamento.",
        "We hebben uw account verwijderd.",
    ],
)
def test_the_wording_check_alone_reads_account_news_in_the_detectors_languages(news):
    assert grounding.promises_action(news)


@pytest.mark.parametrize(
    "sentence",
    [
        # A language with no wording rules, and English wording no rule knows: only the support check stands.
        "Ditt abonnemang har sagts upp och förnyas inte.",
        "Twoja subskrypcja została anulowana.",
        "Your auto-renewal belongs to the past now.",
    ],
)
def test_a_sentence_its_own_quote_does_not_back_reaches_a_person_whatever_its_wording(sentence):
    assert not grounding.promises_action(sentence)  # the wording check cannot read it

    world, result = _bedrock_answers(sentence, QUOTE)

    _reaches_a_person_not_the_customer(world, result)
    assert result.reasons == ["draft_rejected:unsupported_sentence"]


def test_a_sentence_naming_an_account_action_its_quote_does_not_name_reaches_a_person():
    # Mostly the quote's own words, so the sentence as a whole scores as backed; its second half names a refund.
    sentence = "Plans renew automatically at the end of each billing period; your refund is pending."
    assert not grounding.promises_action(sentence)

    world, result = _bedrock_answers(sentence, QUOTE)

    _reaches_a_person_not_the_customer(world, result)
    assert result.reasons == ["draft_rejected:unsupported_action:refund"]


def test_each_written_sentence_is_judged_by_its_own_quote_not_by_the_others():
    passage = grounding.clean_passage(
        SearchHit(
            article_id="bill-renewal",
            version=1,
            chunk_id="bill-renewal:v1:0",
            title=RENEWAL.title,
            text=RENEWAL.text,
            start=0,
            end=len(RENEWAL.text),
            score=0.9,
        )
    )
    other = "Turn off auto-renew under Settings → Billing."
    draft = Draft(
        text=f"{QUOTE} [bill-renewal v1] Plans renew automatically every billing period. [bill-renewal v1]",
        citations=[Citation(article_id="bill-renewal", version=1, quote=q) for q in (QUOTE, other)],
        grounded=True,
    )

    assert grounding.verify(draft, [passage]).reason == "unsupported_sentence"
    # The same sentences, the second now citing the quote that backs it.
    backed = draft.model_copy(update={"citations": [draft.citations[0], draft.citations[0]]})
    assert grounding.verify(backed, [passage]).ok


@pytest.mark.parametrize(
    ("sentence", "quote"),
    [
        # The Bedrock tests' own fixture: adds "unless you turn off auto-renew" from the passage (0.6).
        (
            "Plans renew automatically at the end of each billing period unless you turn off auto-renew.",
            QUOTE,
        ),
        ("Your plan renews automatically at the end of each billing period.", QUOTE),
        ("Sure! Plans renew on their own when the billing period ends.", QUOTE),
        (
            "You can turn off auto-renew under Settings → Billing.",
            "Turn off auto-renew under Settings → Billing.",
        ),
    ],
)
def test_an_english_how_to_in_the_models_words_is_still_sent(sentence, quote):
    world, result = _bedrock_answers(sentence, quote)

    assert result.outcome == "deflect" and sentence in result.reply
    assert world.sent and world.started == []


@pytest.mark.parametrize(
    ("sentence", "quote"),
    [
        ("Ihr Tarif verlängert sich automatisch am Ende des Abrechnungszeitraums.", QUOTE_DE),
        (
            "Die automatische Verlängerung können Sie unter Einstellungen → Abrechnung ausschalten.",
            "Die automatische Verlängerung schalten Sie unter Einstellungen → Abrechnung aus.",
        ),
    ],
)
def test_a_german_how_to_in_the_models_words_is_still_sent(sentence, quote):
    world, result = _bedrock_answers(sentence, quote, locale="de", article=VERLAENGERUNG, asked=ASKED_DE)

    assert result.outcome == "deflect" and sentence in result.reply
    assert world.sent and world.started == []


def test_english_and_german_how_tos_quoted_by_the_extractive_composer_are_still_sent():
    english = make_world(articles=[EXPORT_ARTICLE])
    answered = english.triage("tkt-1", "How do I export a report as CSV?")
    assert answered.outcome == "deflect" and "Export CSV" in answered.reply

    german = _world_in("de", VERLAENGERUNG)
    answered = german.triage("tkt-1", "Wie schalte ich die automatische Verlängerung aus?")
    assert answered.outcome == "deflect" and "Einstellungen → Abrechnung" in answered.reply
    assert german.started == []


@pytest.mark.parametrize(
    "how_to",
    [
        "Refunds are returned to the original payment method.",
        "Your data is erased 30 days after you close your account.",
        "Once that is done, click Save.",
        "Check whether your payment went through under Billing.",
        "SSO is enabled for your workspace once an admin turns it on.",
        "You won't be charged for the trial.",
        "If you cancel, you won't be charged again.",
        "Once auto-renew is off, your plan will not renew.",
        "Turn off auto-renew so your plan will not renew at the end of the term.",
        "Your limit is raised to 50,000 runs when you upgrade.",
        "Your trial will end after 14 days.",
        "That is done by the workspace owner.",
        "A refund of the remaining months is issued when you downgrade.",
        "Sie können Ihr Abonnement jederzeit unter Einstellungen → Abrechnung kündigen.",
        "Wenn Ihr Abonnement gekündigt wurde, bleibt es bis zum Ende des Abrechnungszeitraums aktiv.",
        "Rückerstattungen werden innerhalb von 5 bis 10 Werktagen auf die ursprüngliche Zahlungsmethode gebucht.",
        "Eine Rückerstattung, die bereits ausgezahlt wurde, kann nicht storniert werden.",
        "Wurde Ihnen zu viel berechnet, erstatten wir die Differenz.",
        "Die Zwei-Faktor-Authentifizierung ist standardmäßig deaktiviert.",
        "Si has cancelado tu suscripción, seguirá activa hasta el final del periodo.",
        "Una vez que el reembolso ha sido procesado, aparecerá en su extracto.",
        "Si vous avez résilié votre abonnement, il reste actif jusqu'à la fin de la période.",
        "Une fois que le remboursement a été traité, il apparaît sur votre relevé.",
        "La double authentification est désactivée par défaut.",
        "Se a sua assinatura foi cancelada, ela continua ativa até o fim do período.",
        "Als uw abonnement werd opgezegd, blijft het actief tot het einde van de periode.",
    ],
)
def test_a_how_to_or_a_condition_in_any_of_those_languages_is_not_account_news(how_to):
    assert not grounding.promises_action(how_to)


def test_extractive_drafts_of_the_demo_help_center_are_backed_by_their_quotes_by_construction():
    """Every line of an extractive draft is a quote, or the title, a heading or the link of the article it quotes."""
    from deflect.embedded.model import ExtractiveComposer

    composer = ExtractiveComposer(BagOfWords(), full_support=0.5, min_unit_similarity=0.1)
    drafts = 0
    for path in sorted(HELP_CENTER.glob("*.md")):
        body = re.sub(r"\A---\n.*?\n---\n", "", path.read_text(), flags=re.S)
        title = next((line[2:] for line in body.splitlines() if line.startswith("# ")), path.stem)
        hit = SearchHit(
            article_id=path.stem,
            version=1,
            chunk_id=f"{path.stem}:v1:0",
            title=title,
            text=body,
            start=0,
            end=len(body),
            score=0.9,
            url=f"https://help.example.com/{path.stem}",
        )
        draft = composer.compose(None, f"How does {title.lower()} work?", [hit]).draft
        if draft is None:
            continue
        drafts += 1
        statements = grounding.cited_sentences(draft, [grounding.clean_passage(hit)])
        assert statements and all(quote for _, quote in statements), draft.text
        assert all(grounding.support(sentence, quote) == 1.0 for sentence, quote in statements), draft.text
        assert grounding.verify(draft, [grounding.clean_passage(hit)]).ok, draft.text
    assert drafts >= 30
