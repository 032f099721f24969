"""`deflect eval triage` says which stage sent each answerable case to a person, in the policy's order: a support
team tuning its help center needs to know whether the answer, the intent head or a sensitive rule stopped it."""

from deflect.cli.eval_triage import escalation_stage


def test_a_sensitive_rule_counts_first_even_when_the_answer_was_weak_too():
    assert escalation_stage(["sensitive:refund", "action:refund", "low_answer_confidence"]) == "detectors"
    assert escalation_stage(["wants_human", "out_of_scope"]) == "detectors"
    assert escalation_stage(["severity:P1"]) == "detectors"


def test_the_intent_head_and_the_model_come_before_the_answer():
    assert escalation_stage(["model_error:timeout", "out_of_scope"]) == "model"
    assert escalation_stage(["out_of_scope"]) == "intent"
    assert escalation_stage(["low_classification_confidence"]) == "intent"


def test_only_the_answer_left():
    assert escalation_stage(["low_answer_confidence"]) == "answer"
    assert escalation_stage(["no_relevant_passage"]) == "answer"
