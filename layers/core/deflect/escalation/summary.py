"""The escalation summary: everything an agent needs to decide, in one place, stored as evidence and shown as
Markdown. Built from stored records only (already redacted text), never from the raw webhook bodies.

The problem is the customer message that escalated (earlier messages are its context). The summary is written
once, when the escalation starts; what the customer said or gave since (a follow-up joins the open escalation
instead of starting another) is read again for the task view (`since_summary`), from the same redacted records.

Diagnostics are listed with their values (redacted as customer text is). The diagnostic tools' output is not
copied into the summary: it stays in its own evidence object, sealed with the customer's key, and the task view
opens it for the agent (`tool_result_view`), bounded to TOOL_OUTPUT_CHARS per result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from deflect.domain.models import (
    Account,
    ArticleRef,
    Citation,
    Customer,
    EvidenceRef,
    Message,
    RequestedAction,
    SlaTier,
    Ticket,
)
from deflect.escalation.models import EscalationRequest
from deflect.pii import redact

PROBLEM_CHARS = 1200
CONTEXT_MESSAGES = 5  # earlier messages quoted as the problem's context, the latest ones
CONTEXT_CHARS = 600
SINCE_MESSAGES = 20  # follow-ups shown in the task view, the latest ones
VALUE_CHARS = 200  # what triage keeps of a diagnostic value (deflect.triage.diagnostics.extract)
TOOL_OUTPUT_CHARS = 4000  # per tool result shown in the task view; the evidence keeps all of it
MAX_TOOL_RESULTS = 10
# Values that point at a file (diagnostics "logs", "screenshot"): triage reads an attachment, it never keeps it.
_FILE_VALUE = re.compile(r"^attachment:(?P<name>.+)$")
FILE_NOT_KEPT = (
    "the file itself is not kept by Deflect (only read for diagnostics); open it on the helpdesk ticket"
)
VALUE_FROM_FILE = "read from a file attached to that message; the file itself is not kept by Deflect"


class SummaryCustomer(BaseModel):
    customer_id: str | None = None
    name: str | None = None
    email: str | None = None
    verified: bool = False


class SummaryAccount(BaseModel):
    account_id: str | None = None
    name: str = ""
    plan: str | None = None
    entitlements: list[str] = Field(default_factory=list)
    owner: str | None = None


class SummarySla(BaseModel):
    tier: str
    first_response_minutes: int
    review_timeout_seconds: int
    follow_up_by: datetime


class AiFindings(BaseModel):
    intent: str
    intent_confidence: float
    answer_confidence: float | None = None
    retrieved: list[ArticleRef] = Field(default_factory=list)
    citations: list[Citation] = Field(default_factory=list)
    conclusion: list[str] = Field(default_factory=list)


class CollectedDiagnostic(BaseModel):
    """One diagnostic triage stored for the ticket (`DIAG#{name}`), with its value as kept: redacted."""

    name: str
    value: str | None = None
    message_id: str | None = None
    source: Literal["message", "attachment"] | None = None
    note: str | None = None


class SummaryMessage(BaseModel):
    """One message as the agent reads it: its redacted text, bounded."""

    message_id: str
    author: str = "customer"
    received_at: datetime | None = None
    text: str


class FollowUp(SummaryMessage):
    """A customer message that arrived after the summary was written, with what triage read from it when it joined
    the open escalation (deflect.triage.service): its intent, sensitive flags and any action it asks for."""

    intent: str | None = None
    sensitive_flags: list[str] = Field(default_factory=list)
    requested_action: RequestedAction | None = None
    # An action the escalation's proposal does not cover: deciding this task does not carry it out.
    new_action: bool = False


class SinceSummary(BaseModel):
    """What the summary does not show because it arrived later: customer messages after the one that escalated,
    diagnostics it does not list. Read for the task view, never stored in the summary."""

    messages: list[FollowUp] = Field(default_factory=list)
    diagnostics: list[CollectedDiagnostic] = Field(default_factory=list)
    omitted_messages: int = 0


class ToolResultView(BaseModel):
    """A diagnostic tool's output as the agent sees it: opened from its (sealed) evidence, bounded."""

    tool: str
    sha256: str
    ok: bool | None = None
    actor: str | None = None
    output: str | None = None  # the output as indented JSON, cut at TOOL_OUTPUT_CHARS with a marker
    output_chars: int = 0
    truncated: bool = False
    unavailable: str | None = None  # why it is not shown: erased, withheld, unreadable, not this ticket's


