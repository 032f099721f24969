"""`make run` keeps the knowledge index on disk while moto, which holds the articles, starts empty: at start-up the
stack reindexes every tenant the index holds, so nothing the restarted stack no longer stores can be retrieved."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deflect.domain.tenancy import TenantContext
from deflect.knowledge.models import ArticleInput
from infra.local import knowledge_sync
from infra.local import stack as local_stack


class _FakeStack:
    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, line: str) -> None:
        self.notes.append(line)


def _admin(tenant_id: str) -> TenantContext:
    return TenantContext(tenant_id=tenant_id, actor="test", roles=frozenset({"admin"}), via="system")


def _article(title: str) -> ArticleInput:
    return ArticleInput(title=title, body=f"{title}: open Settings, then Sync, then choose Restart.")


@contextmanager
def _a_run(monkeypatch: Any, index_dir: Path) -> Iterator[Any]:
    """One run of the stack as far as knowledge goes: a fresh moto, the same index directory."""
    import boto3
    from moto import mock_aws

    from deflect import bootstrap
    from infra.local.resources import create_all

    with mock_aws():
        resources = create_all(boto3.session.Session(region_name="us-east-1"))
        for key, value in resources.environment().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("KNOWLEDGE_DATA_DIR", str(index_dir))
        bootstrap.reset()
        try:
            yield bootstrap.container()
        finally:
            bootstrap.reset()


def test_start_up_takes_out_what_the_restarted_store_no_longer_has_for_every_tenant(
    monkeypatch, tmp_path, capsys
):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with _a_run(monkeypatch, tmp_path / "knowledge") as first:
        for tenant_id, article_id in [("demo", "kept"), ("demo", "made-by-hand"), ("gone-co", "theirs")]:
            first.knowledge_ingestion.put(_admin(tenant_id), article_id, _article(f"Restart {article_id}"))

    with _a_run(monkeypatch, tmp_path / "knowledge") as restarted:
        # Start-up loads the demo help center again (here: one of its articles), then the hooks after it run.
        restarted.knowledge_ingestion.put(_admin("demo"), "kept", _article("Restart kept"))
        stack = _FakeStack()
        knowledge_sync.stack_hook(stack)

        index = restarted.knowledge_index
        assert set(index.indexed_articles(_admin("demo"))) == {"kept"}
        assert index.indexed_articles(_admin("gone-co")) == {}
        hits = restarted.knowledge_search.search(_admin("demo"), "Restart made-by-hand", k=5).hits
        assert "made-by-hand" not in {hit.article_id for hit in hits}

    logged = capsys.readouterr().err
    assert "removed demo/made-by-hand" in logged and "removed gone-co/theirs" in logged
    assert "removed demo/kept" not in logged
    assert len(stack.notes) == 1 and "2 article(s)" in stack.notes[0]
    assert "infra.local.knowledge_sync:stack_hook" in local_stack.STARTUP_HOOKS
    assert local_stack.STARTUP_HOOKS.index(
        "infra.local.knowledge_sync:stack_hook"
    ) > local_stack.STARTUP_HOOKS.index("infra.local.helpcenter:stack_hook")
