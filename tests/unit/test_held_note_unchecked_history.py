"""The note that hands a held reply to agents says what is known: a ticket whose history was too long to check may
already hold an earlier attempt of the reply, so the note must not tell the agent it was never sent."""

from deflect.domain.models import OutboxItem
from deflect.helpdesk.errors import HelpdeskConflict
from deflect.services.writeback import held_note


def _reply() -> OutboxItem:
    return OutboxItem(
        tenant_id="acme",
        ticket_id="t-1",
        provider="zendesk",
        external_ticket_id="101",
        kind="public_reply",
        body="Here is how to fix it.",
        attempts=2,
    )


def test_a_reply_held_after_a_human_edit_is_reported_as_not_sent():
    note = held_note(
        _reply(), HelpdeskConflict("zendesk ticket changed after it was read", current={"changes": []})
    )
    assert note is not None
    assert "this ticket changed after it was prepared" in note.body
    assert "(not sent to the customer)" in note.body
    assert note.body.endswith("Here is how to fix it.")


def test_a_reply_held_on_history_too_long_to_check_warns_it_may_have_been_sent():
    conflict = HelpdeskConflict(
        "zendesk ticket history longer than 10 pages could not be checked",
        current={"changes": [], "delivered": [], "unchecked_history": True},
    )
    note = held_note(_reply(), conflict)
    assert note is not None
    assert "its history was too long to check for changes since it was prepared" in note.body
    assert "an earlier attempt may have reached the customer: check" in note.body
    assert "not sent to the customer" not in note.body
