"""In-memory SupportStore and EvidenceStore with the same guards as the AWS adapters.

For throwaway tenants (`deflect eval retrieval`) and unit tests: tenant-checked keys, optimistic locking,
all-or-nothing transactions, write-once evidence that is re-hashed on read.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterable

from deflect.domain import keys
from deflect.domain.canonical import json_default, sha256_hex
from deflect.domain.errors import Conflict, EvidenceTampered, Forbidden, NotFound
from deflect.domain.models import EvidenceRef
from deflect.domain.tenancy import TenantContext
from deflect.ports import Delete, Item, KeyVersions, Put


def _owned(ctx: TenantContext, key: str) -> None:
    root = f"T#{ctx.tenant_id}"
    if key != root and not key.startswith(root + "#"):
        raise Forbidden("key outside the caller's tenant")


class MemorySupportStore:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str], Item] = {}
        self._expiry: dict[tuple[str, str], int] = {}
        self._lock = threading.RLock()

    def get(self, ctx: TenantContext, pk: str, sk: str) -> Item | None:
        _owned(ctx, pk)
        with self._lock:
            item = self._live((pk, sk))
            return copy.deepcopy(item) if item else None

    def query(
        self,
        ctx: TenantContext,
        pk: str,
        sk_prefix: str = "",
        *,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Item]:
        _owned(ctx, pk)
        with self._lock:
            found = [
                copy.deepcopy(item)
                for (item_pk, item_sk) in sorted(self._items, reverse=newest_first)
                if item_pk == pk
                and item_sk.startswith(sk_prefix)
                and (item := self._live((item_pk, item_sk)))
            ]
        return found[:limit] if limit else found

    def query_index(
        self, ctx: TenantContext, index: str, pk: str, *, sk_prefix: str = "", limit: int | None = None
    ) -> list[Item]:
        _owned(ctx, pk)
        pk_attr, sk_attr = f"{index}PK", f"{index}SK"
        with self._lock:
            found = sorted(
                (
                    item
                    for key in self._items
                    if (item := self._live(key))
                    and item.indexes.get(pk_attr) == pk
                    and str(item.indexes.get(sk_attr, "")).startswith(sk_prefix)
                ),
                key=lambda i: str(i.indexes.get(sk_attr, "")),
            )
        return [copy.deepcopy(i) for i in found][:limit] if limit else [copy.deepcopy(i) for i in found]

    def put(self, ctx: TenantContext, put: Put) -> None:
        self.transact(ctx, [put])

    def delete(self, ctx: TenantContext, delete: Delete) -> None:
        self.transact(ctx, [delete])

    def transact(self, ctx: TenantContext, writes: Iterable[Put | Delete]) -> None:
        writes = list(writes)
        with self._lock:
            for write in writes:  # check every guard first: all or nothing
                _owned(ctx, write.pk)
                current = self._live((write.pk, write.sk))
                if isinstance(write, Put):
                    for attr, value in write.indexes.items():
                        if attr.endswith("PK"):
                            _owned(ctx, value)
                    if write.expect == "new" and current is not None:
                        raise Conflict("item exists")
                    if write.expect == "version" and (
                        current is None or current.version != write.expected_version
                    ):
                        raise Conflict("version changed")
                elif write.expected_version is not None and (
                    current is None or current.version != write.expected_version
                ):
                    raise Conflict("version changed")
            for write in writes:
                key = (write.pk, write.sk)
                if isinstance(write, Delete):
                    self._items.pop(key, None)
                    self._expiry.pop(key, None)
                    continue
                if write.expect == "version":
                    version = (write.expected_version or 0) + 1
                elif write.expect == "new":
                    version = 1
                else:
                    version = int(write.data.get("version", 0) or 0) + 1
                # A JSON round trip, as DynamoDB stores it: readers get plain values back.
                body = dict(write.data)
                if "version" in body:  # as DynamoSupportStore: only versioned records carry it in their body
                    body["version"] = version
                data = json.loads(json.dumps(body, default=json_default))
                self._items[key] = Item(write.pk, write.sk, data, version, dict(write.indexes))
                if write.ttl_epoch:
                    self._expiry[key] = write.ttl_epoch
                else:
                    self._expiry.pop(key, None)

    def _live(self, key: tuple[str, str]) -> Item | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires = self._expiry.get(key)
        return None if expires is not None and expires < time.time() else item


class MemoryEvidenceStore:
    def __init__(self) -> None:
        self._objects: dict[str, list[bytes]] = {}
        self._lock = threading.Lock()

    def put_evidence(self, ctx: TenantContext, ticket_id: str, body: bytes, kind: str) -> EvidenceRef:
        return self.put_locked(ctx, keys.evidence_key(ctx.tenant_id, ticket_id, sha256_hex(body)), body, kind)

    def put_locked(self, ctx: TenantContext, key: str, body: bytes, kind: str) -> EvidenceRef:
        if not key.startswith(keys.s3_prefix(ctx.tenant_id)):
            raise Forbidden("evidence outside the caller's tenant")
        digest = sha256_hex(body)
        with self._lock:
            versions = self._objects.setdefault(key, [])
            if not versions or sha256_hex(versions[-1]) != digest:
                versions.append(bytes(body))
            return EvidenceRef(key=key, sha256=digest, version_id=str(len(versions)), kind=kind)

    def read(self, ctx: TenantContext, ref: EvidenceRef) -> bytes:
        if not ref.key.startswith(keys.s3_prefix(ctx.tenant_id)):
            raise Forbidden("evidence outside the caller's tenant")
        with self._lock:
            versions = self._objects.get(ref.key)
            if not versions:
                raise NotFound(ref.key)
            body = versions[int(ref.version_id) - 1] if ref.version_id else versions[-1]
        if sha256_hex(body) != ref.sha256:
            raise EvidenceTampered(ref.key)
        return body

    def read_latest(self, ctx: TenantContext, key: str) -> bytes | None:
        if not key.startswith(keys.s3_prefix(ctx.tenant_id)):
            raise Forbidden("evidence outside the caller's tenant")
        with self._lock:
            versions = self._objects.get(key)
            return versions[-1] if versions else None

    def versions(self, ctx: TenantContext, prefix: str) -> dict[str, KeyVersions]:
        if not prefix.startswith(keys.s3_prefix(ctx.tenant_id)):
            raise Forbidden("evidence outside the caller's tenant")
        with self._lock:
            return {
                key: KeyVersions(tuple(str(n) for n in range(1, len(bodies) + 1)))
                for key, bodies in self._objects.items()
                if key.startswith(prefix)
            }

    def read_version(self, ctx: TenantContext, key: str, version_id: str) -> bytes | None:
        if not key.startswith(keys.s3_prefix(ctx.tenant_id)):
            raise Forbidden("evidence outside the caller's tenant")
        with self._lock:
            bodies = self._objects.get(key) or []
            index = int(version_id) - 1 if version_id.isdigit() else -1
            return bodies[index] if 0 <= index < len(bodies) else None

    def presign(self, ctx: TenantContext, ref: EvidenceRef, expires_s: int = 300) -> str:
        return f"memory://{ref.key}?version={ref.version_id}"

    def tamper(self, key: str, body: bytes) -> None:
        """Tests only: what a rogue overwrite would look like."""
        with self._lock:
            self._objects[key][-1] = body
