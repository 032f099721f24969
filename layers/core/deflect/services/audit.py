"""The audit log: a per-ticket hash chain of locked objects plus an index in SupportTable.

Append order: (1) the sealed event is written to the evidence bucket under Object Lock, (2) ONE transaction
writes the caller's state change, outbox items and the audit index item. A crash or a failed transaction between
(1) and (2) leaves an orphan locked object that no index points to (verify reports it) and never a half-applied
state change.

Reading and verifying use the version of each event object written first: Object Lock keeps it, while anyone who
may append may also put a newer version or rewrite an index item. A key with more than one version (or a delete
marker), or an index item naming another version, is reported as tampered.

The locked objects, not the index, are the record: verify lists the ticket's whole audit folder and accounts for
every object the index does not name (see `audit_chain.account_for_unindexed`). Orphans of failed appends are
warnings; an event removed from the index, re-sealed, or cut off the end of the chain is a failure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from deflect.domain import keys
from deflect.domain.audit_chain import (
    GENESIS,
    ChainBreak,
    Unindexed,
    account_for_unindexed,
    event_hash,
    seal,
    verify_chain,
)
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
    problems: tuple[ChainBreak, ...] = ()  # every failure found, by seq; first_break is the first of them
    warnings: tuple[ChainBreak, ...] = ()  # leftovers of failed appends: shown, not hidden, but not failures

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant_id,
            "ticket": self.ticket_id,
            "events": self.events,
            "ok": self.ok,
            "first_broken_seq": self.first_break.seq if self.first_break else None,
            "reason": self.first_break.reason if self.first_break else None,
            "problems": [{"seq": p.seq, "reason": p.reason} for p in self.problems],
            "warnings": [{"seq": w.seq, "reason": w.reason} for w in self.warnings],
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

    def _read_events(
        self, ctx: TenantContext, entries: list[AuditEntry], history: dict[str, KeyVersions] | None = None
    ) -> list[_Read]:
        history = self._history(ctx, entries) if history is None else history
        return [self._read_object(ctx, entry.key, entry.version_id, history) for entry in entries]

    def _history(
        self, ctx: TenantContext, entries: list[AuditEntry], folders: Iterable[str] = ()
    ) -> dict[str, KeyVersions]:
        """The versions of every key the entries name, and of every key in `folders` (one listing per folder)."""
        history: dict[str, KeyVersions] = {}
        for folder in sorted({*folders, *(entry.key.rpartition("/")[0] + "/" for entry in entries)}):
            history.update(self.evidence.versions(ctx, folder))
        return history

    def _read_object(
        self, ctx: TenantContext, key: str, named_version: str | None, history: dict[str, KeyVersions]
    ) -> _Read:
        try:
            return self._read_first_version(ctx, key, named_version, history)
        except ValueError:
            # A flipped byte can break the encoding itself: that is a broken link, not a crash.
            return _Read(None, unreadable=True)

    def _read_first_version(
        self, ctx: TenantContext, key: str, named_version: str | None, history: dict[str, KeyVersions]
    ) -> _Read:
        versions = history.get(key)
        if versions is None or versions.first is None:
            return _Read(None)
        # Anyone who may append may also put a newer version (and rewrite the index item): only the version
        # written first is the locked original, so that is the one read, and anything on top of it is tampering.
        raw = self.evidence.read_version(ctx, key, versions.first)
        later = [v for v in versions.version_ids[1:] if v is not None]
        # The same bytes again are a retried put whose first answer was lost (botocore retries inside the call),
        # not a rewrite; the index may name either copy.
        copies = [v for v in later if self.evidence.read_version(ctx, key, v) == raw]
        problem = None
        if versions.delete_markers:
            problem = "event object missing: deleted over its locked version"
        elif len(copies) < len(later):
            problem = f"event object rewritten: {len(versions.version_ids)} versions of its key"
        elif named_version is not None and named_version not in (versions.first, *copies):
            problem = "index names another version than the one written first"
        # ValueError covers undecodable bytes, broken JSON and failed validation alike.
        return _Read(AuditEvent.model_validate(json.loads(raw)) if raw else None, problem=problem)

    def verify(self, ctx: TenantContext, ticket_id: str) -> VerifyReport:
        return self._verify(ctx, ticket_id, listed=None)

    def _verify(self, ctx: TenantContext, ticket_id: str, *, listed: bool | None) -> VerifyReport:
        """`listed`: whether the ticket is on the audited-tickets list, when the caller already knows."""
        entries = self.entries(ctx, ticket_id)
        # The ticket's whole folder, not only the keys the index names: the locked objects are the record.
        folder = _audit_folder(ctx.tenant_id, ticket_id)
        history = self._history(ctx, entries, [folder])
        reads = self._read_events(ctx, entries, history)
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
        # An index item pointing at another ticket's (or a made-up) object passes the chain rules on its own.
        for entry, read in zip(entries, reads, strict=True):
            owner = (read.event.tenant_id, read.event.ticket_id) if read.event else None
            if owner not in (None, (ctx.tenant_id, ticket_id)) or not entry.key.startswith(folder):
                if first_break is None or first_break.seq > entry.seq:
                    first_break = ChainBreak(entry.seq, "index names an event of another ticket")
                break
        if listed is None:
            listed = self._listed(ctx, ticket_id)
        problems = [first_break] if first_break else []
        if entries and not listed:
            # The list is written with seq 0 in one transaction: without it tenant-wide verification skips the ticket.
            problems.append(ChainBreak(0, "ticket missing from the audited-tickets list"))
        if listed and not entries:
            problems.append(ChainBreak(0, "chain removed: the ticket is listed as audited but its index is empty"))
        named = {entry.key for entry in entries}
        unindexed = []
        for key in sorted(k for k in history if k.startswith(folder) and k not in named):
            read = self._read_object(ctx, key, None, history)
            unindexed.append(Unindexed(key, read.event, read.problem))
        indexed = {entry.seq: (entry.hash, read.event) for entry, read in zip(entries, reads, strict=True)}
        unaccounted, warnings = account_for_unindexed(
            ctx.tenant_id, ticket_id, indexed, unindexed, chain_started=bool(entries) or listed
        )
        # Ties go to the break found in the index first: it is what existing reports have named.
        problems = sorted([*problems, *unaccounted], key=lambda p: p.seq)
        first = problems[0] if problems else None
        return VerifyReport(
            ctx.tenant_id, ticket_id, len(entries), first is None, first, tuple(problems), tuple(warnings)
        )

    def _listed(self, ctx: TenantContext, ticket_id: str) -> bool:
        return self.store.get(ctx, keys.audited_tickets_pk(ctx.tenant_id), f"TICKET#{ticket_id}") is not None

    def verify_tenant(self, ctx: TenantContext) -> list[VerifyReport]:
        return [self._verify(ctx, ticket_id, listed=True) for ticket_id in self.audited_tickets(ctx)]


def _audit_folder(tenant_id: str, ticket_id: str) -> str:
    return keys.audit_object_key(tenant_id, ticket_id, 0, "").rpartition("/")[0] + "/"
