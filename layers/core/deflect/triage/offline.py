"""A throwaway tenant for evaluations, replays and benchmarks: in-memory table and evidence, the embedded search
index loaded with a knowledge base, and the embedded models — wired into the same TriageEngine (and, with
`service()`, the same TriageService) production uses.

Dev/local only (numpy, onnxruntime, tantivy): import lazily.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deflect.domain.models import DecisionPolicy, TenantConfig
from deflect.domain.tenancy import TenantContext

DEMO_HELP_CENTER = Path(__file__).resolve().parents[4] / "infra" / "local" / "demo" / "helpcenter"


def knowledge_rows(path: Path) -> Iterator[Any]:
    """Help center files (Markdown folder, Zendesk export, article JSONL) or a BEIR corpus.jsonl {id,title,text}."""
    from deflect.knowledge.importers import read_path

    if path.is_file() and path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as handle:
            first = next((json.loads(line) for line in handle if line.strip()), {})
        if "text" in first and "body" not in first:
            from deflect.cli.eval_retrieval import corpus_rows

            yield from corpus_rows(path, {})
            return
    yield from read_path(path)


@dataclass
class OfflineTenant:
    ctx: TenantContext
    config: TenantConfig
    store: Any
    evidence: Any
    index: Any
    search: Any
    models: Any
    engine: Any
    articles: int

    def service(self, handoffs: Any = None) -> Any:
        from deflect.services.audit import AuditLog
        from deflect.triage.service import Handoffs, TriageService

        return TriageService(
            self.store,
            self.evidence,
            AuditLog(self.store, self.evidence),
            self.engine,
            handoffs or Handoffs(writeback_queue=None, start_escalation=None),
        )


def build(
    *,
    knowledge: Path | None = None,
    model_data_dir: str | Path,
    taxonomy: Any = None,
    policy: DecisionPolicy | None = None,
    config: TenantConfig | None = None,
    tenant_id: str | None = None,
    embedder: Any = None,
    gate_seed: int | None = None,
) -> OfflineTenant:
    """A tenant with `knowledge` (default: the demo help center) and `taxonomy` (default: the starter one).
    `gate_seed` trains the taxonomy afresh with that seed for the out-of-scope gate's folds (the cached starter
    head uses seed 0), to see how much a result owes to the folds."""
    from deflect.embedded.memory_store import MemoryEvidenceStore, MemorySupportStore
    from deflect.embedded.model import EmbeddedModels, train_taxonomy
    from deflect.embedded.search import EmbeddedKnowledgeIndex
    from deflect.knowledge.ingestion import KnowledgeIngestion
    from deflect.knowledge.search import KnowledgeSearch
    from deflect.repositories import TenantConfigs, save
    from deflect.triage.classification import Classifier
    from deflect.triage.engine import TriageEngine

    tenant_id = tenant_id or f"eval-{secrets.token_hex(4)}"
    ctx = TenantContext(
        tenant_id=tenant_id, actor="cli:triage", roles=frozenset({"admin", "service"}), via="cli"
    )
    store, evidence = MemorySupportStore(), MemoryEvidenceStore()
    models = EmbeddedModels(model_data_dir, embedder=embedder)
    # The index shares the models' embedding cache: a question is embedded once for intent, search and answer.
    index = EmbeddedKnowledgeIndex(None, embedder=models.embeddings)
    summary = KnowledgeIngestion(store, evidence, index).import_rows(
        ctx, knowledge_rows(knowledge or DEMO_HELP_CENTER)
    )
    config = (config or TenantConfig(tenant_id=tenant_id, display_name="Offline tenant")).model_copy(
        update={"tenant_id": tenant_id}
    )
    if policy is not None:
        config = config.model_copy(update={"policy": policy})
    save(store, ctx, [TenantConfigs(store).save_write(config)])
    if taxonomy is None and gate_seed is not None:
        from deflect.triage.intents import starter_taxonomy

        taxonomy = starter_taxonomy()
    if taxonomy is not None:
        head = train_taxonomy(
            models.embeddings,
            taxonomy,
            tenant_id=tenant_id,
            version=1,
            trained_by="cli",
            seed=gate_seed or 0,
        )
        models.store = _MemoryHeads(head)
    search = KnowledgeSearch(index, store)
    engine = TriageEngine(Classifier(models.classifier()), search, models.composer())
    return OfflineTenant(ctx, config, store, evidence, index, search, models, engine, summary.added)


class _MemoryHeads:
    """One head kept in memory (evaluations must not write into MODEL_DATA_DIR's tenant folders)."""

    def __init__(self, head: Any) -> None:
        self.head = head

    def save(self, head: Any) -> None:
        self.head = head

    def activate(self, tenant_id: str, version: int) -> None:
        return None

    def current_version(self, tenant_id: str) -> int | None:
        return self.head.version if tenant_id == self.head.tenant_id else None

    def load(self, tenant_id: str, version: int) -> Any:
        return self.head if tenant_id == self.head.tenant_id and version == self.head.version else None

    def versions(self, tenant_id: str) -> list[int]:
        return [self.head.version] if tenant_id == self.head.tenant_id else []
