"""Importers: every bad row is reported with a reason, good rows become governed articles."""

from __future__ import annotations

import json
from datetime import date

from deflect.knowledge.importers import front_matter, read_object, read_path
from deflect.knowledge.ingestion import ImportRow
from deflect.knowledge.models import Rejection
from tests.knowledge_cases.fakes import HELP_CENTER


def test_the_demo_help_center_is_complete_and_valid():
    rows = list(read_path(HELP_CENTER))
    rejected = [r for r in rows if isinstance(r, Rejection)]
    articles = [r for r in rows if isinstance(r, ImportRow)]

    assert rejected == []
    assert len(articles) >= 25
    areas = {r.article.product_area for r in articles}
    assert {"getting-started", "integrations", "troubleshooting", "billing", "account-security"} <= areas
    assert len({r.article_id for r in articles}) == len(articles)


def test_front_matter_lists_scalars_and_block_lists():
    meta, body = front_matter(
        '---\nid: a1\ntitle: "Plans: and pricing"\npolicy_version: 2\ntags: [a, b]\nsegments:\n  - business\n'
        "  - enterprise\n---\n# Heading\nText"
    )
    assert meta == {
        "id": "a1",
        "title": "Plans: and pricing",
        "policy_version": 2,
        "tags": ["a", "b"],
        "segments": ["business", "enterprise"],
    }
    assert body == "# Heading\nText"


def test_markdown_without_front_matter_takes_its_id_from_the_file_and_title_from_the_heading():
    [row] = read_object("kb/reset-password.md", b"# Reset your password\n\nClick Forgot password.")
    assert isinstance(row, ImportRow)
    assert (row.article_id, row.article.title) == ("reset-password", "Reset your password")


def test_jsonl_rows_are_rejected_one_by_one_with_reasons():
    lines = [
        json.dumps({"id": "ok-1", "title": "Good", "text": "Body text"}),
        "{not json",
        json.dumps({"title": "No id", "body": "x"}),
        json.dumps({"id": "seg", "title": "Segments", "body": "x", "visibility": "segments"}),
        json.dumps({"id": "bad area", "title": "T", "body": "x"}),
    ]
    rows = list(read_object("export.jsonl", "\n".join(lines).encode()))

    assert isinstance(rows[0], ImportRow) and rows[0].article.body == "Body text"
    reasons = [r.reason for r in rows[1:] if isinstance(r, Rejection)]
    assert reasons[0].startswith("not JSON")
    assert reasons[1] == "missing id"
    assert "needs at least one segment" in reasons[2]
    assert isinstance(rows[4], ImportRow)  # ids are checked when ingested, with the same message as the API


def test_zendesk_export_maps_sections_segments_drafts_and_outdated_articles():
    export = {
        "articles": [
            {"id": 1, "title": "Reset", "body": "<p>Go</p>", "section_id": 10, "locale": "en-us",
             "html_url": "https://x.zendesk.com/hc/articles/1", "label_names": ["password"], "author_id": 7},
            {"id": 2, "title": "Draft", "body": "<p>x</p>", "draft": True},
            {"id": 3, "title": "Staff", "body": "<p>x</p>", "user_segment_id": 99},
            {"id": 4, "title": "Paid", "body": "<p>x</p>", "user_segment_id": 55, "outdated": True},
        ],
        "sections": [{"id": 10, "name": "Passwords", "category_id": 100}],
        "categories": [{"id": 100, "name": "Account & Security"}],
        "user_segments": [{"id": 99, "user_type": "staff"}, {"id": 55, "user_type": "signed_in_users"}],
    }  # fmt: skip
    rows = list(read_object("hc-export.json", json.dumps(export).encode()))

    reset, draft, staff, paid = rows
    assert isinstance(reset, ImportRow) and reset.article_id == "zd-1"
    assert reset.article.product_area == "account-security"
    assert (reset.article.body_format, reset.article.locale, reset.article.tags) == (
        "html",
        "en-us",
        ["password"],
    )
    assert reset.article.url == "https://x.zendesk.com/hc/articles/1"
    assert isinstance(draft, Rejection) and draft.reason == "draft article"
    assert isinstance(staff, ImportRow) and staff.article.visibility == "internal"
    assert isinstance(paid, ImportRow) and paid.article.segments == ["zendesk-55"]
    assert paid.article.review_by is not None and paid.article.review_by < date.today()


def test_unsupported_files_are_reported_not_ignored():
    [row] = read_object("notes.docx", b"binary")
    assert isinstance(row, Rejection) and "unsupported file type" in row.reason
