"""`deflect replay --tenant T --export FILE [--format auto|zendesk|freshdesk] [--limit N]`

Runs past tickets from a helpdesk export through the tenant's triage as production would decide them (its policy,
rollout modes, taxonomy, help center and triage profile; the requester's account when Deflect knows them by their
helpdesk id; their earlier tickets in the export as contact history) — decided, never sent, nothing stored — and
compares each decision with what agents actually did. Prints one JSON line per ticket (`mode`: what production
would have done with it — sent it in auto, noted it for agents in assist, nothing in shadow), then a summary JSON
object as the last line. Tickets are replayed oldest first (`created_at`), so each sees only earlier contacts.

Exports read (UTF-8, with or without a byte order mark):
- Zendesk: `{"tickets": [...]}` (API or incremental export pages), several such pages (one per line, or in a JSON
  array), or NDJSON, one ticket per line (the account JSON export); a ticket's `comments` (author_id,
  body/plain_body, public) are used when present.
- Freshdesk: a JSON array or `{"tickets": [...]}` of tickets (description_text / description, numeric status,
  tags), with `conversations` (body_text, incoming, private) when present.
A non-empty file in which no ticket is found ends with exit code 2.

What agents did, from the export: `escalated` (escalation/tier-2/approval tags, or an internal note), `answered`
(solved or closed after at most one public agent reply), `multi_touch` (solved after more replies),
`unresolved` (still open or pending), `unknown` (solved, but the export has no conversation to tell how: Zendesk
incremental exports, the Freshdesk list API). Unknown tickets are left out of the comparison and counted in
`not_compared`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from deflect.cli.files import MALFORMED, UnusableFile, parse_json, read_text

ESCALATION_TAGS = (
    "escalat",
    "tier2",
    "tier_2",
    "tier-2",
    "l2",
    "approval",
    "manager",
    "refund",
    "legal",
    "security",
)
ZENDESK_SOLVED = {"solved", "closed"}
FRESHDESK_SOLVED = {4, 5}
AgentAction = Literal["escalated", "answered", "multi_touch", "unresolved", "unknown"]
NO_TICKETS = 2  # exit code: the export held no ticket to replay


@dataclass
class PastTicket:
    ticket_id: str
    subject: str
    first_message: str
    agent_action: AgentAction
    tags: list[str] = field(default_factory=list)
    provider: str = "zendesk"
    requester_id: str | None = None
    created_at: datetime | None = None


def register(commands: argparse._SubParsersAction) -> None:
    replay = commands.add_parser(
        "replay",
        help="shadow-triage a helpdesk export and compare with what agents did",
        description="Decide each ticket of a helpdesk export as production would, send and store nothing, and "
        "print one JSON line per ticket, then a summary comparing the decisions with what agents did.",
    )
    replay.add_argument("--tenant", required=True, help="the tenant whose policy, taxonomy and knowledge decide")
    replay.add_argument(
        "--export",
        required=True,
        type=Path,
        help="a JSON export: Zendesk tickets with comments (or incremental export pages), or Freshdesk tickets "
        "with conversations; one object, an array, or pages one per line",
    )
    replay.add_argument(
        "--format",
        choices=("auto", "zendesk", "freshdesk"),
        default="auto",
        help="the export's helpdesk (auto: told from its fields)",
    )
    replay.add_argument("--limit", type=int, default=None, help="replay at most this many tickets, oldest first")
    replay.set_defaults(func=run)


# --------------------------------------------------------------------------- reading exports


def _text(value: Any) -> str:
    from deflect.webhooks.html_text import html_to_text

    if not isinstance(value, str):
        return ""
    return html_to_text(value) if "<" in value and ">" in value else value.strip()


def _listed(ticket: dict[str, Any], name: str) -> list[Any]:
    """A list field of an exported ticket; anything else in its place (an export is user input) is no items."""
    value = ticket.get(name)
    return value if isinstance(value, list) else []


def _tags(ticket: dict[str, Any]) -> list[str]:
    return [str(t).lower() for t in _listed(ticket, "tags") if isinstance(t, str | int)]


def _requester(ticket: dict[str, Any]) -> str | None:
    value = ticket.get("requester_id")
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value).strip() or None


def _created_at(ticket: dict[str, Any]) -> datetime | None:
    value = ticket.get("created_at")
    try:
        at = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def _escalation_tagged(tags: list[str]) -> bool:
    return any(marker in tag for tag in tags for marker in ESCALATION_TAGS)


def zendesk_ticket(ticket: dict[str, Any]) -> PastTicket:
    comments = [c for c in _listed(ticket, "comments") if isinstance(c, dict)]
    requester = ticket.get("requester_id")
    first = _text(ticket.get("description"))
    if not first and comments:
        first = _text(
            comments[0].get("plain_body") or comments[0].get("body") or comments[0].get("html_body")
        )
    agent = [c for c in comments[1:] if requester is None or c.get("author_id") != requester]
    public_replies = sum(1 for c in agent if c.get("public", True))
    internal_notes = sum(1 for c in agent if c.get("public") is False)
    tags = _tags(ticket)
    status = str(ticket.get("status", "")).lower()
    return PastTicket(
        ticket_id=str(ticket.get("id", "")),
        subject=_text(ticket.get("raw_subject") or ticket.get("subject")),
        first_message=first,
        agent_action=_agent_action(
            tags, status in ZENDESK_SOLVED, public_replies, internal_notes, bool(comments)
        ),
        tags=tags,
        provider="zendesk",
        requester_id=_requester(ticket),
        created_at=_created_at(ticket),
    )


def freshdesk_ticket(ticket: dict[str, Any]) -> PastTicket:
    conversations = [c for c in _listed(ticket, "conversations") if isinstance(c, dict)]
    public_replies = sum(1 for c in conversations if not c.get("incoming") and not c.get("private"))
    internal_notes = sum(1 for c in conversations if c.get("private"))
    tags = _tags(ticket)
    status = ticket.get("status")
    solved = status in FRESHDESK_SOLVED or str(status).lower() in ("resolved", "closed")
    return PastTicket(
        ticket_id=str(ticket.get("id", "")),
        subject=_text(ticket.get("subject")),
        first_message=_text(ticket.get("description_text") or ticket.get("description")),
        agent_action=_agent_action(tags, solved, public_replies, internal_notes, bool(conversations)),
        tags=tags,
        provider="freshdesk",
        requester_id=_requester(ticket),
        created_at=_created_at(ticket),
    )


def _agent_action(
    tags: list[str], solved: bool, public_replies: int, internal_notes: int, has_thread: bool
) -> AgentAction:
    if _escalation_tagged(tags) or internal_notes:
        return "escalated"
    if not solved:
        return "unresolved"
    if not has_thread:
        return "unknown"  # solved, but how is not in the export: counting it as answered flatters deflection
    if public_replies <= 1:
        return "answered"
    return "multi_touch"


def detect_format(ticket: dict[str, Any]) -> str:
    if "description_text" in ticket or "conversations" in ticket or isinstance(ticket.get("status"), int):
        return "freshdesk"
    return "zendesk"


def load_export(path: Path) -> list[Any]:
    """The tickets of an export file, read in full; UnusableFile (one line, no traceback) when it is not one."""
    return parse_export(read_text(path), path)


def parse_export(text: str, path: Path) -> list[Any]:
    text = text.removeprefix("\ufeff")  # a byte order mark, as Windows tools write UTF-8
    if not text.strip():
        return []
    try:
        documents = [json.loads(text)]  # one document: a list, a page ({"tickets": [...]}) or one ticket
    except json.JSONDecodeError as error:
        if error.msg != "Extra data":  # the first document itself is broken: say where
            parse_json(text, path)
        documents = [  # NDJSON: one ticket or one page per line
            parse_json(line, f"{path} line {number}")
            for number, line in enumerate(text.splitlines(), start=1)
            if line.strip()
        ]
    except (ValueError, RecursionError):
        documents = [parse_json(text, path)]  # raises, with parse_json's message
    tickets = _flattened(documents, path)
    if tickets and not any(isinstance(t, dict) for t in tickets):
        raise UnusableFile(
            path,
            'not a helpdesk export: expected ticket objects, as a list or {"tickets": [...]}',
            code=MALFORMED,
        )
    return tickets


def _flattened(documents: list[Any], path: Path) -> list[Any]:
    """The tickets of the documents read: a page gives its tickets, a list its pages or tickets (export tools save
    several pages one per line or as one array), anything else is a ticket."""
    tickets: list[Any] = []
    for document in documents:
        for item in document if isinstance(document, list) else [document]:
            if isinstance(item, dict) and "tickets" in item:
                if not isinstance(item["tickets"], list):
                    raise UnusableFile(path, 'not a helpdesk export: "tickets" is not a list', code=MALFORMED)
                tickets.extend(item["tickets"])
            else:
                tickets.append(item)
    return tickets


def past_tickets(tickets: list[Any], fmt: str = "auto") -> Iterator[PastTicket]:
    for ticket in tickets:
        if not isinstance(ticket, dict):
            continue
        kind = detect_format(ticket) if fmt == "auto" else fmt
        past = freshdesk_ticket(ticket) if kind == "freshdesk" else zendesk_ticket(ticket)
        if past.first_message or past.subject:
            yield past


def read_export(path: Path, fmt: str = "auto") -> Iterator[PastTicket]:
    return past_tickets(load_export(path), fmt)


# --------------------------------------------------------------------------- replaying


def agreement(outcome: str, action: str) -> str | None:
    """How a shadow decision compares with the agents: would it have saved work, or missed something? None when
    the export does not say what agents did."""
    if action == "unknown":
        return None
    if outcome == "deflect":
        return {"answered": "would_deflect_agrees", "escalated": "would_deflect_but_agents_escalated"}.get(
            action, "would_deflect_other"
        )
    if outcome == "escalate":
        return {"escalated": "escalate_agrees", "answered": "escalate_but_agents_answered"}.get(
            action, "escalate_other"
        )
    return f"{outcome}_{action}"


def chronological(tickets: list[PastTicket]) -> list[PastTicket]:
    """Oldest first, so that each ticket's contact history holds only earlier ones (undated ones last, in order)."""
    return sorted(
        tickets, key=lambda t: (t.created_at is None, t.created_at or datetime.min.replace(tzinfo=UTC))
    )


