"""`deflect replay --tenant T --export FILE [--format auto|zendesk|freshdesk] [--limit N]`

Runs past tickets from a helpdesk export through the tenant's triage (its policy, taxonomy and help center) in
shadow mode — decided, never sent, nothing stored — and compares each decision with what agents actually did.
Prints one JSON line per ticket, then a summary JSON object as the last line.

Exports read:
- Zendesk: `{"tickets": [...]}` (API or incremental export pages) or NDJSON, one ticket per line (the account
  JSON export); a ticket's `comments` (author_id, body/plain_body, public) are used when present.
- Freshdesk: a JSON array or `{"tickets": [...]}` of tickets (description_text / description, numeric status,
  tags), with `conversations` (body_text, incoming, private) when present.

What agents did, from the export: `escalated` (escalation/tier-2/approval tags, or an internal note), `answered`
(solved or closed after exactly one public agent reply), `multi_touch` (solved after more replies),
`unresolved` (still open or pending).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
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
AgentAction = Literal["escalated", "answered", "multi_touch", "unresolved"]


@dataclass
class PastTicket:
    ticket_id: str
    subject: str
    first_message: str
    agent_action: AgentAction
    tags: list[str] = field(default_factory=list)


def register(commands: argparse._SubParsersAction) -> None:
    replay = commands.add_parser(
        "replay", help="shadow-triage a helpdesk export and compare with what agents did"
    )
    replay.add_argument("--tenant", required=True)
    replay.add_argument("--export", required=True, type=Path)
    replay.add_argument("--format", choices=("auto", "zendesk", "freshdesk"), default="auto")
    replay.add_argument("--limit", type=int, default=None)
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
    )


def _agent_action(
    tags: list[str], solved: bool, public_replies: int, internal_notes: int, has_thread: bool
) -> AgentAction:
    if _escalation_tagged(tags) or internal_notes:
        return "escalated"
    if not solved:
        return "unresolved"
    if public_replies <= 1 or not has_thread:
        return "answered"
    return "multi_touch"


def detect_format(ticket: dict[str, Any]) -> str:
    if "description_text" in ticket or "conversations" in ticket or isinstance(ticket.get("status"), int):
        return "freshdesk"
    return "zendesk"


def load_export(path: Path) -> list[Any]:
    """The tickets of an export file, read in full; UnusableFile (one line, no traceback) when it is not one."""
    text = read_text(path)
    stripped = text.lstrip()
    tickets: Any
    if stripped.startswith("["):
        tickets = parse_json(stripped, path)
    elif stripped.startswith("{") and '"tickets"' in stripped[:2000] and stripped.count("\n{") == 0:
        document = parse_json(stripped, path)  # an object: the text starts with "{"
        tickets = document.get("tickets", [document])  # without "tickets": one NDJSON ticket
    else:  # NDJSON: one ticket per line
        tickets = [
            parse_json(line, f"{path} line {number}")
            for number, line in enumerate(text.splitlines(), start=1)
            if line.strip()
        ]
        if len(tickets) == 1 and isinstance(tickets[0], dict) and isinstance(tickets[0].get("tickets"), list):
            tickets = tickets[0]["tickets"]
    if not isinstance(tickets, list) or (tickets and not any(isinstance(t, dict) for t in tickets)):
        raise UnusableFile(
            path,
            'not a helpdesk export: expected ticket objects, as a list or {"tickets": [...]}',
            code=MALFORMED,
        )
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


def agreement(outcome: str, action: str) -> str:
    """How a shadow decision compares with the agents: would it have saved work, or missed something?"""
    if outcome == "deflect":
        return {"answered": "would_deflect_agrees", "escalated": "would_deflect_but_agents_escalated"}.get(
            action, "would_deflect_other"
        )
    if outcome == "escalate":
        return {"escalated": "escalate_agrees", "answered": "escalate_but_agents_answered"}.get(
            action, "escalate_other"
        )
    return f"{outcome}_{action}"


def run(args: argparse.Namespace) -> int:
    from deflect.bootstrap import container
    from deflect.domain.tenancy import TenantContext
    from deflect.pii import redact

    tickets = load_export(args.export)  # a bad file stops here, before the tenant is read
    c = container()
    ctx = TenantContext(tenant_id=args.tenant, actor="cli:replay", roles=frozenset({"admin"}), via="cli")
    config = c.tenants.get(ctx)
    # Shadow mode for every intent: decide and report, send nothing, store nothing.
    shadow = config.policy.model_copy(update={"rollout_default": "shadow", "rollout_by_intent": {}})
    config = config.model_copy(update={"policy": shadow})
    engine = c.triage_engine
    outcomes: Counter[str] = Counter()
    actions: Counter[str] = Counter()
    matrix: Counter[str] = Counter()
    count = 0
    for past in past_tickets(tickets, args.format):
        if args.limit is not None and count >= args.limit:
            break
        text = redact("\n".join(p for p in (past.subject, past.first_message) if p))
        assessment = engine.assess(ctx, text, config=config, record_gap=False)
        count += 1
        outcomes[assessment.outcome] += 1
        actions[past.agent_action] += 1
        verdict = agreement(assessment.outcome, past.agent_action)
        matrix[verdict] += 1
        print(
            json.dumps(
                {
                    "ticket_id": past.ticket_id,
                    "would": assessment.outcome,
                    "reasons": assessment.decision.reasons,
                    "intent": assessment.classification.intent,
                    "agents": past.agent_action,
                    "verdict": verdict,
                }
            )
        )
    if not count:
        print("no tickets found in the export", file=sys.stderr)
    summary = {
        "tenant": args.tenant,
        "tickets": count,
        "would": dict(outcomes),
        "agents": dict(actions),
        "comparison": dict(matrix),
        "would_deflect_rate": round(outcomes["deflect"] / count, 4) if count else 0.0,
        "agents_escalated_but_would_deflect": matrix["would_deflect_but_agents_escalated"],
    }
    print(json.dumps(summary))
    return 0
