"""Ports: what services need from the outside world. Adapters implement them; services take them as arguments.

Sections are owned by capability; add a Protocol to your section rather than widening another's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from deflect.domain.models import AttachmentRead, AttachmentRef, EvidenceRef, Ticket
from deflect.domain.tenancy import TenantContext

# --------------------------------------------------------------------------- storage (foundation)


@dataclass
class Put:
    """One item write inside a transaction. `expect` chooses the guard."""

    pk: str
    sk: str
    data: Mapping[str, Any]
    expect: Literal["new", "version", "any"] = "any"
    expected_version: int | None = None
    indexes: Mapping[str, str] = field(default_factory=dict)
    ttl_epoch: int | None = None


@dataclass
class Delete:
    pk: str
    sk: str
    expected_version: int | None = None


@dataclass
class Item:
    pk: str
    sk: str
    data: dict[str, Any]
    version: int
    indexes: dict[str, str] = field(default_factory=dict)


class SupportStore(Protocol):
    """Tenant-scoped access to SupportTable. Every key passed must belong to `ctx.tenant_id`."""

    def get(self, ctx: TenantContext, pk: str, sk: str) -> Item | None: ...

    def query(
        self,
        ctx: TenantContext,
        pk: str,
        sk_prefix: str = "",
        *,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Item]: ...

    def query_index(
        self, ctx: TenantContext, index: str, pk: str, *, sk_prefix: str = "", limit: int | None = None
    ) -> list[Item]: ...

    def put(self, ctx: TenantContext, put: Put) -> None: ...

    def delete(self, ctx: TenantContext, delete: Delete) -> None: ...

    def transact(self, ctx: TenantContext, writes: Iterable[Put | Delete]) -> None:
        """All or nothing. A failed guard raises Conflict and writes nothing."""
        ...


@dataclass(frozen=True)
class KeyVersions:
    """What the vault holds under one key. Object Lock protects each version, but anyone who may put an object
    can add a newer one (or a delete marker) on top: only the version written first is the original."""

    version_ids: tuple[str | None, ...]  # object versions, oldest first
    delete_markers: int = 0

    @property
    def first(self) -> str | None:
        return self.version_ids[0] if self.version_ids else None


class EvidenceStore(Protocol):
    """Write-once, locked objects under `tenant=T/`."""

    def put_evidence(self, ctx: TenantContext, ticket_id: str, body: bytes, kind: str) -> EvidenceRef: ...

    def put_locked(self, ctx: TenantContext, key: str, body: bytes, kind: str) -> EvidenceRef: ...

    def read(self, ctx: TenantContext, ref: EvidenceRef) -> bytes: ...

    def read_latest(self, ctx: TenantContext, key: str) -> bytes | None: ...

    def versions(self, ctx: TenantContext, prefix: str) -> dict[str, KeyVersions]:
        """Every key under `prefix` with its versions (keys never written are absent)."""
        ...

    def read_version(self, ctx: TenantContext, key: str, version_id: str) -> bytes | None:
        """The bytes of one version of `key`, as written; None if there is no such version."""
        ...

    def presign(self, ctx: TenantContext, ref: EvidenceRef, expires_s: int = 300) -> str: ...


class SecretStore(Protocol):
    """Per-tenant, per-provider secrets. Returns the current secret first, then the previous during rotation."""

    def secrets(self, tenant_id: str, provider: str) -> list[str]: ...

    def put_secret(self, tenant_id: str, provider: str, value: str, *, keep_previous: bool = True) -> None: ...


class WorkQueue(Protocol):
    """`dedupe_id`: the same id sent again is one message (on a FIFO queue, within SQS's five-minute window).
    `group_id`: messages of one group (within the tenant) are delivered in order, one at a time (FIFO queues)."""

    def send(
        self,
        ctx: TenantContext,
        body: Mapping[str, Any],
        *,
        dedupe_id: str | None = None,
        group_id: str | None = None,
    ) -> str: ...


class Workflow(Protocol):
    def start(self, name: str, payload: Mapping[str, Any]) -> str: ...

    def send_task_success(self, token: str, output: Mapping[str, Any]) -> None: ...

    def send_task_failure(self, token: str, error: str, cause: str) -> None: ...


class TokenCipher(Protocol):
    """Encrypts task tokens at rest (KMS in production)."""

    def encrypt(self, tenant_id: str, plaintext: str) -> str: ...

    def decrypt(self, tenant_id: str, ciphertext: str) -> str: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


# --------------------------------------------------------------------------- knowledge (retrieval issue)


class KnowledgeIndex(Protocol):
    """Searchable chunks of the current article versions. Adapters add the tenant filter, the visibility filter
    and the exclusion of expired/superseded articles themselves: callers never pass them."""

    def replace_article(
        self,
        ctx: TenantContext,
        article_id: str,
        chunks: list[Any],
        *,
        version: int | None = None,
        updated_at: datetime | None = None,
    ) -> None:
        """Make `chunks` (deflect.knowledge.models.Chunk) the only indexed chunks of the article, unless the index
        already holds a newer version of it (or its deletion): two writers can flush out of order."""
        ...

    def remove_article(
        self,
        ctx: TenantContext,
        article_id: str,
        *,
        version: int | None = None,
        updated_at: datetime | None = None,
    ) -> None:
        """`version` is the deletion's own, so an older write still queued elsewhere loses to it."""
        ...

    def search(self, ctx: TenantContext, request: Any) -> list[Any]:
        """SearchRequest → ranked SearchHit list (deflect.knowledge.models), one per article, best first."""
        ...

    def sections(self, ctx: TenantContext, request: Any, articles: Sequence[tuple[str, int]]) -> list[Any]:
        """Every chunk of these (article id, version) pairs that `search(ctx, request)` could return (the same
        tenant, visibility, expiry and superseded filters), as SearchHits with score 0, in article then reading
        order: the other sections of articles a search found, for a composer to quote the one that answers."""
        ...

    def indexed_articles(self, ctx: TenantContext) -> dict[str, int]:
        """Every article of the caller's tenant the index holds chunks of, with the newest version it holds: what
        a reindex must re-chunk (or remove) after the chunking rules change."""
        ...

    def flush(self) -> None:
        """Make every change so far durable and visible to searches (a bulk import flushes once at the end)."""
        ...


class Embeddings(Protocol):
    """Text → unit-length vectors (rows in input order)."""

    dimensions: int

    def embed(self, texts: list[str]) -> Any: ...


# --------------------------------------------------------------------------- models (triage issue)

from collections.abc import Sequence  # noqa: E402 - kept in this section so sections stay independent
from typing import Generic, TypeVar  # noqa: E402

from deflect.domain.errors import DeflectError  # noqa: E402
from deflect.domain.models import Draft  # noqa: E402

ModelOutput = TypeVar("ModelOutput")


class ModelRejected(DeflectError):
    """The model refused, was stopped by a guardrail, or broke the output schema. Callers escalate; never guess."""

    code = "model_rejected"
    public_message = "the model gave no usable answer"


class ModelUnavailable(DeflectError):
    """Timed out, or still throttled after the bounded retries. Callers escalate with what they already know."""

    code = "model_unavailable"
    public_message = "the model is unavailable"


@dataclass(frozen=True)
class ModelUsage:
    """Token accounting for one or more model calls (what the tenant's budget is charged with)."""

    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0

    def __add__(self, other: ModelUsage) -> ModelUsage:
        return ModelUsage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens, self.calls + other.calls
        )


