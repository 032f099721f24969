"""A customer is never told that an account action (refund, credit, cancellation, deletion, plan or email change,
2FA or password reset, ownership transfer, trial extension, waived fee, discount) was, is being or will be done for
them: only a human can do it. A draft that says so, in any tense or voice, is discarded and the ticket goes to a
person. The help center's own how-tos ("When you cancel, your plan stays active…") are still quoted."""

import json
import re
from pathlib import Path

import pytest

from deflect.triage import grounding
from tests.unit.triage_fakes import RENEWAL_ARTICLE, RENEWAL_QUOTE, bedrock_writing, make_world

HELP_CENTER = Path(__file__).resolve().parents[2] / "infra" / "local" / "demo" / "helpcenter"

PROMISES = [
    # Found by the audit: these reached customers in auto mode.
    "Your subscription has been cancelled, so it will not renew.",
    "We'll cancel your subscription so it will not renew.",
    "We will refund your annual plan today.",
    "Your account has been deleted and will not renew.",
    "Your plan has been upgraded to Pro.",
    "A refund has been issued to your card.",
    "Your email address has been changed.",
    "Two-factor authentication has been reset on your account.",
    # First person, every tense.
    "I have refunded your last payment.",
    "I've cancelled your plan.",
    "I'll process your refund today.",
    "We're going to cancel your subscription at the end of the month.",
    "I am going to delete your account.",
    "We have gone ahead and cancelled your subscription.",
    "I went ahead and upgraded your plan.",
    "We just refunded your payment.",
    "We're processing your refund now.",
    "I'm cancelling your subscription now.",
    "I\u2019d be happy to refund your last invoice.",
    "Let me cancel that for you.",
    "Our billing team will refund the duplicate charge.",
    "We've credited your account with 10,000 run credits.",
    "We've applied the SPRING24 coupon to your subscription.",
    "We have extended your trial by 14 days.",
    "We've waived the late fee.",
    "I have transferred ownership of the workspace to you.",
    "I've reset your 2FA so you can sign in again.",
    "We have changed your billing email to finance@acme.com.",
    "We will downgrade you to the Team plan.",
    # The customer's account, changed.
    "Your subscription is now canceled and you won't be charged again.",
    "Your subscription is cancelled.",
    "Your plan was downgraded to Free yesterday.",
    "Your trial has been extended to the end of the month.",
    "Your refund has been approved and will reach your card in 5 to 10 business days.",
    "Your account will be deleted within 24 hours.",
    "Your subscription will be cancelled at the end of the billing period.",
    "A full refund will be issued to your card.",
    "The 20% discount has been applied to your account.",
    "I can confirm that your subscription has been cancelled.",
    "Good news: your subscription\u2019s been successfully cancelled.",
    "Your subscription has been set to cancel at the end of the period.",
    "You have been refunded $49.",
    "You'll receive a full refund within 5 to 10 business days.",
    "You're now on the Business plan.",
    "Your refund is on its way.",
]

HOW_TOS = [
    "Go to Settings → Billing and click Cancel plan.",
    "When you cancel, your plan stays active until the end of the billing period.",
    "Refunds are issued to the original payment method within 5–10 business days.",
    "The Owner can delete the workspace from Settings → Workspace → Delete workspace.",
    "If you downgrade, the change takes effect at the next renewal.",
    "Your invoice is emailed to the billing contact.",
    "Your plan is upgraded immediately and you are charged the prorated difference.",
    "When you upgrade, your plan is upgraded immediately.",
    "If you downgrade, your plan will be downgraded at the next renewal.",
    "Your plan will be downgraded at the end of the period if you cancel.",
    "If you cancel within 30 days, you'll receive a full refund.",
    "If your account was deleted more than 30 days ago, it cannot be restored.",
    "Check whether your refund has been processed under Settings → Billing → Invoices.",
    "Your account is deleted 30 days after you close it.",
    "You can cancel your subscription from Settings → Billing.",
    "To reset your password, click Forgot password on the sign-in page.",
    "After 30 days we do not refund the remaining months, but you keep access until the end of the paid period.",
    "If you were charged after cancelling, or charged twice, we refund the extra charge in full.",
    "We can't refund monthly plans.",
    "We won't cancel a subscription without the Owner's confirmation.",
    "We'll email you when the export is ready.",
    "We have updated the HubSpot connector to support custom objects.",
    "The user who authorised the connection changed their password or was deactivated.",
]


@pytest.mark.parametrize("sentence", PROMISES)
def test_a_statement_that_an_account_action_was_or_will_be_done_is_a_promise(sentence):
    assert grounding.promises_action(sentence)


@pytest.mark.parametrize("sentence", HOW_TOS)
def test_a_how_to_or_a_policy_is_not_a_promise(sentence):
    assert not grounding.promises_action(sentence)


def test_no_sentence_of_the_demo_help_center_reads_as_a_promise():
    """The extractive composer quotes these articles: none of their sentences may get its answer discarded."""
    articles = sorted(HELP_CENTER.glob("*.md"))
    assert articles
    flagged = []
    for path in articles:
        body = re.sub(r"\A---\n.*?\n---\n", "", path.read_text(), flags=re.S)
        for unit in grounding.units(grounding.clean_text(body)[0]):
            if grounding.promises_action(unit.text):
                flagged.append(f"{path.name}: {unit.text}")
    assert flagged == []


RENEWAL, QUOTE = RENEWAL_ARTICLE, RENEWAL_QUOTE


def _triage_with_bedrock_writing(sentence: str):
    world = make_world(articles=[RENEWAL])  # rollout: auto, so a grounded answer is sent with no human
    world.service.engine.composer = bedrock_writing(sentence, QUOTE)
    return world, world.triage("tkt-1", "I asked to stop renewing last week. Is that done?")


def test_a_grounded_bedrock_answer_without_a_promise_is_sent():
    sentence = "Plans renew automatically at the end of each billing period unless you turn off auto-renew."
    world, result = _triage_with_bedrock_writing(sentence)

    assert result.outcome == "deflect" and result.rollout_mode == "auto"
    assert sentence in result.reply
    assert world.sent and world.started == []


@pytest.mark.parametrize(
    "promise",
    [
        "Your subscription has been cancelled, so it will not renew.",
        "We'll cancel your subscription so it will not renew.",
        "Your account has been deleted and will not renew.",
    ],
)
def test_a_grounded_bedrock_answer_promising_an_action_reaches_a_person_not_the_customer(promise):
    world, result = _triage_with_bedrock_writing(promise)

    assert result.outcome == "escalate" and result.reply is None
    assert "draft_rejected:promises_action" in result.reasons
    assert world.sent == []  # nothing queued for the customer
    assert len(world.started) == 1  # a person takes the ticket
    [event] = world.audit.load(world.ctx, "tkt-1")[1]
    recorded = json.loads(world.evidence.read(world.ctx, event.evidence[0]))
    assert recorded["decision"]["customer_reply"] is None
    assert recorded["decision"]["reasons"] == ["draft_rejected:promises_action"]
