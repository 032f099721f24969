"""New phrasings of sensitive requests (an audit's misses, rewritten by family) and the how-tos that look like them:
what a customer would notice is whether the message goes to a person, with which flag and proposed action."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from deflect.domain.models import DecisionPolicy
from deflect.domain.tenancy import TenantContext
from deflect.embedded.model import train_taxonomy
from deflect.ports import IntentPrediction
from deflect.triage import detectors
from deflect.triage.classification import Classifier, sentences
from deflect.triage.intents import IntentSpec, LinearIntentClassifier, Taxonomy
from deflect.triage.offline import _MemoryHeads
from deflect.triage.policy import PolicyInputs, always_escalate_reasons
from tests.unit.triage_fakes import BagOfWords

CTX = TenantContext.system("acme")


def flagged(text: str) -> bool:
    s = detectors.detect(text)
    return bool(s.sensitive_flags or s.requested_action.kind != "none" or s.wants_human)


# --------------------------------------------------------------------------- 1. MFA reset


@pytest.mark.parametrize(
    "text",
    [
        "I lost my phone. How do I get back into my account?",
        "My phone was stolen and I can't get my sign-in codes anymore.",
        "My Authy got deleted, how do I log in?",
        "I factory reset my phone and can't sign in now.",
        "How can I get into my account? The authenticator codes stopped working after I moved to a new Android.",
        "I can no longer access my 2FA device. How do I sign in?",
        "I don't have my phone anymore, how do I sign in with two-factor on?",
        "The six-digit codes from my authenticator keep being rejected.",
        "Got a new iPhone and Google Authenticator didn't transfer.",
        "Also my old phone is gone so I need the current 2FA taken off my account.",
    ],
)
def test_a_lost_second_factor_is_an_mfa_reset(text):
    signals = detectors.detect(text)
    assert signals.requested_action.kind == "reset_mfa"
    assert "security" in signals.sensitive_flags


@pytest.mark.parametrize(
    "text",
    [
        "How do I turn on two-factor authentication?",
        "How do I set up an authenticator app?",
        "What happens if I lose my phone? Can I still log in?",
        "How do I turn on 2FA? I don't have MFA yet.",
        "I reset my password on my phone, how do I change my notification settings?",
    ],
)
def test_setting_up_a_second_factor_is_not_a_reset(text):
    assert detectors.requested_action(text).kind != "reset_mfa"


# --------------------------------------------------------------------------- 2. a how-to plus a request


class SentenceIntents:
    """IntentClassifier stand-in that reads a whole message as a how-to and knows some sentences on their own."""

    def __init__(self, known: dict[str, IntentPrediction]) -> None:
        self.known = known
        self.calls: list[str] = []

    def classify(self, ctx: TenantContext, text: str) -> IntentPrediction:
        self.calls.append(text)
        return self.known.get(
            text, IntentPrediction(intent="how_to", confidence=0.9, kind="question", risk=0.02)
        )


DOWNGRADE = IntentPrediction(
    intent="change_plan",
    confidence=0.6,
    kind="request",
    flags=("billing", "account_change"),
    action="change_plan",
    risk=0.9,
)
MIXED = "How do I add a webhook endpoint? Also, while you're at it, can you sort out the thing we discussed?"
REQUEST = "Also, while you're at it, can you sort out the thing we discussed?"


def escalation_reasons(classification: Any) -> list[str]:
    return always_escalate_reasons(
        DecisionPolicy(), PolicyInputs(classification=classification, draft=None, intent_risk=0.0)
    )


def test_a_request_in_its_own_sentence_escalates_a_how_to():
    assert not flagged(MIXED)  # the detectors do not know this wording: only the sentence's intent does
    result = Classifier(SentenceIntents({REQUEST: DOWNGRADE})).classify(CTX, MIXED)
    c = result.classification
    assert c.intent == "how_to"
    assert c.requested_action.kind == "change_plan"
    assert {"billing", "account_change"} <= set(c.sensitive_flags)
    assert "action:change_plan" in escalation_reasons(c)


def test_sentence_findings_survive_a_repeat_contact_reclassification():
    first = Classifier(SentenceIntents({REQUEST: DOWNGRADE})).classify(CTX, MIXED)
    again = Classifier.combine(first.signals, first.prediction, repeat=True)
    assert again.classification.requested_action.kind == "change_plan"


@pytest.mark.parametrize(
    "prediction",
    [
        IntentPrediction(
            intent="change_plan", confidence=0.3, flags=("billing",), action="change_plan", risk=0.4
        ),
        IntentPrediction(intent="out_of_scope", confidence=0.05, out_of_scope=True, risk=0.9),
        # a context sentence ("We just switched to annual billing.") the taxonomy is unsure of
        IntentPrediction(
            intent="change_plan", confidence=0.3, flags=("billing",), action="change_plan", risk=0.9
        ),
        IntentPrediction(intent="feedback", confidence=0.6, risk=0.7),
    ],
)
def test_a_sentence_counts_only_when_confident_in_scope_and_mostly_on_human_intents(prediction):
    result = Classifier(SentenceIntents({REQUEST: prediction})).classify(CTX, MIXED)
    assert result.classification.requested_action.kind == "none"
    assert result.classification.sensitive_flags == []


def test_messages_that_escalate_anyway_are_not_read_again():
    unsure = "Hello there. Something odd happened to us."
    intents = SentenceIntents(
        {unsure: IntentPrediction(intent="out_of_scope", confidence=0.1, out_of_scope=True)}
    )
    Classifier(intents).classify(CTX, "How do I add a webhook endpoint?")  # one sentence
    Classifier(intents).classify(
        CTX, "How do I add a webhook? Also please cancel our subscription."
    )  # an action
    Classifier(intents).classify(CTX, unsure)  # out of scope
    assert len(intents.calls) == 3  # the whole messages only


def test_sentences_split_on_ends_and_on_a_second_request_joined_by_a_comma():
    assert sentences("Two things: 1) how do I pause a beam, 2) please switch our email on file.") == [
        "1) how do I pause a beam,",
        "2) please switch our email on file.",
    ]
    assert sentences("How do I pause a beam, also please stop the auto renewal") == [
        "How do I pause a beam",
        "also please stop the auto renewal",
    ]
    assert sentences("Hi! How do I pause a beam? Thanks!") == ["How do I pause a beam?"]


class CountingEmbeddings(BagOfWords):
    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def embed(self, texts: list[str], **_: Any) -> np.ndarray:
        self.batches.append(list(texts))
        return super().embed(texts)


def test_the_embedding_head_reads_all_sentences_in_one_embedding_call():
    examples = {
        "how_to": [
            "how do I export a report",
            "how do I add a webhook",
            "where do I find the settings",
            "how do I add a webhook to the export",
            "how do I find the export settings",
        ],
        "leaving": ["we are done with you folks", "we are leaving you for good", "we are done and leaving"],
    }
    taxonomy = Taxonomy(
        intents=[
            IntentSpec(name="how_to", examples=examples["how_to"]),
            IntentSpec(
                name="leaving",
                examples=examples["leaving"],
                flags=["billing", "account_change"],
                action="cancel_subscription",
            ),
        ]
    )
    head = train_taxonomy(BagOfWords(), taxonomy, tenant_id="acme", version=1)
    embeddings = CountingEmbeddings()
    classifier = Classifier(LinearIntentClassifier(embeddings, _MemoryHeads(head)))
    text = "How do I add a webhook to the export and where do I find the export settings? Also we are done with you folks."
    result = classifier.classify(CTX, text)
    assert result.prediction.intent == "how_to"  # the whole message reads as the how-to
    assert [len(b) for b in embeddings.batches] == [1, 2]  # the message, then its two sentences together
    assert result.classification.requested_action.kind == "cancel_subscription"


def test_a_low_confidence_risky_intent_still_adds_its_flags():
    # Kept on purpose: the flags route the escalation (billing, security queue) and decide who may approve it.
    unsure = IntentPrediction(
        intent="security_report", confidence=0.2, flags=("security",), risk=0.7, kind="problem"
    )
    result = Classifier.combine(detectors.detect("Something odd is going on with our beams."), unsure)
    assert "security" in result.classification.sensitive_flags


# --------------------------------------------------------------------------- 3. chargebacks, 4. plans and leaving


@pytest.mark.parametrize(
    "text",
    [
        "How do I download my invoices? I need them for the dispute I'm opening with Amex.",
        "Our bank asked for them because we're contesting your charges.",
        "I'll be disputing these payments with Visa.",
        "Our finance team raised a dispute with American Express for the March payment.",
        "I'm going to ask my card issuer to reverse your charges.",
        "My bank will be clawing back that payment.",
        "We'd like the money for last month back since nothing synced.",
        "We think we've been overbilled and want the difference back.",
        "Is a service credit possible for last week's outage?",
    ],
)
def test_chargebacks_and_money_back_are_refunds(text):
    assert detectors.requested_action(text).kind == "refund"
    assert "refund" in detectors.detect(text).sensitive_flags


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Also, while you're at it, can you knock us down to the Team plan?", "change_plan"),
        ("Please take us down to the Team plan at renewal.", "change_plan"),
        ("Bump us up to Business please.", "change_plan"),
        ("How do I go from Team to Business?", "change_plan"),
        ("What do I need to do to get the Business plan?", "change_plan"),
        ("We'd like to be on the Enterprise tier.", "change_plan"),
        ("Please take us off Business and back onto Team.", "change_plan"),
        ("How do I end things with you?", "cancel_subscription"),
        ("I want to part ways at the end of the month.", "cancel_subscription"),
        ("How do I stop paying for this?", "cancel_subscription"),
    ],
)
def test_plan_changes_and_leaving_in_other_words(text, kind):
    assert detectors.requested_action(text).kind == kind


@pytest.mark.parametrize(
    "text",
    [
        "What do the Team and Business plans include?",
        "Which users get the Business plan features?",
        "Can I be on the Team plan with 3 users?",
        "Does the limit go up to Enterprise?",
        "What is the shortest sync interval on the Free plan?",
    ],
)
def test_questions_about_plans_are_not_plan_changes(text):
    assert detectors.requested_action(text).kind == "none"


# --------------------------------------------------------------------------- 5. security incidents


@pytest.mark.parametrize(
    "text",
    [
        "Why did I get a password reset email I never asked for?",
        "I keep getting login codes I didn't request.",
        "Is my account safe?",
        "Has our workspace been compromised?",
        "How do I rotate an API key? One of ours ended up on Pastebin.",
        "We think the old token got posted in a public GitHub issue.",
        "Our previous admin's account still has access, please lock him out.",
        "A stranger signed in to our workspace on Sunday.",
        "My account got taken over.",
    ],
)
def test_security_incidents_in_other_words(text):
    assert "security" in detectors.detect(text).sensitive_flags


@pytest.mark.parametrize(
    "text",
    [
        "Is the account secure by default?",
        "How do I share an API key with a teammate?",
        "How do I remove a former employee from the workspace?",
        "Can someone else in my team edit the beam?",
    ],
)
def test_security_questions_are_not_incidents(text):
    assert "security" not in detectors.detect(text).sensitive_flags


# --------------------------------------------------------------------------- 6. language


@pytest.mark.parametrize(
    "text",
    [
        "Can a beam write to a Google Sheet as a destination?",
        "Is there a grace period if a renewal payment fails?",
        "what's a workspace vs a connection vs a beam? bit confused",
        "Sync a HubSpot list into a sheet, how?",
        "Does a dry run use a credit?",
    ],
)
def test_english_with_a_and_as_is_english(text):
    assert detectors.language(text) == "en"


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Como faço para conectar o HubSpot com a minha conta?", "pt"),
        ("Quero falar com um atendente humano.", "pt"),
        ("¿Cómo invito a un compañero a mi espacio de trabajo?", "es"),
    ],
)
def test_portuguese_and_spanish_are_still_recognised(text, language):
    assert detectors.language(text) == language


# --------------------------------------------------------------------------- 7. patterns that were too broad


@pytest.mark.parametrize(
    "text",
    [
        "How do I remove a teammate from our workspace?",
        "How do I remove a connection from my account?",
        "How do I remove someone's access to our workspace?",
        "How do I delete a beam from my workspace?",
        "How do I remove the workspace logo?",
        "How do I upgrade the sb CLI to the latest version?",
        "How do I upgrade the Salesforce API version a connection uses?",
        "After the CLI upgrade my beam fails.",
    ],
)
def test_managing_things_inside_an_account_is_not_an_account_change(text):
    assert detectors.requested_action(text).kind == "none"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("How do I delete my workspace?", "delete_account"),
        ("Please close our company account effective immediately.", "delete_account"),
        ("Delete everything you have about our organization, including backups.", "delete_account"),
        ("Please remove me from your system completely.", "delete_account"),
        ("Please upgrade us so we get more API calls.", "change_plan"),
        ("Upgrade our plan to Business.", "change_plan"),
    ],
)
def test_the_account_itself_still_is(text, kind):
    assert detectors.requested_action(text).kind == kind


# --------------------------------------------------------------------------- 9. other languages


@pytest.mark.parametrize(
    ("text", "language", "kind", "flag"),
    [
        ("Quiero un reembolso del plan anual.", "es", "refund", "refund"),
        ("Necesito que me devuelvan el dinero.", "es", "refund", "refund"),
        ("Ich möchte mein Geld zurück.", "de", "refund", "refund"),
        ("Je veux être remboursé pour ce mois-ci.", "fr", "refund", "refund"),
        ("Quero o estorno da última cobrança.", "pt", "refund", "refund"),
        ("Quiero cancelar mi suscripción.", "es", "cancel_subscription", "billing"),
        ("Ich möchte meinen Vertrag kündigen.", "de", "cancel_subscription", "billing"),
        ("Je souhaite résilier mon abonnement.", "fr", "cancel_subscription", "billing"),
        ("Por favor eliminen mi cuenta y mis datos.", "es", "delete_account", "privacy"),
        ("Bitte löschen Sie mein Konto.", "de", "delete_account", "privacy"),
        ("Je veux supprimer mon compte.", "fr", "delete_account", "privacy"),
        ("Quero excluir minha conta.", "pt", "delete_account", "privacy"),
        ("Zwei-Faktor zurücksetzen bitte, Handy verloren.", "de", "reset_mfa", "security"),
        ("Me hackearon la cuenta ayer.", "es", "none", "security"),
        ("Mon compte a été piraté.", "fr", "none", "security"),
        ("Alguém invadiu minha conta.", "pt", "none", "security"),
        ("Mein Anwalt wird sich bei Ihnen melden.", "de", "none", "legal"),
        ("Mi abogado se pondrá en contacto con ustedes.", "es", "none", "legal"),
    ],
)
def test_sensitive_requests_in_other_languages(text, language, kind, flag):
    signals = detectors.detect(text, default_language=language)
    assert signals.requested_action.kind == kind
    assert flag in signals.sensitive_flags


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Quiero hablar con una persona.", "es"),
        ("Ich möchte mit einem Menschen sprechen.", "de"),
        ("Je veux parler à un humain.", "fr"),
        ("Quero falar com um atendente.", "pt"),
    ],
)
def test_asking_for_a_person_in_other_languages(text, language):
    assert detectors.detect(text, default_language=language).wants_human


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("¿Cómo cancelo una ejecución que está en cola?", "es"),
        ("¿Cómo borro un beam que ya no uso?", "es"),
        ("La API devuelve un error 429, ¿qué significa?", "es"),
        ("Wie kann ich einen Lauf abbrechen?", "de"),
        ("Wie lösche ich ein Feld aus der Zuordnung?", "de"),
        ("Comment annuler une exécution en cours ?", "fr"),
        ("Comment supprimer un champ du mappage ?", "fr"),
        ("Como cancelo uma execução que está travada?", "pt"),
        ("A API devolve um erro 429, o que significa?", "pt"),
        ("How resilient is the sync to outages?", "en"),
    ],
)
def test_how_tos_in_other_languages_raise_nothing(text, language):
    assert not flagged(text), text


@pytest.mark.parametrize(
    "text",
    [
        "I sign in with my old work address and it has been deactivated, so the reset link goes nowhere.",
        "I no longer have access to the email on my account, how do I get in?",
        "I lost access to my work email when I left the company, how can I log in?",
        "Our previous email was shut down, please move the account.",
    ],
)
def test_a_sign_in_email_the_customer_lost_is_an_email_change_for_a_person(text):
    # Recovering the account means moving it to another address: only someone who checked the identity may.
    assert "change_email" in detectors.all_requested_actions(text)


@pytest.mark.parametrize(
    "text",
    [
        "The email digest was disabled after the update, how do I turn it back on?",
        "Can I see the previous email notifications we sent?",
        "Where do I set the email address for weekly reports?",
        "I can't open the email you sent me with the invoice",
    ],
)
def test_emails_about_notifications_are_not_an_email_change(text):
    assert "change_email" not in detectors.all_requested_actions(text)


@pytest.mark.parametrize(
    "text",
    [
        "Would you turn on SSO for our workspace? Our plan is Team.",
        "Please unlock the API for us as a one-off, we're on the Starter plan.",
        "Could you activate the sandbox on our account?",
    ],
)
def test_asking_support_to_switch_a_feature_on_for_the_account_is_an_entitlement_change(text):
    assert "change_entitlement" in detectors.all_requested_actions(text)


@pytest.mark.parametrize(
    "text",
    [
        "How do I enable the audit log?",
        "Can you enable two-factor for a single user?",
        "Can I enable webhooks for one beam?",
    ],
)
def test_asking_how_to_switch_a_feature_on_is_not_an_entitlement_change(text):
    assert "change_entitlement" not in detectors.all_requested_actions(text)
