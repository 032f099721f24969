"""Bedrock calls end in time: no attempt starts that could outlast the deadline, a draft and its self-check share
ONE deadline, and the budget fits the triage function's timeout, so a slow or throttled model escalates the
ticket instead of timing the Lambda out (which would retry the whole SQS batch). A fake clock advanced by the
before-send hook (botocore's real send path runs) and a fake sleep: nothing really waits."""

import json

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from botocore.stub import ANY, Stubber

from deflect.adapters.bedrock_model import CONNECT_TIMEOUT_S, BedrockAnswerComposer, BedrockLanguageModel
from deflect.bootstrap import Container
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemoryEvidenceStore
from deflect.ports import ModelUnavailable
from deflect.services.audit import AuditLog
from deflect.settings import Settings
from deflect.triage.profile import TriageProfiles
from infra.local import template as tpl
from tests.unit.test_triage_bedrock import (
    ANSWER,
    CTX,
    HIT,
    MODEL,
    _Raw,
    client,
    converse_response,
    structured,
    tool_use,
)
from tests.unit.triage_fakes import Store

BUDGET_S, CALL_TIMEOUT_S = 40.0, 23.0
# What a triage invocation needs besides the model: classification, retrieval, the decision's writes, hand-off.
TRIAGE_MARGIN_S = 15.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def answering(clock, steps):
    """A before-send hook: each step is (seconds the call takes, then 200 + body | an error code | "timeout");
    the last step repeats. Returns the hook and the clock time at which each attempt started."""
    started = []

    def hook(request, **_):
        started.append(clock.now)
        seconds, answer = steps[min(len(started), len(steps)) - 1]
        clock.now += seconds
        if answer == "timeout":
            raise ReadTimeoutError(endpoint_url=request.url)
        headers = {"Content-Type": "application/json"}
        if isinstance(answer, str):
            status = 429 if answer == "ThrottlingException" else 503
            headers["x-amzn-ErrorType"] = answer
            return AWSResponse(request.url, status, headers, _Raw(b'{"message": "try again"}'))
        return AWSResponse(request.url, 200, headers, _Raw(json.dumps(answer).encode()))

    return hook, started


def model(bedrock, clock, **kwargs):
    options = {
        "budget_s": BUDGET_S,
        "call_timeout_s": CALL_TIMEOUT_S,
        "max_attempts": 4,
        "jitter": lambda: 1.0,
    }
    return BedrockLanguageModel(bedrock, MODEL, sleep=clock.sleep, clock=clock, **{**options, **kwargs})


def test_an_attempt_that_could_outlast_the_deadline_is_not_started():
    """Was: a 20 s read timeout, then a second attempt at 20.5 s that ended at 40.5 s, past the 25 s budget."""
    clock, bedrock = Clock(), client()
    hook, started = answering(clock, [(20.0, "timeout")])
    bedrock.meta.events.register("before-send.bedrock-runtime.Converse", hook)
    begin = clock.now
    with pytest.raises(ModelUnavailable) as caught:
        structured(model(bedrock, clock))
    context = caught.value.context
    assert context["reason"] == "budget_exhausted" and context["last_error"] == "timeout"
    assert context["attempts"] == len(started) == 1
    assert clock.now - begin <= BUDGET_S
    assert all(t + CALL_TIMEOUT_S <= begin + BUDGET_S for t in started)


def test_retries_continue_while_an_attempt_still_fits_and_report_the_attempts_made():
    clock, bedrock = Clock(), client()
    hook, started = answering(clock, [(9.0, "ThrottlingException")])
    bedrock.meta.events.register("before-send.bedrock-runtime.Converse", hook)
    begin = clock.now
    with pytest.raises(ModelUnavailable) as caught:
        structured(model(bedrock, clock))
    # 0 s: throttled at 9 s, wait 0.5 s; 9.5 s: throttled at 18.5 s; a 1 s wait leaves 20.5 s < one call's 23 s.
    assert [t - begin for t in started] == [0.0, 9.5] and clock.sleeps == [0.5]
    assert caught.value.context["attempts"] == 2  # was reported as max_attempts (4)
    assert caught.value.context["reason"] == "budget_exhausted"
    assert caught.value.context["last_error"] == "throttled"


def test_quick_failures_use_every_attempt_and_report_the_last_error():
    clock, bedrock = Clock(), client()
    hook, started = answering(clock, [(0.1, "ServiceUnavailableException")])
    bedrock.meta.events.register("before-send.bedrock-runtime.Converse", hook)
    with pytest.raises(ModelUnavailable) as caught:
        structured(model(bedrock, clock, max_attempts=3))
    assert caught.value.context["reason"] == "ServiceUnavailableException"
    assert caught.value.context["attempts"] == len(started) == 3 and clock.sleeps == [0.5, 1.0]


def test_a_success_after_a_retry_reports_two_attempts():
    clock, bedrock = Clock(), client()
    ok = converse_response([tool_use("grounded_answer", ANSWER)])
    hook, started = answering(clock, [(2.0, "timeout"), (3.0, ok)])
    bedrock.meta.events.register("before-send.bedrock-runtime.Converse", hook)
    result = structured(model(bedrock, clock))
    assert result.attempts == len(started) == 2


