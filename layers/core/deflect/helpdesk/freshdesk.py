"""Freshdesk v2: `POST /tickets/{id}/reply` for a public reply, `POST /tickets/{id}/notes` for a private note,
`PUT /tickets/{id}` for status, tags (the full list: Freshdesk replaces it) and custom fields.

Freshdesk has no conditional update and no per-change author for ticket properties, so conflicts are found from
what it does expose: any conversation after the decision's snapshot written by someone other than Deflect's
agent, and any `updated_at` move that none of our own conversations explains (a status change or reassignment).
When the ticket already has everything a property-only item asks for, there is nothing to write and nothing
to overwrite. Because a PUT replaces the whole tag list, the ticket is read again right before it: an agent's
edit made while we posted is kept (tags merged from that read), or, past our own change, is a conflict.
Conversations come oldest first: when the decision rests on them and there are more than `MAX_CONVERSATION_PAGES`
pages, the item is a conflict (a human decides), never checked on what could be read.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Collection
from datetime import datetime
from typing import Any

from deflect.domain.models import OutboxItem
from deflect.helpdesk.base import (
    CLOCK_SLACK,
    NEWEST_UNREAD,
    SKEW,
    Connector,
    History,
    normalise_text,
    parse_time,
    require_segment,
    to_html,
)
from deflect.helpdesk.errors import HelpdeskConflict, PermanentFailure
from deflect.helpdesk.models import Activity, HelpdeskReceipt

STATUS_CODES = {"open": 2, "pending": 3, "resolved": 4, "solved": 4, "closed": 5}
MAX_CONVERSATION_PAGES = 10
UNREAD = f"ticket history longer than {MAX_CONVERSATION_PAGES} pages could not be checked"
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


class FreshdeskConnector(Connector):
    provider = "freshdesk"
    comment_effect = "conversation"

    def auth_headers(self) -> dict[str, str]:
        assert self.credentials.api_token
        # Freshdesk: the API key is the user name, any password ("X" by convention).
        token = base64.b64encode(f"{self.credentials.api_token.get_secret_value()}:X".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    # ------------------------------------------------------------------ reads
    def ticket(self, ticket_id: str, item: OutboxItem) -> dict[str, Any]:
        return self.call("GET", f"/api/v2/tickets/{ticket_id}", item, safe=True).json()

    def conversations(self, ticket_id: str, item: OutboxItem) -> History:
        """The ticket's conversations, oldest first; past the page cap the newest are left unread (and say so)."""
        found = History()
        url: str | None = f"{self.credentials.base_url}/api/v2/tickets/{ticket_id}/conversations?per_page=100"
        for _ in range(MAX_CONVERSATION_PAGES):
            if not url:
                return found
            if not url.startswith(self.credentials.base_url):
                break  # never follow a pagination link to another host with our credentials
            response = self.call("GET", "", item, url=url, safe=True)
            for conversation in response.json() or []:
                found.append(
                    Activity(
                        at=parse_time(conversation.get("created_at")),
                        author=str(conversation.get("user_id")),
                        kind="note" if conversation.get("private") else "comment",
                        effect_id=str(conversation.get("id")),
                        text=normalise_text(conversation.get("body_text") or conversation.get("body")),
                    )
                )
            link = _NEXT.search(response.headers.get("link", ""))
            url = link.group(1) if link else None
        if url:
            found.read_back_to = NEWEST_UNREAD
        return found

    # ------------------------------------------------------------------ send
    def send(self, item: OutboxItem, *, others: Collection[str] = frozenset()) -> HelpdeskReceipt:
        ticket_id = require_segment(item.external_ticket_id, "freshdesk ticket id")
        ticket = self.ticket(ticket_id, item)
        changes = self._property_changes(item, ticket)
        if not self.wants_comment(item) and not changes:
            # Nothing was verified about others' edits, so this receipt moves no watermark (updated_at None).
            return self.receipt(item, self._effects(item), replayed=True)
        activities = self.conversations(ticket_id, item)
        # Conversations decide a conflict only once the ticket moved past the baseline (an unmoved one has none).
        moved, baseline = parse_time(ticket.get("updated_at")), item.expected_external_updated_at
        changed = moved is None or baseline is None or moved > baseline
        self.require_history(activities, self.history_from(item, changed=changed), UNREAD)
        # Freshdesk keeps no metadata on a conversation: a retry knows its earlier note by author + text, never
        # taking one another item posted (`others`) or one older than the item.
        mine = self.earlier_attempt(item, activities, others, private=item.kind == "internal_note")
        delivered = [f"conversation:{mine.effect_id}"] if mine else []
        self.raise_if_foreign(item, activities, delivered=delivered)
        self._raise_if_unexplained(item, ticket, activities, delivered)

        effects = list(delivered)
        updated = mine.at if mine else None
        if self.wants_comment(item) and mine is None:
            # What is on the ticket now, and what other items posted, is not this attempt's comment.
            skip = {a.effect_id for a in activities if a.effect_id} | self.effect_ids(others)
            conversation_id, updated = self._comment(ticket_id, item, skip)
            effects.append(f"conversation:{conversation_id}")
            posted = Activity(at=updated, author=self.bot, kind="comment") if updated else None
            # Our comment's time unknown (found after an unclear failure): read it back to explain updated_at.
            if posted:
                activities = History([*activities, posted])
            else:
                activities = self.conversations(ticket_id, item)
                self.require_history(activities, self.history_from(item), UNREAD, delivered=effects)
        if changes:
            # What the first read saw is stale by now (we posted, an agent may have edited): write from a new read.
            ticket = self.ticket(ticket_id, item)
            self._raise_if_unexplained(item, ticket, activities, effects)
            changes = self._property_changes(item, ticket)
        if changes:
            answer = self.call("PUT", f"/api/v2/tickets/{ticket_id}", item, body=changes, safe=True).json()
            updated = parse_time(answer.get("updated_at")) or updated
        return self.receipt(
            item, effects + self._effects(item), updated_at=updated, replayed=mine is not None
        )

    def _raise_if_unexplained(
        self, item: OutboxItem, ticket: dict[str, Any], activities: list[Activity], delivered: list[str]
    ) -> None:
        baseline = item.expected_external_updated_at
        updated = parse_time(ticket.get("updated_at"))
        if baseline is None or updated is None or updated <= baseline:
            return
        ours = [a.at for a in activities if a.author == self.bot and a.at > baseline]
        if ours and updated <= max(ours) + SKEW:
            return  # our own conversation moved updated_at
        raise HelpdeskConflict(
            "freshdesk ticket properties changed after it was read",
            current={
                "changes": [
                    {
                        "at": updated.isoformat(),
                        "kind": "properties",
                        "status": ticket.get("status"),
                        "responder_id": ticket.get("responder_id"),
                    }
                ],
                "delivered": delivered,
            },
        )

    def _comment(self, ticket_id: str, item: OutboxItem, skip: set[str]) -> tuple[str, datetime | None]:
        if item.kind == "public_reply":
            path, body = f"/api/v2/tickets/{ticket_id}/reply", {"body": to_html(item.body or "")}
        else:
            path, body = (
                f"/api/v2/tickets/{ticket_id}/notes",
                {"body": to_html(item.body or ""), "private": True},
            )

        def find() -> str | None:
            conversations = self.conversations(ticket_id, item)
            mine = self.own_comment(item, conversations, private=item.kind == "internal_note", skip=skip)
            if mine:
                return mine.effect_id
            # Not among what could be read: it may still be among the newest, which could not.
            self.require_history(conversations, item.created_at - CLOCK_SLACK, UNREAD)
            return None

        response, found = self.post_once(lambda: self.call("POST", path, item, body=body, safe=False), find)
        if found:
            return found, None
        assert response is not None
        answer = response.json()
        return str(answer.get("id")), parse_time(answer.get("created_at"))

    def _property_changes(self, item: OutboxItem, ticket: dict[str, Any]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        status = self.mapped_status(item)
        if status:
            code = int(status) if status.isdigit() else STATUS_CODES.get(status)
            if code is None:
                raise PermanentFailure(f"freshdesk has no status {status!r}")
            if ticket.get("status") != code:
                changes["status"] = code
        current_tags = list(ticket.get("tags") or [])
        missing = [t for t in dict.fromkeys(item.tags) if t not in current_tags]
        if missing:
            changes["tags"] = current_tags + missing  # the full list: Freshdesk replaces tags on update
        current_fields = ticket.get("custom_fields") or {}
        wanted_fields = {k: v for k, v in item.custom_fields.items() if current_fields.get(k) != v}
        if wanted_fields:
            changes["custom_fields"] = wanted_fields
        return changes

    @staticmethod
    def _effects(item: OutboxItem) -> list[str]:
        return (
            (["tags"] if item.tags else [])
            + (["status"] if item.status_value else [])
            + (["custom_fields"] if item.custom_fields else [])
        )
