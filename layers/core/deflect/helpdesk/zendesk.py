"""Zendesk Support: one `PUT /api/v2/tickets/{id}` carries the comment, tags, status and custom fields, so the
whole outbox item lands atomically. `safe_update` + `updated_stamp` make Zendesk refuse (409) the update if the
ticket changed after the stamp; the ticket audits then tell whether that change was ours or a human's. When the
helpdesk sent no stamp with the customer's message, the baseline is Deflect's receive time instead: the ticket's
own stamp is read, and its audits since that time checked, before the first update.
Our outbox id rides in the audit's custom metadata (`ticket.metadata`), which is how a retry recognises its
own earlier update. Audits come oldest first: a ticket with more than `MAX_AUDIT_PAGES` pages of them is a conflict
(a human decides), never checked on what could be read.
"""

from __future__ import annotations

import base64
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from deflect.domain.errors import TransientFailure
from deflect.domain.models import OutboxItem
from deflect.helpdesk.base import Connector, parse_time, require_segment
from deflect.helpdesk.errors import HelpdeskConflict, PermanentFailure
from deflect.helpdesk.models import Activity, HelpdeskReceipt, activity_summary

STATUSES = {"new", "open", "pending", "hold", "solved", "closed"}
ALIASES = {"resolved": "solved", "waiting": "pending", "on_hold": "hold"}
MARKER_KEY = "deflect_outbox_id"
MAX_AUDIT_PAGES = 10
MAX_STAMP_REFRESHES = 3


def zendesk_time(at: datetime) -> str:
    """Zendesk's own timestamp form (UTC, `Z`), keeping sub-seconds only when the stamp has them."""
    at = at.astimezone(UTC)
    fraction = f".{at.microsecond:06d}" if at.microsecond else ""
    return at.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


