"""Start-up hook of the local stack: bring the kept knowledge index back in line with the restarted store.

The embedded index is kept on disk (KNOWLEDGE_DATA_DIR, `<data dir>/knowledge/`) while moto, which holds the
articles it was built from, starts empty on every `make run`. Without this, triage retrieved (and could cite)
articles the stack no longer knows. Runs after the demo help center is loaded, for every tenant the index holds:
the same `KnowledgeIngestion.reindex` as `deflect --local kb reindex --tenant T`, which takes out every article
the store no longer has and re-chunks the others from their stored versions (reusing their vectors).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ACTOR = "local:reindex"


def indexed_tenants(knowledge_dir: Path) -> list[str]:
    """Tenants with chunks in the embedded index's committed state (`chunks.jsonl`, one chunk per line)."""
    chunks = knowledge_dir / "chunks.jsonl"
    if not (knowledge_dir / "state.json").exists() or not chunks.exists():
        return []
    found: set[str] = set()
    with chunks.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                found.add(str(json.loads(line)["tenant_id"]))
    return sorted(found)


def reindex_all(container: Any) -> dict[str, Any]:
    """Reindex every tenant the index holds; the summaries by tenant. Logs each article taken out."""
    from deflect.domain.tenancy import TenantContext

    summaries: dict[str, Any] = {}
    for tenant_id in indexed_tenants(Path(container.settings.knowledge_data_dir)):
        ctx = TenantContext(tenant_id=tenant_id, actor=ACTOR, roles=frozenset({"admin"}), via="system")
        summary = container.knowledge_ingestion.reindex(ctx)
        summaries[tenant_id] = summary
        for article_id in summary.removed:
            reason = summary.refused.get(article_id, "the restarted stack no longer stores it")
            print(
                f"[stack] knowledge index: removed {tenant_id}/{article_id} ({reason})",
                file=sys.stderr,
                flush=True,
            )
    return summaries


def stack_hook(stack: Any) -> None:
    from deflect.bootstrap import container

    found = container()
    if found.settings.knowledge_backend != "embedded":
        return
    summaries = reindex_all(found)
    removed = [f"{tenant}/{article}" for tenant, summary in summaries.items() for article in summary.removed]
    if removed:
        shown = ", ".join(removed[:5]) + (f" and {len(removed) - 5} more" if len(removed) > 5 else "")
        stack.note(
            f"Knowledge      kept index reindexed against the restarted store: {len(removed)} article(s) it no "
            f"longer has taken out ({shown})"
        )
