"""Intercom conversations: reply as an admin (`comment`) or add a `note`, attach tags, set custom attributes,
close / snooze / open through conversation parts. Intercom has no conditional update, so the conversation is
read first: every part after the decision's snapshot that another admin, the customer or a bot wrote is a
conflict. Intercom stores no metadata on a part: a retry recognises its earlier reply by author + text, never
taking one another item posted or one older than the item (and a first attempt does not look).
Intercom returns at most `PART_LIMIT` parts of a conversation, with no way to page on: when the decision rests on
the parts and some were left out, the item is a conflict (a human decides), never checked on what was returned.
"""

from __future__ import annotations

import time
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
    to_html,
)
from deflect.helpdesk.errors import PermanentFailure
from deflect.helpdesk.models import Activity, HelpdeskReceipt

STATE_WORDS = {
    "closed": "close",
    "close": "close",
    "solved": "close",
    "resolved": "close",
    "snoozed": "snoozed",
    "pending": "snoozed",
    "open": "open",
}
STATE_AFTER = {"close": "closed", "snoozed": "snoozed", "open": "open"}
# "There is a limit of 500 parts" (Intercom's Conversation model); which parts it keeps is not documented.
PART_LIMIT = 500
UNREAD = f"conversation history longer than {PART_LIMIT} parts could not be checked"


class IntercomConnector(Connector):
    provider = "intercom"
    comment_effect = "part"

    def auth_headers(self) -> dict[str, str]:
        assert self.credentials.api_token
        return {
            "Authorization": f"Bearer {self.credentials.api_token.get_secret_value()}",
            "Intercom-Version": self.credentials.intercom_version,
        }

    def conversation(self, conversation_id: str, item: OutboxItem) -> tuple[dict[str, Any], History]:
        data = self.call("GET", f"/conversations/{conversation_id}", item, safe=True).json()
        listed = data.get("conversation_parts") or {}
        parts = listed.get("conversation_parts") or []
        activities = [
            Activity(
                at=parse_time(part.get("created_at")),
                author=str((part.get("author") or {}).get("id")),
                kind={"comment": "comment", "note": "note"}.get(
                    part.get("part_type"), str(part.get("part_type"))
                ),
                effect_id=str(part.get("id")),
                text=normalise_text(part.get("body")),
            )
            for part in parts
        ]
        # Which parts a cut conversation leaves out is not documented: the newest may be among them.
        left_out = (listed.get("total_count") or 0) > len(parts)
        return data, History(activities, read_back_to=NEWEST_UNREAD if left_out else None)

    def send(self, item: OutboxItem, *, others: Collection[str] = frozenset()) -> HelpdeskReceipt:
        conversation_id = require_segment(item.external_ticket_id, "intercom conversation id")
        data, activities = self.conversation(conversation_id, item)
        self.require_history(activities, self.history_from(item), UNREAD)
        mine = self.earlier_attempt(item, activities, others, private=item.kind == "internal_note")
        effects = [f"part:{mine.effect_id}"] if mine else []
        self.raise_if_foreign(item, activities, delivered=effects)
        if self.wants_comment(item) and mine is None:
            # What is on the conversation now, and what other items posted, is not this attempt's part.
            skip = {a.effect_id for a in activities if a.effect_id} | self.effect_ids(others)
            effects.append(f"part:{self._reply(conversation_id, item, skip)}")
        effects += self._tags(conversation_id, item, data)
        effects += self._custom_attributes(conversation_id, item, data)
        effects += self._state(conversation_id, item, data)
        updated = max((a.at for a in activities), default=None)
        return self.receipt(
            item,
            effects,
            updated_at=_max(updated, parse_time(data.get("updated_at"))),
            replayed=mine is not None,
        )

    def _reply(self, conversation_id: str, item: OutboxItem, skip: set[str]) -> str:
        body = {
            "message_type": "comment" if item.kind == "public_reply" else "note",
            "type": "admin",
            "admin_id": self.bot,
            "body": to_html(item.body or ""),
        }

        def find() -> str | None:
            _, activities = self.conversation(conversation_id, item)
            mine = self.own_comment(item, activities, private=item.kind == "internal_note", skip=skip)
            if mine:
                return mine.effect_id
            # Not among the parts returned: it may still be among those left out.
            self.require_history(activities, item.created_at - CLOCK_SLACK, UNREAD)
            return None

        response, found = self.post_once(
            lambda: self.call("POST", f"/conversations/{conversation_id}/reply", item, body=body, safe=False),
            find,
        )
        if found:
            return found
        assert response is not None
        parts = (response.json().get("conversation_parts") or {}).get("conversation_parts") or []
        return str(parts[-1].get("id")) if parts else "reply"

    def _tags(self, conversation_id: str, item: OutboxItem, data: dict[str, Any]) -> list[str]:
        present = {str(t.get("name")) for t in (data.get("tags") or {}).get("tags") or []}
        missing = [t for t in dict.fromkeys(item.tags) if t not in present]
        for name in missing:
            # POST /tags creates the tag or returns the existing one with its id.
            tag = self.call("POST", "/tags", item, body={"name": name}, safe=True).json()
            self.call(
                "POST",
                f"/conversations/{conversation_id}/tags",
                item,
                body={"id": str(tag["id"]), "admin_id": self.bot},
                safe=True,
            )
        return ["tags"] if item.tags else []

    def _custom_attributes(self, conversation_id: str, item: OutboxItem, data: dict[str, Any]) -> list[str]:
        if not item.custom_fields:
            return []
        current = data.get("custom_attributes") or {}
        if any(current.get(k) != v for k, v in item.custom_fields.items()):
            self.call(
                "PUT",
                f"/conversations/{conversation_id}",
                item,
                body={"custom_attributes": dict(item.custom_fields)},
                safe=True,
            )
        return ["custom_fields"]

    def _state(self, conversation_id: str, item: OutboxItem, data: dict[str, Any]) -> list[str]:
        wanted = self.mapped_status(item)
        if not wanted:
            return []
        action = STATE_WORDS.get(wanted)
        if action is None:
            raise PermanentFailure(f"intercom has no conversation state {wanted!r}")
        if data.get("state") == STATE_AFTER[action]:
            return ["status"]  # already so: closing twice would add a second close part
        body: dict[str, Any] = {"message_type": action, "admin_id": self.bot}
        if action == "close":
            body["type"] = "admin"
        if action == "snoozed":
            body["snoozed_until"] = int(time.time()) + self.credentials.snooze_hours * 3600
        # A second close/snooze would add a second part: after an unclear failure, look before repeating.
        self.post_once(
            lambda: self.call("POST", f"/conversations/{conversation_id}/parts", item, body=body, safe=False),
            lambda: (
                "status"
                if self.conversation(conversation_id, item)[0].get("state") == STATE_AFTER[action]
                else None
            ),
        )
        return ["status"]


def _max(a: datetime | None, b: datetime | None) -> datetime | None:
    return max((x for x in (a, b) if x is not None), default=None)