class ZendeskConnector(Connector):
    provider = "zendesk"

    def auth_headers(self) -> dict[str, str]:
        c = self.credentials
        if c.oauth_token:
            return {"Authorization": f"Bearer {c.oauth_token.get_secret_value()}"}
        assert c.email and c.api_token  # checked when the secret was parsed
        token = base64.b64encode(f"{c.email}/token:{c.api_token.get_secret_value()}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    # ------------------------------------------------------------------ request body
    def update_body(self, item: OutboxItem, stamp: datetime | None) -> dict[str, Any]:
        ticket: dict[str, Any] = {"metadata": {MARKER_KEY: item.outbox_id}}
        if self.wants_comment(item):
            ticket["comment"] = {"body": item.body, "public": item.kind == "public_reply"}
        if item.tags:
            # additional_tags adds without replacing the agent's tags (`tags` would overwrite them).
            ticket["additional_tags"] = list(dict.fromkeys(item.tags))
        status = self.mapped_status(item)
        if status:
            status = ALIASES.get(status, status)
            if status not in STATUSES:
                raise PermanentFailure(f"zendesk has no status {status!r}")
            ticket["status"] = status
        if item.custom_fields:
            try:
                ticket["custom_fields"] = [{"id": int(k), "value": v} for k, v in item.custom_fields.items()]
            except ValueError:
                raise PermanentFailure("zendesk custom field ids are numbers") from None
        if stamp is not None:
            ticket["safe_update"] = True
            ticket["updated_stamp"] = zendesk_time(stamp)
        return {"ticket": ticket}

    # ------------------------------------------------------------------ reads
    def audits(self, ticket_id: str, item: OutboxItem) -> list[Activity]:
        """Every audit of the ticket, oldest first. Both callers decide from the newest audits (a human's recent
        edit, our own earlier update), so a history that could not be read to its end raises instead."""
        found: list[Activity] = []
        url: str | None = f"{self.credentials.base_url}/api/v2/tickets/{ticket_id}/audits.json"
        for _ in range(MAX_AUDIT_PAGES):
            if not url:
                return found
            if not url.startswith(self.credentials.base_url):
                # Never follow a pagination link to another host with our credentials.
                raise self.unchecked_history(
                    "ticket history continues at another host and could not be checked"
                )
            page = self.call("GET", "", item, url=url, safe=True).json()
            for audit in page.get("audits", []):
                custom = (audit.get("metadata") or {}).get("custom") or {}
                kinds = sorted({str(e.get("type", "")).lower() for e in audit.get("events", [])} - {""})
                found.append(
                    Activity(
                        at=parse_time(audit["created_at"]),
                        author=str(audit.get("author_id")),
                        kind="audit:" + "+".join(kinds) if kinds else "audit",
                        effect_id=str(audit.get("id")),
                        marker=custom.get(MARKER_KEY),
                    )
                )
            url = page.get("next_page")
        if url:
            raise self.unchecked_history(
                f"ticket history longer than {MAX_AUDIT_PAGES} pages could not be checked"
            )
        return found

    def find_own(self, ticket_id: str, item: OutboxItem) -> str | None:
        for audit in self.audits(ticket_id, item):
            if audit.marker == item.outbox_id:
                return audit.effect_id
        return None

    # ------------------------------------------------------------------ send
    def send(self, item: OutboxItem, *, others: Collection[str] = frozenset()) -> HelpdeskReceipt:
        # `others` is not needed: our outbox id rides on each update, so only this item's update is ever found.
        ticket_id = require_segment(item.external_ticket_id, "zendesk ticket id")
        if self.sent_before(item):
            # An earlier attempt (replayed ones too) may have reached Zendesk before we lost track of it.
            earlier = self.find_own(ticket_id, item)
            if earlier:
                return self.receipt(item, [f"audit:{earlier}"], replayed=True)
        stamp = item.expected_external_updated_at
        path = f"/api/v2/tickets/{ticket_id}.json"
        if stamp is not None and item.baseline_from == "received":
            # Not a Zendesk stamp: safe_update needs the ticket's own, and nothing since the baseline is checked yet.
            stamp, found = self._checked_stamp(ticket_id, path, item, since=stamp)
            if found:
                return self.receipt(item, [f"audit:{found}"], replayed=True)
        for _ in range(MAX_STAMP_REFRESHES):
            response, found = self.post_once(
                lambda stamp=stamp: self.call(
                    "PUT", path, item, body=self.update_body(item, stamp), safe=False, accept=(409,)
                ),
                lambda: self.find_own(ticket_id, item),
            )
            if found:
                return self.receipt(item, [f"audit:{found}"], replayed=True)
            assert response is not None
            if response.status != 409:
                answer = response.json()
                ticket = answer.get("ticket") or {}
                audit = answer.get("audit") or {}
                return self.receipt(
                    item, self._effects(item, audit), updated_at=parse_time(ticket.get("updated_at"))
                )
            # 409: the ticket changed after `stamp`. Ours (an earlier attempt or an earlier item) or a human's?
            # Only Deflect's: move the stamp to now and try again.
            stamp, found = self._checked_stamp(ticket_id, path, item, since=stamp)
            if found:
                return self.receipt(item, [f"audit:{found}"], replayed=True)
        raise TransientFailure("zendesk ticket kept changing under our updates")

    def _checked_stamp(
        self, ticket_id: str, path: str, item: OutboxItem, *, since: datetime | None
    ) -> tuple[datetime | None, str | None]:
        """The ticket's current stamp, once its audits show nobody but Deflect changed it after `since`; or our
        own update for this item, already there (its audit id). The stamp is read before the audits, so a change
        after it fails the next update (409) and one before it is in the audits: none slips between the two."""
        current = self.call("GET", path, item, safe=True).json().get("ticket") or {}
        stamp = parse_time(current.get("updated_at"))
        audits = self.audits(ticket_id, item)
        for audit in audits:
            if audit.marker == item.outbox_id:
                return stamp, audit.effect_id
        foreign = self.foreign_changes(audits, since)
        if foreign:
            raise HelpdeskConflict(
                "zendesk ticket changed after it was read",
                current={"changes": activity_summary(foreign), "delivered": []},
            )
        return stamp, None

    def _effects(self, item: OutboxItem, audit: dict[str, Any]) -> list[str]:
        effects = [f"audit:{audit['id']}"] if audit.get("id") else []
        if self.wants_comment(item):
            effects.append("public_reply" if item.kind == "public_reply" else "internal_note")
        effects += (["tags"] if item.tags else []) + (["status"] if item.status_value else [])
        return effects + (["custom_fields"] if item.custom_fields else [])