class Contacts:
    """What production's contact history would hold when each past ticket arrived: the replayed decisions of the
    same requester's earlier tickets in the export (labels and article ids, as ContactHistory keeps them)."""

    def __init__(self, window_days: int) -> None:
        self.window = timedelta(days=window_days)
        self.by_requester: dict[str, list[Any]] = defaultdict(list)

    def before(self, past: PastTicket) -> list[Any]:
        if past.requester_id is None or past.created_at is None:
            return []  # whose, or when, is not known: no history, as for an unknown customer
        since = past.created_at - self.window
        earlier = self.by_requester[f"{past.provider}:{past.requester_id}"]
        return sorted(
            (r for r in earlier if since <= r.at < past.created_at), key=lambda r: r.at, reverse=True
        )

    def add(self, past: PastTicket, assessment: Any) -> None:
        from deflect.triage.history import ContactRecord

        if past.requester_id is None or past.created_at is None:
            return
        c = assessment.classification
        record = ContactRecord(
            ticket_id=past.ticket_id,
            decision_id=f"replay:{past.ticket_id}",
            intent=c.intent,
            product_area=c.product_area,
            outcome=assessment.outcome,
            cited=sorted({x.article_id for x in assessment.draft.citations}) if assessment.draft else [],
            sent=assessment.mode != "shadow",  # as production records it: shadow reaches nobody
            at=past.created_at,
        )
        self.by_requester[f"{past.provider}:{past.requester_id}"].append(record)