class EscalationSummary(BaseModel):
    tenant_id: str
    ticket_id: str
    decision_id: str
    subject: str = ""
    problem: str
    # The message that escalated (the problem), the latest ones before it, and the ids of it and all before it
    # (None on summaries stored before these fields: see since_summary).
    problem_message_id: str | None = None
    earlier_messages: list[SummaryMessage] = Field(default_factory=list)
    messages_seen: list[str] | None = None
    customer: SummaryCustomer
    account: SummaryAccount
    sla: SummarySla
    ai: AiFindings
    diagnostics_collected: list[str] = Field(default_factory=list)
    # The same diagnostics with their values (summaries stored before this field have names only).
    diagnostics: list[CollectedDiagnostic] = Field(default_factory=list)
    diagnostics_missing: list[str] = Field(default_factory=list)
    sentiment: str
    impact: str
    proposed_reply: str | None = None
    proposed_action: RequestedAction
    why_escalated: list[str] = Field(default_factory=list)
    evidence: list[EvidenceRef] = Field(default_factory=list)


def build_summary(
    request: EscalationRequest,
    ticket: Ticket,
    messages: list[Message],
    customer: Customer | None,
    account: Account | None,
    tier: SlaTier,
    diagnostics_collected: Sequence[str | CollectedDiagnostic],
) -> EscalationSummary:
    """`diagnostics_collected`: names, or (from `collected_diagnostics`) names with their values."""
    escalating = escalating_message(request, messages)
    problem = _bounded(
        (escalating.body_redacted if escalating else ticket.subject_redacted) or "(no message text)",
        PROBLEM_CHARS,
    )
    upto = messages.index(escalating) if escalating else len(messages)
    earlier = [_quoted(m, CONTEXT_CHARS) for m in messages[:upto][-CONTEXT_MESSAGES:]]
    c = request.classification
    impact = [f"severity {request.severity}", f"plan {account.plan if account else ticket.plan or 'unknown'}"]
    if c.repeat_contact:
        impact.append("repeat contact")
    if c.wants_human:
        impact.append("customer asked for a person")
    why = list(request.reasons)
    why += [f"sensitive: {flag}" for flag in c.sensitive_flags if f"sensitive: {flag}" not in why]
    if request.proposed_action.kind != "none":
        why.append(f"account-changing action requested: {request.proposed_action.kind}")
    message_evidence = [m.evidence for m in messages if m.evidence is not None]
    return EscalationSummary(
        tenant_id=request.tenant_id,
        ticket_id=request.ticket_id,
        decision_id=request.decision_id,
        subject=ticket.subject_redacted,
        problem=problem,
        problem_message_id=escalating.message_id if escalating else None,
        earlier_messages=earlier,
        # A message after the one that escalated is not quoted here: the task view lists it as new.
        messages_seen=[m.message_id for m in messages[: upto + 1]],
        customer=SummaryCustomer(
            customer_id=customer.customer_id if customer else ticket.customer_id,
            name=customer.name if customer else None,
            email=customer.email if customer else None,
            verified=customer.verified if customer else False,
        ),
        account=SummaryAccount(
            account_id=account.account_id if account else ticket.account_id,
            name=account.name if account else "",
            plan=account.plan if account else ticket.plan,
            entitlements=account.entitlements if account else ticket.entitlements,
            owner=account.owner if account else None,
        ),
        sla=SummarySla(
            tier=tier.name,
            first_response_minutes=tier.first_response_minutes,
            review_timeout_seconds=tier.review_timeout_seconds,
            follow_up_by=request.escalated_at + timedelta(minutes=tier.first_response_minutes),
        ),
        ai=AiFindings(
            intent=c.intent,
            intent_confidence=c.intent_confidence,
            answer_confidence=request.confidence,
            retrieved=request.retrieved,
            citations=request.citations,
            conclusion=list(request.reasons),
        ),
        diagnostics_collected=[d if isinstance(d, str) else d.name for d in diagnostics_collected],
        diagnostics=[d for d in diagnostics_collected if isinstance(d, CollectedDiagnostic)],
        diagnostics_missing=list(request.missing_diagnostics),
        sentiment=c.sentiment,
        impact=", ".join(impact),
        proposed_reply=request.proposed_reply,
        proposed_action=request.proposed_action,
        why_escalated=why,
        evidence=[*request.evidence_refs, *message_evidence],
    )