@dataclass(frozen=True)
class StructuredOutput(Generic[ModelOutput]):
    """A validated structured answer and how it was obtained (recorded with the decision as evidence)."""

    value: ModelOutput
    model_id: str
    prompt_sha256: str
    usage: ModelUsage
    stop_reason: str = "tool_use"
    attempts: int = 1


class LanguageModel(Protocol):
    """A generative model that answers in a schema (pydantic model) or raises ModelRejected / ModelUnavailable."""

    model_id: str

    def structured(
        self, *, system: str, prompt: str, output: type[ModelOutput], tool_name: str, tool_description: str
    ) -> StructuredOutput[ModelOutput]: ...


@dataclass(frozen=True)
class IntentPrediction:
    """The tenant taxonomy's best intent for one message. `out_of_scope` means none of its intents fits."""

    intent: str
    confidence: float
    out_of_scope: bool = False
    alternatives: tuple[tuple[str, float], ...] = ()
    model_id: str = ""
    taxonomy_version: int = 0
    # What the tenant's taxonomy says about the intent (absent when out of scope).
    product_area: str | None = None
    kind: str | None = None
    flags: tuple[str, ...] = ()
    action: str | None = None
    wants_human: bool = False
    # Probability mass on intents that always go to a human (flagged, action or wants-human intents).
    risk: float = 0.0
    # The language most of the head's examples are in (None: unknown): its risk says little about another.
    head_language: str | None = None


class IntentClassifier(Protocol):
    """Classifies a message into the tenant's own (trained, versioned) intent taxonomy."""

    def classify(self, ctx: TenantContext, text: str) -> IntentPrediction: ...


