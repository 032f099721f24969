"""The escalation summary: everything an agent needs to decide, in one place, stored as evidence and shown as
Markdown. Built from stored records only (already redacted text), never from the raw webhook bodies."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

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

PROBLEM_CHARS = 1200


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


class EscalationSummary(BaseModel):
    tenant_id: str
    ticket_id: str
    decision_id: str
    subject: str = ""
    problem: str
    customer: SummaryCustomer
    account: SummaryAccount
    sla: SummarySla
    ai: AiFindings
    diagnostics_collected: list[str] = Field(default_factory=list)
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
    diagnostics_collected: list[str],
) -> EscalationSummary:
    first_customer = next((m for m in messages if m.author == "customer"), None)
    problem = (
        first_customer.body_redacted if first_customer else ticket.subject_redacted
    ) or "(no message text)"
    if len(problem) > PROBLEM_CHARS:
        problem = problem[:PROBLEM_CHARS].rstrip() + " …"
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
        diagnostics_collected=diagnostics_collected,
        diagnostics_missing=list(request.missing_diagnostics),
        sentiment=c.sentiment,
        impact=", ".join(impact),
        proposed_reply=request.proposed_reply,
        proposed_action=request.proposed_action,
        why_escalated=why,
        evidence=[*request.evidence_refs, *message_evidence],
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


def render_markdown(summary: EscalationSummary, links: dict[str, str] | None = None) -> str:
    """Markdown for the agent. `links` maps evidence keys to (short-lived) URLs when the caller has them."""
    links = links or {}
    s = summary
    ai = s.ai
    lines: list[str] = [f"# Escalation: ticket {s.ticket_id}", "", "## Problem", s.subject, "", s.problem, ""]
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
    lines += ["## Diagnostics", "Collected:", *_bullets(s.diagnostics_collected), "Missing:"]
    lines += [*_bullets(s.diagnostics_missing), ""]
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
