"""Domain events onto an EventBridge bus: PutEvents in batches of 10, partial failures retried once."""

from __future__ import annotations

from typing import Any

from deflect.adapters.aws_errors import translated
from deflect.domain.errors import Forbidden, TransientFailure
from deflect.domain.tenancy import TenantContext
from deflect.insight.domain_events import SOURCE, DomainEvent

MAX_ENTRIES = 10  # PutEvents limit per call


class EventBridgePublisher:
    def __init__(self, client: Any, bus_name: str) -> None:
        self._client = client
        self._bus = bus_name

    def entry(self, event: DomainEvent) -> dict[str, Any]:
        return {
            "Source": SOURCE,
            "DetailType": event.detail_type,
            "Detail": event.detail.model_dump_json(),
            "EventBusName": self._bus,
            "Time": event.detail.occurred_at,
        }

    def publish(self, ctx: TenantContext, events: list[DomainEvent]) -> None:
        if any(e.tenant_id != ctx.tenant_id for e in events):
            raise Forbidden("event outside the caller's tenant")
        for start in range(0, len(events), MAX_ENTRIES):
            entries = [self.entry(e) for e in events[start : start + MAX_ENTRIES]]
            failed = self._put(entries)
            if failed:
                failed = self._put(failed)  # throttled or internal entries usually pass on a second try
            if failed:
                raise TransientFailure(f"PutEvents: {len(failed)} entries failed")

    def _put(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with translated("PutEvents"):
            response = self._client.put_events(Entries=entries)
        if not response.get("FailedEntryCount"):
            return []
        return [
            entry
            for entry, result in zip(entries, response.get("Entries", []), strict=False)
            if result.get("ErrorCode")
        ]


class NoEventBus:
    """Where no bus is configured (tests, tools): events are dropped on purpose, not by accident."""

    def publish(self, ctx: TenantContext, events: list[DomainEvent]) -> None:
        return None
