"""The subset of each provider's API that writeback uses, answering in the provider's own shapes.

Every handler checks auth first, validates the request shape it documents, applies the change to the ticket,
and counts one effect per created comment/part/note/reply or CRM action against the outbox id sent with it.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from deflect.helpdesk.webhook import verify
from infra.local.helpdesks.state import BOT, Event, HelpdeskState, Ticket, credentials_for


@dataclass
class Request:
    provider: str
    account: str
    method: str
    path: str  # below /{provider}/{account}
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    raw: bytes
    outbox_id: str | None
    base_url: str

    @property
    def json(self) -> Any:
        return json.loads(self.raw or b"{}")


@dataclass
class Response:
    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class Reject(Exception):
    def __init__(self, status: int, payload: Any) -> None:
        super().__init__(status)
        self.response = Response(status, payload)


# ---------------------------------------------------------------------------------------------- shared
def _basic(headers: dict[str, str]) -> tuple[str, str] | None:
    value = headers.get("authorization", "")
    if not value.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(value[6:]).decode().partition(":")
    except ValueError:
        return None
    return user, password


def _require_json(req: Request) -> Any:
    if not req.headers.get("content-type", "").startswith("application/json"):
        raise Reject(415, {"error": "Content-Type must be application/json"})
    try:
        return req.json
    except ValueError:
        raise Reject(400, {"error": "body is not JSON"}) from None


def _ticket(state: HelpdeskState, req: Request, ticket_id: str) -> Ticket:
    ticket = state.ticket(req.provider, req.account, ticket_id)
    if ticket is None:
        raise Reject(404, {"error": "RecordNotFound", "description": "Not found"})
    return ticket


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _jira_time(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"


def _parse_stamp(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return parsed


def _text(body: str | None) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body or "")).strip()


# ---------------------------------------------------------------------------------------------- Zendesk
def zendesk(state: HelpdeskState, req: Request) -> Response:
    creds = credentials_for("zendesk", req.account, req.base_url)
    if _basic(req.headers) != (f"{creds['email']}/token", creds["api_token"]):
        raise Reject(401, {"error": "Couldn't authenticate you"})
    match = re.fullmatch(r"/api/v2/tickets/([^/]+?)(?:\.json)?", req.path)
    audits = re.fullmatch(r"/api/v2/tickets/([^/]+)/audits(?:\.json)?", req.path)
    if audits and req.method == "GET":
        ticket = _ticket(state, req, audits.group(1))
        return Response(
            200, {"audits": _zendesk_audits(ticket), "next_page": None, "previous_page": None, "count": 0}
        )
    if match and req.method == "GET":
        return Response(200, {"ticket": _zendesk_ticket(_ticket(state, req, match.group(1)))})
    if match and req.method == "PUT":
        return _zendesk_update(state, req, _ticket(state, req, match.group(1)))
    raise Reject(404, {"error": "InvalidEndpoint"})


def _zendesk_ticket(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": int(ticket.id),
        "status": ticket.status,
        "assignee_id": int(ticket.assignee) if ticket.assignee and ticket.assignee.isdigit() else None,
        "tags": ticket.tags,
        "custom_fields": [{"id": int(k), "value": v} for k, v in ticket.custom_fields.items()],
        "created_at": _iso(ticket.created_at),
        "updated_at": _iso(ticket.updated_at),
    }


def _zendesk_audits(ticket: Ticket) -> list[dict[str, Any]]:
    audits: dict[int, dict[str, Any]] = {}
    for event in ticket.events:
        audit_id = event.audit_id or event.id
        audit = audits.setdefault(
            audit_id,
            {
                "id": audit_id,
                "ticket_id": int(ticket.id),
                "author_id": int(event.author),
                "created_at": _iso(event.at),
                "metadata": {"system": {}, "custom": dict(event.metadata)},
                "events": [],
            },
        )
        if event.kind in ("comment", "note"):
            audit["events"].append(
                {"id": event.id, "type": "Comment", "body": event.body, "public": event.public}
            )
        else:
            audit["events"].append(
                {
                    "id": event.id,
                    "type": "Change",
                    "field_name": event.kind,
                    "value": event.value,
                    "previous_value": event.previous,
                }
            )
    return list(audits.values())


def _zendesk_update(state: HelpdeskState, req: Request, ticket: Ticket) -> Response:
    body = _require_json(req)
    update = body.get("ticket") if isinstance(body, dict) else None
    if not isinstance(update, dict):
        raise Reject(400, {"error": "RecordInvalid", "description": "ticket object required"})
    with state.lock:
        if "updated_stamp" in update and "safe_update" in update:
            stamp = _parse_stamp(update["updated_stamp"])
            if stamp is None:
                raise Reject(400, {"error": "RecordInvalid", "description": "updated_stamp is not a time"})
            if ticket.updated_at > stamp:
                raise Reject(
                    409,
                    {
                        "error": "UpdateConflict",
                        "description": "Safe Update prevented the update due to outdated ticket data",
                    },
                )
        at = state.tick(ticket)
        audit_id = state.next_id()
        author = BOT["zendesk"]
        metadata = update.get("metadata") or {}
        changes: list[Event] = []
        comment = update.get("comment")
        if comment is not None:
            if not isinstance(comment, dict) or not (comment.get("body") or comment.get("html_body")):
                raise Reject(422, {"error": "RecordInvalid", "description": "comment body required"})
            public = comment.get("public", True)
            if not isinstance(public, bool):
                raise Reject(422, {"error": "RecordInvalid", "description": "public must be a boolean"})
            changes.append(
                Event(
                    state.next_id(),
                    at,
                    author,
                    "comment" if public else "note",
                    body=comment.get("body"),
                    public=public,
                )
            )
        if "tags" in update:
            changes.append(
                Event(
                    state.next_id(),
                    at,
                    author,
                    "tags",
                    value=list(update["tags"]),
                    previous=list(ticket.tags),
                )
            )
            ticket.tags = list(update["tags"])
        if update.get("additional_tags"):
            new = [t for t in update["additional_tags"] if t not in ticket.tags]
            changes.append(
                Event(
                    state.next_id(), at, author, "tags", value=ticket.tags + new, previous=list(ticket.tags)
                )
            )
            ticket.tags = ticket.tags + new
        if "status" in update:
            if update["status"] not in ("new", "open", "pending", "hold", "solved", "closed"):
                raise Reject(422, {"error": "RecordInvalid", "description": "status is invalid"})
            changes.append(
                Event(state.next_id(), at, author, "status", value=update["status"], previous=ticket.status)
            )
            ticket.status = update["status"]
        for custom in update.get("custom_fields") or []:
            if not isinstance(custom, dict) or not isinstance(custom.get("id"), int):
                raise Reject(422, {"error": "RecordInvalid", "description": "custom_fields need numeric ids"})
            ticket.custom_fields[str(custom["id"])] = custom.get("value")
            changes.append(Event(state.next_id(), at, author, "fields", value=custom))
        for event in changes:
            event.audit_id, event.metadata, event.marker = audit_id, dict(metadata), req.outbox_id
            ticket.events.append(event)
        if comment is not None:
            state.count_effect(req.outbox_id)
        audit = {
            "id": audit_id,
            "ticket_id": int(ticket.id),
            "author_id": int(author),
            "created_at": _iso(at),
            "metadata": {"system": {}, "custom": metadata},
            "events": [],
        }
        return Response(200, {"ticket": _zendesk_ticket(ticket), "audit": audit})


# ---------------------------------------------------------------------------------------------- Intercom
def intercom(state: HelpdeskState, req: Request) -> Response:
    creds = credentials_for("intercom", req.account, req.base_url)
    if req.headers.get("authorization") != f"Bearer {creds['api_token']}":
        raise Reject(
            401,
            {"type": "error.list", "errors": [{"code": "unauthorized", "message": "Access Token Invalid"}]},
        )
    if req.path == "/tags" and req.method == "POST":
        name = _require_json(req).get("name")
        if not name:
            raise Reject(
                400, {"type": "error.list", "errors": [{"code": "parameter_not_found", "message": "name"}]}
            )
        with state.lock:
            tags = state.tags.setdefault((req.provider, req.account), {})
            tag_id = tags.setdefault(name, str(state.next_id()))
        return Response(200, {"type": "tag", "id": tag_id, "name": name})
    match = re.fullmatch(r"/conversations/([^/]+)(/reply|/parts|/tags)?", req.path)
    if not match:
        raise Reject(
            404, {"type": "error.list", "errors": [{"code": "not_found", "message": "Resource Not Found"}]}
        )
    conversation = _ticket(state, req, match.group(1))
    action = match.group(2)
    if action is None and req.method == "GET":
        return Response(200, _intercom_conversation(state, req, conversation))
    if action is None and req.method == "PUT":
        attributes = _require_json(req).get("custom_attributes") or {}
        with state.lock:
            conversation.custom_fields.update(attributes)
            state.tick(conversation, whole_seconds=True)
        return Response(200, _intercom_conversation(state, req, conversation))
    if req.method != "POST":
        raise Reject(
            404, {"type": "error.list", "errors": [{"code": "not_found", "message": "Resource Not Found"}]}
        )
    body = _require_json(req)
    admin = str(body.get("admin_id", ""))
    if admin != BOT["intercom"]:
        raise Reject(
            400, {"type": "error.list", "errors": [{"code": "parameter_invalid", "message": "admin_id"}]}
        )
    with state.lock:
        if action == "/tags":
            names = {v: k for k, v in state.tags.get((req.provider, req.account), {}).items()}
            name = names.get(str(body.get("id")))
            if name is None:
                raise Reject(
                    404, {"type": "error.list", "errors": [{"code": "not_found", "message": "Tag Not Found"}]}
                )
            if name not in conversation.tags:
                conversation.tags.append(name)
            return Response(200, {"type": "tag", "id": str(body.get("id")), "name": name})
        at = state.tick(conversation, whole_seconds=True)
        if action == "/reply":
            kind = body.get("message_type")
            if kind not in ("comment", "note") or body.get("type") != "admin" or not body.get("body"):
                raise Reject(
                    400, {"type": "error.list", "errors": [{"code": "parameter_invalid", "message": "reply"}]}
                )
            conversation.events.append(
                Event(
                    state.next_id(),
                    at,
                    admin,
                    kind,
                    body=body["body"],
                    public=kind == "comment",
                    marker=req.outbox_id,
                )
            )
            state.count_effect(req.outbox_id)
        else:  # /parts: close, snoozed, open
            kind = body.get("message_type")
            if kind not in ("close", "snoozed", "open") or (
                kind == "snoozed" and not body.get("snoozed_until")
            ):
                raise Reject(
                    400,
                    {
                        "type": "error.list",
                        "errors": [{"code": "parameter_invalid", "message": "message_type"}],
                    },
                )
            previous = conversation.status
            conversation.status = {"close": "closed", "snoozed": "snoozed", "open": "open"}[kind]
            conversation.events.append(
                Event(state.next_id(), at, admin, kind, value=conversation.status, previous=previous)
            )
        return Response(200, _intercom_conversation(state, req, conversation))


def _intercom_conversation(state: HelpdeskState, req: Request, conversation: Ticket) -> dict[str, Any]:
    def part_type(event: Event) -> str:
        if event.kind == "assignee":
            return "assignment"
        if event.kind == "status":
            return "close" if event.value == "closed" else "open"
        return event.kind  # comment, note, close, snoozed, open

    parts = [
        {
            "type": "conversation_part",
            "id": str(e.id),
            "part_type": part_type(e),
            "body": e.body,
            "created_at": int(e.at.timestamp()),
            "updated_at": int(e.at.timestamp()),
            "author": {"type": "user" if e.author.startswith("u-") else "admin", "id": e.author},
        }
        for e in conversation.events[1:]
    ]
    ids = state.tags.get((req.provider, req.account), {})
    return {
        "type": "conversation",
        "id": conversation.id,
        "created_at": int(conversation.created_at.timestamp()),
        "updated_at": int(conversation.updated_at.timestamp()),
        "state": conversation.status,
        "open": conversation.status == "open",
        "admin_assignee_id": conversation.assignee,
        "custom_attributes": conversation.custom_fields,
        "tags": {
            "type": "tag.list",
            "tags": [{"type": "tag", "id": ids.get(t), "name": t} for t in conversation.tags],
        },
        "conversation_parts": {
            "type": "conversation_part.list",
            "conversation_parts": parts,
            "total_count": len(parts),
        },
    }


# ---------------------------------------------------------------------------------------------- Freshdesk
def freshdesk(state: HelpdeskState, req: Request) -> Response:
    creds = credentials_for("freshdesk", req.account, req.base_url)
    auth = _basic(req.headers)
    if not auth or auth[0] != creds["api_token"]:
        raise Reject(
            401,
            {"code": "invalid_credentials", "message": "You have to be logged in to perform this action."},
        )
    match = re.fullmatch(r"/api/v2/tickets/([^/]+)(/reply|/notes|/conversations)?", req.path)
    if not match:
        raise Reject(404, {"code": "not_found"})
    ticket = _ticket(state, req, match.group(1))
    action = match.group(2)
    if action is None and req.method == "GET":
        return Response(200, _freshdesk_ticket(ticket))
    if action == "/conversations" and req.method == "GET":
        rows = [
            _freshdesk_conversation(ticket, e) for e in ticket.events[1:] if e.kind in ("comment", "note")
        ]
        per_page = min(100, int((req.query.get("per_page") or ["30"])[0]))
        page = int((req.query.get("page") or ["1"])[0])
        chunk = rows[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(rows):
            headers["Link"] = (
                f'<{req.base_url}/freshdesk/{req.account}/api/v2/tickets/{ticket.id}/conversations?per_page={per_page}&page={page + 1}>; rel="next"'
            )
        return Response(200, chunk, headers)
    body = _require_json(req)
    with state.lock:
        if action in ("/reply", "/notes") and req.method == "POST":
            if not body.get("body"):
                raise Reject(
                    400,
                    {
                        "description": "Validation failed",
                        "errors": [{"field": "body", "code": "missing_field"}],
                    },
                )
            private = action == "/notes" and body.get("private", True) is not False
            at = state.tick(ticket)
            event = Event(
                state.next_id(),
                at,
                BOT["freshdesk"],
                "note" if private else "comment",
                body=body["body"],
                public=not private,
                marker=req.outbox_id,
            )
            ticket.events.append(event)
            state.count_effect(req.outbox_id)
            return Response(201, _freshdesk_conversation(ticket, event))
        if action is None and req.method == "PUT":
            at = state.tick(ticket)
            if "status" in body:
                if body["status"] not in (2, 3, 4, 5):
                    raise Reject(
                        400,
                        {
                            "description": "Validation failed",
                            "errors": [{"field": "status", "code": "invalid_value"}],
                        },
                    )
                ticket.events.append(
                    Event(
                        state.next_id(),
                        at,
                        BOT["freshdesk"],
                        "status",
                        value=str(body["status"]),
                        previous=ticket.status,
                    )
                )
                ticket.status = str(body["status"])
            if "tags" in body:
                ticket.tags = list(body["tags"])
            if "custom_fields" in body:
                ticket.custom_fields.update(body["custom_fields"])
            return Response(200, _freshdesk_ticket(ticket))
    raise Reject(405, {"code": "method_not_allowed"})


def _freshdesk_ticket(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": int(ticket.id),
        "status": int(ticket.status),
        "responder_id": int(ticket.assignee) if ticket.assignee else None,
        "tags": ticket.tags,
        "custom_fields": ticket.custom_fields,
        "created_at": _iso(ticket.created_at),
        "updated_at": _iso(ticket.updated_at),
    }


def _freshdesk_conversation(ticket: Ticket, event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "ticket_id": int(ticket.id),
        "user_id": int(event.author),
        "body": event.body,
        "body_text": _text(event.body),
        "private": not event.public,
        "incoming": event.author != BOT["freshdesk"] and event.author != "1001",
        "source": 2 if not event.public else 0,
        "created_at": _iso(event.at),
        "updated_at": _iso(event.at),
    }


# ---------------------------------------------------------------------------------------------- Jira
JIRA_WORKFLOW = {
    "Open": "11",
    "In Progress": "21",
    "Waiting for customer": "31",
    "Resolved": "41",
    "Closed": "51",
}


def jira(state: HelpdeskState, req: Request) -> Response:
    creds = credentials_for("jira", req.account, req.base_url)
    if _basic(req.headers) != (creds["email"], creds["api_token"]):
        raise Reject(401, {"errorMessages": ["Client must be authenticated to access this resource."]})
    match = re.fullmatch(r"/rest/api/3/issue/([^/]+)(/comment|/transitions|/changelog)?", req.path)
    if not match:
        raise Reject(404, {"errorMessages": ["not found"]})
    issue = _ticket(state, req, match.group(1))
    action = match.group(2)
    if action is None and req.method == "GET":
        return Response(200, _jira_issue(issue, expand="changelog" in (req.query.get("expand") or [""])[0]))
    if action == "/changelog" and req.method == "GET":  # the paginated changelog, oldest first
        histories = _jira_histories(issue)
        start = int((req.query.get("startAt") or ["0"])[0])
        size = min(int((req.query.get("maxResults") or ["100"])[0]), JIRA_PAGE)
        page = histories[start : start + size]
        return Response(
            200,
            {
                "startAt": start,
                "maxResults": size,
                "total": len(histories),
                "isLast": start + size >= len(histories),
                "values": page,
            },
        )
    if action == "/comment" and req.method == "GET":
        comments = [e for e in issue.events if e.kind in ("comment", "note")]
        if (req.query.get("orderBy") or [""])[0] == "-created":
            comments.reverse()
        with_properties = (
            "properties" in (req.query.get("expand") or [""])[0] and state.jira_expands_comment_properties
        )
        rows = [_jira_comment(e, with_properties) for e in comments]
        return Response(200, {"startAt": 0, "maxResults": 100, "total": len(rows), "comments": rows[:100]})
    if action == "/transitions" and req.method == "GET":
        return Response(
            200,
            {
                "transitions": [
                    {"id": tid, "name": name, "to": {"id": tid, "name": name}}
                    for name, tid in JIRA_WORKFLOW.items()
                    if name != issue.status
                ]
            },
        )
    body = _require_json(req)
    with state.lock:
        if action == "/comment" and req.method == "POST":
            document = body.get("body")
            if (
                not isinstance(document, dict)
                or document.get("type") != "doc"
                or document.get("version") != 1
            ):
                raise Reject(
                    400,
                    {
                        "errorMessages": [],
                        "errors": {"comment": "Comment body must be an Atlassian Document"},
                    },
                )
            properties = body.get("properties") or []
            internal = any(
                p.get("key") == "sd.public.comment" and (p.get("value") or {}).get("internal")
                for p in properties
            )
            text = " ".join(
                node.get("text", "")
                for block in document.get("content", [])
                for node in block.get("content", [])
                if node.get("type") == "text"
            )
            at = state.tick(issue)
            event = Event(
                state.next_id(),
                at,
                BOT["jira"],
                "note" if internal else "comment",
                body=text,
                public=not internal,
                marker=req.outbox_id,
                properties=properties,
            )
            issue.events.append(event)
            state.count_effect(req.outbox_id)
            return Response(201, _jira_comment(event, True))
        if action is None and req.method == "PUT":
            at = state.tick(issue)
            for change in (body.get("update") or {}).get("labels") or []:
                if "add" in change and change["add"] not in issue.tags:
                    if " " in change["add"]:
                        raise Reject(400, {"errors": {"labels": "label cannot contain spaces"}})
                    previous = list(issue.tags)
                    issue.tags.append(change["add"])
                    issue.events.append(
                        Event(
                            state.next_id(),
                            at,
                            BOT["jira"],
                            "labels",
                            value=" ".join(issue.tags),
                            previous=" ".join(previous),
                        )
                    )
            for key, value in (body.get("fields") or {}).items():
                issue.custom_fields[key] = value
            return Response(204)
        if action == "/transitions" and req.method == "POST":
            wanted = str((body.get("transition") or {}).get("id"))
            names = {tid: name for name, tid in JIRA_WORKFLOW.items() if name != issue.status}
            if wanted not in names:
                raise Reject(
                    400, {"errorMessages": [f"Transition id '{wanted}' is not valid for this issue."]}
                )
            at = state.tick(issue)
            issue.events.append(
                Event(state.next_id(), at, BOT["jira"], "status", value=names[wanted], previous=issue.status)
            )
            issue.status = names[wanted]
            return Response(204)
    raise Reject(405, {"errorMessages": ["method not allowed"]})


def _jira_issue(issue: Ticket, *, expand: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": issue.id,
        "key": issue.id,
        "fields": {
            "updated": _jira_time(issue.updated_at),
            "status": {"name": issue.status},
            "assignee": {"accountId": issue.assignee} if issue.assignee else None,
            "labels": issue.tags,
        },
    }
    if expand:
        # Jira embeds at most a page of history here, with no way to page on (reports differ on which end).
        histories = _jira_histories(issue)
        data["changelog"] = {
            "startAt": 0,
            "maxResults": min(len(histories), JIRA_PAGE),
            "total": len(histories),
            "histories": histories[:JIRA_PAGE],
        }
    return data


JIRA_PAGE = 100


def _jira_histories(issue: Ticket) -> list[dict[str, Any]]:
    return [
        {
            "id": str(e.id),
            "author": {"accountId": e.author},
            "created": _jira_time(e.at),
            "items": [{"field": e.kind, "fromString": e.previous, "toString": e.value}],
        }
        for e in issue.events
        if e.kind not in ("comment", "note")
    ]


def _jira_comment(event: Event, with_properties: bool) -> dict[str, Any]:
    comment = {
        "id": str(event.id),
        "author": {"accountId": event.author},
        "body": {
            "type": "doc",
            "version": 1,
            "content": [{"type": "paragraph", "content": [{"type": "text", "text": event.body or ""}]}],
        },
        "created": _jira_time(event.at),
        "updated": _jira_time(event.at),
        "jsdPublic": event.public,
    }
    if with_properties:
        comment["properties"] = event.properties
    return comment


# ---------------------------------------------------------------------------------------------- signed webhooks
def webhook(state: HelpdeskState, req: Request) -> Response:
    """A tenant's CRM/billing receiver: verifies the signature, applies each Idempotency-Key once."""
    if req.method != "POST" or req.path not in ("", "/"):
        raise Reject(404, {"error": "not_found"})
    secret = credentials_for(req.provider, req.account, req.base_url)["signing_secret"]
    if not verify(
        secret,
        req.headers.get("x-deflect-timestamp", ""),
        req.raw,
        req.headers.get("x-deflect-signature", ""),
        now=time.time(),
    ):
        raise Reject(401, {"error": "bad_signature"})
    key = req.headers.get("idempotency-key")
    if not key:
        raise Reject(400, {"error": "Idempotency-Key required"})
    with state.lock:
        seen = state.webhook_keys.get((req.provider, req.account, key))
        if seen is not None:
            if seen[0] != req.raw:
                raise Reject(409, {"error": "idempotency_key_reused"})
            return Response(200, {**seen[1], "replayed": True})
        answer = {"id": f"act_{state.next_id()}", "status": "applied", "replayed": False}
        state.webhook_keys[(req.provider, req.account, key)] = (req.raw, answer)
        state.count_effect(req.outbox_id or key)
        return Response(201, answer)


HANDLERS = {
    "zendesk": zendesk,
    "intercom": intercom,
    "freshdesk": freshdesk,
    "jira": jira,
    "crm": webhook,
    "generic": webhook,
}


def parse_query(query: str) -> dict[str, list[str]]:
    return parse_qs(query, keep_blank_values=True)
