"""What every helpdesk connector shares: auth'd calls through the one client, the at-most-once posting of a
comment, own-vs-human change detection, and receipts.

The flow of `send` (each provider fills in the steps its API allows):
1. read the ticket as it is now (or, for Zendesk, let `safe_update` compare for us);
2. if this item was attempted before and that attempt's comment is already there, do not post it again (a first
   attempt has no earlier one to find: an identical comment already on the ticket is another item's);
3. if anyone other than Deflect changed the ticket after the decision read it, raise `HelpdeskConflict`;
4. post the comment at most once, then apply tags / status / custom fields (idempotent, skipped when already so);
5. return a receipt.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from deflect.domain.errors import TransientFailure
from deflect.domain.models import OutboxItem, utcnow
from deflect.helpdesk.errors import HelpdeskConflict, PermanentFailure
from deflect.helpdesk.http import HelpdeskHttp, HttpResponse
from deflect.helpdesk.models import (
    Activity,
    ConnectorName,
    HelpdeskCredentials,
    HelpdeskReceipt,
    activity_summary,
)

OUTBOX_HEADER = "X-Deflect-Outbox-Id"
COMMENT_KINDS = ("public_reply", "internal_note")
# Providers without per-change authorship (Freshdesk properties) get this much clock slack between our own write
# and the ticket's updated_at.
SKEW = timedelta(seconds=2)
# How far a helpdesk's clock (and Intercom's whole seconds) may trail ours: a comment older than the item by more
# than this cannot be one of the item's own attempts.
CLOCK_SLACK = timedelta(seconds=60)
# A history read that stopped before its newest entries (oldest-first pages past the cap, a truncated list).
NEWEST_UNREAD = datetime.max.replace(tzinfo=UTC)
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def normalise_text(value: str | None) -> str:
    """Compare bodies the way a reader would: no markup, entities decoded, whitespace collapsed."""
    if not value:
        return ""
    text = _TAG.sub(" ", value.replace("<br>", "\n").replace("<br/>", "\n").replace("<br />", "\n"))
    return _SPACE.sub(" ", html.unescape(text)).strip()


def to_html(text: str) -> str:
    """Plain text → minimal HTML (paragraphs and line breaks); everything else escaped."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    return "".join(f"<p>{html.escape(p.strip()).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 strings (Zendesk, Freshdesk, Jira) or unix seconds (Intercom) → aware datetime."""
    if value in (None, ""):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def require_segment(value: str, what: str) -> str:
    """External ids go into URL paths: allow only what ids look like."""
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", value or ""):
        raise PermanentFailure(f"{what} is not a valid id")
    return value


class History(list[Activity]):
    """Activities as far as a ticket's history could be read. Every entry after `read_back_to` was read: None when
    every entry was, `NEWEST_UNREAD` when not even the newest were (they are the ones that decide)."""

    def __init__(self, activities: Iterable[Activity] = (), *, read_back_to: datetime | None = None) -> None:
        super().__init__(activities)
        self.read_back_to = read_back_to


class Connector:
    provider: ConnectorName
    # How a receipt names a posted comment ("conversation:<id>"): the form `others` comes in.
    comment_effect: str = "comment"

    def __init__(self, tenant_id: str, credentials: HelpdeskCredentials, http: HelpdeskHttp) -> None:
        self.tenant_id = tenant_id
        self.credentials = credentials
        self.http = http
        self.bot = credentials.bot_user_id
        self._requests = 0

    # ------------------------------------------------------------------ subclasses
    def auth_headers(self) -> dict[str, str]:
        raise NotImplementedError

    def send(self, item: OutboxItem, *, others: Collection[str] = frozenset()) -> HelpdeskReceipt:
        """`others`: the effects (as receipts name them) Deflect recorded for other outbox items of this ticket;
        none of them is ever taken for an earlier attempt of this one."""
        raise NotImplementedError

    # ------------------------------------------------------------------ calls
    def call(
        self,
        method: str,
        path: str,
        item: OutboxItem,
        *,
        body: Any = None,
        safe: bool,
        accept: tuple[int, ...] = (),
        headers: dict[str, str] | None = None,
        raw_body: bytes | None = None,
        url: str | None = None,
    ) -> HttpResponse:
        self._requests += 1
        return self.http.request(
            method,
            url or f"{self.credentials.base_url}{path}",
            limit_key=f"{self.tenant_id}:{self.provider}",
            rate_per_minute=self.credentials.rate_per_minute,
            # The outbox id travels with every request: providers ignore it, their request logs keep it.
            headers={**self.auth_headers(), OUTBOX_HEADER: item.outbox_id, **(headers or {})},
            json_body=body,
            raw_body=raw_body,
            safe_to_retry=safe,
            accept=accept,
            timeout_s=self.credentials.timeout_s,
        )

    def post_once(
        self, post: Callable[[], HttpResponse], find: Callable[[], str | None]
    ) -> tuple[HttpResponse | None, str | None]:
        """Post a non-repeatable effect at most once.

        After an ambiguous failure (5xx, timeout) the effect may exist: look for it, and only if it is not there,
        back off and post again. Returns (response, None) when posted now, (None, effect_id) when found.
        """
        for attempt in range(1, self.http.max_attempts + 1):
            try:
                return post(), None
            except TransientFailure:
                if attempt == self.http.max_attempts:
                    raise
                self.http.backoff_sleep(attempt)
                found = find()
                if found:
                    return None, found
        raise TransientFailure("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ conflicts
    def foreign_changes(self, activities: Iterable[Activity], baseline: datetime | None) -> list[Activity]:
        """Changes after the baseline made by anyone but Deflect's own helpdesk user."""
        if baseline is None:
            return []
        return [a for a in activities if a.at > baseline and a.author != self.bot]

    def raise_if_foreign(
        self, item: OutboxItem, activities: list[Activity], *, delivered: list[str] | None = None
    ) -> None:
        foreign = self.foreign_changes(activities, item.expected_external_updated_at)
        if foreign:
            kinds = sorted({a.kind for a in foreign})
            raise HelpdeskConflict(
                f"{self.provider} ticket changed after it was read: {', '.join(kinds)}",
                current={"changes": activity_summary(foreign), "delivered": delivered or []},
            )

    def history_from(self, item: OutboxItem, *, changed: bool = True) -> datetime | None:
        """From when on deciding this item rests on every entry of the ticket's history; None: on none of it. After
        the baseline a human's newer edit must be seen (unless the ticket is known not to have `changed`), and on a
        retry this item's earlier comment must be found (it cannot predate the item)."""
        baseline = item.expected_external_updated_at
        since = [baseline] if baseline is not None and changed else []
        if self.wants_comment(item) and self.sent_before(item):
            since.append(item.created_at - CLOCK_SLACK)
        return min(since, default=None)

    def require_history(
        self, history: History, since: datetime | None, reason: str, *, delivered: list[str] | None = None
    ) -> None:
        """Raise unless every entry after `since` was read."""
        if since is not None and history.read_back_to is not None and history.read_back_to > since:
            raise self.unchecked_history(reason, delivered=delivered)

    def unchecked_history(self, reason: str, *, delivered: list[str] | None = None) -> HelpdeskConflict:
        """Part of the history could not be read, and a human's newer edit or this item's own earlier comment may be
        in it: acting anyway could overwrite the one or post the other twice, so the item goes to a human."""
        return HelpdeskConflict(
            f"{self.provider} {reason}",
            current={"changes": [], "delivered": delivered or [], "unchecked_history": True},
        )

    def own_comment(
        self,
        item: OutboxItem,
        activities: Iterable[Activity],
        *,
        private: bool | None = None,
        skip: Collection[str] = frozenset(),
    ) -> Activity | None:
        """Our comment from an earlier attempt of this very item: by marker where the provider stores one, else by
        author + text + visibility. A comment known by text is never one in `skip` (effect ids: what another item
        posted, or what was on the ticket before this attempt posted) nor one made before the item existed, so
        another item's identical note (two escalations approved by the same person) never passes for this one."""
        wanted = normalise_text(item.body)
        after = item.created_at - CLOCK_SLACK
        for activity in activities:
            if activity.marker == item.outbox_id:
                return activity
            if activity.marker or activity.author != self.bot or activity.kind not in ("comment", "note"):
                continue
            if private is not None and (activity.kind == "note") != private:
                continue
            if activity.effect_id in skip or activity.at < after:
                continue
            if activity.text == wanted:
                return activity
        return None

    def earlier_attempt(
        self,
        item: OutboxItem,
        activities: Iterable[Activity],
        others: Collection[str],
        *,
        private: bool | None = None,
    ) -> Activity | None:
        """This item's comment from an earlier attempt, looked for only when there was one (a retry, a replay)."""
        if not (self.wants_comment(item) and self.sent_before(item)):
            return None
        return self.own_comment(item, activities, private=private, skip=self.effect_ids(others))

    def effect_ids(self, effects: Iterable[str]) -> set[str]:
        """Comment ids among receipt effects ("conversation:12" → "12" for Freshdesk)."""
        prefix = f"{self.comment_effect}:"
        return {e[len(prefix) :] for e in effects if e.startswith(prefix)}

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def sent_before(item: OutboxItem) -> bool:
        """Whether an earlier attempt may have reached the provider: one before this one in the attempt budget,
        or one before a replay reset that budget (an answer lost on the last attempt leaves a dead item whose
        effect landed)."""
        return max(item.attempts, item.dispatches) > 1

    @staticmethod
    def wants_comment(item: OutboxItem) -> bool:
        return item.kind in COMMENT_KINDS and bool(item.body and item.body.strip())

    def mapped_status(self, item: OutboxItem) -> str | None:
        if not item.status_value:
            return None
        return self.credentials.status_map.get(item.status_value, item.status_value)

    def receipt(
        self,
        item: OutboxItem,
        effects: list[str],
        *,
        updated_at: datetime | None = None,
        replayed: bool = False,
        idempotency_key: str | None = None,
    ) -> HelpdeskReceipt:
        requests, self._requests = self._requests, 0
        return HelpdeskReceipt(
            outbox_id=item.outbox_id,
            provider=self.provider,
            external_ticket_id=item.external_ticket_id,
            effects=effects,
            external_updated_at=updated_at,
            replayed=replayed,
            idempotency_key=idempotency_key,
            requests=requests,
            delivered_at=utcnow(),
        )
