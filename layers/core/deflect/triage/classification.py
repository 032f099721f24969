"""Classification of one message: the tenant taxonomy's intent (with confidence and out-of-scope), plus the
deterministic detectors, plus severity rules. Model output can add flags and actions; it can never remove the
ones the detectors found.

Severity (P1 highest):
- a question or feedback starts at P4, a problem report or request at P3;
- outage language → P2, and P1 when many users are affected or the account is on a priority SLA tier
  (`SlaTier.raises_severity`; by default the tier named "enterprise");
- many users affected, urgency on a problem, a priority SLA tier, a repeat contact: one level up each (a P1
  needs outage language);
- security and legal matters are at least P2.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deflect.domain.models import Classification, RequestedAction, Severity
from deflect.domain.tenancy import TenantContext
from deflect.ports import IntentClassifier, IntentPrediction
from deflect.triage.detectors import Signals, detect
from deflect.triage.intents import OUT_OF_SCOPE, UNCLASSIFIED

_LEVELS: tuple[Severity, ...] = ("P1", "P2", "P3", "P4")
# The default tenant configuration's priority tier (TenantConfig.priority_tiers() gives a tenant's own).
PRIORITY_TIERS = frozenset({"enterprise"})


@dataclass(frozen=True)
class SeverityTrace:
    severity: Severity
    reasons: list[str] = field(default_factory=list)


def severity(
    signals: Signals, *, kind: str | None, priority_sla: bool, repeat: bool, flags: list[str]
) -> SeverityTrace:
    reasons: list[str] = []
    problem = signals.problem or kind in ("problem", "request")
    level = 3 if problem else 4
    if signals.outage:
        level = 2
        reasons.append("outage_language")
        if signals.many_affected or priority_sla:
            level = 1
            reasons.append("outage_many_affected" if signals.many_affected else "outage_enterprise_sla")
    else:
        if signals.many_affected and problem:
            level -= 1
            reasons.append("many_affected")
        if signals.urgent and problem:
            level -= 1
            reasons.append("urgent")
        if priority_sla:
            level -= 1
            reasons.append("enterprise_sla")
    if repeat:
        level -= 1
        reasons.append("repeat_contact")
    if {"security", "legal"}.intersection(flags) and level > 2:
        level = 2
        reasons.append("security_or_legal")
    floor = 1 if signals.outage else 2
    return SeverityTrace(_LEVELS[max(floor, min(4, level)) - 1], reasons)


@dataclass(frozen=True)
class ClassificationResult:
    classification: Classification
    prediction: IntentPrediction
    signals: Signals
    severity_reasons: list[str]


class Classifier:
    """Intent (tenant taxonomy) + detectors + severity for one redacted message."""

    def __init__(self, intents: IntentClassifier) -> None:
        self.intents = intents

    def classify(
        self,
        ctx: TenantContext,
        text: str,
        *,
        sla_tier: str = "standard",
        default_language: str = "en",
        repeat: bool = False,
        priority_tiers: frozenset[str] = PRIORITY_TIERS,
    ) -> ClassificationResult:
        signals = detect(text, default_language=default_language)
        prediction = self.intents.classify(ctx, text)
        return self.combine(
            signals, prediction, sla_tier=sla_tier, repeat=repeat, priority_tiers=priority_tiers
        )

    @staticmethod
    def combine(
        signals: Signals,
        prediction: IntentPrediction,
        *,
        sla_tier: str = "standard",
        repeat: bool = False,
        priority_tiers: frozenset[str] = PRIORITY_TIERS,
    ) -> ClassificationResult:
        confident = not prediction.out_of_scope and prediction.intent not in (OUT_OF_SCOPE, UNCLASSIFIED)
        flags = set(signals.sensitive_flags)
        action = signals.requested_action
        if confident:
            flags.update(prediction.flags)
            if action.kind == "none" and prediction.action:
                action = RequestedAction(kind=prediction.action)  # type: ignore[arg-type]
        if action.kind != "none":
            flags.add("account_change")
        kind = prediction.kind if confident else None
        trace = severity(
            signals, kind=kind, priority_sla=sla_tier in priority_tiers, repeat=repeat, flags=sorted(flags)
        )
        classification = Classification(
            intent=prediction.intent,
            intent_confidence=round(float(prediction.confidence), 4),
            out_of_scope=prediction.out_of_scope,
            product_area=(prediction.product_area if confident and prediction.product_area else "general"),
            severity=trace.severity,
            sentiment=signals.sentiment,  # type: ignore[arg-type]
            language=signals.language,
            sensitive_flags=sorted(flags),
            requested_action=action,
            wants_human=signals.wants_human or (confident and prediction.wants_human),
            repeat_contact=repeat,
        )
        return ClassificationResult(classification, prediction, signals, trace.reasons)
