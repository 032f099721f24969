"""A newer human edit is never overwritten, for every provider; Deflect's own earlier edits are not mistaken
for one; and an answer lost after the helpdesk applied our change never produces a second comment."""

from __future__ import annotations

import json

import pytest

from deflect.domain.models import OutboxItem
from deflect.helpdesk.directory import CONNECTORS
from deflect.helpdesk.errors import HelpdeskConflict
from deflect.helpdesk.models import HelpdeskCredentials
from infra.local.helpdesks import Fault, credentials_for
from infra.local.helpdesks.inprocess import BASE_URL, InProcessHttp

ACCOUNT = "acme"
HELPDESKS = ["zendesk", "intercom", "freshdesk", "jira"]
EDITS = ["comment", "status", "assignee", "customer_reply"]
NEW_STATUS = {"zendesk": "pending", "intercom": "closed", "freshdesk": "3", "jira": "In Progress"}


@pytest.fixture
def http() -> InProcessHttp:
    return InProcessHttp(sleep=lambda s: None)


def connector(http: InProcessHttp, provider: str):
    creds = HelpdeskCredentials.parse(provider, json.dumps(credentials_for(provider, ACCOUNT, BASE_URL)))
    return CONNECTORS[provider](ACCOUNT, creds, http)


def reply(provider: str, ticket, **kw) -> OutboxItem:
    fields = {
        "kind": "public_reply",
        "body": "Here is how to fix it.",
        "status_value": "solved",
        "tags": ["deflected"],
        **kw,
    }
    return OutboxItem(
        tenant_id=ACCOUNT,
        ticket_id="t-1",
        provider=provider,
        external_ticket_id=ticket.id,
        expected_external_updated_at=ticket.updated_at,
        attempts=1,
        **fields,
    )


def public_bot_comments(ticket) -> list:
    return [e for e in ticket.events if e.author in ("9001", "bot-9001") and e.kind == "comment"]


@pytest.mark.parametrize("provider", HELPDESKS)
@pytest.mark.parametrize("edit", EDITS)
def test_a_newer_human_edit_is_never_overwritten(http, provider, edit):
    ticket = http.state.create_ticket(provider, ACCOUNT)
    out = reply(provider, ticket)  # the decision read the ticket here
    http.state.human_edit(
        provider, ACCOUNT, ticket.id, edit, value=NEW_STATUS[provider] if edit == "status" else None
    )
    status_after_human = ticket.status
    with pytest.raises(HelpdeskConflict) as raised:
        connector(http, provider).send(out)
    assert public_bot_comments(ticket) == []  # the customer got no reply
    assert ticket.status == status_after_human  # the human's status stands
    assert "deflected" not in ticket.tags
    assert raised.value.current["changes"], "the conflict records what changed"
    assert "Here is how" not in json.dumps(raised.value.current)  # and never anyone's text


@pytest.mark.parametrize("provider", HELPDESKS)
def test_deflects_own_earlier_update_is_not_a_conflict(http, provider):
    ticket = http.state.create_ticket(provider, ACCOUNT)
    seen = ticket.updated_at
    first = reply(provider, ticket, kind="internal_note", body="Looking into it", status_value=None, tags=[])
    first = first.model_copy(update={"expected_external_updated_at": seen})
    receipt = connector(http, provider).send(first)
    # The second item of the same decision still carries the old snapshot; the writeback service moves the
    # baseline to our own last verified write (the receipt's time), and then it is not a conflict.
    second = reply(provider, ticket).model_copy(
        update={"expected_external_updated_at": receipt.external_updated_at or seen}
    )
    connector(http, provider).send(second)
    assert len(public_bot_comments(ticket)) == 1


@pytest.mark.parametrize("provider", HELPDESKS)
@pytest.mark.parametrize("mode", ["after", "hang_after"])
def test_a_lost_answer_after_the_comment_was_made_never_makes_a_second_one(http, provider, mode):
    ticket = http.state.create_ticket(provider, ACCOUNT)
    out = reply(provider, ticket)
    write_path = {"zendesk": ".json", "intercom": "/reply", "freshdesk": "/reply", "jira": "/comment"}[
        provider
    ]
    http.state.faults.append(
        Fault(
            provider=provider,
            status=502,
            method={"zendesk": "PUT"}.get(provider, "POST"),
            path_contains=write_path,
            mode=mode,
        )
    )
    receipt = connector(http, provider).send(out)
    assert http.state.effects[out.outbox_id] == 1
    assert len(public_bot_comments(ticket)) == 1
    assert receipt.effects


