"""Assess one message: classify → retrieve → draft → check diagnostics → decide. No storage, no side effects.

The triage service wraps this with the ticket's context and ONE audited transaction; the evaluation and replay
commands call it directly, so what they measure is what production decides.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deflect.domain.models import (
    AttachmentRef,
    Classification,
    DecisionPolicy,
    Draft,
    RolloutMode,
    TenantConfig,
)
from deflect.domain.tenancy import TenantContext
from deflect.pii import redact
from deflect.ports import AnswerComposer, IntentPrediction, ModelRejected, ModelUnavailable, ModelUsage
from deflect.triage import detectors, diagnostics, grounding
from deflect.triage.classification import ClassificationResult, Classifier
from deflect.triage.detectors import Signals
from deflect.triage.history import ContactRecord, RepeatAssessment
from deflect.triage.history import assess as assess_repeat
from deflect.triage.policy import (
    PolicyDecision,
    PolicyInputs,
    decide,
    effective_mode,
    intent_uncertain,
    policy_sha256,
)
from deflect.triage.profile import DEFAULT_RISK_TOLERANCE, TriageProfile

RETRIEVAL_K = 5


@dataclass
class Assessment:
    """Everything triage decided about one message, and why."""

    classification: Classification
    prediction: IntentPrediction
    signals: Signals
    severity_reasons: list[str]
    hits: list[Any]
    passages: list[grounding.CleanPassage]
    draft: Draft | None
    draft_problem: str | None
    model_error: str | None
    provided_diagnostics: dict[str, str]
    # The product area's checklist, then what an earlier decision on the ticket asked for (canonical names).
    required_diagnostics: list[str]
    missing_diagnostics: list[str]
    diagnostics_apply: bool
    repeat: RepeatAssessment
    decision: PolicyDecision
    policy: DecisionPolicy
    mode: RolloutMode
    composer_model_id: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    usage: ModelUsage = field(default_factory=ModelUsage)
    # The draft prompt's hash as the composer reported it: kept when the model failed or the draft was discarded.
    composer_prompt_sha256: str | None = None
    # Diagnostics an earlier decision on the same ticket asked the customer for (part of required_diagnostics).
    asked_diagnostics: list[str] = field(default_factory=list)
    # The locale the customer's client or helpdesk stated (the ticket's), if any: see customer_language().
    locale: str | None = None
    # The tenant's triage profile as it decided (version, tolerance, model, guardrail), the SLA tier and the
    # audience retrieval answered for, and how each attachment was read: without them two opposite decisions on
    # the same message can carry identical records.
    profile: dict[str, Any] = field(default_factory=dict)
    sla_tier: str = "standard"
    audience: dict[str, Any] | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    # Missing diagnostics an attachment that failed to download may hold: the customer is not asked for them.
    held_by_unread: list[str] = field(default_factory=list)
    # What the policy decided from: kept so another policy can be tried on the same evidence (decided_under).
    inputs: PolicyInputs | None = None

    @property
    def outcome(self) -> str:
        return self.decision.outcome

    def decided_under(self, policy: DecisionPolicy) -> PolicyDecision:
        """What another policy (another answer threshold, say) decides on this message's evidence, with no second
        search or draft: how `deflect eval triage --answer-thresholds` shows a tenant its choices."""
        if self.inputs is None:
            raise ValueError("this assessment kept no policy inputs")
        return settle(policy, self.inputs, self.held_by_unread)

    @property
    def model_id(self) -> str:
        parts = [self.prediction.model_id or "none", self.composer_model_id]
        return " + ".join(p for p in parts if p)

    @property
    def prompt_sha256(self) -> str | None:
        return self.draft.prompt_sha256 if self.draft else self.composer_prompt_sha256

    def customer_reply(self) -> str | None:
        """What the customer should read if this decision is sent: the answer, the diagnostics request, or both."""
        request = diagnostics.request_text(
            self.missing_diagnostics, product_area=self.classification.product_area
        )
        if self.outcome == "deflect" and self.draft:
            if request and self.diagnostics_apply and not self.held_by_unread:
                return f"{self.draft.text}\n\nIf this does not solve it: {request[0].lower()}{request[1:]}"
            return self.draft.text
        if self.outcome == "ask_diagnostics":
            if self.draft and self.draft.grounded:
                return f"{request}\n\nIn the meantime, this may help:\n{self.draft.text}"
            return request
        return None

    def agent_note(self) -> str:
        """The internal note an agent sees in assist mode (and in every escalation's context)."""
        c = self.classification
        lines = [
            f"Deflect triage: {self.outcome} ({', '.join(self.decision.reasons)})",
            f"Intent: {c.intent} ({c.intent_confidence:.2f}) · area: {c.product_area} · severity: {c.severity} · "
            f"sentiment: {c.sentiment} · language: {c.language}",
        ]
        if c.sensitive_flags:
            lines.append(f"Sensitive: {', '.join(c.sensitive_flags)}")
        if c.requested_action.kind != "none":
            a = c.requested_action
            amount = f" {a.amount} {a.currency or ''}".rstrip() if a.amount is not None else ""
            lines.append(f"Requested action: {a.kind}{amount} (needs human approval)")
        if self.missing_diagnostics:
            lines.append(f"Missing diagnostics: {', '.join(self.missing_diagnostics)}")
        if self.provided_diagnostics:
            lines.append("Provided: " + ", ".join(f"{k}={v}" for k, v in self.provided_diagnostics.items()))
        reply = self.customer_reply()
        if reply:
            lines += ["", "Suggested reply:", reply]
        return "\n".join(lines)

    def evidence(self) -> dict[str, Any]:
        """The decision's inputs, recorded as evidence (labels, ids, scores and hashes; no customer text)."""
        return {
            "outcome": self.outcome,
            "reasons": self.decision.reasons,
            "rollout_mode": self.mode,
            "classification": self.classification.model_dump(mode="json"),
            "intent": {
                "model_id": self.prediction.model_id,
                "taxonomy_version": self.prediction.taxonomy_version,
                # Compared with profile.risk_tolerance when the intent is uncertain.
                "risk": self.prediction.risk,
                "alternatives": [list(a) for a in self.prediction.alternatives],
            },
            "signals": {
                "actions": self.signals.actions,
                "problem": self.signals.problem,
                "outage": self.signals.outage,
                "many_affected": self.signals.many_affected,
                "urgent": self.signals.urgent,
                "injection": self.signals.injection,
                # The language read from the text, and the locale stated with it (classification.language is
                # what was decided from both).
                "language": self.signals.language,
                "locale": self.locale,
            },
            "severity_reasons": self.severity_reasons,
            "retrieved": [
                {
                    "article_id": h.article_id,
                    "version": h.version,
                    "chunk_id": h.chunk_id,
                    "score": round(h.score, 4),
                }
                for h in self.hits
            ],
            "instructions_dropped_from_articles": sum(p.dropped_instructions for p in self.passages),
            "draft": self.draft.model_dump(mode="json") if self.draft else None,
            "draft_problem": self.draft_problem,
            "model_error": self.model_error,
            "model_id": self.model_id,
            "prompt_sha256": self.prompt_sha256,
            "usage": {"input_tokens": self.usage.input_tokens, "output_tokens": self.usage.output_tokens},
            "diagnostics": {
                "required": self.required_diagnostics,
                "provided": sorted(self.provided_diagnostics),
                "missing": self.missing_diagnostics,
                "apply": self.diagnostics_apply,
                "asked_earlier": self.asked_diagnostics,
            },
            "repeat": self.repeat.model_dump(mode="json"),
            "policy": {"version": self.policy.version, "sha256": policy_sha256(self.policy)},
            "profile": self.profile,
            "sla_tier": self.sla_tier,
            "audience": self.audience,
            "attachments": self.attachments,
            "timings_ms": self.timings_ms,
        }


class TriageEngine:
    def __init__(
        self, classifier: Classifier, search: Any, composer: AnswerComposer, *, k: int = RETRIEVAL_K
    ) -> None:
        self.classifier = classifier
        self.search = search
        self.composer = composer
        self.k = k

    def assess(
        self,
        ctx: TenantContext,
        text: str,
        *,
        config: TenantConfig,
        attachments: Sequence[AttachmentRef] = (),
        sla_tier: str = "standard",
        history: Sequence[ContactRecord] = (),
        ticket_id: str = "",
        known_diagnostics: Mapping[str, str] | None = None,
        requested_diagnostics: Sequence[str] = (),
        audience: Any = None,
        record_gap: bool = True,
        risk_tolerance: float = DEFAULT_RISK_TOLERANCE,
        locale: str | None = None,
        profile: TriageProfile | None = None,
    ) -> Assessment:
        """`locale` is the language the customer's client or helpdesk states (the ticket's locale): see
        customer_language(). `profile`: the tenant's triage profile, recorded with the decision."""
        timings: dict[str, float] = {}
        started = time.perf_counter()
        policy = config.policy
        priority_tiers = config.priority_tiers()
        # The help center's language, "en" for "en-US": also the detectors' default, so that a message too short to
        # tell is read as the help center's language, not as "en-US" (which is not "en").
        help_center = detectors.locale_language(config.default_locale) or config.default_locale
        first = self.classifier.classify(
            ctx,
            text,
            sla_tier=sla_tier,
            default_language=help_center,
            priority_tiers=priority_tiers,
        )
        timings["classify"] = _ms(started)

        began = time.perf_counter()
        # A gap is recorded below, once the draft shows whether the message could be answered at all. Only articles
        # in the language the customer reads (SearchRequest), their stated locale first if it is that language.
        reads = customer_language(text, first.classification.language, locale, help_center)
        results = self.search.search(
            ctx,
            text,
            k=self.k,
            audience=audience,
            record_gap=False,
            locale=locale if detectors.locale_language(locale) == reads else reads,
            default_locale=config.default_locale,
        )
        hits = [h for h in results.hits]
        # The other sections of the best articles (same tenant, version and audience filters): the answer is
        # often in the article found, not in its best-matching chunk.
        read_sections = getattr(self.search, "sections", None)
        sections = []
        if read_sections is not None and hits:
            sections = list(read_sections(ctx, text, results, audience=audience))
        timings["retrieve"] = _ms(began)

        began = time.perf_counter()
        passages = [grounding.clean_passage(h) for h in [*hits, *sections]]
        drafted = self._draft(ctx, text, [*hits, *sections], passages)
        draft, draft_problem, model_error = drafted.draft, drafted.problem, drafted.model_error
        timings["draft"] = _ms(began)

        if record_gap and draft is None:
            self.search.record_unanswered(ctx, text, results, audience)
        cited = [c.article_id for c in draft.citations] if draft else []
        repeat = assess_repeat(
            history, ticket_id=ticket_id, intent=first.prediction.intent, cited_articles=cited
        )
        result: ClassificationResult = (
            Classifier.combine(
                first.signals, first.prediction, sla_tier=sla_tier, repeat=True, priority_tiers=priority_tiers
            )
            if repeat.repeat
            else first
        )
        classification = result.classification
        if classification.product_area == GENERAL_AREA:
            # The taxonomy did not place the message: the help center's answer to it says where it belongs.
            area = _area_from_knowledge(draft, hits)
            if area is not None:
                classification = classification.model_copy(update={"product_area": area})

        # What an earlier decision on this ticket asked for still counts when the follow-up alone lands in another
        # area (a reply such as "it is version 3.2.1" is `general`, whose checklist is empty): it is read from the
        # reply, stored, and listed as missing until given. Triage asks only about problem reports; a reply that
        # gives some of what was asked is still answering one, but "thanks, that fixed it" is not asked again.
        asked = list(dict.fromkeys(diagnostics.canonical_name(n) for n in requested_diagnostics))
        required = diagnostics.checklist(config, classification.product_area)
        required += [name for name in asked if name not in required]
        # Values read from an attached log were never redacted by intake: the agent note quotes them, the helpdesk
        # keeps that note, and the ticket stores them.
        given = {name: redact(value) for name, value in diagnostics.extract(required, text, attachments).items()}
        provided = {**(known_diagnostics or {}), **given}
        missing = [name for name in required if name not in provided]
        problem = result.signals.problem or result.prediction.kind == "problem"
        diagnostics_apply = bool(required) and (problem or any(name in given for name in asked))

        language = customer_language(text, classification.language, locale, help_center)
        if language != classification.language:
            classification = classification.model_copy(update={"language": language})

        inputs = PolicyInputs(
            classification=classification,
            draft=draft,
            draft_problem=draft_problem,
            missing_diagnostics=missing,
            diagnostics_apply=diagnostics_apply,
            model_error=model_error,
            injection=result.signals.injection,
            repeated_answer=repeat.same_answer,
            language_supported=classification.language == help_center,
            intent_risk=weighable_risk(result.prediction, classification.language),
            risk_tolerance=risk_tolerance,
        )
        held = _held_by_unread(attachments, missing if diagnostics_apply else [])
        decision = settle(policy, inputs, held)
        timings["total"] = _ms(started)
        return Assessment(
            classification=classification,
            prediction=result.prediction,
            signals=result.signals,
            severity_reasons=result.severity_reasons,
            hits=hits,
            passages=passages,
            draft=draft,
            draft_problem=draft_problem,
            model_error=model_error,
            provided_diagnostics=provided,
            required_diagnostics=required,
            missing_diagnostics=missing,
            diagnostics_apply=diagnostics_apply,
            repeat=repeat,
            decision=decision,
            policy=policy,
            mode=effective_mode(
                policy, classification.intent, uncertain=intent_uncertain(policy, classification)
            ),
            # The model this tenant's draft actually called (its profile may name another than the default), or
            # "none": no passage, no call, and the deployment's default model decided nothing.
            composer_model_id=drafted.model_id or "none",
            timings_ms=timings,
            usage=drafted.usage,
            composer_prompt_sha256=drafted.prompt_sha256,
            asked_diagnostics=asked,
            locale=locale,
            profile=_profile_evidence(profile, risk_tolerance),
            sla_tier=sla_tier,
            audience=_audience_evidence(audience),
            attachments=[_attachment_evidence(a) for a in attachments],
            held_by_unread=held,
            inputs=inputs,
        )

    def _draft(
        self, ctx: TenantContext, question: str, hits: list[Any], passages: list[grounding.CleanPassage]
    ) -> Drafted:
        if not hits:
            return Drafted(None, "no_passages")
        try:
            composition = self.composer.compose(ctx, question, hits)
        except ModelRejected as error:
            reason = f"rejected:{error.context.get('reason', 'output')}"
            return Drafted.failed("model_rejected", reason, error)
        except ModelUnavailable as error:
            reason = f"unavailable:{error.context.get('reason', 'error')}"
            return Drafted.failed("model_unavailable", reason, error)
        draft = composition.draft
        used = {
            "usage": composition.usage,
            # A composer that names itself only on its draft (the embedded one) still answered.
            "model_id": composition.model_id or (draft.model_id if draft else None),
            "prompt_sha256": composition.prompt_sha256,
        }
        if draft is None:
            return Drafted(None, composition.problem or "no_grounded_answer", **used)
        verdict = grounding.verify(draft, passages, question)
        if not verdict.ok:
            # A draft that cites what we did not retrieve, misquotes it or promises an action is discarded.
            return Drafted(None, f"draft_rejected:{verdict.reason}", **used)
        # Applied here, not in a composer, so an embedded and a Bedrock answer are judged alike.
        return Drafted(grounding.discount_unmentioned_names(draft, question, passages), None, **used)


@dataclass(frozen=True)
class Drafted:
    """What drafting produced: the draft or why none, and the evidence of the model call (even a failed one)."""

    draft: Draft | None
    problem: str | None
    model_error: str | None = None
    usage: ModelUsage = field(default_factory=ModelUsage)
    model_id: str | None = None
    prompt_sha256: str | None = None

    @classmethod
    def failed(cls, problem: str, model_error: str, error: Exception) -> Drafted:
        context = getattr(error, "context", {})
        model_id, prompt_sha256 = context.get("model_id"), context.get("prompt_sha256")
        return cls(
            None,
            problem,
            model_error,
            _usage(error),
            model_id if isinstance(model_id, str) else None,
            prompt_sha256 if isinstance(prompt_sha256, str) else None,
        )


# Rollout modes from the strictest (nothing is sent) to the most trusting.
GENERAL_AREA = "general"
# A hit this relevant places a message in its article's product area even when no answer was drafted from it
# (problem reports: the troubleshooting article is found, the checklist is what the customer needs first).
AREA_MIN_SCORE = 0.5


def customer_language(text: str, detected: str, locale: str | None, help_center: str) -> str:
    """The language the customer reads: the one their message is written in, unless their client or helpdesk
    states another (`locale`) and the message is not CLEARLY in the help center's language.

    The detected language alone misses customers whose own words are few or lean on a quote ("Sync kaputt:
    'Error SB-1001: the connection authorization expired'"); a stated locale other than the help center's then
    says they are not to be answered in it. Only the customer's own words, clearly in the help center's language
    (detectors.written_in), override the locale: a customer who writes "How do I export a report as CSV?" from a
    German browser reads English; "Export CSV?" from the same browser is escalated. An extra escalation costs an
    agent a minute; an answer in a language the customer did not write in is a wrong answer."""
    stated = detectors.locale_language(locale)
    if detected != help_center or stated is None or stated == help_center:
        return detected
    return detected if detectors.written_in(text, help_center) else stated


def _area_from_knowledge(draft: Draft | None, hits: Sequence[Any]) -> str | None:
    """The product area of the article the answer cites, else of a clearly relevant first hit."""
    by_id = {h.article_id: h for h in hits}
    cited = [by_id[c.article_id] for c in draft.citations if c.article_id in by_id] if draft else []
    lead = cited[0] if cited else (hits[0] if hits and hits[0].score >= AREA_MIN_SCORE else None)
    area = getattr(lead, "product_area", None) if lead is not None else None
    return area if isinstance(area, str) and area and area != GENERAL_AREA else None


def settle(policy: DecisionPolicy, inputs: PolicyInputs, held: Sequence[str]) -> PolicyDecision:
    """The policy's decision, then what an attachment that could not be read changes about it (`held`: the
    missing diagnostics it may hold)."""
    decision = decide(policy, inputs)
    if held and decision.outcome == "ask_diagnostics":
        # The customer attached a log and we could not download it: asking them for what it holds reads as
        # if they had sent nothing. A person can open it in the helpdesk.
        return PolicyDecision("escalate", [f"attachment_not_read:{','.join(held)}", *decision.reasons])
    if held and decision.outcome == "deflect":
        # The answer goes out without asking for what the unread log may hold (customer_reply).
        kept = [r for r in decision.reasons if not r.startswith("diagnostics_requested:")]
        return PolicyDecision("deflect", kept)
    return decision


def _held_by_unread(attachments: Sequence[AttachmentRef], missing: Sequence[str]) -> list[str]:
    """The missing diagnostics a log could state, when an attachment failed to download."""
    failed = any(a.read is not None and a.read.outcome == "failed" for a in attachments)
    return [name for name in missing if name in diagnostics.FROM_ATTACHED_TEXT] if failed else []


def _profile_evidence(profile: TriageProfile | None, risk_tolerance: float) -> dict[str, Any]:
    """Numbers and ids of the triage profile the decision was made under (never its telemetry URLs or tokens)."""
    found: dict[str, Any] = {
        "version": profile.version if profile else None,
        "risk_tolerance": risk_tolerance,
        "bedrock_model_id": profile.bedrock_model_id if profile else None,
    }
    if profile is not None and profile.guardrail_id:
        found["guardrail_id"], found["guardrail_version"] = profile.guardrail_id, profile.guardrail_version
    return found


def _audience_evidence(audience: Any) -> dict[str, Any] | None:
    if audience is None:
        return None
    return {"kind": audience.kind, "segments": sorted(audience.segments)}


def _attachment_evidence(attachment: AttachmentRef) -> dict[str, Any]:
    read = attachment.read
    # A file name can carry a name or an address, like any customer text.
    return {
        "name": redact(attachment.name or ""),
        "read": read.outcome if read else "skipped",
        "reason": (read.reason if read else "not_read"),
    }


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _usage(error: Exception) -> ModelUsage:
    usage = getattr(error, "context", {}).get("usage")
    return usage if isinstance(usage, ModelUsage) else ModelUsage()


def weighable_risk(prediction: IntentPrediction, language: str) -> float:
    """The head's risk, unless the message is in another language than its examples: read with the help center's
    language as the fallback ("Doppelt abgebucht!" is German to a German help center, and an English head puts next
    to nothing on "refund" for it), which the head alone cannot know."""
    if prediction.head_language and language != prediction.head_language:
        return 1.0
    return prediction.risk
