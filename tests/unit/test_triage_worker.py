"""The triage queue consumer: each record is one message; only records that may succeed later are retried."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from deflect.domain.errors import TenantNotFound, Throttled
from deflect.repositories import Tickets
from tests.unit.triage_fakes import make_world

APP = Path(__file__).resolve().parents[2] / "functions" / "triage" / "app.py"


@pytest.fixture(scope="module")
def app():
    spec = importlib.util.spec_from_file_location("triage_app", APP)
    module = importlib.util.module_from_spec(spec)
    sys.modules["triage_app"] = module  # as Lambda imports it: pydantic resolves annotations through it
    spec.loader.exec_module(module)
    return module


def record(message_id: str, body: dict | str) -> dict:
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:TriageQueue",
        "awsRegion": "us-east-1",
    }


class FailingTriage:
    """The in-memory world's triage service, failing on demand for some message ids."""

    def __init__(self, world, fail: dict[str, Exception]) -> None:
        self.world = world
        self.fail = fail

    def triage(self, ctx, ticket_id, message_id):
        if message_id in self.fail:
            raise self.fail[message_id]
        return self.world.service.triage(ctx, ticket_id, message_id)


class Container:
    """A composition root that only has triage."""

    def __init__(self, triage: FailingTriage) -> None:
        self.triage = triage


def test_a_batch_reports_only_the_records_worth_retrying(app, monkeypatch):
    world = make_world()
    good = world.ticket("tkt-1", "How do I set up SSO for my team?")
    container = Container(FailingTriage(world, {"throttled": Throttled("slow"), "gone": TenantNotFound()}))
    event = {
        "Records": [
            record(
                "r1", {"tenant_id": "acme", "ticket_id": "tkt-1", "message_id": good, "provider": "zendesk"}
            ),
            record("r2", {"tenant_id": "acme", "ticket_id": "tkt-1", "message_id": "throttled"}),
            record("r3", "not json at all"),
            record("r4", {"tenant_id": "NOT A TENANT", "ticket_id": "x", "message_id": "y"}),
            record("r5", {"tenant_id": "acme", "ticket_id": "tkt-1", "message_id": "gone"}),
        ]
    }
    response = app.process(event, None, container=container)
    assert response == {"batchItemFailures": [{"itemIdentifier": "r2"}]}
    [decision] = Tickets(world.store).decisions(world.ctx, "tkt-1")
    assert decision.outcome == "deflect"


def test_ping(app):
    assert app.handler({"task": "ping"}, _Context())["function"] == "triage"


class _Context:
    function_name = "triage"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:triage"
    aws_request_id = "req-1"