def escalating_message(request: EscalationRequest, messages: Sequence[Message]) -> Message | None:
    """The customer message that escalated. Requests started before they named it: the latest customer message
    received by the time triage decided, which is the one it decided on."""
    customers = [m for m in messages if m.author == "customer"]
    named = next((m for m in customers if request.message_id and m.message_id == request.message_id), None)
    if named is not None:
        return named
    by_then = [m for m in customers if m.received_at <= request.escalated_at]
    return (by_then or customers or [None])[-1]


def since_summary(
    summary: EscalationSummary,
    messages: Sequence[Message],
    diagnostic_records: Iterable[Mapping[str, Any]],
    follow_up: Callable[[str], Mapping[str, Any] | None] | None = None,
    *,
    escalated_at: datetime | None = None,
) -> SinceSummary:
    """The customer messages after the one `summary` quotes, and the diagnostics it does not list, from the
    ticket's records now (redacted text, bounded as the summary's). `follow_up(message_id)` reads what triage recorded when the
    message joined the escalation. A summary stored before it listed its messages counts those received by
    `escalated_at` as seen."""
    if summary.messages_seen is not None:
        seen = set(summary.messages_seen)
        new = [m for m in messages if m.message_id not in seen]
    else:
        new = [m for m in messages if escalated_at is None or m.received_at > escalated_at]
    new = [m for m in new if m.author == "customer"]
    shown = [
        FollowUp(
            **_quoted(m, PROBLEM_CHARS).model_dump(),
            **_follow_up(follow_up(m.message_id) if follow_up else None),
        )
        for m in new[-SINCE_MESSAGES:]
    ]
    had = {(d.name, d.value) for d in summary.diagnostics}
    found = collected_diagnostics(diagnostic_records, messages, summary.subject)
    return SinceSummary(
        messages=shown,
        diagnostics=[d for d in found if (d.name, d.value) not in had],
        omitted_messages=max(0, len(new) - SINCE_MESSAGES),
    )


def _follow_up(recorded: Mapping[str, Any] | None) -> dict[str, Any]:
    if not recorded:
        return {}
    action = recorded.get("requested_action")
    return {
        "intent": recorded.get("intent"),
        "sensitive_flags": list(recorded.get("sensitive_flags") or []),
        "requested_action": RequestedAction.model_validate(action) if action else None,
        "new_action": bool(recorded.get("new_action")),
    }


def _bounded(text: str, limit: int) -> str:
    return text[:limit].rstrip() + " …" if len(text) > limit else text


def _quoted(message: Message, limit: int) -> SummaryMessage:
    return SummaryMessage(
        message_id=message.message_id,
        author=message.author,
        received_at=message.received_at,
        text=_bounded(message.body_redacted or "(no message text)", limit),
    )


def collected_diagnostics(
    records: Iterable[Mapping[str, Any]], messages: Sequence[Message] = (), subject: str = ""
) -> list[CollectedDiagnostic]:
    """The ticket's stored diagnostics (`DIAG#` items' data) with their values, as an agent should see them.

    Values are redacted as customer text is (one read from an attached log was never redacted) and bounded. Where
    a value came from is told when the record says: the message's text, or a file attached to it (which Deflect
    does not keep). A record without a value says so; nothing is guessed.
    """
    by_id = {m.message_id: m for m in messages}
    found: list[CollectedDiagnostic] = []
    for record in records:
        name = str(record.get("name") or "")
        if not name:
            continue
        raw = record.get("value")
        value = redact(str(raw))[:VALUE_CHARS] if raw not in (None, "") else None
        message_id = str(record["message_id"]) if record.get("message_id") else None
        message = by_id.get(message_id) if message_id else None
        source: Literal["message", "attachment"] | None = None
        note: str | None = None
        if value is None:
            note = "named by triage without a value kept"
        elif _FILE_VALUE.match(value):
            source, note = "attachment", FILE_NOT_KEPT
        elif value == "inline":
            source, note = "message", "log lines in the customer's message"
        elif message is not None:
            text = f"{subject}\n{message.body_redacted}".lower()
            if value.lower() in text:
                source = "message"
            elif message.attachments:
                source, note = "attachment", VALUE_FROM_FILE
        found.append(
            CollectedDiagnostic(name=name, value=value, message_id=message_id, source=source, note=note)
        )
    return found


