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

A message that asks two things ("How do I add a webhook? Also, knock us down to the Team plan.") is one vector to the
intent model, and the how-to outweighs the request in it. So a message of several sentences in which nothing asks
for an action or a person yet is read sentence by sentence as well, and a sentence the taxonomy confidently places in
an intent that always goes to a human, with most of its probability on such intents, adds that intent's flags, action
and request for a person.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from deflect.domain.models import Classification, RequestedAction, Severity
from deflect.domain.tenancy import TenantContext
from deflect.ports import IntentClassifier, IntentPrediction
from deflect.triage.detectors import Signals, detect
from deflect.triage.intents import OUT_OF_SCOPE, UNCLASSIFIED, LinearIntentClassifier, predict

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


# A sentence counts when at least this much of its probability lies on intents that always go to a human, in scope
# and as confident as policy wants a whole message to be (the default classification_threshold). Without the
# confidence bar, context sentences of how-tos counted too ("Our contract renews in June.", "We want to clean up our
# workspace.": 6 of 135 multi-sentence how-tos escalated, against 1 with it); out of scope, a fragment such as
# "We're on Professional." spreads its probability over intents at random.
SENTENCE_RISK = 0.6
SENTENCE_CONFIDENCE = 0.5
# Each sentence costs an embedding (a few ms on the int8 MiniLM, all in one batch): only the first few are read.
MAX_SENTENCES = 6
SENTENCE_MIN_WORDS = 3
# Sentences are embedded with their own token limit, so their (batch-quantized) vectors never stand in, in the
# embeddings cache, for a whole message's or a help-center sentence's.
SENTENCE_TOKENS = 64
# Sentence ends, and a second request joined by a comma ("…, also please …", "1) … 2) …").
_SENTENCE_BREAK = re.compile(
    r"(?<=[.!?])\s+|\n+|;\s*|,\s*(?=(?:and\s+)?(?:also|separately|btw|by the way|plus|p\.?s\.?)\b)|\s+(?=\d\)\s)",
    re.IGNORECASE,
)


def sentences(text: str) -> list[str]:
    """The message's sentences of a few words or more (greetings and "Thanks!" are too short to matter)."""
    parts = (p.strip() for p in _SENTENCE_BREAK.split(text))
    return [p for p in parts if len(p.split()) >= SENTENCE_MIN_WORDS]


def sentence_predictions(
    intents: IntentClassifier, ctx: TenantContext, texts: Sequence[str]
) -> list[IntentPrediction]:
    """One prediction per sentence; with the embedding head, the sentences are embedded in one call."""
    if not isinstance(intents, LinearIntentClassifier):
        return [intents.classify(ctx, t) for t in texts]
    head, compiled = intents.head(ctx.tenant_id)
    model_id = getattr(intents.embeddings, "model_id", "")
    if head is None or compiled is None or (model_id and model_id != head.embedding_model_id):
        return []  # no usable head: the whole message's prediction already says so, and policy escalates it
    try:
        vectors: Any = intents.embeddings.embed(list(texts), max_tokens=SENTENCE_TOKENS)
    except TypeError:  # embeddings without a token limit (Bedrock)
        vectors = intents.embeddings.embed(list(texts))
    return [
        predict(head, compiled, [float(v) for v in vector], t)
        for vector, t in zip(vectors, texts, strict=True)
    ]


def escalating_sentence(prediction: IntentPrediction) -> bool:
    in_scope = not prediction.out_of_scope and prediction.intent not in (OUT_OF_SCOPE, UNCLASSIFIED)
    always_human = bool(prediction.flags or prediction.action or prediction.wants_human)
    return (
        in_scope
        and always_human
        and prediction.risk >= SENTENCE_RISK
        and prediction.confidence >= SENTENCE_CONFIDENCE
    )


def with_sentences(signals: Signals, found: Sequence[IntentPrediction]) -> Signals:
    """The detectors' signals plus what escalating sentences add. Kept in the signals, like a detector's finding,
    so the message classified again (a repeat contact) keeps them whatever the whole message's confidence."""
    if not found:
        return signals
    flags = set(signals.sensitive_flags)
    actions = list(signals.actions)
    action = signals.requested_action
    for p in found:
        flags.update(p.flags)
        if p.action:
            flags.add("account_change")
            if p.action not in actions:
                actions.append(p.action)
            if action.kind == "none":
                action = RequestedAction(kind=p.action)  # type: ignore[arg-type]
    return dataclasses.replace(
        signals,
        sensitive_flags=sorted(flags),
        actions=actions,
        requested_action=action,
        wants_human=signals.wants_human or any(p.wants_human for p in found),
        notes=[*signals.notes, *(f"sentence:{p.intent}" for p in found)],
    )


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
        signals = self.read_sentences(ctx, text, signals, prediction)
        return self.combine(
            signals, prediction, sla_tier=sla_tier, repeat=repeat, priority_tiers=priority_tiers
        )

    def read_sentences(
        self, ctx: TenantContext, text: str, signals: Signals, prediction: IntentPrediction
    ) -> Signals:
        """Signals plus the flags of any sentence that on its own would go to a human (see the module docstring).
        Skipped when the message escalates whatever its sentences say: an action or a request for a person is
        already found, or the whole message confidently is one. An out-of-scope message is read too: policy may
        answer it when the head leans away from intents for a person. (A flag alone does not skip it: a tenant's
        policy may not escalate that flag.)"""
        if signals.requested_action.kind != "none" or signals.wants_human:
            return signals
        in_scope = not prediction.out_of_scope and prediction.intent not in (OUT_OF_SCOPE, UNCLASSIFIED)
        if in_scope and (prediction.action or prediction.wants_human):
            return signals
        parts = sentences(text)
        if len(parts) < 2:
            return signals
        found = [
            p
            for p in sentence_predictions(self.intents, ctx, parts[:MAX_SENTENCES])
            if escalating_sentence(p)
        ]
        return with_sentences(signals, found)

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
