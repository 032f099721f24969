"""Which article the extractive composer quotes first: the one that answers, not one that points elsewhere."""

from deflect.domain.tenancy import TenantContext
from deflect.embedded.model import ExtractiveComposer
from deflect.knowledge.models import SearchHit
from tests.unit.triage_fakes import BagOfWords

CTX = TenantContext.system("acme", actor="triage")


def hit(article_id: str, title: str, text: str, score: float) -> SearchHit:
    return SearchHit(
        article_id=article_id,
        version=1,
        chunk_id=f"{article_id}:v1:0",
        title=title,
        text=text,
        start=0,
        end=len(text),
        score=score,
    )


def composer() -> ExtractiveComposer:
    return ExtractiveComposer(BagOfWords(), min_unit_similarity=0.1)


def test_an_error_code_question_is_answered_from_the_article_about_that_code():
    about = hit(
        "ts-sb-2003",
        "Error SB-2003: field type mismatch",
        "## Fix\n\nWhen SB-2003 shows on some records, add a default transform to their mapping row.",
        0.62,
    )
    mentions = hit(
        "ts-missing-records",
        "Some records are missing after a sync",
        "## Failed records\n\nRecords that failed with SB-2003 on some records are retried on the next run.",
        0.60,
    )
    draft = composer().compose(CTX, "SB-2003 on some records", [about, mentions]).draft

    assert draft is not None
    assert draft.citations[0].article_id == "ts-sb-2003"


def test_a_sentence_that_only_names_another_article_does_not_lead_the_answer():
    pointer = hit(
        "bill-plans",
        "Plans and pricing",
        '## Credits\n\nSee "Run credits and overages" for what happens when you use up all your run credits.',
        0.60,
    )
    answer = hit(
        "bill-overages",
        "Run credits and overages",
        "## When you run out\n\nWhen you use up all your run credits, beams keep running and extra credits are billed.",
        0.58,
    )
    draft = (
        composer().compose(CTX, "what happens when we use up all our run credits", [pointer, answer]).draft
    )

    assert draft is not None
    assert draft.citations[0].article_id == "bill-overages"
