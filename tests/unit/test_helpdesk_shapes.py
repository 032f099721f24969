"""Connector requests match the providers' documented shapes: paths, methods, bodies and auth headers.

Expected shapes are written out here from the providers' API references (Zendesk Tickets API with
safe_update/updated_stamp and audit metadata, Intercom Conversations/Tags, Freshdesk v2 tickets, Jira Cloud
platform v3 comments/transitions with the `sd.public.comment` property), not read back from the local servers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from deflect.domain.models import OutboxItem, RequestedAction
from deflect.helpdesk.directory import CONNECTORS
from deflect.helpdesk.models import HelpdeskCredentials
from infra.local.helpdesks import credentials_for
from infra.local.helpdesks.inprocess import BASE_URL, InProcessHttp

ACCOUNT = "acme"


@pytest.fixture
def http() -> InProcessHttp:
    return InProcessHttp(sleep=lambda s: None)


def connector(http: InProcessHttp, provider: str):
    creds = HelpdeskCredentials.parse(provider, json.dumps(credentials_for(provider, ACCOUNT, BASE_URL)))
    return CONNECTORS[provider](ACCOUNT, creds, http)


def item(provider: str, ticket_id: str, **kw) -> OutboxItem:
    return OutboxItem(
        tenant_id=ACCOUNT, ticket_id="t-1", provider=provider, external_ticket_id=ticket_id, attempts=1, **kw
    )


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def writes(http: InProcessHttp):
    return [s for s in http.sent if s.method != "GET"]


def test_zendesk_update_is_one_safe_put_with_comment_tags_status_fields_and_our_audit_marker(http):
    ticket = http.state.create_ticket("zendesk", ACCOUNT)
    seen_at = ticket.updated_at  # what the decision read (the live ticket moves on when we update it)
    out = item(
        "zendesk",
        ticket.id,
        kind="public_reply",
        body="Reset it from Settings > Security.",
        tags=["deflected", "kb-cited"],
        status_value="solved",
        custom_fields={"360001": "password"},
        expected_external_updated_at=seen_at,
    )
    connector(http, "zendesk").send(out)
    [put] = writes(http)
    assert put.method == "PUT"
    assert put.url == f"{BASE_URL}/zendesk/{ACCOUNT}/api/v2/tickets/{ticket.id}.json"
    assert put.headers["Authorization"] == basic(f"bot@{ACCOUNT}.example/token", f"zd-{ACCOUNT}-token")
    assert put.headers["Content-Type"] == "application/json"
    assert put.body == {
        "ticket": {
            "comment": {"body": "Reset it from Settings > Security.", "public": True},
            "additional_tags": ["deflected", "kb-cited"],
            "status": "solved",
            "custom_fields": [{"id": 360001, "value": "password"}],
            "metadata": {"deflect_outbox_id": out.outbox_id},
            "safe_update": True,
            "updated_stamp": seen_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
    }


def test_zendesk_internal_note_is_a_private_comment_and_has_no_safe_update_without_a_snapshot(http):
    ticket = http.state.create_ticket("zendesk", ACCOUNT)
    connector(http, "zendesk").send(item("zendesk", ticket.id, kind="internal_note", body="Checked logs."))
    [put] = writes(http)
    assert put.body["ticket"]["comment"] == {"body": "Checked logs.", "public": False}
    assert "safe_update" not in put.body["ticket"] and "updated_stamp" not in put.body["ticket"]


def test_intercom_reply_as_admin_then_tag_then_close(http):
    conversation = http.state.create_ticket("intercom", ACCOUNT)
    connector(http, "intercom").send(
        item(
            "intercom",
            conversation.id,
            kind="public_reply",
            body="Try this.",
            tags=["deflected"],
            status_value="closed",
        )
    )
    sent = writes(http)
    assert [(s.method, s.url.removeprefix(f"{BASE_URL}/intercom/{ACCOUNT}")) for s in sent] == [
        ("POST", f"/conversations/{conversation.id}/reply"),
        ("POST", "/tags"),
        ("POST", f"/conversations/{conversation.id}/tags"),
        ("POST", f"/conversations/{conversation.id}/parts"),
    ]
    reply, tag, attach, close = sent
    assert reply.body == {
        "message_type": "comment",
        "type": "admin",
        "admin_id": "9001",
        "body": "<p>Try this.</p>",
    }
    assert tag.body == {"name": "deflected"}
    assert attach.body == {"id": http.state.tags[("intercom", ACCOUNT)]["deflected"], "admin_id": "9001"}
    assert close.body == {"message_type": "close", "type": "admin", "admin_id": "9001"}
    for request in http.sent:
        assert request.headers["Authorization"] == f"Bearer ic-{ACCOUNT}-token"
        assert request.headers["Intercom-Version"] == "2.11"


def test_intercom_note_and_snooze(http):
    conversation = http.state.create_ticket("intercom", ACCOUNT)
    connector(http, "intercom").send(
        item("intercom", conversation.id, kind="internal_note", body="FYI", status_value="snoozed")
    )
    reply, snooze = writes(http)
    assert reply.body["message_type"] == "note"
    assert snooze.body["message_type"] == "snoozed" and snooze.body["admin_id"] == "9001"
    assert isinstance(snooze.body["snoozed_until"], int)


def test_freshdesk_reply_note_and_ticket_update(http):
    ticket = http.state.create_ticket("freshdesk", ACCOUNT, tags=["billing"])
    fd = connector(http, "freshdesk")
    fd.send(
        item(
            "freshdesk",
            ticket.id,
            kind="public_reply",
            body="Done.",
            tags=["deflected"],
            status_value="resolved",
        )
    )
    fd.send(item("freshdesk", ticket.id, kind="internal_note", body="Internal."))
    reply, update, note = writes(http)
    root = f"{BASE_URL}/freshdesk/{ACCOUNT}/api/v2/tickets/{ticket.id}"
    assert (reply.method, reply.url, reply.body) == ("POST", f"{root}/reply", {"body": "<p>Done.</p>"})
    # Freshdesk replaces the tag list on update: the full list is sent, the agent's tag kept.
    assert (update.method, update.url, update.body) == (
        "PUT",
        root,
        {"status": 4, "tags": ["billing", "deflected"]},
    )
    assert (note.method, note.url, note.body) == (
        "POST",
        f"{root}/notes",
        {"body": "<p>Internal.</p>", "private": True},
    )
    for request in http.sent:
        assert request.headers["Authorization"] == basic(f"fd-{ACCOUNT}-key", "X")


def test_jira_internal_comment_labels_and_transition(http):
    issue = http.state.create_ticket("jira", ACCOUNT)
    out = item(
        "jira",
        issue.id,
        kind="internal_note",
        body="Line one\nline two\n\nSecond block",
        tags=["needs review"],
        status_value="solved",
    )
    connector(http, "jira").send(out)
    comment, labels, transition = writes(http)
    root = f"{BASE_URL}/jira/{ACCOUNT}/rest/api/3/issue/{issue.id}"
    assert (comment.method, comment.url) == ("POST", f"{root}/comment")
    assert comment.body == {
        "body": {
            "type": "doc",
            "version": 1,
            "content": [
                {
                    "type": "paragraph",
                    "content": [
                        {"type": "text", "text": "Line one"},
                        {"type": "hardBreak"},
                        {"type": "text", "text": "line two"},
                    ],
                },
                {"type": "paragraph", "content": [{"type": "text", "text": "Second block"}]},
            ],
        },
        "properties": [
            {"key": "sd.public.comment", "value": {"internal": True}},
            {"key": "deflect.outbox", "value": {"outbox_id": out.outbox_id}},
        ],
    }
    assert (labels.method, labels.url, labels.body) == (
        "PUT",
        root,
        {"update": {"labels": [{"add": "needs_review"}]}},
    )
    # status_map (from the tenant's secret) maps "solved" to the workflow's "Resolved"
    assert (transition.method, transition.url, transition.body) == (
        "POST",
        f"{root}/transitions",
        {"transition": {"id": "41"}},
    )
    for request in http.sent:
        assert request.headers["Authorization"] == basic(f"bot@{ACCOUNT}.example", f"jira-{ACCOUNT}-token")


def test_jira_public_comment_says_internal_false(http):
    issue = http.state.create_ticket("jira", ACCOUNT)
    connector(http, "jira").send(item("jira", issue.id, kind="public_reply", body="Hi"))
    [comment] = writes(http)
    assert comment.body["properties"][0] == {"key": "sd.public.comment", "value": {"internal": False}}


def test_crm_webhook_is_signed_with_a_timestamp_and_carries_the_idempotency_key(http):
    out = item(
        "zendesk",
        "42",
        kind="account_action",
        action=RequestedAction(kind="refund", amount="25.00", currency="EUR"),
        caused_by="task_1",
    )
    connector(http, "crm").send(out)
    [post] = http.sent
    assert post.method == "POST" and post.url == f"{BASE_URL}/crm/{ACCOUNT}"
    assert post.headers["Idempotency-Key"] == out.outbox_id
    ts = post.headers["X-Deflect-Timestamp"]
    raw = json.dumps(post.body, sort_keys=True, separators=(",", ":")).encode()
    expected = hmac.new(f"crm-{ACCOUNT}-secret".encode(), f"{ts}.".encode() + raw, hashlib.sha256).hexdigest()
    assert post.headers["X-Deflect-Signature"] == f"v1={expected}"
    assert post.body["action"] == {"kind": "refund", "amount": "25.00", "currency": "EUR", "target": None}
    assert post.body["approved_by"] == "task_1"
    assert "Authorization" not in post.headers


def test_every_request_names_its_outbox_item(http):
    ticket = http.state.create_ticket("freshdesk", ACCOUNT)
    out = item("freshdesk", ticket.id, kind="public_reply", body="x")
    connector(http, "freshdesk").send(out)
    assert {s.headers["X-Deflect-Outbox-Id"] for s in http.sent} == {out.outbox_id}
