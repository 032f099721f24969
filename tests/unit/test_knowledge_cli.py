"""`deflect kb import` and `deflect eval retrieval` as an operator runs them."""

from __future__ import annotations

import json
from types import SimpleNamespace

from deflect.cli import build_parser
from deflect.domain.models import TenantConfig
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemoryEvidenceStore, MemorySupportStore
from deflect.embedded.search import EmbeddedKnowledgeIndex
from deflect.knowledge.ingestion import KnowledgeIngestion
from deflect.knowledge.search import KnowledgeSearch
from deflect.repositories import TenantConfigs, save
from tests.knowledge_cases.fakes import HashingEmbedder


def local_container(tenants=("acme",)):
    store, index = MemorySupportStore(), EmbeddedKnowledgeIndex(None, HashingEmbedder())
    for tenant_id in tenants:
        ctx = TenantContext.system(tenant_id, actor="test")
        save(
            store,
            ctx,
            [TenantConfigs(store).save_write(TenantConfig(tenant_id=tenant_id, display_name=tenant_id))],
        )
    return SimpleNamespace(
        knowledge_ingestion=KnowledgeIngestion(store, MemoryEvidenceStore(), index),
        knowledge_search=KnowledgeSearch(index, store),
    )


def run(argv, **injected):
    args = build_parser().parse_args(argv)
    for name, value in injected.items():
        setattr(args, name, value)
    return args.func(args)


def test_kb_import_shows_progress_and_a_summary_with_rejections(tmp_path, capsys):
    (tmp_path / "reset.md").write_text(
        "---\ntitle: Reset your password\n---\n# Reset\n\nClick Forgot password."
    )
    (tmp_path / "more.jsonl").write_text(
        json.dumps({"id": "invoices", "title": "Invoices", "body": "Download invoices."}) + "\n{broken\n"
    )
    container = local_container()

    first = run(["kb", "import", str(tmp_path), "--tenant", "acme"], container=container)
    out, err = capsys.readouterr()
    again = run(["kb", "import", str(tmp_path), "--tenant", "acme"], container=container)
    out_again, _ = capsys.readouterr()

    assert first == 0 and again == 0
    assert "3/3" in err and "[" + "#" * 30 + "]" in err  # the bar reaches the end
    assert out.splitlines()[0].startswith("acme: 2 added, 0 updated, 0 unchanged, 1 rejected;")
    assert "rejected " in out and "more.jsonl:2: not JSON" in out
    assert out_again.startswith("acme: 0 added, 0 updated, 2 unchanged, 1 rejected;")


def test_kb_import_refuses_a_tenant_that_does_not_exist(tmp_path, capsys):
    (tmp_path / "reset.md").write_text(
        "---\ntitle: Reset your password\n---\n# Reset\n\nClick Forgot password."
    )
    container = local_container()

    code = run(["kb", "import", str(tmp_path), "--tenant", "acmee"], container=container)

    assert code == 2
    assert "unknown tenant 'acmee'" in capsys.readouterr().err
    found = container.knowledge_search.search(TenantContext.system("acmee"), "reset password")
    assert found.hits == []


def test_kb_search_prints_ranked_articles_and_the_gap_verdict(capsys):
    container = local_container()
    from deflect.domain.tenancy import TenantContext
    from deflect.knowledge.models import ArticleInput

    container.knowledge_ingestion.put(
        TenantContext.system("acme"),
        "invoices",
        ArticleInput(title="Invoices", body="Download PDF invoices."),
    )
    run(["kb", "search", "download invoices", "--tenant", "acme"], container=container)
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[2:4] == ["invoices", "v1"]
    assert "answer threshold 0.55" in out


def test_eval_retrieval_prints_the_metrics_as_its_last_line(tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "\n".join(
            json.dumps(d)
            for d in [
                {"id": "d1", "title": "Reset a password", "text": "Use the forgot password link."},
                {"id": "d/2", "title": "Download invoices", "text": "Invoices are PDFs in billing settings."},
                {"id": "d3", "title": "Delete the workspace", "text": "Owners can delete a workspace."},
            ]
        )
    )
    (tmp_path / "queries.jsonl").write_text(
        "\n".join(
            json.dumps(q)
            for q in [{"id": "q1", "text": "forgot my password"}, {"id": "q2", "text": "pdf invoices"}]
        )
    )
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td/2\t1\n")

    code = run(
        ["eval", "retrieval", "--corpus", str(corpus), "--queries", str(tmp_path / "queries.jsonl"),
         "--qrels", str(tmp_path / "qrels.tsv"), "--k", "10"],
        index=EmbeddedKnowledgeIndex(None, HashingEmbedder()),
    )  # fmt: skip
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    assert code == 0
    assert set(last) == {"ndcg@10", "recall@10", "mrr@10", "queries", "docs", "index_s", "p50_ms", "p95_ms"}
    assert (last["queries"], last["docs"]) == (2, 3)
    assert last["ndcg@10"] == last["mrr@10"] == last["recall@10"] == 1.0


def test_the_local_stack_hook_loads_the_demo_help_center_and_says_how_to_search_it(monkeypatch):
    from deflect import bootstrap
    from infra.local import helpcenter

    container = local_container()
    monkeypatch.setattr(bootstrap, "container", lambda: container)
    stack = SimpleNamespace(notes=[], base_url="http://127.0.0.1:3000")
    stack.note = stack.notes.append

    helpcenter.stack_hook(stack)
    again = helpcenter.load(container)

    assert stack.notes[0].startswith("Help center ") and "for tenant demo" in stack.notes[0]
    assert "/v1/knowledge/search?q=SB-1042" in stack.notes[1]
    assert again.added == 0 and again.unchanged >= 25
