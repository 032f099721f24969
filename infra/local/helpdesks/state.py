"""State of the local helpdesks: accounts, tickets with their history, faults to inject, calls seen, effects.

One `HelpdeskState` serves every provider; each (provider, account) pair is one helpdesk account (a tenant's
Zendesk subdomain, Intercom workspace, ...). Every ticket keeps an ordered history of authored changes, which
each provider renders in its own shape (Zendesk audits, Intercom parts, Freshdesk conversations, Jira
comments and changelog).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

PROVIDERS = ("zendesk", "intercom", "freshdesk", "jira", "crm", "generic")
BOT = {"zendesk": "9001", "intercom": "9001", "freshdesk": "9001", "jira": "bot-9001"}
HUMAN_AGENT = {"zendesk": "1001", "intercom": "1001", "freshdesk": "1001", "jira": "agent-1001"}
CUSTOMER = {"zendesk": "2001", "intercom": "u-2001", "freshdesk": "2001", "jira": "customer-2001"}


def credentials_for(provider: str, account: str, base_url: str) -> dict[str, Any]:
    """The secret a tenant stores for this local account (what `HelpdeskCredentials` parses)."""
    common = {
        "provider": provider,
        "base_url": f"{base_url}/{provider}/{account}",
        "requests_per_minute": 100_000,
    }
    if provider == "zendesk":
        return {
            **common,
            "email": f"bot@{account}.example",
            "api_token": f"zd-{account}-token",
            "bot_user_id": BOT[provider],
        }
    if provider == "intercom":
        return {**common, "api_token": f"ic-{account}-token", "bot_user_id": BOT[provider]}
    if provider == "freshdesk":
        return {**common, "api_token": f"fd-{account}-key", "bot_user_id": BOT[provider]}
    if provider == "jira":
        return {
            **common,
            "email": f"bot@{account}.example",
            "api_token": f"jira-{account}-token",
            "bot_user_id": BOT[provider],
            "status_map": {
                "solved": "Resolved",
                "resolved": "Resolved",
                "open": "Open",
                "pending": "Waiting for customer",
            },
        }
    return {**common, "signing_secret": f"{provider}-{account}-secret"}


@dataclass
class Event:
    id: int
    at: datetime
    author: str
    kind: str  # comment | note | status | assignee | tags | fields | close | open | snoozed
    body: str | None = None
    public: bool = True
    value: Any = None
    previous: Any = None
    marker: str | None = None  # the outbox id our client sent with the request that made this change
    audit_id: int | None = None  # Zendesk: events of one update share an audit
    properties: list[dict[str, Any]] = field(default_factory=list)  # Jira comment properties
    metadata: dict[str, Any] = field(default_factory=dict)  # Zendesk audit custom metadata


@dataclass
class Ticket:
    id: str
    status: str
    assignee: str | None
    tags: list[str]
    custom_fields: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    events: list[Event] = field(default_factory=list)


@dataclass
class Fault:
    provider: str
    status: int = 500
    count: int = 1
    method: str | None = None
    path_contains: str | None = None
    retry_after: str | None = None
    # before: answer `status` without the effect; after: apply, then answer `status` (the answer is "lost");
    # hang_after: apply, then stall `delay_s` (client times out); hang_before: stall, then answer without effect.
    mode: str = "before"
    delay_s: float = 0.0

    def matches(self, provider: str, method: str, path: str) -> bool:
        return (
            self.count > 0
            and self.provider in (provider, "*")
            and (self.method is None or self.method == method)
            and (self.path_contains is None or self.path_contains in path)
        )


@dataclass
class Call:
    provider: str
    account: str
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int = 0
    outbox_id: str | None = None


# When an adopted ticket was last changed: before any sample event's own timestamp, so writeback finds no
# human edit newer than the event that named it.
ADOPTED_AT = datetime(2000, 1, 1, tzinfo=UTC)


class HelpdeskState:
    def __init__(self, *, adopt_unknown_tickets: bool = False) -> None:
        self.lock = threading.RLock()
        # `make run`: a webhook sent by hand (the `events/` samples) names a ticket this stand-in never created.
        # The real helpdesk would hold it, so the stand-in takes it in on first use instead of answering 404.
        # Tests keep the default and see 404 for a ticket that does not exist.
        self.adopt_unknown_tickets = adopt_unknown_tickets
        self.tickets: dict[tuple[str, str], dict[str, Ticket]] = {}
        self.tags: dict[tuple[str, str], dict[str, str]] = {}  # Intercom tag name → id
        self.webhook_keys: dict[tuple[str, str, str], tuple[bytes, dict[str, Any]]] = {}
        self.faults: list[Fault] = []
        # Jira documents only `renderedBody` for expand on comment lists: a site may ignore `expand=properties`.
        self.jira_expands_comment_properties = True
        self.calls: list[Call] = []
        self.effects: Counter[str] = Counter()
        self.effect_times: dict[
            str, float
        ] = {}  # outbox id → time.monotonic() of its first effect (benchmarks)
        self._ids = itertools.count(1000)
        # Per clock kind: Intercom's whole-second steps run ahead of real time in a burst, and must not push
        # the other helpdesks' stamps into the future with them.
        self._last = {False: datetime.now(UTC), True: datetime.now(UTC)}

    # ------------------------------------------------------------------ time and ids
    def next_id(self) -> int:
        return next(self._ids)

    def tick(self, ticket: Ticket | None = None, *, whole_seconds: bool = False) -> datetime:
        """Strictly increasing change times. Intercom counts whole seconds, so it gets ≥ 1 s steps."""
        with self.lock:
            step = timedelta(seconds=1) if whole_seconds else timedelta(milliseconds=1)
            floor = (ticket.updated_at if ticket else self._last[whole_seconds]) + step
            now = max(datetime.now(UTC), floor)
            if whole_seconds:
                now = now.replace(microsecond=0)
                if now < floor:
                    now += timedelta(seconds=1)
            self._last[whole_seconds] = max(self._last[whole_seconds], now)
            if ticket:
                ticket.updated_at = now
            return now

    # ------------------------------------------------------------------ tickets
    def create_ticket(
        self,
        provider: str,
        account: str,
        ticket_id: str | None = None,
        *,
        status: str | None = None,
        tags: list[str] | None = None,
        assignee: str | None = None,
        custom_fields: dict[str, Any] | None = None,
        first_message: str = "Hello, I need help.",
    ) -> Ticket:
        with self.lock:
            tid = ticket_id or (f"DESK-{self.next_id()}" if provider == "jira" else str(self.next_id()))
            now = self.tick(whole_seconds=provider == "intercom")
            default_status = {"zendesk": "open", "intercom": "open", "freshdesk": "2", "jira": "Open"}.get(
                provider, "open"
            )
            ticket = Ticket(
                tid, status or default_status, assignee, list(tags or []), dict(custom_fields or {}), now, now
            )
            ticket.events.append(
                Event(self.next_id(), now, CUSTOMER.get(provider, "customer"), "comment", body=first_message)
            )
            self.tickets.setdefault((provider, account), {})[tid] = ticket
            return ticket

    def ticket(self, provider: str, account: str, ticket_id: str) -> Ticket | None:
        with self.lock:
            found = self.tickets.get((provider, account), {}).get(ticket_id)
            if found is None and self.adopt_unknown_tickets and provider in PROVIDERS:
                found = self.create_ticket(provider, account, ticket_id)
                found.created_at = found.updated_at = ADOPTED_AT
                for event in found.events:
                    event.at = ADOPTED_AT
            return found

    def human_edit(
        self,
        provider: str,
        account: str,
        ticket_id: str,
        kind: str,
        value: Any = None,
        body: str | None = None,
    ) -> Event:
        """A person changes the ticket in the helpdesk UI: a newer comment, a status change, a reassignment."""
        with self.lock:
            ticket = self.tickets[(provider, account)][ticket_id]
            author = CUSTOMER[provider] if kind == "customer_reply" else HUMAN_AGENT[provider]
            at = self.tick(ticket, whole_seconds=provider == "intercom")
            event = Event(self.next_id(), at, author, kind, body=body, public=kind != "note")
            if kind == "customer_reply":
                event.kind = "comment"
                event.body = body or "Any update?"
            elif kind in ("comment", "note"):
                event.body = body or "An agent's newer message."
            elif kind == "status":
                event.previous, ticket.status = ticket.status, str(value)
                event.value = ticket.status
            elif kind == "assignee":
                event.previous, ticket.assignee = ticket.assignee, str(value or HUMAN_AGENT[provider])
                event.value = ticket.assignee
            else:
                raise ValueError(f"unknown human edit {kind!r}")
            event.audit_id = self.next_id()
            ticket.events.append(event)
            return event

    # ------------------------------------------------------------------ faults and records
    def take_fault(self, provider: str, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(provider, method, path):
                    fault.count -= 1
                    return fault
            return None

    def count_effect(self, outbox_id: str | None) -> None:
        with self.lock:
            self.effects[outbox_id or "<none>"] += 1
            self.effect_times.setdefault(outbox_id or "<none>", time.monotonic())

    def reset(self) -> None:
        with self.lock:
            self.tickets.clear()
            self.tags.clear()
            self.webhook_keys.clear()
            self.faults.clear()
            self.calls.clear()
            self.effects.clear()
            self.effect_times.clear()
