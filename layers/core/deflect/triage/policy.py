"""The decision policy: the model proposes, this decides. Pure rules, no I/O except the versioned change path.

Order of rules (first match of a group wins the outcome; every matching reason is recorded):

1. Always escalate: a sensitive flag of the tenant's list (billing, refund, security, legal, privacy,
   account_change), any account-changing action, an explicit request for a human, a model failure (refused,
   malformed, timed out), instructions aimed at the assistant, an out-of-scope or low-confidence classification
   (unless the classifier put almost no weight on intents that need a human: below the tenant's risk tolerance,
   TriageProfile.low_confidence_risk_tolerance, 0 = strict; such a message goes on to rules 2-4), a P1,
   a repeat contact that would get the same answer again, a language the help center does not answer in.
2. Ask for diagnostics: a problem report whose product area checklist is incomplete and that no confident,
   grounded answer resolves.
3. Deflect: a grounded, verified draft whose confidence reaches the tenant's answer threshold (missing
   diagnostics are then asked for in the same reply, in case the answer does not solve it).
4. Otherwise escalate (no grounded answer / low answer confidence).

Rollout modes decide what is SENT, never what is decided: shadow sends nothing, assist sends drafts to agents
as internal notes, auto sends the deflection to the customer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from deflect.domain import keys
from deflect.domain.canonical import canonical_json, sha256_hex
from deflect.domain.models import (
    Classification,
    DecisionOutcome,
    DecisionPolicy,
    Draft,
    RolloutMode,
    TenantConfig,
    utcnow,
)
from deflect.ports import Put

POLICY_CHAIN = "tenant-config"


@dataclass(frozen=True)
class PolicyInputs:
    classification: Classification
    draft: Draft | None
    draft_problem: str | None = None  # why there is no usable draft
    missing_diagnostics: list[str] = field(default_factory=list)
    diagnostics_apply: bool = False
    model_error: str | None = None
    injection: bool = False
    repeated_answer: bool = False
    language_supported: bool = True
    # Probability mass the classifier put on intents that always go to a human, and how much of it the tenant
    # tolerates before an out-of-scope or low-confidence classification escalates (0 = every one escalates).
    intent_risk: float = 1.0
    risk_tolerance: float = 0.0


@dataclass(frozen=True)
class PolicyDecision:
    outcome: DecisionOutcome
    reasons: list[str]


def always_escalate_reasons(policy: DecisionPolicy, inputs: PolicyInputs) -> list[str]:
    c = inputs.classification
    reasons = [f"sensitive:{flag}" for flag in c.sensitive_flags if flag in policy.always_escalate_flags]
    if c.requested_action.kind != "none":
        reasons.append(f"action:{c.requested_action.kind}")
    if c.wants_human:
        reasons.append("wants_human")
    if inputs.model_error:
        reasons.append(f"model_error:{inputs.model_error}")
    if inputs.injection:
        reasons.append("suspected_prompt_injection")
    # An uncertain intent (out of the taxonomy, or below the threshold) escalates unless the head put almost no
    # weight on intents that go to a person; then it is decided as any other (decide(): answer, ask, escalate).
    if intent_uncertain(policy, c) and inputs.intent_risk >= inputs.risk_tolerance:
        reasons.append("out_of_scope" if c.out_of_scope else "low_classification_confidence")
    if c.severity == "P1":
        reasons.append("severity:P1")
    if inputs.repeated_answer:
        reasons.append("repeat_contact_same_answer")
    if not inputs.language_supported:
        reasons.append(f"language:{c.language}")
    return reasons


def decide(policy: DecisionPolicy, inputs: PolicyInputs) -> PolicyDecision:
    must_escalate = always_escalate_reasons(policy, inputs)
    if must_escalate:
        return PolicyDecision("escalate", must_escalate)
    draft = inputs.draft
    answerable = draft is not None and draft.grounded and draft.confidence >= policy.answer_threshold
    missing = inputs.missing_diagnostics if inputs.diagnostics_apply else []
    if missing and not answerable:
        return PolicyDecision("ask_diagnostics", [f"missing_diagnostics:{','.join(missing)}"])
    if answerable:
        reasons = ["grounded_answer"]
        if missing:
            reasons.append(f"diagnostics_requested:{','.join(missing)}")
        return PolicyDecision("deflect", reasons)
    if draft is None:
        return PolicyDecision("escalate", [inputs.draft_problem or "no_grounded_answer"])
    return PolicyDecision("escalate", ["low_answer_confidence"])


def rollout_mode(policy: DecisionPolicy, intent: str) -> RolloutMode:
    """Per-intent override first, then the tenant default."""
    return policy.rollout_by_intent.get(intent, policy.rollout_default)


# Strictest first.
STRICTNESS: tuple[RolloutMode, ...] = ("shadow", "assist", "auto")


def stricter(*modes: RolloutMode) -> RolloutMode:
    return min(modes, key=STRICTNESS.index)


def intent_uncertain(policy: DecisionPolicy, classification: Classification) -> bool:
    """The intent is only a guess: out of scope, or below the tenant's classification threshold."""
    return classification.out_of_scope or classification.intent_confidence < policy.classification_threshold


