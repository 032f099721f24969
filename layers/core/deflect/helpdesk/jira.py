"""Jira Service Management through the Jira Cloud platform REST API v3:
- comments: `POST /rest/api/3/issue/{key}/comment` with an ADF body; the `sd.public.comment` property decides
  whether the customer sees it (`internal: true` → internal note); a second property carries our outbox id, so
  a retry finds its own earlier comment exactly;
- labels and custom fields: `PUT /rest/api/3/issue/{key}` with `update.labels[].add` (adds, never replaces);
- status: the workflow's transitions (`GET`/`POST /rest/api/3/issue/{key}/transitions`).
Jira has no conditional update: the issue's changelog and comments after the decision's snapshot, written by
anyone but Deflect's account, are conflicts. Both are read from their newest end; when what could be read does not
reach back to the snapshot (or, on a retry, to the item's making), the item is a conflict (a human decides).
"""

from __future__ import annotations

import base64
from collections.abc import Collection
from datetime import datetime
from typing import Any

from deflect.domain.models import OutboxItem
from deflect.helpdesk.base import (
    CLOCK_SLACK,
    NEWEST_UNREAD,
    Connector,
    History,
    normalise_text,
    parse_time,
    require_segment,
)
from deflect.helpdesk.errors import PermanentFailure
from deflect.helpdesk.models import Activity, HelpdeskReceipt
from deflect.webhooks.jira import adf_to_text

PUBLIC_PROPERTY = "sd.public.comment"
MARKER_PROPERTY = "deflect.outbox"
CHANGELOG_PAGE = 100  # the most histories Jira returns per request
MAX_CHANGELOG_PAGES = 10
COMMENT_PAGE = 100
CHANGELOG_UNREAD = "issue changelog since the item was prepared could not be checked"
COMMENTS_UNREAD = "issue comments since the item was prepared could not be checked"


def adf(text: str) -> dict[str, Any]:
    """Plain text → Atlassian Document Format: one paragraph per block, hard breaks inside a block."""
    paragraphs = []
    for block in [b for b in text.strip().split("\n\n") if b.strip()]:
        content: list[dict[str, Any]] = []
        for n, line in enumerate(block.split("\n")):
            if n:
                content.append({"type": "hardBreak"})
            if line:
                content.append({"type": "text", "text": line})
        paragraphs.append({"type": "paragraph", "content": content})
    return {"type": "doc", "version": 1, "content": paragraphs}


