"""The escalation state machine as a document: substitutions, reachability, and the paths it must never take."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import typing
from pathlib import Path

import pytest

from deflect.escalation.models import StepName
from infra.checks import asl
from infra.local import template as tpl

ASL_PATH = Path(tpl.ROOT, "statemachines", "escalation.asl.json")
WAITS = ("HumanReview", "SecondApproval")


@pytest.fixture(scope="module")
def definition() -> dict:
    return json.loads(ASL_PATH.read_text())


def _targets(state: dict) -> list[str]:
    found = [state.get("Next"), state.get("Default")]
    found += [choice["Next"] for choice in state.get("Choices", [])]
    found += [catch["Next"] for catch in state.get("Catch", [])]
    return [t for t in found if t]


def _reachable(states: dict, start: str, *, avoid: frozenset[str] = frozenset()) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name in avoid:
            continue
        seen.add(name)
        todo += _targets(states[name])
    return seen


def test_every_placeholder_has_a_definition_substitution():
    assert asl.placeholders_without_substitution() == []
    text = ASL_PATH.read_text()
    assert set(re.findall(r"\$\{([^}]+)\}", text)) <= set(
        tpl.state_machines()["EscalationStateMachine"]["DefinitionSubstitutions"]
    )


def test_every_state_is_reachable_and_every_target_exists(definition):
    states = definition["States"]
    for name, state in states.items():
        for target in _targets(state):
            assert target in states, f"{name} → {target} does not exist"
    assert _reachable(states, definition["StartAt"]) == set(states)


def test_jsonpath_only(definition):
    text = json.dumps(definition)
    assert definition.get("QueryLanguage", "JSONPath") == "JSONPath"
    assert '"Assign"' not in text and "JSONata" not in text and "{%" not in text


def test_tasks_call_only_steps_the_function_knows(definition):
    known = set(typing.get_args(StepName))
    for name, state in definition["States"].items():
        if state["Type"] != "Task" or "sqs:" in state["Resource"]:
            continue
        parameters = state["Parameters"]
        step = parameters.get("task") or parameters["Payload"]["task"]
        assert step in known, f"{name} calls unknown step {step}"


def test_human_waits_hold_a_token_and_an_sla_timeout(definition):
    for name in WAITS:
        state = definition["States"][name]
        assert state["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
        assert state["Parameters"]["Payload"]["token.$"] == "$$.Task.Token"
        assert state["TimeoutSecondsPath"] == "$.route.wait_seconds"
        timeouts = [c for c in state["Catch"] if "States.Timeout" in c["ErrorEquals"]]
        assert timeouts and timeouts[0]["Next"] == "CheckSla"
        assert "States.HeartbeatTimeout" in timeouts[0]["ErrorEquals"]


def test_nothing_reaches_the_outbox_without_a_human_decision(definition):
    """Remove the two waiting states: the writeback must become unreachable, i.e. no timeout or failure path
    approves anything by itself."""
    states = definition["States"]
    without_humans = _reachable(states, definition["StartAt"], avoid=frozenset(WAITS))
    assert "EnqueueWriteback" not in without_humans and "ApplyDecision" not in without_humans
    from_timeout = _reachable(states, "CheckSla", avoid=frozenset(WAITS))
    assert "EnqueueWriteback" not in from_timeout


def test_every_task_failure_lands_in_the_human_failure_queue(definition):
    for name, state in definition["States"].items():
        if state["Type"] != "Task" or name in ("NotifyHumanFailure", "CloseFailedEscalation"):
            continue
        last = state["Catch"][-1]
        assert last == {
            "ErrorEquals": ["States.ALL"],
            "ResultPath": "$.error",
            "Next": "CloseFailedEscalation",
        }, name
    # Closing the ticket's escalation never holds the notification back: done or failed, it goes on to it.
    close = definition["States"]["CloseFailedEscalation"]
    assert close["Next"] == "NotifyHumanFailure" and close["ResultPath"] is None
    assert close["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.close_error", "Next": "NotifyHumanFailure"}
    ]
    notify = definition["States"]["NotifyHumanFailure"]
    assert notify["Parameters"]["MessageBody"]["escalation.$"] == "$"  # the whole state travels with it


@pytest.mark.skipif(
    not asl.VALIDATOR.exists(), reason="npm asl-validator not installed (make validate installs it)"
)
def test_asl_validator_accepts_the_definition():
    with tempfile.NamedTemporaryFile("w", suffix=".asl.json", delete=False) as handle:
        handle.write(asl.substituted(ASL_PATH.read_text()))
    result = subprocess.run(
        [str(asl.VALIDATOR), "--json-path", handle.name], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