def tool_result_view(sha256: str, body: bytes, ticket_id: str) -> ToolResultView:
    """A diagnostic tool's evidence body (`{"tool", "subject", "ok", "output", "actor"}`) for the agent: the
    output as indented JSON, cut at TOOL_OUTPUT_CHARS with a marker. A body about another ticket is not shown."""
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        return ToolResultView(tool="unknown", sha256=sha256, unavailable="unreadable")
    tool = str(document.get("tool") or "unknown")
    subject = document.get("subject") if isinstance(document.get("subject"), dict) else {}
    if str(subject.get("ticket_id") or "") != ticket_id:
        return ToolResultView(tool=tool, sha256=sha256, unavailable="not this ticket's")
    text = json.dumps(document.get("output"), indent=2, sort_keys=True, ensure_ascii=False, default=str)
    truncated = len(text) > TOOL_OUTPUT_CHARS
    shown = text[:TOOL_OUTPUT_CHARS]
    if truncated:
        shown += (
            f"\n… [truncated: {TOOL_OUTPUT_CHARS} of {len(text)} characters shown; "
            f"the full result is kept as evidence {sha256[:12]}]"
        )
    ok = document.get("ok")
    return ToolResultView(
        tool=tool,
        sha256=sha256,
        ok=ok if isinstance(ok, bool) else None,
        actor=str(document["actor"]) if document.get("actor") else None,
        output=shown,
        output_chars=len(text),
        truncated=truncated,
    )


def _action_line(action: RequestedAction) -> str:
    if action.kind == "none":
        return "none"
    parts = [action.kind]
    if action.amount is not None:
        parts.append(f"{action.amount} {action.currency or ''}".strip())
    if action.target:
        parts.append(f"target {action.target}")
    return ", ".join(parts)


def _bullets(items: list[str], empty: str = "none") -> list[str]:
    return [f"- {item}" for item in items] or [f"- {empty}"]


def _diagnostic_line(name: str, found: CollectedDiagnostic | None) -> str:
    if found is None:
        return name  # a summary stored with names only
    line = f"{name}: {found.value}" if found.value is not None else name
    if found.message_id:
        line += f" (message {found.message_id})"
    return f"{line} — {found.note}" if found.note else line


def _fenced(text: str) -> list[str]:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}json", text, fence]


def _tool_lines(results: Sequence[ToolResultView]) -> list[str]:
    lines = ["## Diagnostic tool results"]
    for result in results:
        if result.unavailable:
            lines.append(f"- {result.tool}: not shown ({result.unavailable})")
            continue
        state = "ok" if result.ok else "failed" if result.ok is False else "unknown"
        lines.append(f"### {result.tool} — {state}" + (f", run by {result.actor}" if result.actor else ""))
        lines += _fenced(result.output or "")
    if not results:
        lines.append("- none")
    return [*lines, ""]


def _message_line(message: SummaryMessage) -> str:
    when = f", {message.received_at.isoformat(timespec='minutes')}" if message.received_at else ""
    return f"- {message.author} (message {message.message_id}{when}): {message.text}"


