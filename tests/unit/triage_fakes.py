"""Fakes for triage tests: a bag-of-words embedder, a keyword knowledge search, a rule intent classifier, and a
tenant with a ticket and a message in the in-memory store. No sockets, no model files."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deflect.domain.models import (
    Customer,
    DecisionPolicy,
    DiagnosticsChecklist,
    Message,
    TenantConfig,
    Ticket,
)
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemoryEvidenceStore, MemorySupportStore
from deflect.knowledge.models import SearchHit
from deflect.knowledge.search import SearchResults
from deflect.ports import IntentPrediction, Put
from deflect.repositories import Customers, TenantConfigs, Tickets, save
from deflect.services.audit import AuditLog
from deflect.triage.classification import Classifier
from deflect.triage.engine import TriageEngine
from deflect.triage.service import Handoffs, TriageService

WORD = re.compile(r"[a-z0-9]+")


class Store(MemorySupportStore):
    """The in-memory table, reading back like DynamoSupportStore: records without a `version` field (messages,
    decisions) do not get one added (the memory store adds it to every item, which Message rejects)."""

    def transact(self, ctx: TenantContext, writes: Iterable[Any]) -> None:
        writes = list(writes)
        super().transact(ctx, writes)
        with self._lock:
            for write in writes:
                if isinstance(write, Put) and "version" not in write.data:
                    item = self._items.get((write.pk, write.sk))
                    if item is not None:
                        item.data.pop("version", None)


class BagOfWords:
    """Deterministic unit vectors from hashed words: similar wording → similar vectors."""

    model_id = "bag-of-words-test"
    dimensions = 512

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in WORD.findall(text.lower()):
                out[row, zlib.crc32(word.encode()) % self.dimensions] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.clip(norms, 1e-9, None)


@dataclass
class Article:
    article_id: str
    title: str
    text: str
    keywords: tuple[str, ...]
    version: int = 1
    score: float = 0.9
    product_area: str = "general"


class KeywordSearch:
    """KnowledgeSearch stand-in: an article is a hit when the question contains one of its keywords."""

    def __init__(self, articles: Iterable[Article]) -> None:
        self.articles = list(articles)
        self.queries: list[str] = []
        self.unanswered: list[str] = []

    def search(
        self,
        ctx: TenantContext,
        text: str,
        *,
        k: int = 5,
        audience: Any = None,
        record_gap: bool = True,
        **_: Any,
    ) -> SearchResults:
        self.queries.append(text)
        lowered = text.lower()
        hits = [
            SearchHit(
                article_id=a.article_id,
                version=a.version,
                chunk_id=f"{a.article_id}:v{a.version}:0",
                title=a.title,
                text=a.text,
                start=0,
                end=len(a.text),
                score=a.score,
                product_area=a.product_area,
            )
            for a in self.articles
            if any(word in lowered for word in a.keywords)
        ][:k]
        return SearchResults(hits=hits, best_score=hits[0].score if hits else 0.0)

    def record_unanswered(self, ctx: TenantContext, text: str, results: SearchResults, audience: Any = None) -> bool:
        self.unanswered.append(text)
        return True


@dataclass
class RuleIntents:
    """IntentClassifier stand-in: the first rule whose keyword is in the text decides."""

    rules: list[tuple[str, IntentPrediction]] = field(default_factory=list)
    default: IntentPrediction = field(
        default_factory=lambda: IntentPrediction(
            intent="how_to", confidence=0.9, kind="question", product_area="general"
        )
    )

    def classify(self, ctx: TenantContext, text: str) -> IntentPrediction:
        lowered = text.lower()
        return next((p for keyword, p in self.rules if keyword in lowered), self.default)


SSO_ARTICLE = Article(
    "sec-sso",
    "Set up single sign-on",
    "# Set up single sign-on\n\n## Set up SSO for your team\n\n1. To set up SSO, open Settings → Security → Single sign-on.\n"
    "2. Upload your identity provider metadata XML and click Test sign-in.\n"
    "3. Turn on Require SSO for your team after a successful test.\n",
    ("sso", "single sign-on"),
)
EXPORT_ARTICLE = Article(
    "gs-export",
    "Export a report",
    "# Export a report\n\nOpen Reports and click Export CSV to download the report as a CSV file.\n"
    "Exports include every column visible in the report.\n",
    ("export",),
)
RENEWAL_ARTICLE = Article(
    "bill-renewal",
    "Automatic renewal",
    "# Automatic renewal\n\nPlans renew automatically at the end of each billing period. "
    "Turn off auto-renew under Settings → Billing.\n",
    ("renew",),
)
RENEWAL_QUOTE = "Plans renew automatically at the end of each billing period."
REFUND_ARTICLE = Article(
    "bill-refunds",
    "Refund policy",
    "# Refund policy\n\nAnnual plans can be refunded within 30 days. Billing support handles every refund request.\n",
    ("refund",),
)


@dataclass
class World:
    ctx: TenantContext
    store: Store
    evidence: MemoryEvidenceStore
    audit: AuditLog
    search: KeywordSearch
    intents: RuleIntents
    service: TriageService
    started: list[tuple[Any, Any, list[Any]]]
    sent: list[dict[str, Any]]

    def ticket(
        self,
        ticket_id: str,
        text: str,
        *,
        customer_id: str | None = "cust-1",
        message_id: str | None = None,
        sla_tier: str = "standard",
        account_id: str | None = None,
    ) -> str:
        """Store a ticket (if new) and a customer message on it; returns the message id."""
        tickets = Tickets(self.store)
        existing = tickets.get(self.ctx, ticket_id)
        message_id = message_id or f"msg-{len(tickets.messages(self.ctx, ticket_id)) + 1}-{ticket_id}"
        writes = []
        if existing is None:
            ticket = Ticket(
                tenant_id=self.ctx.tenant_id,
                ticket_id=ticket_id,
                provider="zendesk",
                external_id=ticket_id.split("-")[-1],
                customer_id=customer_id,
                account_id=account_id,
                sla_tier=sla_tier,
            )
            writes.append(tickets.save_write(ticket))
        writes.append(
            Tickets.message_write(
                Message(
                    tenant_id=self.ctx.tenant_id,
                    ticket_id=ticket_id,
                    message_id=message_id,
                    body_redacted=text,
                )
            )
        )
        save(self.store, self.ctx, writes)
        return message_id

    def triage(self, ticket_id: str, text: str, **kw: Any) -> Any:
        message_id = self.ticket(ticket_id, text, **kw)
        return self.service.triage(self.ctx, ticket_id, message_id)

    def escalation_steps(self) -> Any:
        """The escalation workflow's steps on this world's store, with a recording writeback queue (no SFN)."""
        from deflect.escalation.records import EscalationPorts
        from deflect.escalation.steps import EscalationSteps

        return EscalationSteps(
            EscalationPorts(
                store=self.store,
                evidence=self.evidence,
                audit=self.audit,
                workflow=None,
                cipher=None,
                notifier=None,
                writeback=RecordingQueue(),
            )
        )


class RecordingQueue:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(
        self,
        ctx: TenantContext,
        body: dict[str, Any],
        *,
        dedupe_id: str | None = None,
        group_id: str | None = None,
    ) -> str:
        self.sent.append({"tenant_id": ctx.tenant_id, **body})
        return f"m-{len(self.sent)}"


def make_world(
    *,
    articles: Iterable[Article] = (SSO_ARTICLE, EXPORT_ARTICLE, REFUND_ARTICLE),
    policy: DecisionPolicy | None = None,
    diagnostics: list[DiagnosticsChecklist] | None = None,
    rules: list[tuple[str, IntentPrediction]] | None = None,
    tenant_id: str = "acme",
) -> World:
    from deflect.embedded.model import ExtractiveComposer

    ctx = TenantContext.system(tenant_id, actor="triage")
    store, evidence = Store(), MemoryEvidenceStore()
    audit = AuditLog(store, evidence)
    config = TenantConfig(
        tenant_id=tenant_id,
        display_name="Acme",
        policy=policy or DecisionPolicy(rollout_default="auto"),
        diagnostics=diagnostics or [],
    )
    save(store, ctx, [TenantConfigs(store).save_write(config)])
    save(
        store,
        ctx,
        Customers(store).save_writes(
            Customer(tenant_id=tenant_id, customer_id="cust-1", email="c@example.com")
        ),
    )
    search = KeywordSearch(articles)
    intents = RuleIntents(rules=rules or [])
    engine = TriageEngine(
        Classifier(intents),
        search,
        ExtractiveComposer(BagOfWords(), full_support=0.5, min_unit_similarity=0.1),
    )
    started: list[tuple[Any, Any, list[Any]]] = []
    queue = RecordingQueue()

    def start(decision: Any, ticket: Any, refs: list[Any]) -> str:
        started.append((decision, ticket, refs))
        return f"esc-{decision.decision_id}"

    service = TriageService(store, evidence, audit, engine, Handoffs(queue, start))
    return World(ctx, store, evidence, audit, search, intents, service, started, queue.sent)


def bedrock_writing(sentence: str, quote: str | None = None, *, answers: int = 1) -> Any:
    """A Bedrock answer composer whose Converse calls (botocore Stubber, at the boundary) answer `answers` questions
    with `sentence`, quoting `quote` (default: the sentence itself) from the first passage, and a self-check that
    calls it supported: a grounded draft by the model's own checks."""
    import boto3
    from botocore.config import Config
    from botocore.stub import Stubber

    from deflect.adapters.bedrock_model import BedrockAnswerComposer, BedrockLanguageModel

    bedrock = boto3.session.Session(region_name="us-east-1").client(
        "bedrock-runtime",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    answer = {
        "answerable": True,
        "sentences": [{"text": sentence, "passage": "P1", "quote": quote or sentence}],
    }
    check = {"verdicts": [{"index": 0, "supported": True}]}

    def tool(name: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "output": {
                "message": {
                    "role": "assistant",
                    "content": [{"toolUse": {"toolUseId": "tu-1", "name": name, "input": payload}}],
                }
            },
            "stopReason": "tool_use",
            "usage": {"inputTokens": 100, "outputTokens": 20, "totalTokens": 120},
            "metrics": {"latencyMs": 200},
        }

    stub = Stubber(bedrock)
    for _ in range(answers):
        stub.add_response("converse", tool("grounded_answer", answer))
        stub.add_response("converse", tool("support_check", check))
    stub.activate()
    return BedrockAnswerComposer(BedrockLanguageModel(bedrock, "us.anthropic.claude-haiku-4-5-20251001-v1:0"))
