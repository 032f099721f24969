"""On a ticket whose history is longer than a connector reads, the entries it leaves unread are the newest ones: a
human's recent edit, or this item's own earlier comment. Writeback must never act as if it had read them: a newer
human edit is never overwritten and a retry never posts a second copy; instead the item goes to a human as a
conflict. Tickets of ordinary length are handled as before.

The local helpdesks (infra/local/helpdesks) answer every history read in one page; the transports below page
Zendesk's audits and Jira's changelog the way the providers do, and cut Intercom's conversation parts at Intercom's
documented limit, so the real connectors run against long histories.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from deflect.domain.models import OutboxItem
from deflect.helpdesk.errors import HelpdeskConflict
from deflect.helpdesk.http import HttpResponse
from infra.local.helpdesks import Fault
from infra.local.helpdesks.inprocess import InProcessHttp
from infra.local.helpdesks.state import BOT
from tests.unit.test_helpdesk_conflicts import connector

ACCOUNT = "acme"
ZENDESK_PAGE = 100  # audits per page (offset pagination)
INTERCOM_PARTS = 500  # "There is a limit of 500 parts" (Intercom's Conversation model)


class LongHistoryHttp(InProcessHttp):
    """The local helpdesks, with history paged or cut as the real providers do it."""

    changelog_page: int = 100  # Jira may return fewer changelog entries than `maxResults` asks for

    def _exchange(self, method, url, headers, body, timeout_s, attempt) -> HttpResponse:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        if method == "GET" and parts.path.endswith("/audits.json"):
            whole = super()._exchange(method, url.split("?")[0], headers, body, timeout_s, attempt)
            return _zendesk_page(whole, url.split("?")[0], int((query.get("page") or ["1"])[0]))
        answer = super()._exchange(method, url, headers, body, timeout_s, attempt)
        if method == "GET" and "/intercom/" in parts.path and "/conversations/" in parts.path:
            data = answer.json()
            listed = data["conversation_parts"]
            listed["conversation_parts"] = listed["conversation_parts"][:INTERCOM_PARTS]  # total_count stays
            return HttpResponse(answer.status, answer.headers, json.dumps(data).encode())
        if method == "GET" and parts.path.endswith("/changelog"):
            page = answer.json()
            page["values"] = page["values"][: self.changelog_page]
            page["maxResults"] = self.changelog_page
            page["isLast"] = page["startAt"] + len(page["values"]) >= page["total"]
            return HttpResponse(answer.status, answer.headers, json.dumps(page).encode())
        return answer


def _zendesk_page(whole: HttpResponse, url: str, page: int) -> HttpResponse:
    audits = whole.json()["audits"]
    chunk = audits[(page - 1) * ZENDESK_PAGE : page * ZENDESK_PAGE]
    more = page * ZENDESK_PAGE < len(audits)
    answer = {
        "audits": chunk,
        "next_page": f"{url}?page={page + 1}" if more else None,
        "previous_page": f"{url}?page={page - 1}" if page > 1 else None,
        "count": len(audits),
    }
    return HttpResponse(whole.status, whole.headers, json.dumps(answer).encode())


@pytest.fixture
def http() -> LongHistoryHttp:
    return LongHistoryHttp(sleep=lambda s: None)


def reply(provider: str, ticket, **kw) -> OutboxItem:
    fields = {
        "kind": "public_reply",
        "body": "Here is how to fix it.",
        "status_value": "solved",
        "tags": [],
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


def long_ticket(http: InProcessHttp, provider: str, entries: int, *, kind: str = "comment"):
    """A long-lived ticket: `entries` agent edits, all made well before the item at hand."""
    ticket = http.state.create_ticket(provider, ACCOUNT)
    for n in range(entries):
        http.state.human_edit(
            provider, ACCOUNT, ticket.id, kind, value=f"agent-{n}" if kind == "assignee" else None
        )
    long_ago = datetime.now(UTC) - timedelta(days=30)
    for n, event in enumerate(ticket.events):
        event.at = long_ago + timedelta(seconds=n)
    ticket.updated_at = ticket.events[-1].at
    return ticket


def bot_comments(provider: str, ticket) -> list:
    return [e for e in ticket.events if e.author == BOT[provider] and e.kind in ("comment", "note")]


# ---------------------------------------------------------------------------------------------- Zendesk
def test_zendesk_a_human_edit_past_the_audit_page_cap_is_never_overwritten(http):
    ticket = long_ticket(http, "zendesk", 1000)  # 1001 audits: 11 pages
    out = reply("zendesk", ticket)
    http.state.human_edit("zendesk", ACCOUNT, ticket.id, "status", value="hold")  # on page 11
    with pytest.raises(HelpdeskConflict) as raised:
        connector(http, "zendesk").send(out)
    assert ticket.status == "hold"  # the human's status stands
    assert bot_comments("zendesk", ticket) == []
    assert "could not be checked" in raised.value.reason


@pytest.mark.parametrize("mode", ["after", "hang_after"])
def test_zendesk_a_lost_answer_on_a_long_ticket_never_posts_twice(http, mode):
    ticket = long_ticket(http, "zendesk", 1000)
    out = reply("zendesk", ticket)
    http.state.faults.append(
        Fault(provider="zendesk", status=502, method="PUT", path_contains=".json", mode=mode)
    )
    with pytest.raises(HelpdeskConflict):
        connector(http, "zendesk").send(out)
    assert http.state.effects[out.outbox_id] == 1
    assert len(bot_comments("zendesk", ticket)) == 1


def test_zendesk_a_retry_on_a_long_ticket_never_posts_twice(http):
    ticket = long_ticket(http, "zendesk", 1000)
    out = reply("zendesk", ticket)
    connector(http, "zendesk").send(out)  # landed; its answer was lost with the worker
    with pytest.raises(HelpdeskConflict):
        connector(http, "zendesk").send(out.model_copy(update={"attempts": 2}))
    assert http.state.effects[out.outbox_id] == 1


def test_zendesk_tickets_of_a_few_pages_are_handled_as_before(http):
    ticket = long_ticket(http, "zendesk", 250)  # 3 pages
    out = reply("zendesk", ticket)
    connector(http, "zendesk").send(out)
    again = connector(http, "zendesk").send(out.model_copy(update={"attempts": 2}))
    assert again.replayed and http.state.effects[out.outbox_id] == 1

    edited = long_ticket(http, "zendesk", 250)
    held = reply("zendesk", edited)
    http.state.human_edit("zendesk", ACCOUNT, edited.id, "status", value="hold")  # on the last page
    with pytest.raises(HelpdeskConflict) as raised:
        connector(http, "zendesk").send(held)
    assert raised.value.current["changes"] and edited.status == "hold"


# ---------------------------------------------------------------------------------------------- Freshdesk
@pytest.mark.parametrize("mode", ["after", "hang_after"])
def test_freshdesk_a_lost_answer_on_a_long_ticket_never_posts_twice(http, mode):
    ticket = long_ticket(http, "freshdesk", 1000)  # 1001 conversations: 11 pages of 100
    out = reply("freshdesk", ticket)
    http.state.faults.append(
        Fault(provider="freshdesk", status=502, method="POST", path_contains="/reply", mode=mode)
    )
    with pytest.raises(HelpdeskConflict) as raised:
        connector(http, "freshdesk").send(out)
    assert http.state.effects[out.outbox_id] == 1
    assert "could not be checked" in raised.value.reason


def test_freshdesk_a_retried_note_on_a_long_ticket_never_posts_twice(http):
    ticket = long_ticket(http, "freshdesk", 1000)
    # A note checks no baseline (nothing of the agent's is overwritten), so only the retry reads the history.
    note = reply("freshdesk", ticket, kind="internal_note", body="Escalated to billing.", status_value=None)
    note = note.model_copy(update={"expected_external_updated_at": None})
    connector(http, "freshdesk").send(note)
    with pytest.raises(HelpdeskConflict):
        connector(http, "freshdesk").send(note.model_copy(update={"attempts": 2}))
    assert http.state.effects[note.outbox_id] == 1


def test_freshdesk_an_untouched_long_ticket_still_gets_its_reply(http):
    ticket = long_ticket(http, "freshdesk", 1000)
    out = reply("freshdesk", ticket)  # nobody changed the ticket since: its history decides nothing
    receipt = connector(http, "freshdesk").send(out)
    assert receipt.effects and http.state.effects[out.outbox_id] == 1


# ---------------------------------------------------------------------------------------------- Intercom
def test_intercom_a_customer_reply_past_the_part_limit_is_never_answered_over(http):
    ticket = long_ticket(http, "intercom", INTERCOM_PARTS + 5)
    out = reply("intercom", ticket)
    http.state.human_edit("intercom", ACCOUNT, ticket.id, "customer_reply")  # beyond the parts returned
    with pytest.raises(HelpdeskConflict) as raised:
        connector(http, "intercom").send(out)
    assert bot_comments("intercom", ticket) == []
    assert ticket.status == "open"
    assert "could not be checked" in raised.value.reason


def test_intercom_a_retry_on_a_long_conversation_never_posts_twice(http):
    ticket = long_ticket(http, "intercom", INTERCOM_PARTS + 5)
    note = reply("intercom", ticket, kind="internal_note", body="Escalated to billing.", status_value=None)
    note = note.model_copy(update={"expected_external_updated_at": None})
    connector(http, "intercom").send(note)  # a first attempt with no baseline rests on no history
    with pytest.raises(HelpdeskConflict):
        connector(http, "intercom").send(note.model_copy(update={"attempts": 2}))
    assert http.state.effects[note.outbox_id] == 1


# ---------------------------------------------------------------------------------------------- Jira
def test_jira_a_human_change_on_a_short_changelog_page_is_still_a_conflict(http):
    http.changelog_page = 50  # fewer than asked for: the newest changes are on a further page
    ticket = long_ticket(http, "jira", 150, kind="assignee")
    out = reply("jira", ticket)
    http.state.human_edit("jira", ACCOUNT, ticket.id, "status", value="In Progress")
    with pytest.raises(HelpdeskConflict):
        connector(http, "jira").send(out)
    assert bot_comments("jira", ticket) == []
    assert ticket.status == "In Progress"


def test_jira_a_retried_note_under_a_page_of_newer_comments_never_posts_twice(http):
    ticket = http.state.create_ticket("jira", ACCOUNT)
    note = reply("jira", ticket, kind="internal_note", body="Escalated to billing.", status_value=None)
    note = note.model_copy(update={"expected_external_updated_at": None})
    connector(http, "jira").send(note)
    for _ in range(100):  # the newest 100 comments, all after our note
        http.state.human_edit("jira", ACCOUNT, ticket.id, "customer_reply")
    with pytest.raises(HelpdeskConflict):
        connector(http, "jira").send(note.model_copy(update={"attempts": 2}))
    assert http.state.effects[note.outbox_id] == 1


def test_jira_a_long_lived_issue_still_finds_its_own_earlier_comment(http):
    ticket = long_ticket(http, "jira", 150)  # 150 old comments: more than one page, none of them recent
    out = reply("jira", ticket, status_value=None)
    connector(http, "jira").send(out)
    again = connector(http, "jira").send(out.model_copy(update={"attempts": 2}))
    assert again.replayed and http.state.effects[out.outbox_id] == 1