@dataclass(frozen=True)
class Composition:
    """A composer's answer (None when nothing grounds one), its token usage, and why there is no answer.

    `model_id` / `prompt_sha256`: the model the composer actually called for this tenant and the hash of the
    draft prompt, recorded as decision evidence even without a draft (None when no model was called). A
    composer's ModelRejected / ModelUnavailable carries the same two, and the usage of every call, in its context.
    """

    draft: Draft | None
    usage: ModelUsage = ModelUsage()
    problem: str | None = None
    model_id: str | None = None
    prompt_sha256: str | None = None


class AttachmentReader(Protocol):
    """The text of a small text attachment of a ticket (a log file, or the text files in a log archive) with how
    reading it went (read / failed with the reason / skipped): the text for diagnostics, never stored; the outcome
    is decision evidence. (A reader with only the older `read_text`, text or None, is still accepted.)"""

    def read_attachment(self, ctx: TenantContext, ticket: Ticket, attachment: AttachmentRef) -> AttachmentRead: ...


class AnswerComposer(Protocol):
    """Writes an answer only from the given passages (deflect.knowledge.models.SearchHit, governed by the
    index), every sentence citing article id + version; `draft.prompt_sha256` hashes the exact model input.
    Raises ModelRejected / ModelUnavailable when a model failed. Passage text is data, never instructions."""

    model_id: str

    def compose(self, ctx: TenantContext, question: str, passages: Sequence[Any]) -> Composition: ...


class DiagnosticTool(Protocol):
    """A read-only check an agent (or triage, when policy allows) may run for a ticket: its result is evidence."""

    name: str
    description: str

    def run(self, ctx: TenantContext, subject: Mapping[str, Any]) -> Mapping[str, Any]: ...


class TelemetrySource(Protocol):
    """The tenant's product telemetry, read-only (recent errors for an account, service status)."""

    def recent_errors(self, ctx: TenantContext, account_id: str, *, limit: int = 20) -> list[Mapping[str, Any]]: ...

    def service_status(self, ctx: TenantContext) -> Mapping[str, Any]: ...


# --------------------------------------------------------------------------- escalation (escalation issue)


class Notifier(Protocol):
    """Pushes an operational event (an SLA about to be missed, a task reassigned) to people (SNS in production)."""

    def notify(self, ctx: TenantContext, event: str, detail: Mapping[str, Any]) -> None: ...


# --------------------------------------------------------------------------- helpdesk (writeback issue)

from deflect.domain.models import OutboxItem  # noqa: E402 - kept in this section so sections stay independent
from deflect.helpdesk.models import HelpdeskReceipt  # noqa: E402


class HelpdeskConnector(Protocol):
    """Delivers one outbox item to one helpdesk/CRM. Raises HelpdeskConflict (a newer human edit exists),
    Throttled, TransientFailure or PermanentFailure (deflect.helpdesk.errors); returns the receipt otherwise."""

    def send(self, item: OutboxItem) -> HelpdeskReceipt: ...


class HelpdeskConnectors(Protocol):
    """Resolves the connector (and the tenant's credentials) for an outbox item."""

    def connector(self, tenant_id: str, item: OutboxItem) -> HelpdeskConnector: ...


@dataclass
class DeadLetter:
    handle: str
    body: dict[str, Any]


class DeadLetters(WorkQueue, Protocol):
    """Where outbox items go after their last attempt (SQS DLQ with an alarm on depth): sent like any work
    queue, and read back by the replay, which clears them."""

    def receive(self, max_messages: int = 10, wait_s: int = 0) -> list[DeadLetter]: ...

    def delete(self, handle: str) -> None: ...

    def release(self, handle: str) -> None:
        """Make a received message visible again (it belongs to another tenant or is kept)."""
        ...


# --------------------------------------------------------------------------- accountability (issue 8)


class CounterStore(Protocol):
    """Atomic per-item counters (usage metering, rate limits): ADD updates, never read-modify-write."""

    def add_counters(
        self, ctx: TenantContext, pk: str, sk: str, counters: dict[str, int], *, ttl_epoch: int | None = None
    ) -> dict[str, int]: ...

    def counters(
        self, ctx: TenantContext, pk: str, sk_from: str, sk_to: str
    ) -> list[tuple[str, dict[str, int]]]: ...


class DomainEventBus(Protocol):
    """Publishes versioned domain events for other systems (EventBridge in production)."""

    def publish(self, ctx: TenantContext, events: list[Any]) -> None: ...
