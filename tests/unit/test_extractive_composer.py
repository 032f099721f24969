"""Which article the extractive composer quotes first: the one that answers, not one that points elsewhere."""

import pytest

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


CLI_COMMANDS = (
    "## Common commands\n\n"
    "| Command | What it does |\n| --- | --- |\n"
    "| sb beams list | lists the beams of the workspace |\n"
    "| sb beams run BEAM_ID | starts a run now |\n"
    "| sb runs show RUN_ID | prints the status of a run |\n"
    "| sb runs logs RUN_ID --follow | streams the logs of a run while it is running |\n"
)


def test_an_answer_deep_in_a_section_retrieval_ranked_low_is_still_quoted():
    # The index embeds only the start of a section, so a table row near its end ranks the section low.
    near = [
        hit(
            "rn-2025-03",
            "Release notes",
            "## Smaller changes\n\n- Run logs can be filtered by error code.",
            0.22,
        ),
        hit("ts-stuck-run", "A run is stuck", "Runs normally leave the queued state within a minute.", 0.08),
        hit("gs-first-beam", "Create your first beam", "Dry runs preview a beam without writing.", 0.07),
    ]
    cli = hit("gs-cli", "Install and use the CLI", CLI_COMMANDS, 0.05)

    draft = (
        composer()
        .compose(CTX, "Can the CLI stream the logs of a run while it is running?", [*near, cli])
        .draft
    )

    assert draft is not None
    assert {citation.article_id for citation in draft.citations} == {"gs-cli"}  # no weaker article tacked on
    assert any("sb runs logs RUN_ID --follow" in citation.quote for citation in draft.citations)


def test_a_low_ranked_section_that_only_resembles_the_question_does_not_lead():
    near = [
        hit(
            "rn-2025-03",
            "Release notes",
            "## Smaller changes\n\n- Run logs can be filtered by error code.",
            0.5,
        )
    ]
    cli = hit("gs-cli", "Install and use the CLI", CLI_COMMANDS, 0.05)

    draft = composer().compose(CTX, "Can I export the logs of a run to Datadog?", [*near, cli]).draft

    assert draft is None or draft.citations[0].article_id != "gs-cli"


def test_the_answer_does_not_depend_on_which_other_passages_were_retrieved():
    # The int8 MiniLM quantizes a batch's activations together: embedding one article's sentences alongside
    # another's changed their similarity, and so could change what a customer was told.
    embeddings = pytest.importorskip("deflect.embedded.embeddings")
    from deflect.embedded.model import CachedEmbeddings

    answer = hit(
        "sec-reset-password",
        "Reset your password",
        "## Forgot your password\n\n1. On the sign-in page, select Forgot password.\n"
        "2. Enter your email address. A reset link arrives within a few minutes and is valid for one hour.",
        0.9,
    )
    others = [
        hit(
            "bill-invoices",
            "Download invoices",
            "Invoices are listed under Settings, Billing, Invoices. " * 6,
            0.3,
        ),
        hit("gs-cli", "Install and use the CLI", CLI_COMMANDS, 0.2),
    ]
    question = "I forgot my login details, what now?"

    def compose(passages):
        fresh = ExtractiveComposer(CachedEmbeddings(embeddings.get_embedder()))
        return fresh.compose(CTX, question, passages).draft

    alone, together = compose([answer]), compose([answer, *others])

    assert alone is not None and together is not None
    assert together.citations[0] == alone.citations[0]
    assert together.confidence == alone.confidence
