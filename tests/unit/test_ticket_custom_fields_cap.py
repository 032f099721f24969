"""A ticket's custom fields stay bounded however many messages bring new field names.

Each message's fields are merged into the ticket item (400 KB limit in DynamoDB). Unbounded, a second in-limit message
with other field names made the ticket too large: refused 413, and lost (the helpdesk does not retry a 4xx). Now the
newest message's values are kept first and the oldest fields give way, counted in a metric.

Through the real Intake service on the in-memory store (tests/unit/triage_fakes.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from deflect.repositories import Tickets
from deflect.services.intake import (
    MAX_TICKET_FIELD_BYTES,
    MAX_TICKET_FIELDS,
    merged_custom_fields,
    ticket_id_for,
)
from tests.unit.test_intake_quarantine_replay import Desk as QuarantineDesk


class Desk(QuarantineDesk):
    """Tenant acme with the generic webhook, delivering messages of one ticket that carry custom fields."""

    def deliver_fields(self, n: int, fields: dict[str, Any]) -> Any:
        body = json.dumps(
            {
                "event": "ticket.created" if n == 0 else "message.created",
                "ticket": {"id": "HD-CF", "subject": "Export fails", "custom_fields": fields},
                "requester": {"email": "a@example.com"},
                "message": {"id": f"m-{n}", "body": f"Message number {n} about error E42."},
            },
            ensure_ascii=False,
        ).encode()
        return self.deliver(body, delivery_id=f"d-{n}")

    def ticket(self) -> Any:
        return Tickets(self.world.store).get(self.ctx, ticket_id_for("generic", "HD-CF"))

    def ticket_messages(self) -> list[Any]:
        return self.messages(ticket_id_for("generic", "HD-CF"))


@pytest.fixture
def desk() -> Desk:
    return Desk()


def stored_bytes(fields: dict[str, Any]) -> int:
    return len(json.dumps(fields, ensure_ascii=False, default=str).encode())


def test_many_messages_with_new_field_names_keep_the_ticket_bounded_and_newest(desk: Desk) -> None:
    for n in range(6):  # 6 x 40 field names: more than a ticket keeps
        assert desk.deliver_fields(n, {f"f{n}_{i}": f"value {n}.{i}" for i in range(40)}).status_code == 200

    fields = desk.ticket().custom_fields
    assert len(desk.ticket_messages()) == 6
    assert len(fields) == MAX_TICKET_FIELDS
    assert {f"f5_{i}" for i in range(40)} <= set(fields)  # the newest message's fields are all there
    assert (
        sum(v for name, v in desk.metrics if name == "TicketCustomFieldsDropped")
        == 6 * 40 - MAX_TICKET_FIELDS
    )


def test_large_field_values_are_bounded_in_bytes_and_the_message_is_still_stored(desk: Desk) -> None:
    big = "\u4e00" * 2000  # 6 KB of UTF-8 each
    for n in range(3):
        assert desk.deliver_fields(n, {f"f{n}_{i}": big for i in range(40)}).status_code == 200

    fields = desk.ticket().custom_fields
    assert len(desk.ticket_messages()) == 3
    assert stored_bytes(fields) <= MAX_TICKET_FIELD_BYTES + 1024
    assert {f"f2_{i}" for i in range(40)} <= set(fields)


def test_a_field_sent_again_takes_its_newest_value(desk: Desk) -> None:
    desk.deliver_fields(0, {"plan": "free", "region": "eu"})
    desk.deliver_fields(1, {"plan": "enterprise"})

    assert desk.ticket().custom_fields == {"plan": "enterprise", "region": "eu"}
    assert not [m for m in desk.metrics if m[0] == "TicketCustomFieldsDropped"]


def test_the_merge_prefers_the_message_and_reports_what_it_dropped() -> None:
    older = {f"old_{i}": i for i in range(MAX_TICKET_FIELDS)}
    newest = {"old_3": "changed", "new": "x"}

    kept, dropped = merged_custom_fields(newest, older)

    assert list(kept)[:2] == ["old_3", "new"] and kept["old_3"] == "changed"
    assert len(kept) == MAX_TICKET_FIELDS and dropped == 1
