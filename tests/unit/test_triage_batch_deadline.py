"""The triage worker keeps a batch inside the function's timeout: a message starts only while the invocation has the
time one message may need (TRIAGE_MARGIN_S + BEDROCK_BUDGET_S), the rest go back to the queue unstarted, and a
message started late gives the model only what the invocation has left. A fake Lambda context on a fake clock:
nothing really waits."""

import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from deflect.adapters.bedrock_model import BedrockAnswerComposer
from deflect.repositories import Tickets
from deflect.settings import Settings
from infra.local import template as tpl
from tests.unit.test_bedrock_budget import Clock, answering, model
from tests.unit.test_triage_bedrock import client
from tests.unit.triage_fakes import make_world

APP = Path(__file__).resolve().parents[2] / "functions" / "triage" / "app.py"
BEDROCK = Settings.from_env({"MODEL_BACKEND": "bedrock"})  # BEDROCK_BUDGET_S 40 + TRIAGE_MARGIN_S 15


def _triage_timeout_s() -> float:
    functions = tpl.resources("AWS::Serverless::Function")
    globals_timeout = tpl.load_template()["Globals"]["Function"].get("Timeout", 3)
    return float(functions["TriageFunction"]["Properties"].get("Timeout", globals_timeout))


@pytest.fixture(scope="module")
def app():
    spec = importlib.util.spec_from_file_location("triage_app_batch_deadline", APP)
    module = importlib.util.module_from_spec(spec)
    sys.modules["triage_app_batch_deadline"] = module  # as Lambda imports it
    spec.loader.exec_module(module)
    return module


class LambdaContext:
    """Lambda's context: the remaining time runs on the test's fake clock from `timeout_s`."""

    function_name = "TriageFunction"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:TriageFunction"
    aws_request_id = "req-1"

    def __init__(self, clock: Clock, timeout_s: float) -> None:
        self.clock, self.end = clock, clock.now + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return int((self.end - self.clock.now) * 1000)


class Container:
    def __init__(self, triage, settings: Settings = BEDROCK) -> None:
        self.triage, self.settings = triage, settings


class SlowTriage:
    """The in-memory world's triage, each message taking `seconds` (a throttled model) on the fake clock."""

    def __init__(self, world, clock: Clock, seconds: float) -> None:
        self.world, self.clock, self.seconds = world, clock, seconds
        self.calls: Counter[str] = Counter()

    def triage(self, ctx, ticket_id, message_id):
        self.calls[message_id] += 1
        self.clock.now += self.seconds
        return self.world.service.triage(ctx, ticket_id, message_id)


def _records(world, count: int) -> list[dict]:
    records = []
    for n in range(count):
        message_id = world.ticket(f"zd-{n}", "How do I set up SSO for my team?")
        body = {"tenant_id": world.ctx.tenant_id, "ticket_id": f"zd-{n}", "message_id": message_id}
        records.append(
            {
                "messageId": f"m{n}",
                "receiptHandle": f"h{n}",
                "body": json.dumps(body),
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:TriageQueue",
                "awsRegion": "us-east-1",
            }
        )
    return records


def test_messages_without_time_left_go_back_unstarted_and_every_message_is_triaged_once(app):
    """Was: all four started one after another (80 s of a 60 s function): Lambda kills the invocation, the whole
    batch comes back, and after five deliveries it lands in the DLQ neither answered nor escalated."""
    clock, world = Clock(), make_world()
    triage = SlowTriage(world, clock, seconds=20.0)
    pending = _records(world, 4)
    message_ids = [json.loads(r["body"])["message_id"] for r in pending]
    deliveries = []
    while pending and len(deliveries) < 10:
        context = LambdaContext(clock, _triage_timeout_s())
        response = app.process({"Records": pending}, context, container=Container(triage))
        assert context.get_remaining_time_in_millis() >= 0, "the invocation outlasted the function's timeout"
        returned = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        deliveries.append(sorted(returned))
        pending = [r for r in pending if r["messageId"] in returned]

    # One message fits each 60 s invocation when a message may need 55 s; the rest come back unstarted.
    assert deliveries == [["m1", "m2", "m3"], ["m2", "m3"], ["m3"], []]
    # Nothing lost, nothing triaged twice: each message started exactly once and has one decision.
    assert triage.calls == Counter(dict.fromkeys(message_ids, 1))
    for n in range(4):
        assert len(Tickets(world.store).decisions(world.ctx, f"zd-{n}")) == 1


def test_a_fast_batch_is_handled_in_one_invocation(app):
    clock, world = Clock(), make_world()
    triage = SlowTriage(world, clock, seconds=1.0)
    response = app.process(
        {"Records": _records(world, 4)},
        LambdaContext(clock, _triage_timeout_s()),
        container=Container(triage),
    )
    assert response == {"batchItemFailures": []}
    assert sorted(triage.calls.values()) == [1, 1, 1, 1]


def test_a_message_started_late_gives_the_model_only_what_the_invocation_has_left(app):
    """The first message of a delivery always starts (every delivery makes progress); with 30 s left and 15 s kept
    for the writes, no Converse call (up to 23 s) may start: the ticket escalates and the invocation ends in time.
    Was: the model took its own 40 s budget and the call ran into the writes' margin."""
    clock, bedrock = Clock(), client()
    hook, started = answering(clock, [(20.0, "timeout")])
    bedrock.meta.events.register("before-send.bedrock-runtime.Converse", hook)
    world = make_world()
    world.service.engine.composer = BedrockAnswerComposer(model(bedrock, clock))
    context = LambdaContext(clock, 30.0)

    response = app.process({"Records": _records(world, 1)}, context, container=Container(world.service))

    assert response == {"batchItemFailures": []}
    assert started == []
    [decision] = Tickets(world.store).decisions(world.ctx, "zd-0")
    assert decision.outcome == "escalate"
    assert "model_error:unavailable:budget_exhausted" in decision.reasons
    assert context.get_remaining_time_in_millis() >= BEDROCK.triage_margin_s * 1000


def test_one_message_fits_the_triage_functions_timeout():
    # Otherwise only the first message of each delivery could start, and never with its whole budget.
    assert BEDROCK.triage_message_s == BEDROCK.bedrock_budget_s + BEDROCK.triage_margin_s
    assert BEDROCK.triage_message_s <= _triage_timeout_s()
    # The embedded model has no Bedrock budget to wait for: a local batch is not held back by it.
    assert Settings.from_env({}).triage_message_s == Settings.from_env({}).triage_margin_s


def test_on_aws_each_triage_invocation_gets_one_message():
    # A second message would rarely have 55 s left after the first, so it would go back unstarted, and every
    # hand-back counts a receive: under load, messages could reach the DLQ without ever being triaged.
    functions = tpl.resources("AWS::Serverless::Function")
    [event] = functions["TriageFunction"]["Properties"]["Events"].values()
    assert event["Properties"]["BatchSize"] * BEDROCK.triage_message_s <= _triage_timeout_s()
