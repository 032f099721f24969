"""Articles restricted to some readers are never answered to everyone: Zendesk's multi-segment restriction, and
Markdown or API articles that name segments but leave out the visibility line."""

import json
from datetime import UTC, datetime

import pytest

from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemoryEvidenceStore, MemorySupportStore
from deflect.embedded.search import EmbeddedKnowledgeIndex
from deflect.knowledge.importers import read_object
from deflect.knowledge.ingestion import KnowledgeIngestion
from deflect.knowledge.models import Audience, SearchRequest
from tests.knowledge_cases.fakes import HashingEmbedder

ACME = TenantContext(tenant_id="acme", actor="s3-import:kb", roles=frozenset({"service"}), via="system")
NOW = datetime.now(UTC)
SEGMENTS = [
    {"id": 99, "user_type": "staff", "name": "Agents and admins"},
    {"id": 7, "user_type": "signed_in", "name": "Enterprise customers"},
]


def _import(name: str, body: bytes):
    index = EmbeddedKnowledgeIndex(None, HashingEmbedder())
    ingestion = KnowledgeIngestion(MemorySupportStore(), MemoryEvidenceStore(), index)
    return index, ingestion.import_rows(ACME, read_object(f"tenant=acme/{name}", body))


def _found(index, text: str, audience: Audience) -> list[tuple[str, str]]:
    hits = index.search(ACME, SearchRequest(text=text, k=5, audience=audience, now=NOW))
    return sorted({(h.article_id, h.visibility) for h in hits})


def _zendesk(article: dict) -> bytes:
    base = {"id": 42, "title": "Refund override codes", "updated_at": "2025-06-01T10:00:00Z"}
    return json.dumps({"articles": [base | article], "user_segments": SEGMENTS}).encode()


def test_a_zendesk_article_restricted_to_staff_by_user_segment_ids_is_never_shown_to_customers():
    body = "<p>Staff only. Override code RFND-OVERRIDE-7781 refunds any invoice.</p>"
    index, summary = _import(
        "hc.json", _zendesk({"body": body, "user_segment_id": None, "user_segment_ids": [99]})
    )
    assert summary.added == 1
    assert _found(index, "refund override code", Audience(kind="customer")) == []
    assert _found(index, "refund override code", Audience(kind="agent")) == [("zd-42", "internal")]


def test_a_zendesk_article_for_staff_and_one_customer_segment_reaches_only_that_segment():
    body = "<p>Enterprise customers get refunds within 30 days.</p>"
    index, _ = _import("hc.json", _zendesk({"body": body, "user_segment_ids": [99, 7]}))
    assert _found(index, "enterprise refunds", Audience(kind="customer")) == []
    enterprise = Audience(kind="customer", segments=frozenset({"zendesk-7"}))
    assert _found(index, "enterprise refunds", enterprise) == [("zd-42", "segments")]


def test_a_zendesk_restriction_that_cannot_be_read_rejects_the_article():
    index, summary = _import("hc.json", _zendesk({"body": "<p>Codes.</p>", "user_segment_ids": "99"}))
    assert summary.added == 0
    assert [r.reason for r in summary.rejected] == ["user_segment_ids: not a list of segment ids"]
    assert _found(index, "codes", Audience(kind="agent")) == []


MARKDOWN = b"""---
title: Enterprise beta API
segments: [enterprise]
%s---
# Enterprise beta API

Enterprise customers enable the beta API with token BETA-ENT-2291.
"""


def test_segments_without_a_visibility_line_restrict_the_article_to_those_segments():
    index, summary = _import("enterprise-beta.md", MARKDOWN % b"")
    assert (summary.added, summary.rejected) == (1, [])
    assert _found(index, "enable the beta API", Audience(kind="customer")) == []
    enterprise = Audience(kind="customer", segments=frozenset({"enterprise"}))
    assert _found(index, "enable the beta API", enterprise) == [("enterprise-beta", "segments")]


def test_a_public_article_that_names_segments_is_refused_with_the_reason():
    index, summary = _import("enterprise-beta.md", MARKDOWN % b"visibility: public\n")
    assert summary.added == 0
    assert len(summary.rejected) == 1
    assert "segments are read only with visibility 'segments'" in summary.rejected[0].reason
    assert _found(index, "enable the beta API", Audience(kind="agent")) == []


@pytest.mark.parametrize("visibility", [b"visibility: internal\n", b"visibility: segments\n"])
def test_explicit_restricted_visibilities_with_segments_are_kept(visibility):
    index, summary = _import("enterprise-beta.md", MARKDOWN % visibility)
    assert summary.added == 1
    assert _found(index, "enable the beta API", Audience(kind="customer")) == []
