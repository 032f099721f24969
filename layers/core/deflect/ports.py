"""Ports: what services need from the outside world. Adapters implement them; services take them as arguments.

Sections are owned by capability; add a Protocol to your section rather than widening another's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from deflect.domain.models import EvidenceRef
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


class EvidenceStore(Protocol):
    """Write-once, locked objects under `tenant=T/`."""

    def put_evidence(self, ctx: TenantContext, ticket_id: str, body: bytes, kind: str) -> EvidenceRef: ...

    def put_locked(self, ctx: TenantContext, key: str, body: bytes, kind: str) -> EvidenceRef: ...

    def read(self, ctx: TenantContext, ref: EvidenceRef) -> bytes: ...

    def read_latest(self, ctx: TenantContext, key: str) -> bytes | None: ...

    def presign(self, ctx: TenantContext, ref: EvidenceRef, expires_s: int = 300) -> str: ...


class SecretStore(Protocol):
    """Per-tenant, per-provider secrets. Returns the current secret first, then the previous during rotation."""

    def secrets(self, tenant_id: str, provider: str) -> list[str]: ...

    def put_secret(self, tenant_id: str, provider: str, value: str, *, keep_previous: bool = True) -> None: ...


class WorkQueue(Protocol):
    def send(self, ctx: TenantContext, body: Mapping[str, Any], *, dedupe_id: str | None = None) -> str: ...


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

# --------------------------------------------------------------------------- models (triage issue)

# --------------------------------------------------------------------------- helpdesk (writeback issue)
