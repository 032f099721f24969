"""Intake: accept every genuine helpdesk delivery exactly once, reject everything else, lose nothing.

Webhook flow (`Intake.receive_webhook`):
    size check (413) → tenant + secrets lookup and HMAC work, always both (401 / 404 look and cost the same)
    → from here the verified sender is told why it was refused (`detail`), see deflect.http.explain_to_caller
    → JSON decode (400, raw body quarantined as evidence; the 400 names its quarantine key) → delivery id
    → DeliveryGuard: Powertools idempotency keyed by tenant + provider + delivery id, body fingerprint validated
      (a repeat returns the first response; the same id with another body → 409)
    → parse (400 + quarantine on a shape mismatch; 202 "ignored" for events we do not act on)
    → `accept()`.

`accept()` is shared with the conversation API and is safe to re-run after a crash at any point:
- evidence is content-addressed (a repeat write is a no-op);
- unknown requesters become customers with an id derived from their identity (a repeat finds the same one);
- the message id is derived from the provider's message id (or the delivery id), and a DELIVERY# receipt item is
  written in the SAME transaction as the ticket, the message, the customer → ticket link erasure reads and the audit
  index — so a message is stored once, and its ticket is always found when its customer is erased;
- a message known by its delivery id, which travels in a header the signature does not cover, also gets a SIGNED#
  receipt in that transaction, keyed by its body and the timestamp its signature covers (Zendesk, generic): a
  captured delivery sent again with only a new delivery id finds it and stores nothing, while the same text sent
  again later (signed at another time) is a new message;
- the triage job is sent after that transaction, carrying the message id as its dedupe id, and the receipt is then
  marked `queued`. A retry that finds the receipt unqueued sends again: the job may be delivered twice, never
  lost; consumers dedupe on `dedupe_id` (triage is idempotent per message id).

Nothing here logs a message body, a header value or a secret.
"""

from __future__ import annotations

import base64
import contextvars
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from deflect.domain import keys
from deflect.domain.canonical import canonical_json, sha256_hex
from deflect.domain.errors import (
    Conflict,
    InvalidTenant,
    MalformedPayload,
    NotFound,
    PayloadTooLarge,
    SignatureInvalid,
    TenantNotFound,
    Throttled,
    TransientFailure,
    Unauthorized,
)
from deflect.domain.models import (
    EMAIL_VOUCHING_PROVIDERS,
    Customer,
    Decision,
    EvidenceRef,
    Message,
    Record,
    TenantConfig,
    Ticket,
    utcnow,
)
from deflect.domain.tenancy import TenantContext, validate_tenant_id
from deflect.http import authenticated_caller, explain_to_caller
from deflect.insight.privacy import link_ticket
from deflect.observability import logger
from deflect.pii import redact, redact_value
from deflect.ports import EvidenceStore, Put, SecretStore, SupportStore, WorkQueue
from deflect.repositories import Accounts, Customers, Outbox, TenantConfigs, Tickets, save
from deflect.services.audit import AuditLog
from deflect.services.conversation_answers import SentReply, agent_reply, sent_replies
from deflect.webhooks import (
    Ignored,
    InboundMessage,
    ProviderSpec,
    Requester,
    VerifyOptions,
    decode_json,
    lower_headers,
    parse_payload,
    provider,
    verify,
)
from deflect.webhooks.common import body_fingerprint, bounded_text
from deflect.webhooks.signatures import DEFAULT_FRESHDESK_HEADER, signed_timestamp

R = TypeVar("R", bound=Record)
API_PROVIDER = "api"
API_KEY_PREFIX = "dfk"
REOPENING_STATUSES = {"awaiting_customer", "deflected", "resolved", "closed"}
_SECRET_HEADER_WORDS = ("authorization", "cookie", "secret", "token", "api-key", "apikey", "password")
_MAX_WRITE_ATTEMPTS = 6
# A ticket item (400 KB limit in DynamoDB) keeps the custom fields of all its messages merged: bounded, the newest
# message's values first, so that a later message with other field names is stored instead of refused (413).
MAX_TICKET_FIELDS = 100
MAX_TICKET_FIELD_BYTES = 256 * 1024
# Where a ticket's partition records a signed body it accepted (see `signed_receipt_sk`), and for how long: a
# captured body can be sent again only while its signature's timestamp is fresh (300 s); a day leaves ample margin.
SIGNED_PREFIX = "SIGNED#"
SIGNED_RECEIPT_TTL_S = 24 * 3600
# A conversation's `answer.delivered` events: the channel they name, and the create-once item of each (per decision).
ANSWER_CHANNEL = "conversation_api"
ANSWERED_PREFIX = "ANSWERED#"


# --------------------------------------------------------------------------- errors with one public face


class WebhookRejected(SignatureInvalid):
    """401 — bad or missing signature. Same public body as UnknownWebhookTenant on purpose."""

    code = "webhook_rejected"
    public_message = "webhook rejected"


class UnknownWebhookTenant(TenantNotFound):
    """404 — no such tenant (or provider not enabled). Body identical to WebhookRejected."""

    code = "webhook_rejected"
    public_message = "webhook rejected"


class IdempotencyKeyReused(Conflict):
    """409 — the Idempotency-Key was already used for another request (another message, requester or
    conversation), whether that request was a minute or months ago. Nothing of this request is stored."""

    code = "idempotency_key_reused"
    public_message = (
        "this Idempotency-Key was already used for a different request; "
        "use a new key for every new message and repeat a key only to retry the same request"
    )


# --------------------------------------------------------------------------- ports specific to intake


class DeliveryGuard(Protocol):
    """Run `work` once per key; a repeat returns the first result; a repeat with another fingerprint → Conflict."""

    def once(self, key: str, fingerprint: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]: ...


SyncTriage = Callable[[TenantContext, str, str], Mapping[str, Any] | None]
"""The seam to triage (another capability): `triage(ctx, ticket_id, message_id) -> result` for the conversation
API's synchronous answer. It must be idempotent per message id: a queued job for the same message may still run.
When it is absent, conversations answer 202 and the triage worker picks the job from the queue."""

Metric = Callable[[str, float], None]


def load_sync_triage(container: Any) -> SyncTriage | None:
    """Find the triage capability's synchronous entry point, if this build has it.

    Contract for deflect.services.triage: `sync_triage(container) -> Callable[[ctx, ticket_id, message_id],
    Mapping]`, idempotent per message id. Until it exists, conversations answer 202 and the queue carries the job.
    """
    import importlib

    try:
        module = importlib.import_module("deflect.services.triage")
    except ModuleNotFoundError as missing:
        if missing.name == "deflect.services.triage":
            return None
        raise
    factory = getattr(module, "sync_triage", None)
    return factory(container) if callable(factory) else None


