"""The audit log: a per-ticket hash chain of locked objects plus an index in SupportTable.

Append order: (1) the sealed event is written to the evidence bucket under Object Lock, (2) ONE transaction
writes the caller's state change, outbox items and the audit index item. A crash between (1) and (2) leaves an
orphan locked object that no index points to — harmless — and never a half-applied state change.

Reading and verifying use the version of each event object written first: Object Lock keeps it, while anyone who
may append may also put a newer version or rewrite an index item. A key with more than one version (or a delete
marker), or an index item naming another version, is reported as tampered.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from deflect.domain import keys
from deflect.domain.audit_chain import GENESIS, ChainBreak, event_hash, seal, verify_chain
from deflect.domain.canonical import canonical_json, sha256_hex
from deflect.domain.errors import Conflict
from deflect.domain.models import AuditEvent, EvidenceRef, utcnow
from deflect.domain.tenancy import TenantContext
from deflect.ports import Delete, EvidenceStore, KeyVersions, Put, SupportStore

MAX_APPEND_ATTEMPTS = 5


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    key: str
    version_id: str | None
    hash: str
    type: str


@dataclass(frozen=True)
class VerifyReport:
    tenant_id: str
    ticket_id: str
    events: int
    ok: bool
    first_break: ChainBreak | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant_id,
            "ticket": self.ticket_id,
            "events": self.events,
            "ok": self.ok,
            "first_broken_seq": self.first_break.seq if self.first_break else None,
            "reason": self.first_break.reason if self.first_break else None,
        }


@dataclass(frozen=True)
class _Read:
    event: AuditEvent | None
    unreadable: bool = False
    problem: str | None = None  # why the stored object cannot be trusted although its event may verify


class AuditLog:
    def __init__(self, store: SupportStore, evidence: EvidenceStore) -> None:
        self.store = store
        self.evidence = evidence

    def entries(self, ctx: TenantContext, ticket_id: str) -> list[AuditEntry]:
        items = self.store.query(ctx, keys.audit_pk(ctx.tenant_id, ticket_id), "SEQ#")
        return [
            AuditEntry(
                seq=i.data["seq"], key=i.data["key"], version_id=i.data.get("version_id"), hash=i.data["hash"], type=i.data["type"]
            )
            for i in items
        ]

    def append(
        self,
        ctx: TenantContext,
        ticket_id: str,
        type: str,
        payload: dict[str, Any],
        *,
        actor: str | None = None,
        evidence: Sequence[EvidenceRef] = (),
        writes: Iterable[Put | Delete] = (),
    ) -> AuditEvent:
        """Append one event and apply `writes` in the same transaction. Retries only on a seq race."""
        writes = list(writes)
        for _ in range(MAX_APPEND_ATTEMPTS):
            last = self.store.query(ctx, keys.audit_pk(ctx.tenant_id, ticket_id), "SEQ#", limit=1, newest_first=True)
            seq = last[0].data["seq"] + 1 if last else 0
            prev = last[0].data["hash"] if last else GENESIS
            event = seal(
                AuditEvent(
                    tenant_id=ctx.tenant_id,
                    ticket_id=ticket_id,
                    seq=seq,
                    type=type,
                    actor=actor or ctx.actor,
                    at=utcnow(),
                    payload=payload,
                    payload_sha256=sha256_hex(canonical_json(payload)),
                    evidence=list(evidence),
                    prev_hash=prev,
                )
            )
            body = canonical_json(event.model_dump(mode="json"))
            ref = self.evidence.put_locked(
                ctx, keys.audit_object_key(ctx.tenant_id, ticket_id, seq, event.hash), body, "audit"
            )
            index = Put(
                pk=keys.audit_pk(ctx.tenant_id, ticket_id),
                sk=f"SEQ#{seq:010d}",
                data={"seq": seq, "key": ref.key, "version_id": ref.version_id, "hash": event.hash, "type": type},
                expect="new",
            )
            marker = []
            if seq == 0:
                marker = [
                    Put(
                        pk=keys.audited_tickets_pk(ctx.tenant_id),
                        sk=f"TICKET#{ticket_id}",
                        data={"ticket_id": ticket_id, "first_at": event.at.isoformat()},
                        expect="any",
                    )
                ]
            try:
                self.store.transact(ctx, [*writes, index, *marker])
                return event
            except Conflict as conflict:
                reasons = conflict.context.get("reasons") or []
                audit_pos = len(writes)
                own_conflict = any(r not in ("None", None) for r in reasons[:audit_pos])
                if own_conflict or not reasons:
                    raise
                # another writer took this seq: re-read the tail and try again
        raise Conflict("audit append kept racing")

    def audited_tickets(self, ctx: TenantContext) -> list[str]:
        return [i.data["ticket_id"] for i in self.store.query(ctx, keys.audited_tickets_pk(ctx.tenant_id), "TICKET#")]

    def load(self, ctx: TenantContext, ticket_id: str) -> tuple[list[AuditEntry], list[AuditEvent | None]]:
        """Entries from the index and the events as first written (the object versions Object Lock keeps).

        An event is None when its object is missing or its bytes no longer parse (both break the chain).
        """
        entries = self.entries(ctx, ticket_id)
        return entries, [read.event for read in self._read_events(ctx, entries)]

    def intact_events(self, ctx: TenantContext, entries: list[AuditEntry]) -> list[AuditEvent | None]:
        """The events of `entries` (a chain's, or some of them) as first written; None for one that cannot be
        trusted on its own: missing, unreadable, rewritten, or not the event its index entry recorded."""
        intact: list[AuditEvent | None] = []
        for entry, read in zip(entries, self._read_events(ctx, entries), strict=True):
            event = read.event
            sound = event is not None and not read.problem and event.hash == entry.hash == event_hash(event)
            intact.append(event if sound else None)
        return intact

    def _read_events(self, ctx: TenantContext, entries: list[AuditEntry]) -> list[_Read]:
        history = self._history(ctx, entries)
        reads = []
        for entry in entries:
            try:
                reads.append(self._read_event(ctx, entry, history))
            except ValueError:
                # A flipped byte can break the encoding itself: that is a broken link, not a crash.
                reads.append(_Read(None, unreadable=True))
        return reads

    def _history(self, ctx: TenantContext, entries: list[AuditEntry]) -> dict[str, KeyVersions]:
        """The versions of every key the entries name (one listing per folder)."""
        history: dict[str, KeyVersions] = {}
        for folder in sorted({entry.key.rpartition("/")[0] + "/" for entry in entries}):
            history.update(self.evidence.versions(ctx, folder))
        return history

    def _read_event(self, ctx: TenantContext, entry: AuditEntry, history: dict[str, KeyVersions]) -> _Read:
        versions = history.get(entry.key)
        if versions is None or versions.first is None:
            return _Read(None)
        # Anyone who may append may also put a newer version (and rewrite the index item): only the version
        # written first is the locked original, so that is the one read, and anything on top of it is tampering.
        raw = self.evidence.read_version(ctx, entry.key, versions.first)
        later = [v for v in versions.version_ids[1:] if v is not None]
        # The same bytes again are a retried put whose first answer was lost (botocore retries inside the call),
        # not a rewrite; the index may name either copy.
        copies = [v for v in later if self.evidence.read_version(ctx, entry.key, v) == raw]
        problem = None
        if versions.delete_markers:
            problem = "event object missing: deleted over its locked version"
        elif len(copies) < len(later):
            problem = f"event object rewritten: {len(versions.version_ids)} versions of its key"
        elif entry.version_id is not None and entry.version_id not in (versions.first, *copies):
            problem = "index names another version than the one written first"
        # ValueError covers undecodable bytes, broken JSON and failed validation alike.
        return _Read(AuditEvent.model_validate(json.loads(raw)) if raw else None, problem=problem)

    def verify(self, ctx: TenantContext, ticket_id: str) -> VerifyReport:
        entries = self.entries(ctx, ticket_id)
        reads = self._read_events(ctx, entries)
        events: list[AuditEvent | None] = []
        unreadable: ChainBreak | None = None
        for position, read in enumerate(reads):
            if read.unreadable:
                unreadable = ChainBreak(position, "event object unreadable: its bytes were altered")
                break
            events.append(read.event)
        first_break = verify_chain(events, [e.hash for e in entries][: len(events)]) or unreadable
        # A rewritten object explains whatever else breaks at the same position: it wins a tie.
        for position, read in enumerate(reads):
            if read.problem and (first_break is None or first_break.seq >= position):
                first_break = ChainBreak(position, read.problem)
                break
        # A deleted index item shows as a gap in the recorded seq numbers.
        for position, entry in enumerate(entries):
            if entry.seq != position and (first_break is None or first_break.seq > position):
                first_break = ChainBreak(position, f"index gap: expected seq {position}, found {entry.seq}")
                break
        return VerifyReport(ctx.tenant_id, ticket_id, len(entries), first_break is None, first_break)

    def verify_tenant(self, ctx: TenantContext) -> list[VerifyReport]:
        return [self.verify(ctx, ticket_id) for ticket_id in self.audited_tickets(ctx)]
