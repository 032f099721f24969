"""A ticket's diagnostics are stored as the rest of the ticket is: redacted. A value read from an attached log (which
intake never saw, so never redacted) keeps its value when it is a version, an OS, an error code or a request id,
and is stored as a placeholder when it is a key, a token, an email or a phone number."""

from __future__ import annotations

import json

from deflect.domain import keys
from deflect.domain.models import AttachmentRef, DecisionPolicy, DiagnosticsChecklist, Message
from deflect.ports import IntentPrediction
from deflect.repositories import Tickets, save
from tests.unit.triage_fakes import EXPORT_ARTICLE, make_world

CRASH = IntentPrediction(
    intent="error_report", confidence=0.9, kind="problem", product_area="troubleshooting"
)
REQUEST_ID = "3f2a8c1e-9b7d-4e2a-8c1f-0a9b8c7d6e5f"
API_KEY = "sk_live_51HqLyjWDarjtT1zdp7dcQ"


class Logs:
    """The helpdesk's attachments: each file's text by name."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def read_text(self, ctx, ticket, attachment):
        return self.files[attachment.name]


def triage_with_log(
    log: str, *required: str, mode: str = "auto", text: str = "The app crashes on every sync, log attached"
):
    world = make_world(
        articles=[EXPORT_ARTICLE],
        policy=DecisionPolicy(rollout_default=mode),
        diagnostics=[DiagnosticsChecklist(product_area="troubleshooting", required=list(required))],
        rules=[("crash", CRASH)],
    )
    world.service.attachments = Logs({"console.log": log})
    message = Message(
        tenant_id="acme",
        ticket_id="tkt-1",
        message_id="m-1",
        body_redacted=text,
        attachments=[
            AttachmentRef(name="console.log", url="https://acme.zendesk.com/a/2", content_type="text/plain")
        ],
    )
    world.ticket("tkt-1", "placeholder", message_id="m-0")
    save(world.store, world.ctx, [Tickets.message_write(message)])
    result = world.service.triage(world.ctx, "tkt-1", "m-1")
    items = world.store.query(world.ctx, keys.ticket_pk("acme", "tkt-1"), "DIAG#")
    return world, result, {i.data["name"]: i.data["value"] for i in items}


def test_diagnostics_from_an_attached_log_keep_their_values():
    log = (
        "2024-05-02 10:00:01 ERROR Syncbeam desktop v4.12.3 on macOS 14.5\n"
        f"2024-05-02 10:00:01 ERROR SB-4040 source object not found (request id: {REQUEST_ID})\n"
    )
    _, result, stored = triage_with_log(log, "app_version", "os", "error_code", "request_id")

    assert stored == {
        "app_version": "4.12.3",
        "os": "macOS 14.5",
        "error_code": "SB-4040",
        "request_id": REQUEST_ID,
    }
    assert result.missing_diagnostics == []


def test_a_secret_read_from_an_attached_log_is_not_stored_in_clear():
    # An SDK that logs its API key as the request's trace id: the value is found, but what is kept is redacted.
    log = f"2024-05-02 10:00:01 ERROR SB-4040 upload refused, trace id: {API_KEY}\n"
    world, result, stored = triage_with_log(log, "error_code", "request_id")

    assert stored == {"error_code": "SB-4040", "request_id": "[SECRET]"}
    assert result.missing_diagnostics == []  # it was given: the customer is not asked for it again
    everything = json.dumps([i.data for i in world.store.query(world.ctx, keys.ticket_pk("acme", "tkt-1"))])
    assert API_KEY not in everything


def test_a_redacted_diagnostic_is_not_rewritten_when_the_same_value_comes_again():
    log = f"2024-05-02 10:00:01 ERROR SB-4040 upload refused, trace id: {API_KEY}\n"
    world, _, _ = triage_with_log(log, "error_code", "request_id")
    pk = keys.ticket_pk("acme", "tkt-1")
    first = world.store.get(world.ctx, pk, "DIAG#request_id")
    again = Message(
        tenant_id="acme",
        ticket_id="tkt-1",
        message_id="m-2",
        body_redacted="Still crashing, same log",
        attachments=[
            AttachmentRef(name="console.log", url="https://acme.zendesk.com/a/3", content_type="text/plain")
        ],
    )
    save(world.store, world.ctx, [Tickets.message_write(again)])
    world.service.triage(world.ctx, "tkt-1", "m-2")

    # Still the first message's value: an agent sees where it was given first.
    assert world.store.get(world.ctx, pk, "DIAG#request_id").data == first.data


def test_the_agent_note_quotes_an_attached_log_redacted():
    # Assist mode: the draft reaches agents as an internal note listing what the customer provided. The helpdesk
    # stores that note, so a key the SDK logged must not be copied into it (nor anywhere else Deflect keeps).
    log = f"2024-05-02 10:00:01 ERROR SB-4040 upload refused, trace id: {API_KEY}\n"
    asked = "The CSV export crashes. How do I export a report to CSV? Log attached"
    world, result, _ = triage_with_log(log, "error_code", "request_id", mode="assist", text=asked)

    assert result.outcome == "deflect" and result.outbox_ids  # the draft went to agents as a note

    everything = json.dumps([item.data for item in world.store._items.values()])
    assert "SB-4040" in everything
    assert API_KEY not in everything
