"""Support analytics from facts: is the AI helping, and where does it need knowledge or policy work?

Definitions (the README repeats them; tests check them on a hand-computed history):
- a ticket belongs to a range by the day its first `message.received` happened;
- *deflected*: an `auto` decision to deflect whose answer reached the customer (`answer.delivered`, or a
  `writeback.delivered` public reply that is neither the escalation's acknowledgement nor the agent's reply).
  Within `reopen_window_days` after delivery it is *reopened* (`ticket.reopened`, or the customer wrote again),
  *corrected* (`deflection.corrected` or a human `agent.replied`),
  *confirmed* (`deflection.confirmed`), else *assumed* once the window has passed, or *pending* before;
  verified = confirmed + assumed;
- *unneeded escalation*: the agent approved the AI draft unchanged (edit distance 0) and nothing made a human
  mandatory (no sensitive flag, no account action, no request for a human); *wrong deflection*: reopened or
  corrected;
- first response: first public answer after receipt (delivered AI answer, the agent's reply written back, or a
  human reply; never the acknowledgement); resolution: first `ticket.resolved|closed`, `deflection.confirmed` or
  the agent's reply delivered, or the delivery of an assumed deflection;
- SLA breach: first response later than the tenant's tier (`sla_tiers[tier].first_response_minutes`), or none
  yet and the time is up; task timeouts count `task.reassigned` with reason timeout and
  `escalation.review_expired`;
- classification accuracy at close: closed tickets whose AI classification no agent corrected;
- agreement (shadow / assist): the agent's observed action has the AI outcome's category (answered ↔ deflect,
  asked for diagnostics ↔ ask_diagnostics, escalated ↔ escalate; approving or editing a task agrees with the
  AI's proposal, rejecting it does not);
- knowledge gaps: decisions that were out of scope, ungrounded or below the policy's answer threshold, counted
  by product area and intent.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from deflect.domain.errors import MalformedPayload
from deflect.domain.models import TenantConfig, utcnow
from deflect.domain.tenancy import TenantContext
from deflect.insight.facts import Fact, FactStore
from deflect.repositories import TenantConfigs

CLASSIFICATION_FIELDS = (
    "intent",
    "product_area",
    "severity",
    "sentiment",
    "language",
    "sensitive_flags",
    "requested_action",
)
MAX_RANGE_DAYS = 366
AGENT_ACTION_CATEGORY = {
    "answered": "deflect",
    "asked_diagnostics": "ask_diagnostics",
    "escalated": "escalate",
}
CLOSE_TYPES = {"ticket.resolved", "ticket.closed"}
RESOLUTION_TYPES = CLOSE_TYPES | {"deflection.confirmed"}
ESCALATION_TYPES = {"escalation.summarized", "escalation.acknowledged", "task.opened"}


class Durations(BaseModel):
    n: int = 0
    mean_minutes: float | None = None
    median_minutes: float | None = None
    p90_minutes: float | None = None


class DeflectionStats(BaseModel):
    received: int = 0
    deflected: int = 0
    confirmed: int = 0
    assumed: int = 0
    pending: int = 0
    reopened: int = 0
    corrected: int = 0
    deflection_rate: float | None = None
    confirmed_rate: float | None = None
    assumed_rate: float | None = None
    verified_rate: float | None = None
    reopen_window_days: int = 7


class EscalationStats(BaseModel):
    escalated: int = 0
    escalation_rate: float | None = None
    decided: int = 0
    sent_unchanged: int = 0
    unneeded: int = 0
    unneeded_rate: float | None = None
    edited: int = 0
    rejected: int = 0
    wrong_deflections: int = 0
    wrong_deflection_rate: float | None = None


class EditStats(BaseModel):
    n: int = 0
    mean_distance: float | None = None
    median_distance: float | None = None
    mean_ratio: float | None = None


class SlaStats(BaseModel):
    first_response_breaches: int = 0
    task_timeouts: int = 0
    breach_rate: float | None = None


class AccuracyStats(BaseModel):
    closed: int = 0
    fully_correct: int = 0
    accuracy: float | None = None
    by_field: dict[str, float] = Field(default_factory=dict)


class AgreementStats(BaseModel):
    compared: int = 0
    agreed: int = 0
    rate: float | None = None
    by_mode: dict[str, dict[str, float | int | None]] = Field(default_factory=dict)
    confusion: dict[str, dict[str, int]] = Field(default_factory=dict)


class KnowledgeGap(BaseModel):
    product_area: str
    question: str
    count: int
    unanswered: int = 0
    low_confidence: int = 0


class AnalyticsSummary(BaseModel):
    tenant_id: str
    date_from: date
    date_to: date
    generated_at: datetime
    deflection: DeflectionStats
    escalation: EscalationStats
    edits: EditStats
    first_response: Durations
    resolution: Durations
    sla: SlaStats
    classification: AccuracyStats
    agreement: AgreementStats
    knowledge_gaps: list[KnowledgeGap] = Field(default_factory=list)


class DailyPoint(BaseModel):
    day: date
    received: int
    deflected: int
    verified: int
    escalated: int
    wrong_deflections: int
    unneeded_escalations: int
    first_response_median_minutes: float | None
    sla_breaches: int
    agreement_rate: float | None


# ------------------------------------------------------------------ pure computation


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _minutes(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 60


def nearest_rank(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def durations(values: list[float]) -> Durations:
    if not values:
        return Durations()
    return Durations(
        n=len(values),
        mean_minutes=round(sum(values) / len(values), 2),
        median_minutes=round(nearest_rank(values, 0.5) or 0, 2),
        p90_minutes=round(nearest_rank(values, 0.9) or 0, 2),
    )


class TicketView:
    """Everything analytics derives for one ticket from its ordered facts."""

    def __init__(
        self, ticket_id: str, facts: list[Fact], config: TenantConfig, now: datetime, window: int
    ) -> None:
        self.ticket_id = ticket_id
        self.facts = sorted(facts, key=lambda f: (f.at, f.seq))
        received = [f for f in self.facts if f.type == "message.received"]
        self.received: Fact | None = received[0] if received else None
        self.decisions = [f for f in self.facts if f.type == "decision.made"]
        self.decision: Fact | None = self.decisions[-1] if self.decisions else None
        self._purposes()
        self._deflection(now, window)
        self._escalation()
        self._response_times(config, now)

    def _purposes(self) -> None:
        """What each public reply written back was for: the escalation names its acknowledgement and the
        agent's reply by outbox id; any other reply is the AI's answer."""
        acks = {f.outbox_id for f in self.facts if f.type == "escalation.acknowledged" and f.outbox_id}
        agent = {i for f in self.facts if f.type == "escalation.writeback_enqueued" for i in f.outbox_ids}
        self.purpose: dict[int, str] = {}
        for f in self.facts:
            if f.type == "writeback.delivered" and f.kind == "public_reply":
                guess = (
                    "acknowledgement"
                    if f.outbox_id in acks
                    else "agent_reply"
                    if f.outbox_id in agent
                    else "answer"
                )
                self.purpose[f.seq] = f.purpose or guess

    def after(self, at: datetime, types: set[str]) -> list[Fact]:
        return [f for f in self.facts if f.at >= at and f.type in types]

    def replied(self, fact: Fact, purposes: set[str]) -> bool:
        return fact.type == "writeback.delivered" and self.purpose.get(fact.seq) in purposes

    def _deflection(self, now: datetime, window: int) -> None:
        self.delivered_at: datetime | None = None
        self.deflection_state: str | None = None
        chosen = next(
            (d for d in self.decisions if d.outcome == "deflect" and d.rollout_mode == "auto"), None
        )
        if chosen is None:
            return
        for fact in self.after(chosen.at, {"answer.delivered", "writeback.delivered"}):
            if fact.type == "answer.delivered" or self.replied(fact, {"answer"}):
                self.delivered_at = fact.at
                break
        if self.delivered_at is None:
            return
        horizon = self.delivered_at + timedelta(days=window)
        later = [f for f in self.facts if self.delivered_at < f.at <= horizon]
        types = {f.type for f in later}
        human_reply = any(f.type == "agent.replied" and f.public is not False for f in later)
        # A customer writing again on the ticket reopens it, as helpdesks do with a solved ticket.
        if "ticket.reopened" in types or "message.received" in types:
            self.deflection_state = "reopened"
        elif "deflection.corrected" in types or human_reply:
            self.deflection_state = "corrected"
        elif "deflection.confirmed" in types:
            self.deflection_state = "confirmed"
        else:
            self.deflection_state = "assumed" if now >= horizon else "pending"

    def _escalation(self) -> None:
        self.escalated = any(f.type in ESCALATION_TYPES for f in self.facts)
        decided = [f for f in self.facts if f.type == "task.decided" and f.outcome != "reassign"]
        self.task_decision: Fact | None = decided[-1] if decided else None
        d = self.decision
        self.mandatory_human = bool(
            d and (d.sensitive_flags or (d.action_kind not in (None, "none")) or d.wants_human)
        )

    def _response_times(self, config: TenantConfig, now: datetime) -> None:
        self.first_response_minutes: float | None = None
        self.resolution_minutes: float | None = None
        self.sla_breached = False
        if self.received is None:
            return
        start = self.received.at
        for fact in self.after(start, {"answer.delivered", "writeback.delivered", "agent.replied"}):
            if (
                fact.type == "answer.delivered"
                or self.replied(fact, {"answer", "agent_reply"})
                or (fact.type == "agent.replied" and fact.public is not False)
            ):
                self.first_response_minutes = _minutes(start, fact.at)
                break
        resolved = [
            f
            for f in self.after(start, RESOLUTION_TYPES | {"writeback.delivered"})
            if f.type != "writeback.delivered" or self.replied(f, {"agent_reply"})
        ]
        if resolved:
            self.resolution_minutes = _minutes(start, resolved[0].at)
        elif self.deflection_state == "assumed" and self.delivered_at:
            self.resolution_minutes = _minutes(start, self.delivered_at)
        tier = config.sla_tiers.get(self.received.sla_tier or "standard") or config.sla_tiers.get("standard")
        if tier is not None:
            # Still unanswered counts as soon as the time is up, not only once an answer finally arrives.
            answered = self.first_response_minutes
            waited = answered if answered is not None else _minutes(start, now)
            self.sla_breached = waited > tier.first_response_minutes

    @property
    def task_timeouts(self) -> int:
        return sum(
            1
            for f in self.facts
            if f.type == "escalation.review_expired"
            or (f.type == "task.reassigned" and f.reason == "timeout")
        )

    @property
    def agent_category(self) -> str | None:
        for fact in self.facts:
            if self.decision is not None and fact.at < self.decision.at:
                continue
            if fact.type == "agent.replied":
                return AGENT_ACTION_CATEGORY.get(fact.agent_action or "answered", "other")
            if fact.type == "task.decided" and fact.outcome in {"approve", "edit"}:
                return self.decision.outcome if self.decision else None
            if fact.type == "task.decided" and fact.outcome == "reject":
                return "rejected"
        return None

    @property
    def corrected_fields(self) -> set[str] | None:
        closes = [f for f in self.facts if f.type in CLOSE_TYPES]
        if not closes or self.decision is None or self.decision.intent is None:
            return None
        return {field for f in closes for field in f.corrected_fields}


def group_tickets(facts: Iterable[Fact]) -> dict[str, list[Fact]]:
    grouped: dict[str, list[Fact]] = defaultdict(list)
    for fact in facts:
        grouped[fact.ticket_id].append(fact)
    return grouped


def summarize_views(views: list[TicketView], window: int) -> dict[str, Any]:
    """The numeric sections of a summary for a set of tickets (pure)."""
    received = len(views)
    states = Counter(v.deflection_state for v in views if v.deflection_state)
    deflected = sum(states.values())
    deflection = DeflectionStats(
        received=received,
        deflected=deflected,
        confirmed=states["confirmed"],
        assumed=states["assumed"],
        pending=states["pending"],
        reopened=states["reopened"],
        corrected=states["corrected"],
        deflection_rate=_rate(deflected, received),
        confirmed_rate=_rate(states["confirmed"], received),
        assumed_rate=_rate(states["assumed"], received),
        verified_rate=_rate(states["confirmed"] + states["assumed"], received),
        reopen_window_days=window,
    )
    decided = [v for v in views if v.task_decision is not None]
    unchanged = [
        v
        for v in decided
        if v.task_decision.outcome == "approve" and not (v.task_decision.edit_distance or 0)
    ]
    unneeded = [v for v in unchanged if not v.mandatory_human]
    wrong = states["reopened"] + states["corrected"]
    escalated = sum(1 for v in views if v.escalated)
    escalation = EscalationStats(
        escalated=escalated,
        escalation_rate=_rate(escalated, received),
        decided=len(decided),
        sent_unchanged=len(unchanged),
        unneeded=len(unneeded),
        unneeded_rate=_rate(len(unneeded), len(decided)),
        edited=sum(1 for v in decided if v.task_decision.outcome == "edit"),
        rejected=sum(1 for v in decided if v.task_decision.outcome == "reject"),
        wrong_deflections=wrong,
        wrong_deflection_rate=_rate(wrong, deflected),
    )
    drafts = [v.task_decision for v in decided if v.task_decision.outcome in {"approve", "edit"}]
    # A decision recorded without a measure is unknown, not unedited: it is left out of the means.
    distances = [float(d.edit_distance) for d in drafts if d.edit_distance is not None]
    ratios = [float(d.edit_ratio) for d in drafts if d.edit_ratio is not None]
    edits = EditStats(
        n=len(drafts),
        mean_distance=round(sum(distances) / len(distances), 2) if distances else None,
        median_distance=nearest_rank(distances, 0.5),
        mean_ratio=round(sum(ratios) / len(ratios), 4) if ratios else None,
    )
    breaches = sum(1 for v in views if v.sla_breached)
    sla = SlaStats(
        first_response_breaches=breaches,
        task_timeouts=sum(v.task_timeouts for v in views),
        breach_rate=_rate(breaches, received),
    )
    closed = [(v, v.corrected_fields) for v in views if v.corrected_fields is not None]
    classification = AccuracyStats(
        closed=len(closed),
        fully_correct=sum(1 for _, fields in closed if not fields),
        accuracy=_rate(sum(1 for _, fields in closed if not fields), len(closed)),
        by_field={
            name: round(1 - sum(1 for _, fields in closed if name in fields) / len(closed), 4)
            for name in CLASSIFICATION_FIELDS
        }
        if closed
        else {},
    )
    return {
        "deflection": deflection,
        "escalation": escalation,
        "edits": edits,
        "first_response": durations(
            [v.first_response_minutes for v in views if v.first_response_minutes is not None]
        ),
        "resolution": durations([v.resolution_minutes for v in views if v.resolution_minutes is not None]),
        "sla": sla,
        "classification": classification,
        "agreement": agreement(views),
    }


def agreement(views: list[TicketView]) -> AgreementStats:
    confusion: dict[str, Counter[str]] = defaultdict(Counter)
    per_mode: dict[str, Counter[str]] = defaultdict(Counter)
    for view in views:
        decision = view.decision
        if decision is None or decision.rollout_mode not in {"shadow", "assist"}:
            continue
        agent = view.agent_category
        if agent is None:
            continue
        agreed = agent == decision.outcome
        confusion[decision.outcome or "unknown"][agent] += 1
        per_mode[decision.rollout_mode]["compared"] += 1
        per_mode[decision.rollout_mode]["agreed"] += int(agreed)
    compared = sum(c["compared"] for c in per_mode.values())
    agreed_total = sum(c["agreed"] for c in per_mode.values())
    return AgreementStats(
        compared=compared,
        agreed=agreed_total,
        rate=_rate(agreed_total, compared),
        by_mode={
            mode: {
                "compared": c["compared"],
                "agreed": c["agreed"],
                "rate": _rate(c["agreed"], c["compared"]),
            }
            for mode, c in sorted(per_mode.items())
        },
        confusion={ai: dict(agents) for ai, agents in sorted(confusion.items())},
    )


def knowledge_gaps(facts: Iterable[Fact], threshold: float, top: int = 20) -> list[KnowledgeGap]:
    """Questions the AI could not answer well, by product area and intent (the intent names the question)."""
    counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for fact in facts:
        if fact.type != "decision.made":
            continue
        # Out of the taxonomy yet answered from the help center (the head leaned away from intents for a person):
        # the knowledge was there.
        out_unanswered = bool(fact.out_of_scope) and fact.outcome != "deflect"
        unanswered = out_unanswered or fact.grounded is False or fact.retrieved == 0
        low = fact.confidence is not None and fact.confidence < threshold
        if not (unanswered or low):
            continue
        question = "out_of_scope" if fact.out_of_scope else (fact.intent or "unknown")
        bucket = counts[(fact.product_area or "general", question)]
        bucket["count"] += 1
        bucket["unanswered"] += int(unanswered)
        bucket["low_confidence"] += int(low)
    gaps = [
        KnowledgeGap(product_area=area, question=question, **dict(c))
        for (area, question), c in counts.items()
    ]
    return sorted(gaps, key=lambda g: (-g.count, g.product_area, g.question))[:top]


def merge_gaps(first: list[KnowledgeGap], second: list[KnowledgeGap], top: int = 20) -> list[KnowledgeGap]:
    merged: dict[tuple[str, str], KnowledgeGap] = {}
    for gap in [*first, *second]:
        key = (gap.product_area, gap.question)
        if key in merged:
            old = merged[key]
            merged[key] = KnowledgeGap(
                product_area=gap.product_area,
                question=gap.question,
                count=old.count + gap.count,
                unanswered=old.unanswered + gap.unanswered,
                low_confidence=old.low_confidence + gap.low_confidence,
            )
        else:
            merged[key] = gap
    return sorted(merged.values(), key=lambda g: (-g.count, g.product_area, g.question))[:top]


# ------------------------------------------------------------------ service


def parse_range(date_from: str | date, date_to: str | date) -> tuple[date, date]:
    try:
        first = date_from if isinstance(date_from, date) else date.fromisoformat(str(date_from)[:10])
        last = date_to if isinstance(date_to, date) else date.fromisoformat(str(date_to)[:10])
    except ValueError as error:
        raise MalformedPayload("from/to must be ISO dates (yyyy-mm-dd)") from error
    if last < first:
        raise MalformedPayload("to is before from")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise MalformedPayload(f"at most {MAX_RANGE_DAYS} days per request")
    return first, last


class Analytics:
    """Reads facts for a tenant and a date range; never reads another tenant's partition."""

    def __init__(
        self, facts: FactStore, tenants: TenantConfigs, gap_source: Any = None, clock: Any = None
    ) -> None:
        self.facts = facts
        self.tenants = tenants
        self.gap_source = (
            gap_source  # optional: knowledge gaps recorded by retrieval (same KnowledgeGap shape)
        )
        self.clock = clock

    def now(self) -> datetime:
        return self.clock.now() if self.clock else utcnow()

    def views(
        self, ctx: TenantContext, first: date, last: date, window: int
    ) -> tuple[list[TicketView], list[Fact], TenantConfig]:
        config = self.tenants.find(ctx) or TenantConfig(tenant_id=ctx.tenant_id, display_name=ctx.tenant_id)
        now = self.now()
        # Follow tickets past the range end by the reopen window (and a week for tasks), never past today.
        lookahead = min(last + timedelta(days=window + 7), max(now.date(), last))
        facts = self.facts.between(ctx, first, lookahead)
        in_range = [f for f in facts if f.at.date() <= last]
        views = []
        for ticket_id, ticket_facts in group_tickets(facts).items():
            view = TicketView(ticket_id, ticket_facts, config, now, window)
            if view.received is not None and first <= view.received.at.date() <= last:
                views.append(view)
        return views, in_range, config

    def summary(
        self, ctx: TenantContext, date_from: str | date, date_to: str | date, reopen_window_days: int = 7
    ) -> AnalyticsSummary:
        first, last = parse_range(date_from, date_to)
        views, in_range, config = self.views(ctx, first, last, reopen_window_days)
        gaps = knowledge_gaps(in_range, config.policy.answer_threshold)
        if self.gap_source is not None:
            gaps = merge_gaps(gaps, list(self.gap_source(ctx, first, last)))
        return AnalyticsSummary(
            tenant_id=ctx.tenant_id,
            date_from=first,
            date_to=last,
            generated_at=self.now(),
            knowledge_gaps=gaps,
            **summarize_views(views, reopen_window_days),
        )

    def series(
        self, ctx: TenantContext, date_from: str | date, date_to: str | date, reopen_window_days: int = 7
    ) -> list[DailyPoint]:
        """One point per day of receipt, for plots over time."""
        first, last = parse_range(date_from, date_to)
        views, _, _ = self.views(ctx, first, last, reopen_window_days)
        by_day: dict[date, list[TicketView]] = defaultdict(list)
        for view in views:
            assert view.received is not None
            by_day[view.received.at.date()].append(view)
        points = []
        for day in sorted(by_day):
            s = summarize_views(by_day[day], reopen_window_days)
            points.append(
                DailyPoint(
                    day=day,
                    received=s["deflection"].received,
                    deflected=s["deflection"].deflected,
                    verified=s["deflection"].confirmed + s["deflection"].assumed,
                    escalated=s["escalation"].escalated,
                    wrong_deflections=s["escalation"].wrong_deflections,
                    unneeded_escalations=s["escalation"].unneeded,
                    first_response_median_minutes=s["first_response"].median_minutes,
                    sla_breaches=s["sla"].first_response_breaches,
                    agreement_rate=s["agreement"].rate,
                )
            )
        return points


def knowledge_gap_source(store: Any) -> Any:
    """Gaps the knowledge search recorded (`T#{t}#KBGAP#{month}`), grouped by product area and question.

    Searches that found nothing at all count as unanswered; every recorded gap scored under the answer
    threshold, so each is a low-confidence question too.
    """
    from deflect.knowledge.search import KnowledgeGaps

    gaps = KnowledgeGaps(store)

    def read(ctx: TenantContext, first: date, last: date) -> list[KnowledgeGap]:
        counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        month = date(first.year, first.month, 1)
        while month <= last:
            for gap in gaps.month(ctx, datetime(month.year, month.month, 1)):
                if not first <= gap.at.date() <= last or gap.audience != "customer":
                    continue
                question = " ".join(gap.query_redacted.lower().split())[:120]
                bucket = counts[(gap.product_area or "general", question)]
                bucket["count"] += 1
                bucket["low_confidence"] += 1
                bucket["unanswered"] += int(gap.best_score <= 0)
            month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
        return [KnowledgeGap(product_area=a, question=q, **dict(c)) for (a, q), c in counts.items()]

    return read