@pytest.mark.parametrize("kind", ["public_reply", "internal_note"])
def test_a_jira_site_that_leaves_out_comment_properties_still_gets_one_comment(http, kind):
    http.state.jira_expands_comment_properties = False
    ticket = http.state.create_ticket("jira", ACCOUNT)
    out = reply("jira", ticket, kind=kind, body="First line.\n\nSecond paragraph, with <b>care</b> & detail.")
    http.state.faults.append(
        Fault(provider="jira", status=502, method="POST", path_contains="/comment", mode="after")
    )
    receipt = connector(http, "jira").send(out)
    assert http.state.effects[out.outbox_id] == 1 and receipt.effects
    again = connector(http, "jira").send(out.model_copy(update={"attempts": 2}))
    assert again.replayed and http.state.effects[out.outbox_id] == 1


@pytest.mark.parametrize("provider", HELPDESKS)
def test_a_retry_after_a_crash_finds_the_earlier_comment(http, provider):
    ticket = http.state.create_ticket(provider, ACCOUNT)
    out = reply(provider, ticket)
    connector(http, provider).send(out)
    again = connector(http, provider).send(out.model_copy(update={"attempts": 2}))
    assert again.replayed
    assert http.state.effects[out.outbox_id] == 1


def test_a_5xx_before_the_comment_was_made_is_retried_with_backoff(http):
    sleeps: list[float] = []
    http.sleep = sleeps.append
    ticket = http.state.create_ticket("freshdesk", ACCOUNT)
    http.state.faults.append(
        Fault(provider="freshdesk", status=503, method="POST", path_contains="/reply", count=2)
    )
    out = reply("freshdesk", ticket)
    connector(http, "freshdesk").send(out)
    assert http.state.effects[out.outbox_id] == 1
    assert len(sleeps) == 2 and sleeps[0] < sleeps[1]


def test_freshdesk_property_only_item_already_applied_is_a_no_op(http):
    ticket = http.state.create_ticket("freshdesk", ACCOUNT, status="4", tags=["deflected"])
    out = reply("freshdesk", ticket, kind="status", body=None, status_value="resolved")
    http.state.human_edit("freshdesk", ACCOUNT, ticket.id, "assignee")
    receipt = connector(http, "freshdesk").send(out)  # nothing to write, so nothing to overwrite
    assert receipt.replayed and receipt.external_updated_at is None
    assert [s.method for s in http.sent] == ["GET"]


def test_a_reply_to_a_zendesk_trigger_delivery_is_not_held_as_a_conflict(http):
    """A trigger's `{{ticket.updated_at_with_timestamp}}` stops at minutes: the customer's own update that fired
    it must not look newer than what triage read."""
    from deflect.webhooks import parse_payload

    ticket = http.state.create_ticket("zendesk", ACCOUNT)
    ticket.updated_at = ticket.updated_at.replace(second=27, microsecond=123000)
    trigger = {
        "event": "comment.created",
        "ticket": {
            "id": ticket.id,
            "subject": "Export fails",
            "latest_comment": "Still broken.",
            "updated_at": ticket.updated_at.strftime("%Y-%m-%dT%H:%MZ"),  # what the placeholder renders
            "requester": {"id": "1", "email": "maria@example.com"},
        },
        "current_user": {"id": "1", "role": "end-user"},
    }
    inbound = parse_payload("zendesk", ACCOUNT, trigger)
    out = reply("zendesk", ticket).model_copy(update={"expected_external_updated_at": inbound.updated_at})

    receipt = connector(http, "zendesk").send(out)
    assert receipt.effects and len(public_bot_comments(ticket)) == 1


def test_a_jira_agents_change_beyond_the_first_page_of_history_is_still_a_conflict(http):
    ticket = http.state.create_ticket("jira", ACCOUNT)
    for n in range(120):  # a long-lived issue: more history than Jira embeds in the issue
        http.state.human_edit("jira", ACCOUNT, ticket.id, "assignee", value=f"agent-{n}")
    out = reply("jira", ticket)
    http.state.human_edit("jira", ACCOUNT, ticket.id, "status", value="In Progress")
    with pytest.raises(HelpdeskConflict):
        connector(http, "jira").send(out)
    assert public_bot_comments(ticket) == []