class PowertoolsDeliveryGuard:
    """DeliveryGuard on Powertools idempotency (DynamoDB persistence layer built by the composition root)."""

    def __init__(
        self,
        persistence_layer: Any,
        *,
        expires_after_s: int = 7 * 24 * 3600,
        in_progress_wait_s: float = 3.0,
        lambda_context: Any = None,
    ) -> None:
        from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

        self._config = IdempotencyConfig(
            event_key_jmespath="key",
            payload_validation_jmespath="fingerprint",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=expires_after_s,
        )
        self._wait_s = in_progress_wait_s

        @idempotent_function(
            data_keyword_argument="delivery",
            persistence_store=persistence_layer,
            config=self._config,
            key_prefix="deflect-intake",
        )
        def _run(delivery: dict[str, str], work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
            return work()

        self._run = _run
        if lambda_context is not None:
            self.register_lambda_context(lambda_context)

    def register_lambda_context(self, context: Any) -> None:
        # With the context known, an in-progress record expires with the invocation, so a crash only delays a
        # provider's retry until the function's timeout instead of the record's full lifetime.
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            self._config.register_lambda_context(context)

    def once(self, key: str, fingerprint: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        from aws_lambda_powertools.utilities.idempotency import exceptions as idem

        deadline = time.monotonic() + self._wait_s
        pause = 0.02
        while True:
            try:
                return self._run(delivery={"key": key, "fingerprint": fingerprint}, work=work)
            except idem.IdempotencyValidationError as error:
                raise Conflict(
                    "this delivery id was already received with a different body: a retry must resend the same "
                    "bytes, and a new event needs a new delivery id"
                ) from error
            except idem.IdempotencyAlreadyInProgressError as error:
                # A concurrent duplicate is being processed: wait for its result rather than fail the sender.
                if time.monotonic() >= deadline:
                    raise Throttled("delivery is being processed", retry_after_s=2) from error
                time.sleep(pause)
                pause = min(pause * 2, 0.25)
            except (idem.IdempotencyPersistenceLayerError, idem.IdempotencyInconsistentStateError) as error:
                raise TransientFailure("delivery dedupe store unavailable") from error


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Reply:
    status_code: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"status_code": self.status_code, "body": self.body, "headers": self.headers}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reply:
        return cls(int(data["status_code"]), dict(data["body"]), dict(data.get("headers") or {}))


@dataclass(frozen=True)
class Accepted:
    ticket_id: str
    message_id: str
    customer_id: str | None
    new_message: bool
    queued: bool


# --------------------------------------------------------------------------- id rules


def conversation_status(outcome: str | None, visible_reply: bool, mode: str | None) -> str:
    """What a conversation's caller can tell its user, in one word (the same after POST and on GET):
    `answered` (a reply to show), `awaiting_customer` (a request for details to show), `escalated` (a person takes
    it), `with_agent` (decided, but in shadow or assist mode the reply comes from the support team)."""
    if outcome == "escalate" and mode != "shadow":  # shadow starts no escalation: the team answers as before
        return "escalated"
    if visible_reply:
        return "answered" if outcome == "deflect" else "awaiting_customer"
    return "with_agent"


def _digest_id(prefix: str, *parts: str) -> str:
    return prefix + sha256_hex("\x1f".join(parts).encode())[:32]


def ticket_id_for(provider_name: str, external_ticket_id: str) -> str:
    return (
        external_ticket_id
        if provider_name == API_PROVIDER
        else _digest_id("tkt_", provider_name, external_ticket_id)
    )


def message_id_for(message: InboundMessage, delivery_id: str, body_sha256: str | None = None) -> str:
    """The provider's message id when it sent one, else the delivery's: a customer who writes the same text again
    ("yes", "it still fails") wrote a new message. `body_sha256` only from a sender whose signature covers no
    timestamp (Intercom, Jira, Freshdesk): its message without an id is known by its ticket and body. Where the
    signature has a timestamp (Zendesk, generic), a captured body sent again under a new delivery id is caught by its
    signed receipt instead (`signed_receipt_sk`). The conversation API (no body) keeps its Idempotency-Key."""
    if message.external_message_id:
        return _digest_id("msg_", message.provider, message.external_ticket_id, message.external_message_id)
    if body_sha256 is not None:
        return _digest_id("msg_", message.provider, message.external_ticket_id, "body", body_sha256)
    return _digest_id("msg_", message.provider, "delivery", delivery_id)


def signed_receipt_sk(body_sha256: str, signed_at: str) -> str:
    """The ticket's record of a body as signed at one moment. A delivery id is an unsigned header (Zendesk's
    invocation id, X-Deflect-Delivery): changing it on a captured delivery cannot change this key, while a helpdesk
    retry signed again keeps its delivery id, and the same text sent again later is signed at another time."""
    return SIGNED_PREFIX + _digest_id("", body_sha256, signed_at)


def quarantine_chain(key: str) -> str:
    """The audit chain of one quarantined body (its quarantine key): the body may name no ticket, and refusals of
    different deliveries never contend for one chain's next entry. Ticket ids (`tkt_`, `cnv_`) and the admin chains
    (`tenant-config`, `customer-<id>`, `knowledge-<id>`) never take this form; `deflect audit verify --tenant`
    finds it like every chain."""
    return _digest_id("quarantine-", key)


class QuarantineVault(Protocol):
    def put_held(
        self, ctx: TenantContext, key: str, holder_id: str, body: bytes, kind: str, *, expires_epoch: int
    ) -> EvidenceRef: ...

    def read_held(self, ctx: TenantContext, key: str) -> bytes | None: ...


def quarantine_holder(now: datetime, days: int) -> tuple[str, int]:
    """The holding key for bodies quarantined this month, and when it shreds itself (month end + `days`)."""
    month_end = (now.replace(day=28) + timedelta(days=4)).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    return f"hold_quarantine_{now:%Y-%m}", int((month_end + timedelta(days=days)).timestamp())


def customer_id_for(kind: str, value: str) -> str:
    if kind == "email":
        # The same id earlier releases made for an ASCII address (only its A-Z fold, see Customers.identity_value).
        return _digest_id("cus_", kind, Customers.identity_value(kind, value))
    # An external id keeps its case; "exact" keeps these ids apart from those earlier releases made lower-cased.
    return _digest_id("cus_", kind, "exact", Customers.identity_value(kind, value))


def new_conversation_id() -> str:
    """Random: nothing a client sends (an Idempotency-Key) or knows leads to another conversation's id."""
    import secrets

    return f"cnv_{secrets.token_hex(16)}"


def conversation_key_pk(tenant_id: str, idempotency_key: str) -> str:
    """Where a conversation start records the id its Idempotency-Key got (the key hashed: it is the client's text)."""
    return f"{keys.tenant_pk(tenant_id)}#CONVKEY#{sha256_hex(idempotency_key.encode())}"


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key(tenant_id: str) -> str:
    import secrets

    return f"{API_KEY_PREFIX}_{validate_tenant_id(tenant_id)}_{secrets.token_urlsafe(32)}"


def public_headers(headers: Mapping[str, str], extra_secret: str | None = None) -> dict[str, str]:
    """Headers worth keeping as evidence: everything but credentials (signatures stay: they prove origin)."""
    secret_name = (extra_secret or "").lower()
    return {
        k: v
        for k, v in lower_headers(headers).items()
        if k != secret_name and not any(word in k for word in _SECRET_HEADER_WORDS)
    }


def _records(model: type[R], items: list[Any]) -> list[R]:
    # The store stamps `version` on every item; unversioned records (messages, decisions) do not declare it.
    return [model.model_validate({k: v for k, v in i.data.items() if k in model.model_fields}) for i in items]


def _preferred(matches: list[Customer]) -> Customer | None:
    """A CRM-verified match beats one intake created from an earlier message of the same person."""
    return next((c for c in matches if c.verified), next(iter(matches), None))


def _field_bytes(name: str, value: Any) -> int:
    # As stored: UTF-8, numbers read back from DynamoDB as Decimal.
    return len(json.dumps([name, value], ensure_ascii=False, default=str).encode())


def merged_custom_fields(
    newest: Mapping[str, Any], older: Mapping[str, Any]
) -> tuple[dict[str, Any], int]:
    """A ticket's custom fields after a message: the message's values first, then the ticket's older fields while
    they fit (MAX_TICKET_FIELDS, MAX_TICKET_FIELD_BYTES). Returns the fields and how many were dropped."""
    kept: dict[str, Any] = {}
    size = dropped = 0
    for name, value in [*newest.items(), *((n, v) for n, v in older.items() if n not in newest)]:
        cost = _field_bytes(name, value)
        if len(kept) >= MAX_TICKET_FIELDS or size + cost > MAX_TICKET_FIELD_BYTES:
            dropped += 1
            continue
        kept[name] = value
        size += cost
    return kept, dropped


def _held(error: MalformedPayload, ctx: TenantContext, ref: EvidenceRef) -> MalformedPayload:
    """A verified sender's unparseable body: the 400 names where it is kept and how to run it again after a fix
    (the key is all `deflect tenant replay` needs; it holds the body's hash, never its text)."""
    return explain_to_caller(
        error,
        quarantine_key=ref.key,
        replay=f"deflect tenant replay --tenant {ctx.tenant_id} --key {ref.key}",
    )


# --------------------------------------------------------------------------- the use case


class Intake:
    def __init__(
        self,
        store: SupportStore,
        evidence: EvidenceStore,
        secrets: SecretStore,
        queue: WorkQueue,
        audit: AuditLog,
        guard: DeliveryGuard,
        *,
        max_body_bytes: int = 256 * 1024,
        tolerance_s: int = 300,
        conversation_budget_ms: int = 2500,
        triage: SyncTriage | None = None,
        metric: Metric | None = None,
        clock: Callable[[], float] = time.time,
        usage_guard: Callable[[TenantContext], None] | None = None,
        seal_for_customer: Callable[[TenantContext, str, str, bytes, str], EvidenceRef] | None = None,
        quarantine_vault: QuarantineVault | None = None,
        quarantine_days: int = 30,
    ) -> None:
        # Unparseable bodies name no customer, so erasure could never find them: sealed with a monthly holding
        # key that expires `quarantine_days` after the month ends (replay works until then).
        self.quarantine_vault = quarantine_vault
        self.quarantine_days = quarantine_days
        # Raw requests hold personal data: sealed with the customer's data key, erasure can shred them later.
        self.seal_for_customer = seal_for_customer
        # Budget and rate limit per tenant (429 + Retry-After): checked after the caller is authenticated and
        # before any work, so a refused delivery stores nothing and the helpdesk simply retries later.
        self.usage_guard = usage_guard or (lambda ctx: None)
        self.store = store
        self.evidence = evidence
        self.secrets = secrets
        self.queue = queue
        self.audit = audit
        self.guard = guard
        self.max_body_bytes = max_body_bytes
        self.tolerance_s = tolerance_s
        self.conversation_budget_ms = conversation_budget_ms
        self.triage = triage
        self.metric = metric or (lambda _name, _value: None)
        self.clock = clock
        self.tenants = TenantConfigs(store)
        self.customers = Customers(store)
        self.accounts = Accounts(store)
        self.tickets = Tickets(store)

    # ------------------------------------------------------------------ webhooks

    def receive_webhook(
        self, provider_name: str, tenant_id: str, headers: Mapping[str, str], body: bytes
    ) -> Reply:
        spec = provider(provider_name)  # unknown provider → 404 before any work
        if len(body) > self.max_body_bytes:
            self.metric("WebhookTooLarge", 1)
            raise PayloadTooLarge(f"body over {self.max_body_bytes} bytes")
        headers = lower_headers(headers)
        ctx, config = self._verify_webhook(provider_name, tenant_id, headers, body)
        # From here the sender proved it holds the tenant's secret (the helpdesk its admin configured): a refusal
        # tells it why, and where its quarantined body is kept. Before this, 401 and 404 say nothing more.
        with authenticated_caller():
            return self._receive_verified(spec, ctx, config, provider_name, headers, body)

    def _receive_verified(
        self,
        spec: ProviderSpec,
        ctx: TenantContext,
        config: TenantConfig,
        provider_name: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> Reply:
        self.usage_guard(ctx)
        reason = "undecodable_body"  # which step refused it, for the audit record
        try:
            payload = decode_json(body)
            reason = "no_delivery_id"
            delivery_id = spec.delivery_id(headers, payload, body)
        except MalformedPayload as error:
            _held(error, ctx, self._quarantine(ctx, config, provider_name, headers, body, error.detail, reason))
            raise
        return self._deliver(ctx, config, provider_name, headers, body, payload, delivery_id)

    def _deliver(
        self,
        ctx: TenantContext,
        config: TenantConfig,
        provider_name: str,
        headers: Mapping[str, str],
        body: bytes,
        payload: Mapping[str, Any],
        delivery_id: str,
        *,
        replayed_from: str | None = None,
    ) -> Reply:
        """A verified delivery (fresh or replayed from the quarantine key `replayed_from`), once per delivery id:
        parse, then accept. A replayed body that is still refused is not quarantined again: it is already kept, at
        the key the operator replayed."""
        replay = replayed_from is not None
        key = f"{ctx.tenant_id}#{provider_name}#{delivery_id}"

        def work() -> dict[str, Any]:
            try:
                parsed = parse_payload(provider_name, ctx.tenant_id, payload)
            except MalformedPayload as error:
                if not replay:
                    ref = self._quarantine(
                        ctx, config, provider_name, headers, body, error.detail, "unexpected_shape", delivery_id
                    )
                    _held(error, ctx, ref)
                raise
            parsed = self._from_requester(ctx, config, parsed)
            if isinstance(parsed, Ignored):
                self.metric("WebhookIgnored", 1)
                return Reply(202, parsed.model_dump(mode="json")).as_dict()
            request = {
                "provider": provider_name,
                "delivery_id": delivery_id,
                "headers": public_headers(headers, config.freshdesk_secret_header),
                "body": body.decode("utf-8"),
            }
            # Who replayed a quarantined body, and which: on the record, told apart from the helpdesk's deliveries.
            replayed = {"replayed_by": ctx.actor, "quarantine_key": replayed_from} if replay else None
            accepted = self.accept(
                ctx,
                config,
                parsed,
                delivery_id,
                request,
                body_sha256=sha256_hex(body),
                signed_at=signed_timestamp(provider_name, headers),
                replayed=replayed,
            )
            return Reply(
                200,
                {"status": "accepted", "ticket_id": accepted.ticket_id, "message_id": accepted.message_id},
            ).as_dict()

        reply = Reply.from_dict(self.guard.once(key, sha256_hex(body), work))
        logger().info(
            "webhook handled",
            extra={
                "provider": provider_name,
                "delivery_id": delivery_id,
                "status": reply.status_code,
                "replay": replay,
            },
        )
        return reply

    def _verify_webhook(
        self, provider_name: str, tenant_id: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[TenantContext, TenantConfig]:
        """The same lookups and HMAC work whether or not the tenant exists, so the answer leaks nothing."""
        try:
            valid_id = validate_tenant_id(tenant_id)
        except InvalidTenant:
            valid_id = None
        config: TenantConfig | None = None
        secrets: list[str] = []
        if valid_id:
            ctx = TenantContext(tenant_id=valid_id, actor=f"webhook:{provider_name}", via="webhook")
            config = self.tenants.find(ctx)
            secrets = self.secrets.secrets(valid_id, provider_name)
        enabled = bool(config and config.status == "active" and provider_name in config.providers)
        options = VerifyOptions(
            tolerance_s=self.tolerance_s,
            now=self.clock(),
            freshdesk_header=(config.freshdesk_secret_header if config else DEFAULT_FRESHDESK_HEADER),
        )
        try:
            verify(provider_name, headers, body, secrets if enabled else [], options)
            verified = True
        except SignatureInvalid:
            verified = False
        if not enabled or config is None:
            self.metric("WebhookUnknownTenant", 1)
            raise UnknownWebhookTenant("unknown tenant or provider not enabled")
        if not verified:
            self.metric("WebhookSignatureRejected", 1)
            raise WebhookRejected("signature, secret or timestamp rejected")
        return TenantContext(
            tenant_id=config.tenant_id, actor=f"webhook:{provider_name}", via="webhook"
        ), config

    def _quarantine(
        self,
        ctx: TenantContext,
        config: TenantConfig,
        provider_name: str,
        headers: Mapping[str, str],
        body: bytes,
        reason: str,
        reason_code: str,
        delivery_id: str | None = None,
    ) -> EvidenceRef:
        """Keep a verified-but-unparseable body so it can be replayed after a parser fix, and put the refusal on the
        tenant's audit record (the body's own chain, `quarantine_chain`). The event names the key, never the body or
        the refusal's text; `reason_code` says which step refused it."""
        record = {
            "provider": provider_name,
            "reason": reason,
            "received_at": utcnow().isoformat(),
            "headers": public_headers(headers, config.freshdesk_secret_header),
            "body_b64": base64.b64encode(body).decode(),
        }
        key = f"{keys.s3_prefix(ctx.tenant_id)}quarantine/{provider_name}/{sha256_hex(body)}.json"
        if self.quarantine_vault is None:
            ref = self.evidence.put_locked(ctx, key, canonical_json(record), "quarantine")
        else:
            holder, expires = quarantine_holder(utcnow(), self.quarantine_days)
            ref = self.quarantine_vault.put_held(
                ctx, key, holder, canonical_json(record), "quarantine", expires_epoch=expires
            )
        self.audit.append(
            ctx,
            quarantine_chain(ref.key),
            "message.quarantined",
            {
                "provider": provider_name,
                "reason": reason_code,
                "quarantine_key": ref.key,
                # Unsigned (a header) for most providers: what the sender presented, to match its own logs.
                "delivery_id": delivery_id,
            },
        )
        self.metric("WebhookQuarantined", 1)
        logger().warning("webhook quarantined", extra={"provider": provider_name, "evidence_key": ref.key})
        return ref

    def replay_quarantined(self, ctx: TenantContext, key: str, delivery_id: str | None = None) -> Reply:
        """Re-run a quarantined delivery (its signature was verified when it arrived) through today's parser, as a
        fresh delivery of the same bytes. Its delivery id: `delivery_id` if the operator gives one (the helpdesk's,
        so that its own retry is the same delivery), else the provider's; a body that came without one gets one
        derived from its bytes, so replaying it again is the same delivery, never a second message. The quarantined
        object is only read, whatever happens."""
        if delivery_id is not None:
            delivery_id = delivery_id.strip()
            if not 0 < len(delivery_id) <= 200:
                raise MalformedPayload("--delivery-id must be 1..200 characters")
        if self.quarantine_vault is None:
            raw = self.evidence.read_latest(ctx, key)
        else:
            raw = self.quarantine_vault.read_held(ctx, key)  # Gone (410) once the holding key has expired
        if raw is None:
            raise NotFound("no quarantined delivery at that key")
        record = json.loads(raw)
        provider_name, body = record["provider"], base64.b64decode(record["body_b64"])
        headers = lower_headers(record.get("headers") or {})
        config = self.tenants.get(ctx)
        self.usage_guard(ctx)
        payload = decode_json(body)
        if delivery_id is None:
            try:
                delivery_id = provider(provider_name).delivery_id(headers, payload, body)
            except MalformedPayload:
                # Quarantined for want of a delivery id (X-Deflect-Delivery): the same bytes are the same delivery.
                delivery_id = body_fingerprint(body)
        return self._deliver(ctx, config, provider_name, headers, body, payload, delivery_id, replayed_from=key)

    def _from_requester(
        self, ctx: TenantContext, config: TenantConfig, parsed: InboundMessage | Ignored
    ) -> InboundMessage | Ignored:
        """A message the payload could not attribute is acted on only when its author is the ticket's requester
        (an employee in an internal service desk); anyone else's is an agent's."""
        if isinstance(parsed, Ignored) or not parsed.requester_only:
            return parsed
        ticket = self.tickets.get(ctx, ticket_id_for(parsed.provider, parsed.external_ticket_id))
        named, _ = self._named_customers(ctx, parsed.provider, parsed.requester, config)
        authors = {c.customer_id for c in named}
        if ticket is not None and ticket.customer_id in authors:
            return parsed
        return Ignored(provider=parsed.provider, event=parsed.event, reason="comment written by an agent")

    # ------------------------------------------------------------------ the shared acceptance path

    def accept(
        self,
        ctx: TenantContext,
        config: TenantConfig,
        message: InboundMessage,
        delivery_id: str,
        request: Mapping[str, Any],
        *,
        fingerprint: str | None = None,
        body_sha256: str | None = None,
        signed_at: str | None = None,
        replayed: Mapping[str, Any] | None = None,
    ) -> Accepted:
        """`fingerprint` (conversation API): what the caller sent, kept on the receipt so that a later request with
        the same Idempotency-Key tells a retry (same fingerprint) from another request (refused, 409).
        `body_sha256` (webhooks): the received body's digest; `signed_at`: the timestamp its verified signature
        covers, if the scheme has one. A message without an id of its own sent again with the same body and signed
        timestamp is the message it was the first time, whatever its delivery id (`signed_receipt_sk`).
        `replayed`: who replayed it from which quarantine key, added to `message.received`."""
        ticket_id = ticket_id_for(message.provider, message.external_ticket_id)
        message_id = message_id_for(message, delivery_id, None if signed_at else body_sha256)
        signed_sk = (
            signed_receipt_sk(body_sha256, signed_at)
            if body_sha256 and signed_at and not message.external_message_id
            else None
        )
        customer = self.resolve_customer(ctx, message.provider, message.requester, config)
        raw = canonical_json(dict(request))
        if self.seal_for_customer is not None and customer is not None:
            ref = self.seal_for_customer(ctx, ticket_id, customer.customer_id, raw, "inbound_request")
        else:
            ref = self.evidence.put_evidence(ctx, ticket_id, raw, "inbound_request")
        receipt, new_message = self._store_message(
            ctx, config, message, ticket_id, message_id, delivery_id, customer, ref, fingerprint, replayed, signed_sk
        )
        message_id = str(receipt["message_id"])  # the first delivery's, when this is that body sent again
        queued = bool(receipt.get("queued"))
        if not queued:
            self.queue.send(
                ctx,
                {
                    "kind": "triage",
                    "ticket_id": ticket_id,
                    "message_id": message_id,
                    "provider": message.provider,
                    "dedupe_id": message_id,
                },
                dedupe_id=message_id,
            )
            self.store.put(
                ctx,
                Put(
                    pk=keys.ticket_pk(ctx.tenant_id, ticket_id),
                    sk=f"DELIVERY#{message_id}",
                    data={**receipt, "queued": True},
                    expect="any",
                ),
            )
            queued = True
        if new_message:
            self.metric("MessagesAccepted", 1)
        return Accepted(
            ticket_id, message_id, customer.customer_id if customer else None, new_message, queued
        )

    def resolve_customer(
        self, ctx: TenantContext, provider_name: str, requester: Requester, config: TenantConfig | None = None
    ) -> Customer | None:
        """Requester → customer within the tenant (GSI2 by external id, then email); unknown → unverified.
        `config`: the tenant's, for the helpdesks whose requester emails it trusts (none without it)."""
        matches, passed_over = self._named_customers(ctx, provider_name, requester, config)
        known = _preferred(matches)
        if passed_over and (known is None or not known.verified):
            # Tenants whose CRM knows customers by email only lost their plan, SLA and routing on upgrade (emails
            # stopped being trusted by default): say so, without the email, so they can opt their helpdesk in.
            logger().warning(
                "unvouched requester email matches a CRM-verified customer; not matched",
                extra={
                    "tenant_id": ctx.tenant_id,
                    "provider": provider_name,
                    "customer_id": passed_over[0].customer_id,
                    "setting": "email_vouching_providers",
                },
            )
            self.metric("UnvouchedEmailOfVerifiedCustomer", 1)
        if known is not None:
            return known
        identities = requester.identities(provider_name)
        if not identities:
            return None
        email = next((value for kind, value in identities if kind == "email"), None)
        customer = Customer(
            tenant_id=ctx.tenant_id,
            customer_id=customer_id_for(*identities[0]),
            email=Customers.identity_value("email", email) if email else None,
            external_ids={provider_name: requester.external_id} if requester.external_id else {},
            name=requester.name,
            verified=False,
        )
        try:
            save(self.store, ctx, self.customers.save_writes(customer))
        except Conflict:
            # Another delivery created the same requester a moment ago: use theirs.
            existing = self.customers.get(ctx, customer.customer_id)
            if existing is None:
                raise
            return existing
        return customer

    def known_customer(
        self, ctx: TenantContext, provider_name: str, requester: Requester, config: TenantConfig | None = None
    ) -> Customer | None:
        """The customer the requester already is, if any (nothing is created). A CRM-verified match beats one intake
        created from an earlier message of the same person."""
        return _preferred(self._named_customers(ctx, provider_name, requester, config)[0])

    def _named_customers(
        self, ctx: TenantContext, provider_name: str, requester: Requester, config: TenantConfig | None = None
    ) -> tuple[list[Customer], list[Customer]]:
        """The customers the requester's identities name, and the CRM-verified ones its email would have named had
        it been vouched for. An external id (the helpdesk's or CRM's user id) names whoever holds it. An email names
        a CRM-verified customer only when vouched for: an Intercom lead or a web-form requester typed it, and may
        have typed someone else's. The conversation API's caller is the tenant's own backend (it holds the API key)
        and vouches for the requesters it sends; a tenant vouches for the helpdesks it lists (TenantConfig)."""
        trusted = config.email_vouching_providers if config is not None else ()
        # EMAIL_VOUCHING_PROVIDERS: never an Intercom lead, however a config came to list Intercom.
        vouched = (
            requester.email_verified
            or provider_name == API_PROVIDER
            or (
                provider_name in trusted
                and provider_name in EMAIL_VOUCHING_PROVIDERS
                and not requester.email_unverified
            )
        )
        found: list[Customer] = []
        passed_over: list[Customer] = []
        for kind, value in requester.identities(provider_name):
            if kind == "email" and not vouched:
                # Only claimed: it may name the unverified customer intake made for it, never a verified one.
                holders = self.customers.holders(ctx, kind, value)
                found += [c for c in holders if not c.verified][:1]
                passed_over += [c for c in holders if c.verified]
            elif (customer := self.customers.find_by_requester(ctx, kind, value)) is not None:
                found.append(customer)
        return found, passed_over

    def _store_message(
        self,
        ctx: TenantContext,
        config: TenantConfig,
        inbound: InboundMessage,
        ticket_id: str,
        message_id: str,
        delivery_id: str,
        customer: Customer | None,
        ref: EvidenceRef,
        fingerprint: str | None = None,
        replayed: Mapping[str, Any] | None = None,
        signed_sk: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Ticket + message + receipt (+ signed receipt) + customer → ticket link + audit index in one transaction;
        re-read and retry on a race."""
        pk = keys.ticket_pk(ctx.tenant_id, ticket_id)
        account = self.accounts.get(ctx, customer.account_id) if customer and customer.account_id else None
        for _ in range(_MAX_WRITE_ATTEMPTS):
            existing = self.tickets.get(ctx, ticket_id)
            # A receipt can only exist on an existing ticket: new tickets skip that read.
            found = self.store.get(ctx, pk, f"DELIVERY#{message_id}") if existing is not None else None
            if found is not None:
                if fingerprint is not None and found.data.get("request", fingerprint) != fingerprint:
                    raise IdempotencyKeyReused("the key's message came from another request")
                return found.data, False
            if existing is not None and signed_sk is not None:
                first = self._signed_before(ctx, pk, signed_sk, delivery_id)
                if first is not None:
                    return first, False
            if existing is not None and inbound.provider == API_PROVIDER and inbound.is_new_ticket:
                # A conversation start is create-only: its id is taken by a conversation another request started.
                raise IdempotencyKeyReused("the key's conversation was started by another request")
            now = utcnow()
            owner = self._is_ticket_customer(ctx, existing, customer)
            ticket = self._ticket(ctx, config, inbound, ticket_id, existing, customer, account, now, owner)
            message = Message(
                tenant_id=ctx.tenant_id,
                ticket_id=ticket_id,
                message_id=message_id,
                author="customer",
                # Placeholders can be longer than what they replace: bound again after redaction.
                body_redacted=bounded_text(redact(inbound.body_text)),
                attachments=[a.model_copy(update={"name": redact(a.name)}) for a in inbound.attachments],
                evidence=ref,
                received_at=now,
                delivery_id=delivery_id,
            )
            message_write = Tickets.message_write(message)
            receipt = {
                "message_id": message_id,
                "delivery_id": delivery_id,
                "message_sk": message_write.sk,
                "received_at": now.isoformat(),
                "queued": False,
            }
            if fingerprint is not None:
                receipt["request"] = fingerprint
            writes = [
                Put(pk=pk, sk=f"DELIVERY#{message_id}", data=receipt, expect="new"),
                self.tickets.save_write(ticket),
                message_write,
            ]
            if signed_sk is not None:
                writes.append(
                    Put(
                        pk=pk,
                        sk=signed_sk,
                        data={"message_id": message_id, "delivery_id": delivery_id},
                        expect="new",
                        ttl_epoch=int(now.timestamp()) + SIGNED_RECEIPT_TTL_S,
                    )
                )
            if customer is not None:
                # How erasure finds the ticket: committed with the message, or a crash or throttle right after the
                # commit leaves it out of erasure for good (a retry finds the receipt and writes nothing).
                # Create-or-overwrite, so the same link written again (a later message, the observer) is harmless.
                writes.append(link_ticket(ctx.tenant_id, customer.customer_id, ticket_id))
            try:
                self.audit.append(
                    ctx,
                    ticket_id,
                    "message.received",
                    {
                        "provider": inbound.provider,
                        "event": inbound.event,
                        "delivery_id": delivery_id,
                        "message_id": message_id,
                        "external_ticket_id": inbound.external_ticket_id,
                        "new_ticket": existing is None,
                        "customer_id": customer.customer_id if customer else None,
                        "customer_verified": bool(customer and customer.verified),
                        **(replayed or {}),
                    },
                    evidence=[ref],
                    writes=writes,
                )
                return receipt, True
            except Conflict:
                continue  # the ticket moved or the same message landed concurrently: re-read and decide again
        raise Throttled("ticket is busy, retry later", retry_after_s=1)

    def _signed_before(
        self, ctx: TenantContext, pk: str, signed_sk: str, delivery_id: str
    ) -> dict[str, Any] | None:
        """The receipt of the message this signed body was accepted as under another delivery id, if it was: a
        captured delivery sent again with a new (unsigned) delivery id is answered as that message's duplicate."""
        signed = self.store.get(ctx, pk, signed_sk)
        if signed is None:
            return None
        first_id = str(signed.data["message_id"])
        logger().warning(
            "signed webhook body received again under another delivery id; not a new message",
            extra={"delivery_id": delivery_id, "message_id": first_id},
        )
        first = self.store.get(ctx, pk, f"DELIVERY#{first_id}")
        # Written in one transaction with it; were it gone, that message was handled and nothing is queued again.
        return first.data if first is not None else {**signed.data, "queued": True}

    def _is_ticket_customer(
        self, ctx: TenantContext, existing: Ticket | None, customer: Customer | None
    ) -> bool:
        """Whether this message's author is the customer the ticket belongs to, so that their current profile and
        account (a plan upgraded in the CRM) apply to it. A ticket nobody was resolved for takes its first known
        author; the CRM's verified record of the requester intake first knew unverified is the same person."""
        if existing is None:
            return True
        if customer is None:
            return False
        if existing.customer_id is None or existing.customer_id == customer.customer_id:
            return True
        if not customer.verified:
            return False
        first = self.customers.get(ctx, existing.customer_id)
        return (
            first is not None
            and not first.verified
            and any(Customers.names(customer, kind, value) for kind, value in Customers.identities(first))
        )

    def _ticket(
        self,
        ctx: TenantContext,
        config: TenantConfig,
        inbound: InboundMessage,
        ticket_id: str,
        existing: Ticket | None,
        customer: Customer | None,
        account: Any,
        now: Any,
        owner: bool = True,
    ) -> Ticket:
        """The ticket after this message. Only its customer (`owner`) sets who the ticket is for and what they are
        entitled to: another author's message (a request participant, a CC) is stored and triaged as the
        customer's ticket, never re-assigns it."""
        entitlement = {
            "customer_id": customer.customer_id if customer else None,
            "account_id": account.account_id if account else (customer.account_id if customer else None),
            "plan": account.plan if account else None,
            "entitlements": list(account.entitlements) if account else [],
            "sla_tier": account.sla_tier if account and account.sla_tier in config.sla_tiers else "standard",
        }
        fields, dropped = merged_custom_fields(
            redact_value(inbound.custom_fields),  # type: ignore[arg-type]
            existing.custom_fields if existing is not None else {},
        )
        if dropped:
            # The message is stored either way; only the oldest field values give way (names may be PII: a count).
            self.metric("TicketCustomFieldsDropped", dropped)
            logger().warning(
                "ticket custom fields over the limit; oldest dropped", extra={"ticket_id": ticket_id, "dropped": dropped}
            )
        if existing is None:
            return Ticket(
                tenant_id=ctx.tenant_id,
                ticket_id=ticket_id,
                provider=inbound.provider,
                external_id=inbound.external_ticket_id,
                subject_redacted=redact(inbound.subject),
                status="new",
                locale=inbound.locale or config.default_locale,
                channel=inbound.channel,
                custom_fields=fields,
                external_updated_at=inbound.updated_at,
                created_at=now,
                updated_at=now,
                **entitlement,
            )
        changes: dict[str, Any] = {"updated_at": now, **(entitlement if owner else {})}
        if existing.status in REOPENING_STATUSES:
            changes["status"] = "new"  # the customer wrote again: it needs triage again
        if inbound.updated_at and (
            not existing.external_updated_at or inbound.updated_at > existing.external_updated_at
        ):
            changes["external_updated_at"] = inbound.updated_at
        if inbound.subject and not existing.subject_redacted:
            changes["subject_redacted"] = redact(inbound.subject)
        if inbound.custom_fields or dropped:
            changes["custom_fields"] = fields
        return existing.model_copy(update=changes)

    # ------------------------------------------------------------------ conversation API

    def authenticate_api_key(self, presented: str | None) -> tuple[TenantContext, TenantConfig]:
        """`dfk_<tenant>_<secret>`: the tenant part picks the stored hashes; all compares are constant-time."""
        presented = (presented or "").strip()
        prefix, _, rest = presented.partition("_")
        tenant_part, _, _ = rest.partition("_")
        try:
            tenant_id = validate_tenant_id(tenant_part) if prefix == API_KEY_PREFIX else None
        except InvalidTenant:
            tenant_id = None
        stored = self.secrets.secrets(tenant_id, API_PROVIDER) if tenant_id else []
        digest = hash_api_key(presented).encode()
        candidates = [(h, True) for h in stored[:2]] + [("0" * 64, False), ("f" * 64, False)]
        matched = False
        for candidate, genuine in candidates[:2]:
            matched |= hmac.compare_digest(candidate.encode(), digest) & genuine
        if not tenant_id or not matched:
            self.metric("ApiKeyRejected", 1)
            raise Unauthorized("api key rejected")
        ctx = TenantContext(tenant_id=tenant_id, actor="api-key", via="api_key", roles=frozenset({"service"}))
        config = self.tenants.find(ctx)
        if config is None or config.status != "active":
            raise Unauthorized("api key rejected")
        self.usage_guard(ctx)
        return ctx, config

    def converse(
        self,
        ctx: TenantContext,
        config: TenantConfig,
        *,
        text: str,
        requester: Requester,
        subject: str = "",
        locale: str | None = None,
        custom_fields: Mapping[str, Any] | None = None,
        conversation_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Reply:
        """Start a conversation (no id) or add to one; answer with triage if it is ready within the budget.
        Only the conversation's customer adds to it: another requester's message is refused as if the conversation
        did not exist (404), and nothing of it is stored."""
        starting = conversation_id is None
        if conversation_id is not None:
            self._own_conversation(ctx, conversation_id, requester)
        delivery_id = idempotency_key or uuid.uuid4().hex
        if conversation_id is None:
            conversation_id = self._conversation_id_for(ctx, idempotency_key)
        inbound = InboundMessage(
            tenant_id=ctx.tenant_id,
            provider=API_PROVIDER,
            event="conversation.message",
            is_new_ticket=starting,
            external_ticket_id=conversation_id,
            external_message_id=None,
            requester=requester,
            subject=subject,
            body_text=text,
            channel="api",
            locale=locale,
            custom_fields=dict(custom_fields or {}),
        )
        # The id we mint for a new conversation is not part of what the client sent; the one it names is.
        sent = inbound.model_dump(mode="json", exclude={"external_ticket_id"})
        fingerprint = sha256_hex(
            canonical_json({"conversation": None if starting else conversation_id, **sent})
        )
        key = f"{ctx.tenant_id}#{API_PROVIDER}#{delivery_id}"
        ran: list[bool] = []

        def work() -> dict[str, Any]:
            ran.append(True)
            if idempotency_key:
                # The guard forgets a key after 7 days; what its request stored stays.
                self._refuse_reused_key(ctx, inbound, delivery_id, fingerprint)
            request = {
                "provider": API_PROVIDER,
                "delivery_id": delivery_id,
                "message": inbound.model_dump(mode="json"),
            }
            return self._answer(ctx, config, inbound, delivery_id, request, fingerprint).as_dict()

        try:
            return Reply.from_dict(self.guard.once(key, fingerprint, work))
        except IdempotencyKeyReused:
            raise
        except Conflict as error:
            if ran:
                raise
            # Refused by the guard before any work: it still holds the key's first request, and this one differs.
            raise IdempotencyKeyReused("idempotency key reused for another request") from error

    def _own_conversation(self, ctx: TenantContext, conversation_id: str, requester: Requester) -> Ticket:
        """The conversation, if `requester` is its customer; else the 404 of an unknown id (so another customer
        learns neither its messages nor that it exists)."""
        ticket = self.tickets.get(ctx, conversation_id)
        if (
            ticket is None
            or ticket.provider != API_PROVIDER
            or not self._is_conversation_customer(ctx, ticket, requester)
        ):
            raise NotFound("conversation not found")
        return ticket

    def _is_conversation_customer(self, ctx: TenantContext, ticket: Ticket, requester: Requester) -> bool:
        """Whether the requester resolves to the conversation's customer (or to that requester's CRM record, which
        takes the conversation over, see `_is_ticket_customer`). A conversation started without a requester stays
        without one: only requests that name nobody reach it, and its random id is what guards it."""
        if ticket.customer_id is None:
            return not requester.identities(API_PROVIDER)
        customer = self.known_customer(ctx, API_PROVIDER, requester)
        return customer is not None and self._is_ticket_customer(ctx, ticket, customer)

    def _conversation_id_for(self, ctx: TenantContext, idempotency_key: str | None) -> str:
        """A new conversation's id. With an Idempotency-Key, the id that key got the first time: recorded create-once
        before any work, so a retry (however late, after a crash too) and another request reusing the key find the
        same conversation, and the existing receipts tell the two apart. Conversations started by earlier releases
        have an id derived from the key, and keep it."""
        if idempotency_key is None:
            return new_conversation_id()
        pk = conversation_key_pk(ctx.tenant_id, idempotency_key)
        recorded = self.store.get(ctx, pk, "CONVERSATION")
        if recorded is not None:
            return str(recorded.data["conversation_id"])
        legacy = _digest_id("cnv_", ctx.tenant_id, idempotency_key)
        if self.tickets.get(ctx, legacy) is not None:
            return legacy
        minted = new_conversation_id()
        try:
            self.store.put(ctx, Put(pk=pk, sk="CONVERSATION", data={"conversation_id": minted}, expect="new"))
        except Conflict:
            # The same key's request, a moment ago: its id it is.
            recorded = self.store.get(ctx, pk, "CONVERSATION")
            if recorded is None:
                raise
            return str(recorded.data["conversation_id"])
        return minted

    def _refuse_reused_key(
        self, ctx: TenantContext, inbound: InboundMessage, delivery_id: str, fingerprint: str
    ) -> None:
        """A key used again after the guard forgot it must not join, read or answer from what its earlier request
        stored: the conversation a start with that key made, or the message it added. A retry of that very request
        (the same fingerprint) goes on and gets the same answer."""
        ticket_id = ticket_id_for(API_PROVIDER, inbound.external_ticket_id)
        if inbound.is_new_ticket and self.tickets.get(ctx, ticket_id) is None:
            return  # the usual start: the key's conversation id is free
        pk = keys.ticket_pk(ctx.tenant_id, ticket_id)
        found = self.store.get(ctx, pk, f"DELIVERY#{message_id_for(inbound, delivery_id)}")
        if found is None:
            if inbound.is_new_ticket:
                raise IdempotencyKeyReused("the key's conversation was started by another request")
            return  # a new message in a conversation the key was never used in
        if not self._same_request(ctx, pk, found.data, inbound, fingerprint):
            raise IdempotencyKeyReused("the key's message in this conversation came from another request")

    def _same_request(
        self,
        ctx: TenantContext,
        pk: str,
        receipt: Mapping[str, Any],
        inbound: InboundMessage,
        fingerprint: str,
    ) -> bool:
        if "request" in receipt:
            return bool(receipt["request"] == fingerprint)
        # A receipt from before requests were fingerprinted: a retry is the same text from the same requester.
        message_sk = receipt.get("message_sk")
        item = self.store.get(ctx, pk, str(message_sk)) if message_sk else None
        ticket = self.tickets.get(ctx, inbound.external_ticket_id)
        if item is None or ticket is None:
            return False
        authors = {c.customer_id for c in self._named_customers(ctx, API_PROVIDER, inbound.requester)[0]}
        same_author = ticket.customer_id in authors if authors else ticket.customer_id is None
        return same_author and item.data.get("body_redacted") == bounded_text(redact(inbound.body_text))

    def _answer(
        self,
        ctx: TenantContext,
        config: TenantConfig,
        inbound: InboundMessage,
        delivery_id: str,
        request: Mapping[str, Any],
        fingerprint: str | None = None,
    ) -> Reply:
        ticket_id = ticket_id_for(API_PROVIDER, inbound.external_ticket_id)
        message_id = message_id_for(inbound, delivery_id)
        status_url = f"/v1/conversations/{ticket_id}"
        self.accept(ctx, config, inbound, delivery_id, request, fingerprint=fingerprint)
        result = self._triage_within_budget(ctx, ticket_id, message_id)
        if result is not None:
            if result.get("reply") and result.get("decision_id"):
                self._record_answer_delivered(ctx, ticket_id, message_id, result)
            return Reply(
                200,
                {
                    "conversation_id": ticket_id,
                    "message_id": message_id,
                    "status": conversation_status(
                        result.get("outcome"), bool(result.get("reply")), result.get("rollout_mode")
                    ),
                    "status_url": status_url,
                    "triage": dict(result),
                },
            )
        return Reply(
            202,
            {
                "conversation_id": ticket_id,
                "message_id": message_id,
                "status": "processing",
                "status_url": status_url,
            },
            {"Location": status_url},
        )

    def _record_answer_delivered(
        self, ctx: TenantContext, ticket_id: str, message_id: str, result: Mapping[str, Any]
    ) -> None:
        """The 200 about to go out hands the customer the decision's reply: on the conversation's audit chain, before
        it goes. Once per decision: a retry of the request (the guard forgot its key, or the first try crashed after
        this) gets the same decision again and finds it recorded. Ids only, never the reply's text."""
        decision_id = str(result["decision_id"])
        pk = keys.ticket_pk(ctx.tenant_id, ticket_id)
        once = Put(pk=pk, sk=f"{ANSWERED_PREFIX}{decision_id}", data={"decision_id": decision_id}, expect="new")
        if self.store.get(ctx, pk, once.sk) is not None:
            return
        payload = {
            "decision_id": decision_id,
            "message_id": message_id,
            "channel": ANSWER_CHANNEL,
            "outbox_ids": [str(i) for i in result.get("outbox_ids") or []],
        }
        try:
            self.audit.append(ctx, ticket_id, "answer.delivered", payload, actor="deflect:intake", writes=[once])
        except Conflict:
            if self.store.get(ctx, pk, once.sk) is None:
                raise
            # A concurrent retry of the same request recorded it a moment ago.

    def _triage_within_budget(
        self, ctx: TenantContext, ticket_id: str, message_id: str
    ) -> Mapping[str, Any] | None:
        """The message is already stored and queued; wait up to the budget for a synchronous answer."""
        if self.triage is None:
            return None
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-triage")
        # The caller's context goes along (request-scoped log keys and the like), as if triage ran inline.
        future = pool.submit(contextvars.copy_context().run, self.triage, ctx, ticket_id, message_id)
        try:
            return future.result(timeout=self.conversation_budget_ms / 1000)
        except FutureTimeout:
            self.metric("ConversationTriageOverBudget", 1)
            return None
        except Exception as error:
            # Whatever went wrong (a model timeout, a missing permission), the queued job triages it again and
            # the caller polls the status URL: a conversation never fails because the fast path did.
            self.metric("ConversationTriageFailed", 1)
            logger().warning("synchronous triage failed", extra={"error": type(error).__name__})
            return None
        finally:
            pool.shutdown(wait=False)

    def _reply_withheld(self, ctx: TenantContext, conversation_id: str, decision: Decision) -> bool:
        """Whether writeback held the decided reply back after triage (the tenant switched to shadow or assist, a
        person wrote on the ticket, a quoted article was withdrawn): then the caller must not show it either. A
        reply that only failed to be delivered is not held back."""
        if decision.message_id is None:
            return False
        marker = self.store.get(ctx, keys.ticket_pk(ctx.tenant_id, conversation_id), f"TRIAGED#{decision.message_id}")
        for outbox_id in (marker.data.get("outbox_ids") or []) if marker is not None else []:
            item = Outbox(self.store).get(ctx, str(outbox_id))
            if item is None:
                continue
            # Not `dead`: a reply writeback could not deliver (no connection, an endpoint failing) was still decided
            # for the customer, and an API-only tenant has no agent to pick it up.
            if item.kind != "public_reply" or item.status == "conflict":
                return True
            if (item.receipt or {}).get("suppressed"):
                return True
        return False

    def conversation(
        self, ctx: TenantContext, conversation_id: str, requester: Requester | None = None
    ) -> dict[str, Any]:
        """What the conversation's customer may see. `requester` is who asks, identified as on their messages; any
        other requester (or none, for a conversation with a customer) gets the 404 of an unknown id.

        `messages` is the whole conversation in time order: the customer's messages and every reply they were
        sent, whichever decision it followed. `decision` describes the latest triage decision."""
        ticket = self._own_conversation(ctx, conversation_id, requester or Requester())
        pk = keys.ticket_pk(ctx.tenant_id, conversation_id)
        decisions = _records(Decision, self.store.query(ctx, pk, "DECISION#"))
        latest = decisions[-1] if decisions else None
        handed_over = {str(i.data["decision_id"]) for i in self.store.query(ctx, pk, ANSWERED_PREFIX)}
        sent = sent_replies(self.store, ctx, conversation_id, decisions, handed_over)
        answer = None
        status = ticket.status if ticket.status in ("resolved", "closed") else "processing"
        if latest is not None:
            # Only what the customer was sent: shadow and assist drafts are for agents, never for the caller.
            # (Decisions stored before customer_reply existed: the auto-mode draft was what was sent.)
            reply = latest.customer_reply
            if reply is None and latest.draft is not None and latest.rollout_mode == "auto":
                reply = latest.draft.text if latest.outcome == "deflect" else None
            visible = reply is not None and latest.outcome != "escalate"
            visible = visible and not self._reply_withheld(ctx, conversation_id, latest)
            if status == "processing":
                status = conversation_status(latest.outcome, visible, latest.rollout_mode)
            answer = {
                "outcome": latest.outcome,
                "reasons": latest.reasons,
                "decided_at": latest.decided_at.isoformat(),
                "reply": reply if visible else None,
                "answered_by": "triage" if visible else None,
                "answered_at": latest.decided_at.isoformat() if visible else None,
                "citations": [c.model_dump(mode="json") for c in latest.draft.citations]
                if visible and latest.draft
                else [],
                "missing_diagnostics": latest.missing_diagnostics,
                "acknowledgement": None,
            }
            person = agent_reply(self.store, ctx, conversation_id, latest)
            if person is not None and person.delivery == "delivered":
                answer |= {
                    "reply": person.text,
                    "answered_by": "agent",
                    "answered_at": person.delivered_at.isoformat() if person.delivered_at else None,
                    "citations": [c.model_dump(mode="json") for c in person.citations],
                }
            if person is not None and status != "closed":
                # Resolved when the decision resolved the ticket (an approval; a reply on rejecting the
                # proposal leaves it open). An approval resolves the ticket as it queues the reply: until
                # writeback delivered it, a client that stopped polling at `resolved` would never see it;
                # held back, it went to the support team as a note, as a held triage reply does.
                if person.delivery == "delivered":
                    status = "resolved" if ticket.status == "resolved" else "answered"
                else:
                    status = "escalated" if person.delivery == "on_its_way" else "with_agent"
            if status == "escalated":
                # "A person will follow up by then", once it was delivered: what the customer waits on. The person's
                # reply, once it is here, answers instead.
                # (Among what was sent, a "triage" message following an escalating decision is its acknowledgement.)
                ack = next(
                    (r for r in sent if r.decision_id == latest.decision_id and r.author == "triage"), None
                )
                if ack is not None and latest.outcome == "escalate":
                    answer["acknowledgement"] = {"text": ack.text, "sent_at": ack.sent_at.isoformat()}
            status = _after_an_earlier_agents_reply(status, ticket, latest, sent)
        return {
            "conversation_id": conversation_id,
            "status": status,
            "created_at": ticket.created_at.isoformat(),
            "updated_at": ticket.updated_at.isoformat(),
            "messages": _transcript(_records(Message, self.store.query(ctx, pk, "MSG#")), sent),
            "decision": answer,
        }


def _after_an_earlier_agents_reply(
    status: str, ticket: Ticket, latest: Decision, sent: list[SentReply]
) -> str:
    """A person's reply to an earlier escalation, delivered after the latest decision (the customer wrote again
    before writeback sent it): the newest thing the customer has is that answer, so the conversation reads as
    answered rather than escalated. A decision made after the reply describes the conversation again."""
    newest = sent[-1] if sent else None
    # The latest decision's own escalation still waiting on a person: the customer is still waiting too.
    waiting = latest.outcome == "escalate" and not any(
        r.author == "agent" and r.decision_id == latest.decision_id for r in sent
    )
    if (
        newest is None
        or newest.author != "agent"
        or newest.decision_id == latest.decision_id
        or newest.sent_at <= latest.decided_at
        or status == "closed"
        or waiting
    ):
        return status
    return "resolved" if ticket.status == "resolved" else "answered"


def _transcript(messages: list[Message], sent: list[SentReply]) -> list[dict[str, Any]]:
    """The customer's messages (as before: `received_at`) and the replies they were sent (`message_id` is the
    reply's outbox id), in time order; every entry has `at`."""
    entries: list[tuple[datetime, dict[str, Any]]] = [
        (
            m.received_at,
            {
                "message_id": m.message_id,
                "author": m.author,
                "text": m.body_redacted,
                "received_at": m.received_at.isoformat(),
                "at": m.received_at.isoformat(),
            },
        )
        for m in messages
    ]
    entries += [
        (
            r.sent_at,
            {"message_id": r.outbox_id, "author": r.author, "text": r.text, "at": r.sent_at.isoformat()},
        )
        for r in sent
    ]
    return [entry for _, entry in sorted(entries, key=lambda e: e[0])]
