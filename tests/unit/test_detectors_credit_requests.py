"""Requests for a credit, a waiver, compensation or not to be billed reach a person, also after a how-to question.

An audit found "How do I export a report to CSV? P.S. can you credit us for yesterday's outage?" answered about
exports only and the ticket deflected: the credit request was dropped. Product senses of "credit", "card" and
"charge" (run credits, a credit card field, Stripe charges) stay answerable how-tos."""

from __future__ import annotations

from decimal import Decimal

import pytest

from deflect.triage import detectors
from tests.unit.triage_fakes import make_world

AUDIT = [
    "How do I export a report to CSV? P.S. can you credit us for yesterday's outage?",
    "How do I export a report to CSV? Also, please make sure I'm not billed for next month.",
    "How do I export a report to CSV? Also please give us a credit for the downtime.",
    "How do I export a report to CSV? Also, don't charge us for May, we barely used it.",
]


@pytest.mark.parametrize("text", AUDIT)
def test_a_credit_request_after_a_howto_goes_to_a_person(text):
    result = make_world().triage("tkt-credit", text)

    assert result.outcome == "escalate", f"auto reply sent, request dropped: {result.reply!r}"
    assert {"refund", "billing"} & set(result.classification.sensitive_flags)
    assert result.classification.requested_action.kind == "refund"


@pytest.mark.parametrize(
    "text",
    [
        *AUDIT,
        "Can you credit us for the outage?",
        "Please credit our next invoice for the 6 hours of downtime.",
        "We expect a credit for last week's incident.",
        "Could we get a prorated credit for the unused part of this billing period?",
        "Can we get some credit for the downtime?",
        "Could you waive this month's fee?",
        "We'd like the overage fee waived this time.",
        "Can you comp us for the downtime?",
        "You should give us a discount for the outage.",
        "Make it right with a discount on our next invoice, the outage cost us a day.",
        "We'd like a free month for the downtime.",
        "Make it up to us somehow after this outage.",
        "I shouldn't have to pay for the days it was down.",
        "We shouldn't be charged for the downtime.",
        "Please don't bill us for June, the product was broken all month.",
        # de / es / fr
        "Wir möchten eine Gutschrift für den Ausfall gestern.",
        "Bitte stellen Sie uns den Mai nicht in Rechnung.",
        "Können Sie die Gebühr für diesen Monat erlassen?",
        "¿Pueden darnos una compensación por la caída de ayer?",
        "Por favor no nos cobren mayo, casi no lo usamos.",
        "Queremos un crédito por la caída del servicio.",
        "Pouvez-vous nous accorder un dédommagement pour la panne d'hier ?",
        "Merci de ne pas nous facturer le mois de mai.",
        "Ne nous facturez pas ce mois-ci svp.",
    ],
)
def test_a_credit_waiver_or_compensation_is_a_refund_request(text):
    signals = detectors.detect(text)

    assert signals.requested_action.kind == "refund"
    assert {"refund", "billing", "account_change"} <= set(signals.sensitive_flags)


def test_the_credit_amount_asked_for_is_proposed():
    action = detectors.detect("Credit us $40 for yesterday's outage please.").requested_action

    assert (action.kind, action.amount, action.currency) == ("refund", Decimal("40"), "USD")


@pytest.mark.parametrize(
    "text",
    [
        "How do I export a report to CSV? Also please stop charging my card.",
        "We're moving to another vendor next quarter, please make sure we're not billed after June.",
    ],
)
def test_not_being_billed_from_now_on_is_a_cancellation(text):
    signals = detectors.detect(text)

    assert signals.requested_action.kind == "cancel_subscription"
    assert "billing" in signals.sensitive_flags


def test_a_double_billing_report_is_flagged():
    text = "How do I export a report to CSV? btw you guys double billed me in March, fix it"

    assert "billing" in detectors.detect(text).sensitive_flags


@pytest.mark.parametrize(
    "text",
    [
        "How many run credits do we have left?",
        "How do I map the credit card field in Salesforce?",
        "Where can I see API credits remaining?",
        "Does a dry run use a credit?",
        "How do I get more run credits?",
        "How do I reduce the run credits my beams use?",
        "What happens to unused credits at the end of the month?",
        "How do I sync the credit limit field from NetSuite to HubSpot?",
        "Can I map a credit memo object from QuickBooks?",
        "How do I sync Stripe charges to BigQuery?",
        "How do I stop a beam from charging the customer's card twice in Stripe?",
        "How do I give my colleague credit for a beam in the audit log?",
        "How do I credit the original author in a shared template?",
        "How do I update the credit card on file?",
        "Do I get charged for runs that fail?",
        "How do I make sure we're not charged for overages?",
        "Is there a setting that pauses beams instead of charging us extra when we run out of credits?",
        "¿Cómo funcionan los créditos de ejecución?",
        "Comment fonctionnent les crédits d'exécution ?",
        "Wie viele Run-Credits haben wir noch?",
    ],
)
def test_credits_cards_and_charges_in_the_product_sense_are_not_flagged(text):
    signals = detectors.detect(text)

    assert signals.sensitive_flags == []
    assert signals.requested_action.kind == "none"
