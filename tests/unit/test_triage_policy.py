"""The decision policy: what always escalates, when diagnostics are asked for, when an answer goes out, and how a
policy change is versioned and audited."""

import pytest

from deflect.domain.models import Classification, DecisionPolicy, Draft, RequestedAction, TenantConfig
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemoryEvidenceStore
from deflect.repositories import TenantConfigs, save
from deflect.services.audit import AuditLog
from deflect.triage.policy import (
    POLICY_CHAIN,
    PolicyInputs,
    change_policy,
    decide,
    policy_history,
    rollout_mode,
)
from tests.unit.triage_fakes import Store

POLICY = DecisionPolicy()
GOOD_DRAFT = Draft(text="Open Settings.", confidence=0.9, grounded=True)


def classification(**changes) -> Classification:
    base = Classification(intent="how_to", intent_confidence=0.9, product_area="general")
    return base.model_copy(update=changes)


def inputs(**changes) -> PolicyInputs:
    values = {
        "classification": classification(),
        "draft": GOOD_DRAFT,
        "intent_risk": 0.0,
        "risk_tolerance": 0.15,
    }
    values.update(changes)
    return PolicyInputs(**values)


def test_a_confident_grounded_answer_deflects():
    decision = decide(POLICY, inputs())
    assert decision.outcome == "deflect"
    assert decision.reasons == ["grounded_answer"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"classification": classification(sensitive_flags=["refund"])}, "sensitive:refund"),
        ({"classification": classification(sensitive_flags=["legal"])}, "sensitive:legal"),
        ({"classification": classification(sensitive_flags=["privacy"])}, "sensitive:privacy"),
        (
            {"classification": classification(requested_action=RequestedAction(kind="change_plan"))},
            "action:change_plan",
        ),
        ({"classification": classification(wants_human=True)}, "wants_human"),
        (
            {"classification": classification(out_of_scope=True, intent="out_of_scope"), "intent_risk": 0.5},
            "out_of_scope",
        ),
        (
            {"classification": classification(intent_confidence=0.2), "intent_risk": 0.5},
            "low_classification_confidence",
        ),
        ({"classification": classification(severity="P1")}, "severity:P1"),
        ({"model_error": "rejected:refused"}, "model_error:rejected:refused"),
        ({"injection": True}, "suspected_prompt_injection"),
        ({"repeated_answer": True}, "repeat_contact_same_answer"),
        ({"language_supported": False, "classification": classification(language="de")}, "language:de"),
    ],
)
def test_always_escalate_rules_win_over_a_perfect_answer(changes, reason):
    decision = decide(POLICY, inputs(**changes))
    assert decision.outcome == "escalate"
    assert reason in decision.reasons


def test_a_strict_tenant_escalates_every_low_confidence_classification():
    doubtful = {"classification": classification(intent_confidence=0.3), "intent_risk": 0.01}
    assert decide(POLICY, inputs(**doubtful)).outcome == "deflect"  # doubt only between harmless intents
    strict = decide(POLICY, inputs(**doubtful, risk_tolerance=0.0))
    assert strict.outcome == "escalate" and "low_classification_confidence" in strict.reasons


def test_an_out_of_scope_question_with_no_weight_on_risky_intents_is_judged_by_its_answer():
    # A product question the taxonomy has no intent for ("how fast does a revoked key stop working?").
    unknown = {
        "classification": classification(out_of_scope=True, intent="out_of_scope", intent_confidence=0.05),
        "intent_risk": 0.03,
    }
    assert decide(POLICY, inputs(**unknown)).outcome == "deflect"
    weak = decide(POLICY, inputs(**unknown, draft=Draft(text="x", confidence=0.4, grounded=True)))
    assert weak.outcome == "escalate" and weak.reasons == ["low_answer_confidence"]
    assert decide(POLICY, inputs(**unknown, draft=None)).outcome == "escalate"
    strict = decide(POLICY, inputs(**unknown, risk_tolerance=0.0))
    assert strict.outcome == "escalate" and "out_of_scope" in strict.reasons


def test_an_out_of_scope_message_leaning_to_risky_intents_escalates_despite_a_perfect_answer():
    # "cancle my subscribtion": out of scope, but most of the head's weight is on intents for a person.
    leaning = classification(out_of_scope=True, intent="out_of_scope", intent_confidence=0.01)
    decision = decide(POLICY, inputs(classification=leaning, intent_risk=0.51))
    assert decision.outcome == "escalate" and decision.reasons == ["out_of_scope"]


def test_missing_diagnostics_are_asked_for_when_no_answer_solves_the_problem():
    weak = Draft(text="Maybe this.", confidence=0.2, grounded=True)
    decision = decide(
        POLICY, inputs(draft=weak, missing_diagnostics=["app_version", "os"], diagnostics_apply=True)
    )
    assert decision.outcome == "ask_diagnostics"
    assert decision.reasons == ["missing_diagnostics:app_version,os"]


def test_a_confident_answer_still_goes_out_and_asks_for_the_missing_diagnostics():
    decision = decide(POLICY, inputs(missing_diagnostics=["run_id"], diagnostics_apply=True))
    assert decision.outcome == "deflect"
    assert "diagnostics_requested:run_id" in decision.reasons


def test_no_grounded_answer_escalates_with_the_reason():
    assert decide(POLICY, inputs(draft=None, draft_problem="no_passages")).reasons == ["no_passages"]
    low = decide(POLICY, inputs(draft=Draft(text="x", confidence=0.3, grounded=True)))
    assert low.outcome == "escalate" and low.reasons == ["low_answer_confidence"]


def test_rollout_mode_per_intent_overrides_the_tenant_default():
    policy = DecisionPolicy(rollout_default="shadow", rollout_by_intent={"how_to": "auto"})
    assert rollout_mode(policy, "how_to") == "auto"
    assert rollout_mode(policy, "refund_request") == "shadow"


def test_a_policy_change_gets_a_new_version_a_snapshot_and_an_audit_event_with_its_author():
    store, evidence = Store(), MemoryEvidenceStore()
    audit = AuditLog(store, evidence)
    ctx = TenantContext(tenant_id="acme", actor="admin:dana", roles=frozenset({"admin"}), via="jwt")
    save(store, ctx, [TenantConfigs(store).save_write(TenantConfig(tenant_id="acme", display_name="Acme"))])

    updated = change_policy(store, audit, ctx, DecisionPolicy(answer_threshold=0.7))
    assert updated.policy.version == 2 and updated.policy.answer_threshold == 0.7
    assert updated.updated_by == "admin:dana"
    unchanged = change_policy(store, audit, ctx, DecisionPolicy(answer_threshold=0.7))
    assert unchanged.policy.version == 2  # same content, same version, nothing audited

    history = policy_history(store, ctx)  # newest first; v1 kept when it was superseded
    assert [h["policy"]["version"] for h in history] == [2, 1]
    assert history[0]["changed_by"] == "admin:dana" and history[0]["changed"] == ["answer_threshold"]
    assert history[1]["policy"]["answer_threshold"] == DecisionPolicy().answer_threshold
    assert (history[1]["changed_by"], history[1]["recorded_by"]) == (None, "admin:dana")
    _, events = audit.load(ctx, POLICY_CHAIN)
    assert [(e.type, e.actor, e.payload["changed"]) for e in events] == [
        ("policy.changed", "admin:dana", ["answer_threshold"])
    ]
    assert audit.verify(ctx, POLICY_CHAIN).ok
