"""Hash-chain rules of the audit log (pure: no storage)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from deflect.domain import keys
from deflect.domain.canonical import canonical_json, sha256_hex
from deflect.domain.models import AuditEvent

GENESIS = "0" * 64


def event_hash(event: AuditEvent) -> str:
    body = event.model_dump(mode="json", exclude={"hash"})
    return sha256_hex(canonical_json(body))


def seal(event: AuditEvent) -> AuditEvent:
    return event.model_copy(update={"hash": event_hash(event)})


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    reason: str


def verify_chain(events: list[AuditEvent | None], expected_hashes: list[str] | None = None) -> ChainBreak | None:
    """Return the first broken link, or None. `None` entries are events whose object is missing.

    `expected_hashes` are the hashes recorded in the index when each event was appended.
    """
    prev = GENESIS
    for position, event in enumerate(events):
        if event is None:
            return ChainBreak(position, "event object missing")
        if event.seq != position:
            return ChainBreak(position, f"sequence gap or reorder: found seq {event.seq}")
        if event.payload_sha256 != sha256_hex(canonical_json(event.payload)):
            return ChainBreak(position, "payload does not match payload_sha256")
        if event.hash != event_hash(event):
            return ChainBreak(position, "event content does not match its hash")
        if expected_hashes is not None and expected_hashes[position] != event.hash:
            return ChainBreak(position, "event differs from the hash recorded at append time")
        if event.prev_hash != prev:
            return ChainBreak(position, "prev_hash does not link to the previous event")
        prev = event.hash
    return None


@dataclass(frozen=True)
class Unindexed:
    """A locked object in a ticket's audit folder that no index entry names."""

    key: str
    event: AuditEvent | None  # None: not a readable audit event
    problem: str | None = None  # rewritten or hidden after it was written


_KEY_SEQ = re.compile(r"/(\d{10})-[^/]*$")


def account_for_unindexed(
    tenant_id: str,
    ticket_id: str,
    indexed: Mapping[int, tuple[str, AuditEvent | None]],
    unindexed: Sequence[Unindexed],
    *,
    chain_started: bool,
) -> tuple[list[ChainBreak], list[ChainBreak]]:
    """Why each locked event the index does not name exists: (failures, warnings).

    `indexed` maps each indexed seq to the hash its index item records and the event as locked. `chain_started`
    says whether a first append committed (the ticket is on the audited-tickets list, written with seq 0).

    Append locks the event object first and commits its index item in a later transaction, so an append whose
    transaction fails (its caller's write lost a race, a lost connection, a crash) leaves an object no index item
    names. Such a leftover links to the indexed event before it, and nothing ever links to it: the next append
    seals on the index's tail, never on an uncommitted object. Anything else append cannot have left.
    """
    last = max(indexed, default=-1)
    locked = [u.event for u in unindexed if u.event is not None] + [e for _, e in indexed.values() if e is not None]
    linked_to = {event.prev_hash for event in locked}
    problems: list[ChainBreak] = []
    warnings: list[ChainBreak] = []
    for item in unindexed:
        event = item.event
        if event is None or not _written_by_append(event, item.key, tenant_id, ticket_id):
            named = _KEY_SEQ.search(item.key)
            problems.append(
                ChainBreak(int(named.group(1)) if named else 0, f"foreign object in the audit folder: {item.key}")
            )
            continue
        seq = event.seq
        name = f"unindexed event at seq {seq} ({event.type} at {event.at.isoformat()})"
        before = GENESIS if seq == 0 else indexed.get(seq - 1, (None, None))[0]
        twin = indexed.get(seq, (None, None))[1]
        if item.problem:
            problems.append(ChainBreak(seq, f"{name}: {item.problem}"))
        elif event.hash in linked_to:
            problems.append(ChainBreak(seq, f"{name} removed from the index: a later locked event links to it"))
        elif event.prev_hash != before:
            problems.append(ChainBreak(seq, f"{name} does not link to the indexed event before it"))
        elif twin is not None and (twin.at, twin.prev_hash) == (event.at, event.prev_hash):
            # Every append seals its own time, so two events of one moment are one event sealed twice.
            changed = ", ".join(f for f in ("type", "actor", "payload", "evidence") if _differs(twin, event, f))
            problems.append(
                ChainBreak(seq, f"event at seq {seq} re-sealed: the index names a copy with another {changed or 'hash'}")
            )
        elif seq == last + 1 and (seq > 0 or chain_started):
            # A failure although a failed append can leave one: it cannot be told from a removed last event,
            # the cheapest way to erase a decision. The ticket's next append turns a real leftover into a warning.
            problems.append(
                ChainBreak(
                    seq,
                    f"unindexed trailing event at seq {seq} ({event.type} at {event.at.isoformat()}): the index ends "
                    "before the last locked event (removed from the index, or an append that never committed)",
                )
            )
        elif seq == last + 1:
            # Seq 0 commits together with the audited-tickets listing: neither exists, so nothing was committed.
            warnings.append(ChainBreak(seq, f"{name}: an append that never committed, the ticket has no chain"))
        else:
            again = [n for n, (_, e) in sorted(indexed.items()) if n >= seq and e and _same_event(e, event)]
            where = (
                f"recorded again at seq {again[0]} (a retried or raced append)"
                if again
                else f"an append that did not commit, or an event replaced in the index: compare with seq {seq}"
            )
            # A warning, not a failure: failed appends leave these routinely, and nothing stored tells them apart
            # from a replaced event whose forger also changed its time. Only an anchor outside the roles can.
            attempt = f"unindexed attempt at seq {seq} ({event.type} at {event.at.isoformat()})"
            warnings.append(ChainBreak(seq, f"{attempt}: {where}"))
    return problems, warnings


def _written_by_append(event: AuditEvent, key: str, tenant_id: str, ticket_id: str) -> bool:
    return (
        (event.tenant_id, event.ticket_id) == (tenant_id, ticket_id)
        and event.payload_sha256 == sha256_hex(canonical_json(event.payload))
        and event.hash == event_hash(event)
        and key == keys.audit_object_key(tenant_id, ticket_id, event.seq, event.hash)
    )


def _differs(a: AuditEvent, b: AuditEvent, field: str) -> bool:
    return a.model_dump(mode="json")[field] != b.model_dump(mode="json")[field]


def _same_event(a: AuditEvent, b: AuditEvent) -> bool:
    return not any(_differs(a, b, f) for f in ("type", "actor", "payload", "evidence"))