def effective_mode(policy: DecisionPolicy, intent: str | None, *, uncertain: bool = False) -> RolloutMode:
    """The rollout mode of a message. A per-intent override is trust in that intent, so it applies only when the
    message was confidently put there; an unconfident or out-of-scope guess gets the stricter of the tenant's
    default and the guessed intent's override."""
    mode = rollout_mode(policy, intent) if intent else policy.rollout_default
    return stricter(mode, policy.rollout_default) if uncertain else mode


def policy_sha256(policy: DecisionPolicy) -> str:
    return sha256_hex(canonical_json(policy.model_dump(mode="json")))


# --------------------------------------------------------------------------- versioned, audited changes
#
# Every policy version has an immutable snapshot at `T#{t}#POLICY` / `V#{version:06d}`, so the version a decision
# recorded can always be read back. All changes (admin API, `deflect policy set`, code) go through change_writes.


def history_pk(tenant_id: str) -> str:
    return f"{keys.tenant_pk(tenant_id)}#POLICY"


def snapshot_sk(version: int) -> str:
    return f"V#{version:06d}"


def snapshot_write(
    tenant_id: str,
    policy: DecisionPolicy,
    *,
    changed_by: str | None,
    changed_at: datetime | None,
    **extra: Any,
) -> Put:
    """The immutable record of one policy version (`expect="new"`: a version number is never reused)."""
    return Put(
        pk=history_pk(tenant_id),
        sk=snapshot_sk(policy.version),
        data={
            # not "version": the store owns that attribute (the item's own write count)
            "policy_version": policy.version,
            "policy": policy.model_dump(mode="json"),
            "sha256": policy_sha256(policy),
            "changed_by": changed_by,
            "changed_at": changed_at.isoformat() if changed_at else None,
            **extra,
        },
        expect="new",
    )


def has_snapshot(store: Any, ctx: Any, version: int) -> bool:
    return store.get(ctx, history_pk(ctx.tenant_id), snapshot_sk(version)) is not None


def revise(current: DecisionPolicy, proposed: DecisionPolicy) -> DecisionPolicy:
    """The proposed policy with the next version number if its content differs (a version names one content)."""
    same = current.model_dump(mode="json", exclude={"version"}) == proposed.model_dump(
        mode="json", exclude={"version"}
    )
    return current if same else proposed.model_copy(update={"version": current.version + 1})


def change_writes(
    config: TenantConfig, proposed: DecisionPolicy, *, actor: str, record_previous: bool = False
) -> tuple[TenantConfig, list[Put], dict[str, Any]]:
    """What a policy change writes, for the caller to commit in ONE audited transaction:
    the tenant config with the revised policy (guarded on the config version read), an immutable snapshot of the
    new version, and the audit payload (who, from → to, which fields changed). No change → no writes.
    `record_previous` also snapshots the outgoing version: tenants created before policy history have none.

        updated, writes, payload = change_writes(config, proposed, actor=ctx.actor)
        if writes: audit.append(ctx, POLICY_CHAIN, "policy.changed", payload, writes=writes)
    """
    from deflect.repositories import put_versioned

    revised = revise(config.policy, proposed)
    if revised.version == config.policy.version:
        return config, [], {}
    before, after = config.policy.model_dump(mode="json"), revised.model_dump(mode="json")
    changed = sorted(k for k in after if k != "version" and before.get(k) != after.get(k))
    now = utcnow()
    updated = config.model_copy(update={"policy": revised, "updated_by": actor, "updated_at": now})
    writes = [
        put_versioned(keys.tenant_pk(config.tenant_id), "CONFIG", updated),
        snapshot_write(config.tenant_id, revised, changed_by=actor, changed_at=now, changed=changed),
    ]
    if record_previous:
        # Who set it is not known any more (it predates the history); say when and by whose change it was kept.
        writes.append(
            snapshot_write(
                config.tenant_id,
                config.policy,
                changed_by=None,
                changed_at=None,
                recorded_by=actor,
                recorded_at=now.isoformat(),
            )
        )
    payload = {
        "actor": actor,
        "from_version": config.policy.version,
        "to_version": revised.version,
        "changed": changed,
        "sha256": policy_sha256(revised),
    }
    return updated, writes, payload


def change_policy(store: Any, audit: Any, ctx: Any, proposed: DecisionPolicy) -> TenantConfig:
    """Apply a policy change for `ctx.tenant_id`, audited with `ctx.actor`. Returns the stored config.

    Replaces the whole policy; the admin API and `deflect policy set` (TenantAdmin.update_config) merge fields."""
    from deflect.domain.errors import NotFound
    from deflect.repositories import TenantConfigs, bumped

    config = TenantConfigs(store).find(ctx)
    if config is None:
        raise NotFound("tenant not found")
    record_previous = not has_snapshot(store, ctx, config.policy.version)
    updated, writes, payload = change_writes(
        config, proposed, actor=ctx.actor, record_previous=record_previous
    )
    if not writes:
        return config
    audit.append(ctx, POLICY_CHAIN, "policy.changed", payload, writes=writes)
    return bumped(updated)


def policy_history(store: Any, ctx: Any) -> list[dict[str, Any]]:
    """Every recorded version of the tenant's policy, newest first."""
    return [dict(i.data) for i in store.query(ctx, history_pk(ctx.tenant_id), "V#", newest_first=True)]