def test_the_draft_and_its_self_check_share_one_deadline():
    """Was: each call had its own budget, so one compose could run for two budgets (and more)."""
    clock, bedrock = Clock(), client()
    slow_draft = converse_response([tool_use("grounded_answer", ANSWER)], usage=(700, 90))
    hook, started = answering(clock, [(25.0, slow_draft)])
    bedrock.meta.events.register("before-send.bedrock-runtime.Converse", hook)
    begin = clock.now
    with pytest.raises(ModelUnavailable) as caught:
        BedrockAnswerComposer(model(bedrock, clock)).compose(CTX, "Where are my invoices?", [HIT])
    context = caught.value.context
    # 15 s left after the draft: the self-check (up to 23 s) is not started.
    assert len(started) == 1 and clock.now - begin == 25.0
    assert context["reason"] == "budget_exhausted" and context["attempts"] == 0
    assert (context["usage"].input_tokens, context["usage"].output_tokens) == (700, 90)
    assert context["model_id"] == f"bedrock:{MODEL}" and len(context["prompt_sha256"]) == 64


def test_a_compose_within_the_deadline_makes_both_calls():
    clock, bedrock = Clock(), client()
    check = converse_response([tool_use("support_check", {"verdicts": [{"index": 0, "supported": True}]})])
    hook, started = answering(
        clock, [(6.0, converse_response([tool_use("grounded_answer", ANSWER)])), (4.0, check)]
    )
    bedrock.meta.events.register("before-send.bedrock-runtime.Converse", hook)
    composition = BedrockAnswerComposer(model(bedrock, clock)).compose(CTX, "Where are my invoices?", [HIT])
    assert composition.draft is not None and len(started) == 2


def test_a_budget_too_small_for_one_call_is_refused_at_construction():
    with pytest.raises(ValueError, match="budget_s"):
        BedrockLanguageModel(client(), MODEL, budget_s=10.0, call_timeout_s=23.0)


# --------------------------------------------------------------------------- settings, template, composition root


def _triage_timeout_s() -> float:
    functions = tpl.resources("AWS::Serverless::Function")
    globals_timeout = tpl.load_template()["Globals"]["Function"].get("Timeout", 3)
    return float(functions["TriageFunction"]["Properties"].get("Timeout", globals_timeout))


def test_the_default_budget_fits_the_triage_functions_timeout_and_one_call_fits_the_budget():
    settings = Settings.from_env({})
    assert settings.bedrock_budget_s + TRIAGE_MARGIN_S <= _triage_timeout_s()
    assert settings.bedrock_budget_s >= CONNECT_TIMEOUT_S + settings.bedrock_timeout_s


def test_the_budget_is_a_typed_setting_that_bootstrap_passes_to_the_model():
    settings = Settings.from_env(
        {"MODEL_BACKEND": "bedrock", "BEDROCK_BUDGET_S": "35", "BEDROCK_TIMEOUT_S": "15"}
    )
    session = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    composer = Container(settings, store=Store(), boto_session=session).answer_composer
    assert composer.model.budget_s == 35.0
    assert composer.model.call_timeout_s == CONNECT_TIMEOUT_S + 15.0


@pytest.mark.parametrize(
    ("profile", "guardrail"),
    [
        (None, {"guardrailIdentifier": "gr-deploy", "guardrailVersion": "3", "trace": "enabled"}),
        (
            {"bedrock_model_id": "us.amazon.nova-pro-v1:0"},
            {"guardrailIdentifier": "gr-deploy", "guardrailVersion": "3", "trace": "enabled"},
        ),
        (
            {"guardrail_id": "gr-tenant", "guardrail_version": "5"},
            {"guardrailIdentifier": "gr-tenant", "guardrailVersion": "5", "trace": "enabled"},
        ),
    ],
)
def test_bootstrap_sends_the_deployments_pinned_guardrail_unless_the_tenant_has_its_own(profile, guardrail):
    settings = Settings.from_env(
        {"MODEL_BACKEND": "bedrock", "BEDROCK_GUARDRAIL_ID": "gr-deploy", "BEDROCK_GUARDRAIL_VERSION": "3"}
    )
    session = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    store = Store()
    if profile is not None:
        admin = TenantContext.system(CTX.tenant_id, actor="admin:dana")
        TriageProfiles(store).change(admin, AuditLog(store, MemoryEvidenceStore()), profile)
    container = Container(settings, store=store, boto_session=session)
    expected = {
        "modelId": (profile or {}).get("bedrock_model_id", MODEL),
        **{k: ANY for k in ("system", "messages", "inferenceConfig", "toolConfig")},
        "guardrailConfig": guardrail,
    }
    with Stubber(container.bedrock_converse_client) as stub:
        stub.add_response(
            "converse", converse_response([tool_use("grounded_answer", {"answerable": False})]), expected
        )
        container.answer_composer.compose(CTX, "question", [HIT])
        stub.assert_no_pending_responses()


def test_template_passes_the_guardrail_settings_to_every_function():
    env = tpl.globals_environment()
    assert env["BEDROCK_GUARDRAIL_ID"] == {"Ref": "BedrockGuardrailId"}
    assert env["BEDROCK_GUARDRAIL_VERSION"] == {"Ref": "BedrockGuardrailVersion"}
    parameters = tpl.load_template()["Parameters"]
    # Empty is "no guardrail": settings drop empty values, so the id stays None.
    assert parameters["BedrockGuardrailId"]["Default"] == ""
    assert Settings.from_env({"BEDROCK_GUARDRAIL_ID": ""}).bedrock_guardrail_id is None
