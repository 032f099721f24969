"""Chunking by headings with overlap, offsets a citation can rely on, and the identifiers a chunk carries."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from deflect.knowledge.chunking import chunk_article, defined_identifiers, identifiers, plain_text, sections
from deflect.knowledge.models import ArticleInput

NOW = datetime(2025, 3, 1, tzinfo=UTC)


def chunks_of(body: str, body_format: str = "markdown", **kw):
    article = ArticleInput(title="Webhooks", body=body, body_format=body_format)
    return chunk_article(
        tenant_id="acme", article_id="a1", version=3, meta=article.meta(), body=body, updated_at=NOW, **kw
    )


MARKDOWN = """Intro paragraph about webhooks.

# Webhooks

## Events

Table of events.

### Retries

We retry for 24 hours.

```
# not a heading inside code
```

## Signatures

Check X-Syncbeam-Signature.
"""


def test_each_chunk_keeps_article_version_heading_path_and_exact_offsets():
    chunks = chunks_of(MARKDOWN)
    text = plain_text(MARKDOWN)

    assert [c.heading_path for c in chunks] == [
        [],
        ["Webhooks", "Events"],
        ["Webhooks", "Events", "Retries"],
        ["Webhooks", "Signatures"],
    ]
    for chunk in chunks:
        assert (chunk.article_id, chunk.article_version) == ("a1", 3)
        assert text[chunk.start : chunk.end] == chunk.text
    assert "# not a heading inside code" in chunks[2].text  # fenced code never splits a section


def test_long_sections_are_split_into_overlapping_windows():
    sentences = " ".join(f"Sentence number {i} explains one more step of the import." for i in range(80))
    chunks = chunks_of(f"# Import\n\n{sentences}", target_chars=600, overlap_chars=150)

    assert len(chunks) > 3
    assert all(c.heading_path == ["Import"] for c in chunks)
    for previous, following in itertools.pairwise(chunks):
        assert following.start < previous.end  # windows overlap
        assert previous.text[-40:].split()[-1] in following.text


def test_html_articles_are_chunked_by_their_heading_tags():
    html = "<h1>Billing</h1><p>Overview &amp; plans.</p><h2>Refunds</h2><p>Annual plans within 30 days.</p>"
    chunks = chunks_of(html, body_format="html")

    assert [c.heading_path for c in chunks] == [["Billing"], ["Billing", "Refunds"]]
    assert "Overview & plans." in chunks[0].text
    assert "<p>" not in chunks[1].text


def test_setext_headings_count_as_sections():
    found = sections("Title\n=====\n\nbody\n\nPart\n----\n\nmore body\n")
    assert [s.heading_path for s in found] == [("Title",), ("Title", "Part")]


def test_error_codes_match_however_they_are_written():
    assert identifiers("Error SB-1042") == ["sb1042"]
    assert identifiers("sb1042")[0] == identifiers("SB_1042")[0] == identifiers("runs fail with SB 1042")[0]


def test_api_names_paths_headers_events_and_flags_are_identifiers():
    found = identifiers(
        "Call createRun at POST /v2/beams/{beam_id}/runs with X-Syncbeam-Signature; "
        "listen for beam.run.failed; run sb with --dry-run; set sync_interval_minutes."
    )
    for expected in (
        "createrun",
        "v2/beams/{beam_id}/runs",
        "x-syncbeam-signature",
        "beam.run.failed",
        "--dry-run",
        "sync_interval_minutes",
    ):
        assert expected in found
    assert identifiers("e.g. the usual prose, i.e. nothing special") == []


def test_a_chunk_defines_what_its_title_headings_and_tables_name_and_only_mentions_the_rest():
    text = "| `beam.paused` | sent when paused |\n\nSee also beam.run.failed in prose."
    assert defined_identifiers("Error SB-2003", ["Events"], text) == ["sb2003", "beam.paused"]
