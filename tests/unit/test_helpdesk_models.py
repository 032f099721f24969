"""Per-tenant helpdesk credentials: complete for their provider, https only, and never echoed in errors;
outbox items built for a ticket carry the helpdesk version the decision saw."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from deflect.domain.models import RequestedAction, Ticket
from deflect.helpdesk.errors import HelpdeskNotConfigured
from deflect.helpdesk.models import HelpdeskCredentials
from deflect.services import outbox


def parse(name: str, **fields) -> HelpdeskCredentials:
    return HelpdeskCredentials.parse(name, json.dumps(fields))


def test_a_complete_zendesk_secret_parses_and_keeps_the_token_secret():
    creds = parse(
        "zendesk",
        base_url="https://acme.zendesk.com/",
        email="bot@acme.com",
        api_token="t0p",
        bot_user_id="9",
    )
    assert creds.base_url == "https://acme.zendesk.com"
    assert "t0p" not in repr(creds)
    assert creds.rate_per_minute == 100  # the conservative default


@pytest.mark.parametrize(
    "provider, fields",
    [
        ("zendesk", {"base_url": "https://a.zendesk.com", "bot_user_id": "9"}),  # no token of any kind
        ("intercom", {"base_url": "https://api.intercom.io", "api_token": "x"}),  # who are we?
        ("jira", {"base_url": "https://a.atlassian.net", "api_token": "x", "bot_user_id": "b"}),  # no email
        ("crm", {"base_url": "https://crm.example.com/hooks"}),  # nothing to sign with
    ],
)
def test_an_incomplete_secret_is_not_configured(provider, fields):
    with pytest.raises(HelpdeskNotConfigured):
        parse(provider, **fields)


def test_credentials_are_never_sent_over_plain_http_except_to_this_machine():
    with pytest.raises(HelpdeskNotConfigured):
        parse("freshdesk", base_url="http://acme.freshdesk.com", api_token="k", bot_user_id="1")
    assert parse("freshdesk", base_url="http://127.0.0.1:8025/freshdesk/acme", api_token="k", bot_user_id="1")


def test_an_invalid_secret_does_not_leak_into_the_error():
    with pytest.raises(HelpdeskNotConfigured) as raised:
        HelpdeskCredentials.parse(
            "intercom", '{"base_url": "ftp://x", "api_token": "sup3rsecret", "bot_user_id": "1"}'
        )
    assert "sup3rsecret" not in str(raised.value) and "sup3rsecret" not in repr(raised.value.context)
    with pytest.raises(HelpdeskNotConfigured):
        HelpdeskCredentials.parse("intercom", "sup3rsecret")


def test_a_secret_for_another_provider_is_refused():
    with pytest.raises(HelpdeskNotConfigured):
        parse(
            "jira",
            provider="zendesk",
            base_url="https://a.zendesk.com",
            email="e",
            api_token="t",
            bot_user_id="9",
        )


def ticket() -> Ticket:
    return Ticket(
        tenant_id="acme",
        ticket_id="t-1",
        provider="zendesk",
        external_id="42",
        external_updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_a_reply_carries_the_version_the_decision_saw_and_a_note_does_not_need_one():
    assert outbox.reply(ticket(), "Hi").expected_external_updated_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert outbox.reply(ticket(), "FYI", public=False).expected_external_updated_at is None


def test_items_without_content_are_refused_at_the_source():
    with pytest.raises(ValueError):
        outbox.reply(ticket(), "  ")
    with pytest.raises(ValueError):
        outbox.new_item(ticket(), "account_action", action=RequestedAction(kind="none"))


def test_outbox_writes_are_new_items_for_the_same_transaction():
    item = outbox.reply(ticket(), "Hi")
    [put] = outbox.writes([item])
    assert put.pk == f"T#acme#OUTBOX#{item.outbox_id}" and put.sk == "META" and put.expect == "new"
    assert put.indexes["GSI3PK"] == "T#acme#OUTBOX#pending"


def stream_record(event: str, status: str, pk: str = "T#acme#OUTBOX#obx_1", sk: str = "META") -> dict:
    data = json.dumps({"outbox_id": "obx_1", "status": status})
    return {
        "eventName": event,
        "eventSource": "aws:dynamodb",
        "dynamodb": {"NewImage": {"PK": {"S": pk}, "SK": {"S": sk}, "data": {"S": data}}},
    }


def test_the_stream_dispatches_pending_items_only():
    assert outbox.ref_from_stream_record(stream_record("INSERT", "pending")) == outbox.OutboxRef(
        tenant_id="acme", outbox_id="obx_1"
    )
    assert outbox.ref_from_stream_record(stream_record("MODIFY", "pending"))  # a replay
    assert outbox.ref_from_stream_record(stream_record("MODIFY", "dispatching")) is None  # our own progress
    assert outbox.ref_from_stream_record(stream_record("MODIFY", "done")) is None
    assert outbox.ref_from_stream_record(stream_record("REMOVE", "pending")) is None
    assert outbox.ref_from_stream_record(stream_record("INSERT", "pending", sk="RECEIPT")) is None
    assert outbox.ref_from_stream_record(stream_record("INSERT", "pending", pk="T#acme#TICKET#t-1")) is None


def test_queue_messages_parse_to_refs_and_anything_else_is_refused():
    assert (
        outbox.ref_from_message('{"tenant_id": "acme", "outbox_id": "obx_1", "ticket_id": "t"}').outbox_id
        == "obx_1"
    )
    for bad in ("not json", '{"outbox_id": "x"}', '{"tenant_id": "AC ME", "outbox_id": "x"}'):
        with pytest.raises(ValueError):
            outbox.ref_from_message(bad)