def _since_lines(since: SinceSummary) -> list[str]:
    lines = ["## New since this summary (after the message that escalated)", "Customer messages:"]
    for message in since.messages:
        lines.append(_message_line(message))
        if message.requested_action is not None and message.requested_action.kind != "none":
            scope = (
                "NOT in the proposal below: deciding this task does not carry it out"
                if message.new_action
                else "as proposed"
            )
            lines.append(f"  - Asks for: {_action_line(message.requested_action)} ({scope})")
        if message.sensitive_flags:
            lines.append(f"  - Sensitive: {', '.join(message.sensitive_flags)}")
    if since.omitted_messages:
        lines.append(f"- … {since.omitted_messages} earlier follow-ups not shown (see the helpdesk ticket)")
    if not since.messages:
        lines.append("- none")
    lines.append("Diagnostics:")
    lines += _bullets([_diagnostic_line(d.name, d) for d in since.diagnostics])
    return [*lines, ""]


def render_markdown(
    summary: EscalationSummary,
    links: dict[str, str] | None = None,
    tool_results: Sequence[ToolResultView] | None = None,
    since: SinceSummary | None = None,
) -> str:
    """Markdown for the agent. `links` maps evidence keys to (short-lived) URLs when the caller has them;
    `tool_results` are the diagnostic tools' outputs when the caller opened them (the task view does); `since` is
    what the customer said or gave after the summary was written (the task view reads it)."""
    links = links or {}
    s = summary
    ai = s.ai
    lines: list[str] = [f"# Escalation: ticket {s.ticket_id}", "", "## Problem", s.subject, "", s.problem, ""]
    if s.earlier_messages:
        lines += ["Earlier on this ticket:", *(_message_line(m) for m in s.earlier_messages), ""]
    if since is not None and (since.messages or since.diagnostics or since.omitted_messages):
        lines += _since_lines(since)
    lines += [
        "## Customer and account",
        f"- Customer: {s.customer.name or 'unknown'} ({s.customer.customer_id or 'unresolved'})"
        + (" — verified" if s.customer.verified else " — not verified"),
        f"- Account: {s.account.name or s.account.account_id or 'unknown'}; plan {s.account.plan or 'unknown'}",
        f"- Entitlements: {', '.join(s.account.entitlements) or 'none'}",
        f"- SLA: {s.sla.tier}; first response within {s.sla.first_response_minutes} min; "
        f"follow up by {s.sla.follow_up_by.isoformat(timespec='minutes')}",
        "",
        "## What the AI found",
        f"- Intent: {ai.intent} (confidence {ai.intent_confidence:.2f})"
        + (f"; answer confidence {ai.answer_confidence:.2f}" if ai.answer_confidence is not None else ""),
    ]
    for article in ai.retrieved:
        title = article.title or article.article_id
        ref = f"[{title}]({article.url})" if article.url else title
        lines.append(f"- Retrieved: {ref} v{article.version}" + (" (stale)" if article.stale else ""))
    for citation in ai.citations:
        lines.append(f'- Cited {citation.article_id} v{citation.version}: "{citation.quote}"')
    lines += ["- Concluded:", *(f"  - {c}" for c in ai.conclusion or ["no conclusion recorded"]), ""]
    values = {d.name: d for d in s.diagnostics}
    collected = [_diagnostic_line(name, values.get(name)) for name in s.diagnostics_collected]
    lines += ["## Diagnostics", "Collected:", *_bullets(collected), "Missing:"]
    lines += [*_bullets(s.diagnostics_missing), ""]
    if tool_results is not None:
        lines += _tool_lines(tool_results)
    lines += ["## Sentiment and impact", f"- Sentiment: {s.sentiment}", f"- Impact: {s.impact}", ""]
    lines += ["## Proposed reply", s.proposed_reply or "(no reply drafted)", ""]
    lines += ["## Proposed action", f"- {_action_line(s.proposed_action)}", ""]
    lines += ["## Why escalated", *_bullets(s.why_escalated, "policy"), ""]
    lines.append("## Evidence")
    for ref in s.evidence:
        name = f"{ref.kind}: {ref.key.rsplit('/', 1)[-1]}"
        lines.append(f"- [{name}]({links[ref.key]})" if ref.key in links else f"- {name}")
    if not s.evidence:
        lines.append("- none")
    return "\n".join(lines) + "\n"


def stored_document(summary: EscalationSummary) -> dict[str, Any]:
    """What is locked as evidence: the structured summary and its Markdown, so both read back identically."""
    return {"summary": summary.model_dump(mode="json"), "markdown": render_markdown(summary)}
