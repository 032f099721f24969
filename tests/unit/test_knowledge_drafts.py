"""Articles their source does not publish are never answered to customers. A draft (Markdown front matter or a
JSONL row saying `draft: true`, `published: false` or a status other than published; a Zendesk draft) is reported
and not imported; an article published earlier and now unpublished is deleted as a DELETE deletes it (a
tombstone version, the index told), and publishing it again imports it again. Edit times keep their meaning: an
older export saying "draft" does not remove a newer published edit, nor an older "published" undo a newer draft.
A field the importer does not know rejects the row instead of being dropped unseen."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from deflect.cli import build_parser
from deflect.domain.errors import NotFound
from deflect.domain.models import Citation, TenantConfig
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemoryEvidenceStore, MemorySupportStore
from deflect.embedded.search import EmbeddedKnowledgeIndex
from deflect.knowledge.articles import ArticleRepository
from deflect.knowledge.bulk_import import BulkImports, ImportObject
from deflect.knowledge.importers import read_object, read_path
from deflect.knowledge.ingestion import KnowledgeIngestion
from deflect.knowledge.models import Audience, Rejection
from deflect.knowledge.search import KnowledgeSearch
from deflect.repositories import TenantConfigs, save
from tests.knowledge_cases.fakes import HELP_CENTER, HashingEmbedder

ACME = TenantContext(tenant_id="acme", actor="s3-import:kb", roles=frozenset({"service"}), via="system")
GLOBEX = TenantContext(tenant_id="globex", actor="s3-import:kb", roles=frozenset({"service"}), via="system")
CUSTOMER = Audience(kind="customer")
AGENT = Audience(kind="agent")
PAUSE = "<p>To pause every beam at once, open Settings, choose Beams and click Pause all beams.</p>"
PAUSE_QUESTION = "How do I pause all beams at once?"


class World:
    def __init__(self) -> None:
        self.store = MemorySupportStore()
        self.evidence = MemoryEvidenceStore()
        self.index = EmbeddedKnowledgeIndex(None, HashingEmbedder())
        self.ingestion = KnowledgeIngestion(self.store, self.evidence, self.index)
        self.search = KnowledgeSearch(self.index, self.store)
        self.articles = ArticleRepository(self.store, self.evidence)
        for ctx in (ACME, GLOBEX):
            config = TenantConfig(tenant_id=ctx.tenant_id, display_name=ctx.tenant_id)
            save(self.store, ctx, [TenantConfigs(self.store).save_write(config)])

    def import_object(self, key: str, body: bytes, ctx: TenantContext = ACME):
        return self.ingestion.import_rows(ctx, read_object(key, body))

    def found(self, text: str, ctx: TenantContext = ACME, audience: Audience = CUSTOMER) -> list[str]:
        return [h.article_id for h in self.search.search(ctx, text, audience=audience, record_gap=False).hits]

    def report(self, summary) -> list[str]:
        return [f"{r.source}: {r.reason}" for r in summary.rejected]


@pytest.fixture
def world() -> World:
    return World()


def zendesk(*, draft: bool, updated_at: str, body: str = PAUSE, article_id: int = 9001) -> bytes:
    article = {
        "id": article_id,
        "title": "Pause all beams during maintenance",
        "body": body,
        "draft": draft,
        "section_id": 1,
        "locale": "en-us",
        "updated_at": updated_at,
    }
    return json.dumps({"articles": [article], "sections": [{"id": 1, "name": "Beams", "category_id": 2}],
                       "categories": [{"id": 2, "name": "Beams"}]}).encode()  # fmt: skip


def markdown(front: str, title: str = "Teleport a beam to another workspace") -> bytes:
    return (
        f"---\n{front}\ntitle: {title}\n---\n# {title}\n\n"
        "Open the beam, click More and choose Teleport to move it to another workspace.\n"
    ).encode()


# ------------------------------------------------------------------------------------------- never published
@pytest.mark.parametrize(
    ("front", "reason"),
    [
        ("draft: true", "draft article (draft: true)"),
        ("published: false", "unpublished article (published: false)"),
        ("status: draft", "draft article (status: draft)"),
        ("status: Archived", "archived article (status: archived)"),
        ('draft: "yes"', "draft article (draft: true)"),
    ],
)
def test_a_markdown_draft_is_reported_and_never_answered(world, front, reason):
    summary = world.import_object("tenant=acme/teleport.md", markdown(front))

    assert (summary.added, summary.updated, summary.unchanged) == (0, 0, 0)
    assert world.report(summary) == [f"tenant=acme/teleport.md: {reason}: not published"]
    assert "teleport" not in world.found("teleport a beam to another workspace", audience=AGENT)
    assert world.articles.head(ACME, "teleport") is None  # nothing stored, not even a locked body


def test_jsonl_rows_marked_unpublished_are_reported_one_by_one_and_published_rows_still_import(world):
    rows = [
        {"id": "warp", "title": "Warp speed sync", "body": "Turn on Warp speed sync in Settings.", "draft": True},
        {"id": "orbit", "title": "Orbit mode", "body": "Orbit mode runs beams in a loop.", "published": False},
        {"id": "nebula", "title": "Nebula export", "body": "Export beams to Nebula.", "status": "archived"},
        {"id": "invoices", "title": "Invoices", "body": "Download invoices from Billing.", "status": "published"},
        {"id": "refunds", "title": "Refunds", "body": "Refunds within 30 days.", "draft": False, "published": True},
    ]  # fmt: skip
    summary = world.import_object("tenant=acme/kb.jsonl", "\n".join(json.dumps(r) for r in rows).encode())

    assert summary.added == 2
    assert world.report(summary) == [
        "tenant=acme/kb.jsonl:1: draft article (draft: true): not published",
        "tenant=acme/kb.jsonl:2: unpublished article (published: false): not published",
        "tenant=acme/kb.jsonl:3: archived article (status: archived): not published",
    ]
    for question in ("warp speed sync", "orbit mode", "nebula export"):
        assert not {"warp", "orbit", "nebula"} & set(world.found(question, audience=AGENT))
    assert world.found("download invoices")[0] == "invoices"


def test_a_publication_flag_that_says_neither_yes_nor_no_is_rejected_not_guessed(world):
    summary = world.import_object("tenant=acme/teleport.md", markdown("draft: maybe"))

    assert world.report(summary) == ["tenant=acme/teleport.md: draft: expected true or false, got 'maybe'"]
    assert world.articles.head(ACME, "teleport") is None


def test_the_kb_import_command_says_which_files_are_drafts(world, tmp_path, capsys):
    (tmp_path / "teleport.md").write_bytes(markdown("draft: true"))
    (tmp_path / "invoices.md").write_bytes(markdown("id: invoices", title="Download invoices"))
    container = SimpleNamespace(knowledge_ingestion=world.ingestion, knowledge_search=world.search)
    args = build_parser().parse_args(["kb", "import", str(tmp_path), "--tenant", "acme"])
    args.container = container

    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("acme: 1 added, 0 updated, 0 unchanged, 1 rejected;")
    assert f"  rejected {tmp_path / 'teleport.md'}: draft article (draft: true): not published" in out


# ------------------------------------------------------------------------------------------- unpublished later
def test_an_article_unpublished_in_zendesk_leaves_the_answers_and_comes_back_when_published_again(world):
    world.import_object("tenant=acme/hc-1.json", zendesk(draft=False, updated_at="2025-01-01T00:00:00Z"))
    [cited] = [h for h in world.search.search(ACME, PAUSE_QUESTION, audience=CUSTOMER).hits if h.version == 1]
    assert cited.article_id == "zd-9001"

    summary = world.import_object(
        "tenant=acme/hc-2.json", zendesk(draft=True, updated_at="2025-02-01T00:00:00Z")
    )

    assert world.report(summary) == [
        "tenant=acme/hc-2.json#articles[1]: draft article: not published; article 'zd-9001' was published, "
        "so it was deleted (version 2) and no longer answers customers"
    ]
    assert "zd-9001" not in world.found(PAUSE_QUESTION)
    assert "zd-9001" not in world.found(PAUSE_QUESTION, audience=AGENT)
    with pytest.raises(NotFound):
        world.articles.read(ACME, "zd-9001")  # nothing current to quote
    # Deleted the way a DELETE deletes: a tombstone version, saying who, the index told (HEAD says indexed).
    tombstone = world.articles.versions(ACME, "zd-9001")[-1]
    assert (tombstone.article_version, tombstone.deleted, tombstone.updated_by) == (2, True, "s3-import:kb")
    head = world.articles.head(ACME, "zd-9001")
    assert (head.deleted, head.current_version, head.indexed_version) == (True, 2, 2)
    # A reply that already cited version 1 still resolves to the text it quoted.
    quote = "click Pause all beams"
    assert world.articles.resolve(ACME, Citation(article_id="zd-9001", version=1, quote=quote)).version == 1

    again = world.import_object(
        "tenant=acme/hc-2.json", zendesk(draft=True, updated_at="2025-02-01T00:00:00Z")
    )
    assert world.report(again) == ["tenant=acme/hc-2.json#articles[1]: draft article: not published"]
    assert len(world.articles.versions(ACME, "zd-9001")) == 2  # S3 delivering it again changes nothing

    back = world.import_object(
        "tenant=acme/hc-3.json", zendesk(draft=False, updated_at="2025-03-01T00:00:00Z")
    )

    assert (back.added, back.rejected) == (1, [])
    assert world.found(PAUSE_QUESTION)[0] == "zd-9001"
    assert world.articles.read(ACME, "zd-9001").version == 3


def test_a_markdown_article_set_to_draft_leaves_the_answers(world):
    world.import_object("tenant=acme/teleport.md", markdown("id: teleport"))
    assert world.found("teleport a beam to another workspace") == ["teleport"]

    summary = world.import_object("tenant=acme/teleport.md", markdown("id: teleport\nstatus: draft"))

    assert "was published, so it was deleted (version 2)" in world.report(summary)[0]
    assert "teleport" not in world.found("teleport a beam to another workspace", audience=AGENT)


# ------------------------------------------------------------------------------------------- out of order
def test_an_older_export_saying_draft_does_not_remove_a_newer_published_edit(world):
    newer = zendesk(
        draft=False, updated_at="2025-03-01T00:00:00Z", body=PAUSE.replace("Pause all", "Pause every")
    )
    world.import_object("tenant=acme/hc-03.json", newer)

    late = world.import_object(
        "tenant=acme/hc-02.json", zendesk(draft=True, updated_at="2025-02-01T00:00:00Z")
    )

    [line] = world.report(late)
    assert line.startswith(
        "tenant=acme/hc-02.json#articles[1]: draft article: skipped: the source unpublished"
    )
    assert "2025-02-01T00:00:00" in line and "later edit of 2025-03-01T00:00:00" in line
    assert world.found(PAUSE_QUESTION)[0] == "zd-9001"
    assert world.articles.head(ACME, "zd-9001").current_version == 1


def test_an_older_export_saying_published_does_not_bring_back_an_unpublished_article(world):
    world.import_object("tenant=acme/hc-01.json", zendesk(draft=False, updated_at="2025-01-01T00:00:00Z"))
    world.import_object("tenant=acme/hc-02.json", zendesk(draft=True, updated_at="2025-02-01T00:00:00Z"))

    late = world.import_object(
        "tenant=acme/hc-01.json", zendesk(draft=False, updated_at="2025-01-01T00:00:00Z")
    )

    assert late.added == 0 and "later edit of 2025-02-01T00:00:00" in world.report(late)[0]
    assert "zd-9001" not in world.found(PAUSE_QUESTION, audience=AGENT)


def test_a_draft_seen_first_keeps_an_older_published_export_processed_late_out(world):
    world.import_object("tenant=acme/hc-02.json", zendesk(draft=True, updated_at="2025-02-01T00:00:00Z"))

    late = world.import_object(
        "tenant=acme/hc-01.json", zendesk(draft=False, updated_at="2025-01-01T00:00:00Z")
    )

    assert late.added == 0 and "later edit of 2025-02-01T00:00:00" in world.report(late)[0]
    assert "zd-9001" not in world.found(PAUSE_QUESTION, audience=AGENT)
    newer = world.import_object(
        "tenant=acme/hc-03.json", zendesk(draft=False, updated_at="2025-03-01T00:00:00Z")
    )
    assert newer.added == 1 and world.found(PAUSE_QUESTION)[0] == "zd-9001"


def test_an_object_naming_an_article_as_draft_and_as_published_imports_the_first_row_only(world):
    jsonl = (
        b'{"id":"warp","title":"Warp speed sync","body":"Turn on Warp speed sync.","draft":true}\n'
        b'{"id":"warp","title":"Warp speed sync","body":"Turn on Warp speed sync."}\n'
    )

    summary = world.import_object("tenant=acme/kb.jsonl", jsonl)

    assert summary.added == 0
    assert world.report(summary) == [
        "tenant=acme/kb.jsonl:1: draft article (draft: true): not published",
        "tenant=acme/kb.jsonl:2: article id 'warp' repeats tenant=acme/kb.jsonl:1: "
        "only the first row of an article is imported",
    ]
    assert "warp" not in world.found("warp speed sync", audience=AGENT)


# ------------------------------------------------------------------------------------------- tenants
def test_a_draft_in_one_tenants_bulk_import_leaves_other_tenants_articles_alone(world):
    for ctx in (ACME, GLOBEX):
        world.import_object("hc.json", zendesk(draft=False, updated_at="2025-01-01T00:00:00Z"), ctx)
    draft = zendesk(draft=True, updated_at="2025-02-01T00:00:00Z")
    imports = BulkImports(world.ingestion, lambda bucket, key, etag: (draft, '"etag-1"'))

    report = imports.run(ImportObject(bucket="kb", key="tenant=acme/hc-2.json", size=len(draft)))

    assert report.tenant_id == "acme" and "so it was deleted (version 2)" in report.summary.rejected[0].reason
    assert "zd-9001" not in world.found(PAUSE_QUESTION, ACME)
    assert world.found(PAUSE_QUESTION, GLOBEX)[0] == "zd-9001"
    assert world.articles.head(GLOBEX, "zd-9001").current_version == 1


# ------------------------------------------------------------------------------------------- unknown fields
def test_a_misspelt_field_rejects_the_row_instead_of_publishing_it_without_that_field(world):
    summary = world.import_object(
        "tenant=acme/staff-override.md", markdown("visiblity: internal", title="Staff override codes")
    )

    assert world.report(summary) == [
        "tenant=acme/staff-override.md: unknown field 'visiblity' (did you mean 'visibility'?): not imported, "
        "since what it says would be lost; rename or remove it"
    ]
    assert "staff-override" not in world.found("staff override codes", audience=AGENT)
    assert world.articles.head(ACME, "staff-override") is None


def test_site_generator_front_matter_is_ignored_and_the_demo_help_center_imports_whole(world):
    summary = world.import_object(
        "tenant=acme/teleport.md",
        markdown("slug: teleport\ndate: 2025-01-01\ndescription: Move a beam\nweight: 3"),
    )
    demo = world.ingestion.import_rows(ACME, read_path(HELP_CENTER))

    assert (summary.added, summary.rejected) == (1, [])
    assert demo.rejected == [] and demo.added >= 25
    assert not any(isinstance(r, Rejection) for r in read_path(HELP_CENTER))
