"""Start-up hook of the local stack: load the project's demo help center into the demo tenant's knowledge.

The articles (infra/local/demo/helpcenter/*.md, a fictional SaaS called Syncbeam) go through the same ingestion
service as `PUT /v1/knowledge/articles/{id}`. The embedded index lives under KNOWLEDGE_DATA_DIR, so on the next
`make run` unchanged sections reuse their stored vectors and start-up stays quick.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

HELP_CENTER = Path(__file__).parent / "demo" / "helpcenter"
DEMO_TENANT = "demo"


def load(container: Any, tenant_id: str = DEMO_TENANT) -> Any:
    from deflect.domain.tenancy import TenantContext
    from deflect.knowledge.importers import read_path

    ctx = TenantContext(
        tenant_id=tenant_id, actor="local:helpcenter", roles=frozenset({"admin"}), via="system"
    )
    return container.knowledge_ingestion.import_rows(ctx, read_path(HELP_CENTER))


def stack_hook(stack: Any) -> None:
    from deflect.bootstrap import container

    summary = load(container())
    total = summary.added + summary.updated + summary.unchanged
    stack.note(
        f"Help center    {total} demo articles ({summary.chunks} chunks) for tenant {DEMO_TENANT} "
        f"from infra/local/demo/helpcenter in {summary.seconds:.1f}s"
        + (f"; {len(summary.rejected)} rejected" if summary.rejected else "")
    )
    stack.note(
        f'               curl -H "Authorization: Bearer $TOKEN" "{stack.base_url}/v1/knowledge/search?q=SB-1042"'
    )
