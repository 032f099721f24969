"""Hash-chain rules of the audit log (pure: no storage)."""

from __future__ import annotations

from dataclasses import dataclass

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
