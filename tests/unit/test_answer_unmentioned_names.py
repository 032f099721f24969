"""A question about an app or product the help center never mentions is not answered from a related article:
"can it sync Shopify customers into HubSpot?" must not be deflected with the HubSpot article's list of objects.
The same question about something the article does name is answered. The rule is the engine's, so it holds for
the embedded composer and for Bedrock alike."""

import json

from deflect.domain.models import DecisionPolicy
from deflect.domain.tenancy import TenantContext
from deflect.embedded.model import ExtractiveComposer
from deflect.knowledge.models import SearchHit
from deflect.triage import grounding
from tests.unit.triage_fakes import Article, BagOfWords, bedrock_writing, make_world

CTX = TenantContext.system("acme", actor="triage")
THRESHOLD = DecisionPolicy().answer_threshold

HUBSPOT = (
    "## What syncs\n\n"
    "Syncbeam reads and writes HubSpot contacts, companies, deals and tickets. "
    "Custom objects are supported on HubSpot Enterprise."
)
CLI = "## Install\n\n- macOS: brew install syncbeam/tap/sb\n- Linux and Windows: download the binary from Downloads."


def hit(text: str, article_id: str = "int-hubspot", title: str = "Connect HubSpot") -> SearchHit:
    return SearchHit(
        article_id=article_id,
        version=2,
        chunk_id=f"{article_id}:v2:1",
        title=title,
        text=text,
        start=0,
        end=len(text),
        score=0.9,
    )


def confidence(question: str, passage: SearchHit) -> float:
    draft = ExtractiveComposer(BagOfWords()).compose(CTX, question, [passage]).draft
    if draft is None:
        return 0.0
    return grounding.discount_unmentioned_names(
        draft, question, [grounding.clean_passage(passage)]
    ).confidence


def test_a_question_about_an_app_no_passage_mentions_is_not_answered_from_a_related_article():
    known = confidence("Can I sync deals and tickets from HubSpot?", hit(HUBSPOT))
    unknown = confidence("Can I sync deals and tickets from Pipedrive?", hit(HUBSPOT))

    assert known >= THRESHOLD
    assert unknown < THRESHOLD


def test_an_error_code_is_mentioned_only_exactly():
    passage = "## Fix\n\nError SB-1001 means the connection's authorization expired: reconnect it."
    assert grounding.unmentioned_names("What does error SB-1003 mean?", [passage]) == ["sb-1003"]
    assert grounding.unmentioned_names("What does error SB-1001 mean?", [passage]) == []


def test_a_longer_word_of_the_help_center_mentions_a_short_name_but_not_the_reverse():
    assert grounding.unmentioned_names("Does the CLI run on Macs?", [CLI]) == ["cli"]
    assert grounding.unmentioned_names("Does it install on Macs?", [CLI, "The sb CLI manages beams."]) == []
    # "one" and "drive" are help-center words; "OneDrive" is not mentioned by them.
    assert grounding.unmentioned_names("Can it read files in OneDrive?", ["One drive letter per sheet."]) == [
        "onedrive"
    ]


def test_the_name_in_a_sign_off_is_not_a_thing_asked_about():
    question = "Hi, can I sync deals and tickets from HubSpot? Cheers, Tom"
    assert confidence(question, hit(HUBSPOT)) == confidence(
        "Can I sync deals and tickets from HubSpot?", hit(HUBSPOT)
    )


def test_sentence_openers_weekdays_and_months_are_not_names_of_things():
    assert grounding.named_things("Since Monday the beam fails. Our invoice from March is missing.") == []
    assert grounding.named_things("Thanks. Does it work with Zendesk Sell?") == ["zendesk", "sell"]


HUBSPOT_QUOTE = "Syncbeam reads and writes HubSpot contacts, companies, deals and tickets."


def test_a_bedrock_answer_about_an_app_the_help_center_never_names_escalates_and_records_why():
    world = make_world(articles=[Article("int-hubspot", "Connect HubSpot", HUBSPOT, ("hubspot",))])
    world.service.engine.composer = bedrock_writing(HUBSPOT_QUOTE, answers=2)

    # Two different customers, so neither is a repeat contact.
    named = world.triage("tkt-1", "Can you sync deals from HubSpot?", customer_id=None)
    unnamed = world.triage("tkt-2", "Can you sync Shopify orders into HubSpot deals?", customer_id=None)

    assert named.outcome == "deflect"
    assert unnamed.outcome == "escalate" and "low_answer_confidence" in unnamed.reasons
    [event] = world.audit.load(world.ctx, "tkt-2")[1]
    inputs = json.loads(world.evidence.read(world.ctx, event.evidence[0]))
    # The count is evidence; the customer's own words ("shopify") are not copied into it.
    assert inputs["draft"]["unmentioned_names"] == 1 and "shopify" not in json.dumps(inputs).lower()