class JiraConnector(Connector):
    provider = "jira"
    comment_effect = "comment"

    def auth_headers(self) -> dict[str, str]:
        c = self.credentials
        assert c.email and c.api_token
        token = base64.b64encode(f"{c.email}:{c.api_token.get_secret_value()}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    # ------------------------------------------------------------------ reads
    def issue(self, key: str, item: OutboxItem) -> tuple[dict[str, Any], History]:
        data = self.call(
            "GET",
            f"/rest/api/3/issue/{key}?fields=updated,status,assignee,labels&expand=changelog",
            item,
            safe=True,
        ).json()
        changelog = data.get("changelog") or {}
        histories = changelog.get("histories") or []
        total = changelog.get("total") or 0
        first, complete = 0, True
        if total > len(histories):
            # The embedded changelog is one page: the changes that matter are the newest, on the last page(s).
            first = max(0, total - CHANGELOG_PAGE)
            histories, complete = self._changelog_from(key, item, first)
        activities = History()
        for history in histories:
            fields = sorted({str(i.get("field")) for i in history.get("items") or []})
            activities.append(
                Activity(
                    at=parse_time(history.get("created")),
                    author=(history.get("author") or {}).get("accountId"),
                    kind="change:" + "+".join(fields),
                    effect_id=str(history.get("id")),
                )
            )
        if not complete:
            activities.read_back_to = NEWEST_UNREAD
        elif first > 0:
            # The pages run oldest first: what was left unread is no newer than the oldest change read.
            activities.read_back_to = min((a.at for a in activities if a.at), default=NEWEST_UNREAD)
        return data, activities

    def _changelog_from(self, key: str, item: OutboxItem, start: int) -> tuple[list[dict[str, Any]], bool]:
        """The changelog from `start` to its end, and whether the end was reached: a page may hold fewer entries
        than asked for, and changes made meanwhile extend it."""
        histories: list[dict[str, Any]] = []
        for _ in range(MAX_CHANGELOG_PAGES):
            page = self.call(
                "GET",
                f"/rest/api/3/issue/{key}/changelog?startAt={start}&maxResults={CHANGELOG_PAGE}",
                item,
                safe=True,
            ).json()
            values = page.get("values") or []
            histories += values
            start += len(values)
            if page.get("isLast", start >= (page.get("total") or 0)):
                return histories, True
            if not values:
                break
        return histories, False

    def comments(self, key: str, item: OutboxItem) -> History:
        """The newest page of the issue's comments (newest first)."""
        data = self.call(
            "GET",
            f"/rest/api/3/issue/{key}/comment?expand=properties&orderBy=-created&maxResults={COMMENT_PAGE}",
            item,
            safe=True,
        ).json()
        found = History()
        for comment in data.get("comments") or []:
            properties = {p.get("key"): p.get("value") for p in comment.get("properties") or []}
            if PUBLIC_PROPERTY in properties:
                internal = bool((properties[PUBLIC_PROPERTY] or {}).get("internal"))
            else:
                internal = comment.get("jsdPublic") is False
            found.append(
                Activity(
                    at=parse_time(comment.get("created")),
                    author=(comment.get("author") or {}).get("accountId"),
                    kind="note" if internal else "comment",
                    effect_id=str(comment.get("id")),
                    marker=(properties.get(MARKER_PROPERTY) or {}).get("outbox_id"),
                    # Where the site leaves the properties out, our comment is still known by author + text.
                    text=normalise_text(adf_to_text(comment.get("body") or "")),
                )
            )
        if (data.get("total") or 0) > (data.get("startAt") or 0) + len(found):
            found.read_back_to = _read_back_to(found)
        return found

    # ------------------------------------------------------------------ send
    def send(self, item: OutboxItem, *, others: Collection[str] = frozenset()) -> HelpdeskReceipt:
        key = require_segment(item.external_ticket_id, "jira issue key")
        data, changes = self.issue(key, item)
        comments = self.comments(key, item)
        self.require_history(changes, item.expected_external_updated_at, CHANGELOG_UNREAD)
        self.require_history(comments, self.history_from(item), COMMENTS_UNREAD)
        mine = self.earlier_attempt(item, comments, others)
        effects = [f"comment:{mine.effect_id}"] if mine else []
        self.raise_if_foreign(item, changes + comments, delivered=effects)
        updated = mine.at if mine else None
        if self.wants_comment(item) and mine is None:
            skip = {c.effect_id for c in comments if c.effect_id} | self.effect_ids(others)
            comment_id, updated = self._comment(key, item, skip)
            effects.append(f"comment:{comment_id}")
        effects += self._fields(key, item, data)
        effects += self._transition(key, item, data)
        return self.receipt(
            item,
            effects,
            updated_at=updated or parse_time((data.get("fields") or {}).get("updated")),
            replayed=mine is not None,
        )

    def comment_body(self, item: OutboxItem) -> dict[str, Any]:
        return {
            "body": adf(item.body or ""),
            "properties": [
                {"key": PUBLIC_PROPERTY, "value": {"internal": item.kind != "public_reply"}},
                {"key": MARKER_PROPERTY, "value": {"outbox_id": item.outbox_id}},
            ],
        }

    def _comment(self, key: str, item: OutboxItem, skip: set[str]) -> tuple[str, Any]:
        def find() -> str | None:
            comments = self.comments(key, item)
            mine = self.own_comment(item, comments, skip=skip)
            if mine:
                return mine.effect_id
            # Not among the newest page: it may be older than the page reaches back.
            self.require_history(comments, item.created_at - CLOCK_SLACK, COMMENTS_UNREAD)
            return None

        response, found = self.post_once(
            lambda: self.call(
                "POST", f"/rest/api/3/issue/{key}/comment", item, body=self.comment_body(item), safe=False
            ),
            find,
        )
        if found:
            return found, None
        assert response is not None
        answer = response.json()
        return str(answer.get("id")), parse_time(answer.get("created"))

    def _fields(self, key: str, item: OutboxItem, data: dict[str, Any]) -> list[str]:
        present = set((data.get("fields") or {}).get("labels") or [])
        body: dict[str, Any] = {}
        # Jira labels cannot contain spaces.
        missing = [
            t.replace(" ", "_") for t in dict.fromkeys(item.tags) if t.replace(" ", "_") not in present
        ]
        if missing:
            body["update"] = {"labels": [{"add": label} for label in missing]}
        if item.custom_fields:
            body["fields"] = dict(item.custom_fields)
        if body:
            self.call("PUT", f"/rest/api/3/issue/{key}", item, body=body, safe=True)
        return (["labels"] if item.tags else []) + (["custom_fields"] if item.custom_fields else [])

    def _transition(self, key: str, item: OutboxItem, data: dict[str, Any]) -> list[str]:
        wanted = self.mapped_status(item)
        if not wanted:
            return []
        current = (((data.get("fields") or {}).get("status")) or {}).get("name", "")
        if current.lower() == wanted.lower():
            return ["status"]
        options = (
            self.call("GET", f"/rest/api/3/issue/{key}/transitions", item, safe=True)
            .json()
            .get("transitions")
            or []
        )
        for option in options:
            if wanted.lower() in (
                str(option.get("name", "")).lower(),
                str((option.get("to") or {}).get("name", "")).lower(),
            ):
                body = {"transition": {"id": str(option["id"])}}
                # A repeated transition is rejected once the issue has moved: after an unclear failure, look first.
                self.post_once(
                    lambda body=body: self.call(
                        "POST", f"/rest/api/3/issue/{key}/transitions", item, body=body, safe=False
                    ),
                    lambda: self._status_is(key, item, wanted),
                )
                return ["status"]
        raise PermanentFailure(f"jira workflow offers no transition to {wanted!r}")

    def _status_is(self, key: str, item: OutboxItem, wanted: str) -> str | None:
        data, _ = self.issue(key, item)
        name = (((data.get("fields") or {}).get("status")) or {}).get("name", "")
        return "status" if name.lower() == wanted.lower() else None


def _read_back_to(comments: list[Activity]) -> datetime:
    """How far back a newest-first page of comments reaches: the comments past it are no newer than its last one.
    A site that ignored `orderBy` answered oldest first, and then the newest are the ones left out."""
    times = [c.at for c in comments if c.at]
    if times and times == sorted(times, reverse=True):
        return times[-1]
    return NEWEST_UNREAD
