"""A plain how-to is answered on what it asks: greetings, "quick question" and contractions are not terms the
help center must contain (they used to count as unanswered words and sank the draft under the answer threshold)."""

from deflect.domain.models import DecisionPolicy
from deflect.domain.tenancy import TenantContext
from deflect.embedded.model import ExtractiveComposer
from deflect.knowledge.models import SearchHit
from deflect.knowledge.search import focus
from deflect.triage import grounding
from tests.unit.triage_fakes import BagOfWords

CTX = TenantContext.system("acme", actor="triage")
THRESHOLD = DecisionPolicy().answer_threshold

DUPLICATES = (
    "## Avoid duplicates in the future\n\n"
    "Pick a matching key that is unique in both apps, so a run does not create duplicates."
)


def hit(text: str, score: float) -> SearchHit:
    return SearchHit(
        article_id="ts-sb-2210",
        version=3,
        chunk_id="ts-sb-2210:v3:1",
        title="Error SB-2210: duplicate external ID",
        text=text,
        start=0,
        end=len(text),
        score=score,
    )


def test_a_chatty_how_to_gets_a_cited_answer_from_the_section_that_answers_it():
    question = "Hey team, hope you're well :) Quick question: how do I pick a matching key so I don't get duplicates?"
    passage = hit(DUPLICATES, 0.2)  # a short question against a long article: retrieval alone is unsure

    draft = ExtractiveComposer(BagOfWords()).compose(CTX, question, [passage]).draft

    assert draft is not None
    assert draft.confidence >= THRESHOLD
    assert draft.citations[0].article_id == "ts-sb-2210"
    assert "matching key that is unique" in draft.citations[0].quote
    assert grounding.verify(draft, [grounding.clean_passage(passage)]).ok


def test_the_same_passage_still_does_not_answer_a_question_about_something_it_never_names():
    question = "Quick question: how do I pick a matching key for Airtable bases?"

    draft = ExtractiveComposer(BagOfWords()).compose(CTX, question, [hit(DUPLICATES, 0.2)]).draft

    assert draft is None or draft.confidence < THRESHOLD


def test_greetings_run_into_the_question_are_not_part_of_it():
    assert focus("Good morning, is there a way to get an email alert? Cheers, Sam") == (
        "is there a way to get an email alert?"
    )
    assert focus("Hey team, hope you're well :) how do I map a date field?") == "how do I map a date field?"
    assert focus("Hi there! Quick question: how do I pick a key?") == "how do I pick a key?"
    # A greeting before what the customer reports is dropped, not the report with it.
    assert focus("Hello, I was charged twice. Please refund me.") == "I was charged twice. Please refund me."


def test_contractions_and_possessives_are_read_as_words():
    assert grounding.content_terms("I don't want duplicates") == {"dupli"}
    assert grounding.content_terms("change someone's role") == grounding.content_terms("change someone role")
    assert grounding.content_terms("the owner’s role") == grounding.content_terms("the owner role")