def requester_account(c: Any, ctx: Any, past: PastTicket, cache: dict[str, Any]) -> Any:
    """The account of the customer Deflect knows by this requester's helpdesk id (as intake resolves it), or None."""
    from deflect.repositories import Accounts, Customers

    if past.requester_id is None:
        return None
    key = f"{past.provider}:{past.requester_id}"
    if key not in cache:
        customer = Customers(c.store).find_by_requester(ctx, f"ext:{past.provider}", past.requester_id)
        account_id = customer.account_id if customer else None
        cache[key] = Accounts(c.store).get(ctx, account_id) if account_id else None
    return cache[key]


def run(args: argparse.Namespace) -> int:
    from deflect.bootstrap import container
    from deflect.domain.tenancy import TenantContext
    from deflect.pii import redact
    from deflect.triage.profile import TriageProfiles
    from deflect.triage.service import customer_options, message_text

    text = read_text(args.export)
    tickets = parse_export(text, args.export)  # a bad file stops here, before the tenant is read
    found = chronological(list(past_tickets(tickets, args.format)))
    if not found and text.strip():
        # Most likely a format we do not read: succeeding with nothing compared would look like a clean replay.
        print(
            f"{args.export}: no tickets found (expected tickets with a subject or description, as a list, "
            '{"tickets": [...]} pages, or one per line)',
            file=sys.stderr,
        )
        return NO_TICKETS
    c = container()
    ctx = TenantContext(tenant_id=args.tenant, actor="cli:replay", roles=frozenset({"admin"}), via="cli")
    # The tenant's own policy and rollout modes, as production decides: nothing here is sent or stored anyway.
    config = c.tenants.get(ctx)
    profile = TriageProfiles(c.store).get(ctx)
    contacts = Contacts(profile.repeat_window_days)
    accounts: dict[str, Any] = {}
    engine = c.triage_engine
    outcomes: Counter[str] = Counter()
    actions: Counter[str] = Counter()
    matrix: Counter[str] = Counter()
    count = 0
    for past in found:
        if args.limit is not None and count >= args.limit:
            break
        account = requester_account(c, ctx, past, accounts)
        assessment = engine.assess(
            ctx,
            message_text(redact(past.subject), redact(past.first_message), first=True),
            config=config,
            history=contacts.before(past),
            ticket_id=past.ticket_id,
            record_gap=False,
            **customer_options(profile, account),
        )
        contacts.add(past, assessment)
        count += 1
        outcomes[assessment.outcome] += 1
        actions[past.agent_action] += 1
        verdict = agreement(assessment.outcome, past.agent_action)
        if verdict is not None:
            matrix[verdict] += 1
        print(
            json.dumps(
                {
                    "ticket_id": past.ticket_id,
                    "would": assessment.outcome,
                    "mode": assessment.mode,
                    "reasons": assessment.decision.reasons,
                    "intent": assessment.classification.intent,
                    "agents": past.agent_action,
                    "verdict": verdict,
                }
            )
        )
    if not count:
        print("no tickets found in the export: it is empty", file=sys.stderr)
    summary = {
        "tenant": args.tenant,
        "tickets": count,
        "would": dict(outcomes),
        "agents": dict(actions),
        "comparison": dict(matrix),
        # Solved tickets whose export has no conversation: what agents did is unknown, so they are not compared.
        "not_compared": actions["unknown"],
        "would_deflect_rate": round(outcomes["deflect"] / count, 4) if count else 0.0,
        "agents_escalated_but_would_deflect": matrix["would_deflect_but_agents_escalated"],
    }
    print(json.dumps(summary))
    return 0
