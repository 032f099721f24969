"""The local stack behaves like the deployed system from the outside: routes, auth, workflows, queues."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from infra.local import template as tpl
from infra.local.dev_issuer import DevIssuer

pytestmark = pytest.mark.e2e

WAIT_S = 60.0


def _until(check: Any, what: str, timeout_s: float = WAIT_S) -> Any:
    """Poll `check` until it returns something truthy (bounded; never a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def test_health_reports_the_emulated_services_it_reached(api):
    answer = api.get("/v1/health")

    assert answer.status == 200
    body = answer.json()
    assert body["status"] == "ok"
    assert body["emulator"].startswith("moto ")
    assert body["dependencies"] == {"dynamodb": "ok", "s3": "ok", "sqs": "ok", "stepfunctions": "ok"}


def test_openapi_lists_every_template_route_and_docs_need_no_cdn(api):
    document = api.get("/v1/openapi.json").json()

    listed = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    assert {(r.method, r.path) for r in tpl.routes()} <= listed
    protected = {(r.method, r.path) for r in tpl.routes() if r.authorizer}
    for method, path in protected:
        assert document["paths"][path][method.lower()]["security"]
    docs = api.get("/v1/docs")
    assert docs.status == 200
    assert b"/v1/openapi.json" in docs.body
    assert b"<script src=" not in docs.body and b"<link " not in docs.body  # nothing fetched from elsewhere


def test_every_handler_describes_its_own_routes(api):
    document = api.get("/v1/openapi.json").json()

    # A handler whose models cannot be described (e.g. a bare `-> Response` annotation) breaks its validation too.
    assert document["info"].get("x-deflect-openapi-errors") is None, document["info"][
        "x-deflect-openapi-errors"
    ]


@pytest.mark.parametrize(
    "route", [r for r in tpl.routes() if r.authorizer], ids=lambda r: f"{r.method} {r.path}"
)
def test_agent_routes_refuse_requests_without_a_valid_token(api, tmp_path, route):
    path = route.path.replace("{id}", "x1")
    forged = DevIssuer.in_dir(tmp_path).issue(
        sub="mallory", email="m@x.example", tenant_id="demo", groups=["admin"]
    )

    for token in (None, "not-a-jwt", forged):
        answer = api.call(
            route.method, path, token=token, json_body={} if route.method in {"POST", "PUT"} else None
        )
        assert answer.status == 401, (token, answer.body)
        assert answer.json()["message"] == "Unauthorized"


def test_demo_agent_token_passes_the_authorizer(api):
    protected = next(r for r in tpl.routes() if r.authorizer and r.method == "GET")

    answer = api.get(protected.path.replace("{id}", "x1"), role="agent")

    # Whatever the handler answers, it is the handler answering: the gateway did not refuse the request.
    assert answer.status != 401, answer.body
    assert b"request_refused" not in answer.body


def test_unknown_routes_are_refused_like_api_gateway(api):
    answer = api.get("/v1/no-such-route")

    assert answer.status == 403
    assert answer.json()["message"] == "Missing Authentication Token"


def test_demo_tenant_is_seeded_with_config_and_signed_in_users(api, local_stack):
    assert {"agent", "approver", "supervisor", "admin"} <= set(local_stack.tokens)
    saved = json.loads((local_stack.data_dir / "tokens.json").read_text())
    assert saved["tokens"] == local_stack.tokens
    assert saved["users"]["approver"]["groups"] == ["agent", "approver"]

    item = api.aws("dynamodb").get_item(
        TableName="SupportTable", Key={"PK": {"S": "T#demo"}, "SK": {"S": "CONFIG"}}
    )
    assert json.loads(item["Item"]["data"]["S"])["tenant_id"] == "demo"
    pages = api.aws("ssm").get_paginator("get_parameters_by_path").paginate(
        Path="/deflect/local/demo", Recursive=True, WithDecryption=True
    )
    stored = {p["Name"].split("/")[-2]: p["Value"] for page in pages for p in page["Parameters"]}
    # Webhook secrets as seeded; the local helpdesks add the tenant's writeback credentials beside them.
    webhook = {n: v for n, v in stored.items() if not n.endswith("-writeback") and n != "api"}
    assert webhook == local_stack.webhook_secrets
    assert {"zendesk-writeback", "crm-writeback"} <= set(stored)


def test_the_demo_tenants_api_key_in_the_data_dir_opens_the_conversation_api(api, local_stack):
    key = json.loads((local_stack.data_dir / "demo-api-key.json").read_text())["api_key"]
    message = {"message": "How do I install the CLI?", "requester": {"email": "e2e-key@example.com"}}

    answer = api.post("/v1/conversations", json_body=message, headers={"X-Api-Key": key})
    refused = api.post("/v1/conversations", json_body=message, headers={"X-Api-Key": key + "x"})

    assert answer.status in (200, 202), answer.body
    assert refused.status == 401


def test_queue_messages_reach_the_queue_triggered_function(api, local_stack):
    sqs = api.aws("sqs")
    url = local_stack.resources.queues["TriageQueue"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"tenant_id": "demo", "probe": str(uuid.uuid4())}))

    def taken() -> bool:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        return attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"

    # A poller received it (deleted on success, or in flight if the function reported it as failed).
    _until(taken, "the triage poller to take the message")


def _finished(sfn: Any, execution_arn: str) -> dict[str, Any] | None:
    found = sfn.describe_execution(executionArn=execution_arn)
    return found if found["status"] != "RUNNING" else None


def test_a_state_machine_round_trips_a_task_token(api, local_stack):
    """Step Functions runs, calls the real handler in-process, waits on a task token and completes."""
    sfn, sqs = api.aws("stepfunctions"), api.aws("sqs")
    inbox = sqs.create_queue(QueueName=f"e2e-human-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    definition = {
        "StartAt": "CallHandler",
        "States": {
            "CallHandler": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {
                    "FunctionName": local_stack.resources.functions["EscalationFunction"],
                    "Payload": {"task": "e2e-probe"},
                },
                "ResultPath": "$.handler",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.handler", "Next": "AskHuman"}],
                "Next": "AskHuman",
            },
            "AskHuman": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": inbox, "MessageBody": {"token.$": "$$.Task.Token"}},
                "ResultPath": "$.decision",
                "End": True,
            },
        },
    }
    machine = sfn.create_state_machine(
        name=f"e2e-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/x",
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, name=f"run-{uuid.uuid4().hex}", input="{}")[
        "executionArn"
    ]

    message = _until(
        lambda: sqs.receive_message(QueueUrl=inbox, WaitTimeSeconds=1).get("Messages"), "the task token"
    )
    sfn.send_task_success(
        taskToken=json.loads(message[0]["Body"])["token"], output=json.dumps({"outcome": "approve"})
    )
    done = _until(lambda: _finished(sfn, execution), "the execution to finish")

    assert done["status"] == "SUCCEEDED"
    output = json.loads(done["output"])
    assert output["decision"] == {"outcome": "approve"}
    # moto's own Docker-less Lambda only echoes its input; the real handler answers or raises its own error.
    assert output["handler"] != {"task": "e2e-probe"}
    assert output["handler"].get("Payload") or output["handler"].get("Error")


def _lambda_result(event: dict[str, Any]) -> dict[str, Any] | None:
    """Outcome of a Lambda task, in either form a state can call Lambda (function ARN or lambda:invoke)."""
    for key in ("lambdaFunctionSucceededEventDetails", "lambdaFunctionFailedEventDetails"):
        if key in event:
            return event[key]
    for key in ("taskSucceededEventDetails", "taskFailedEventDetails"):
        if event.get(key, {}).get("resourceType") == "lambda":
            return event[key]
    return None


def test_the_escalation_state_machine_from_the_template_runs_to_completion(api, local_stack):
    sfn = api.aws("stepfunctions")
    machine = local_stack.resources.state_machines["EscalationStateMachine"]
    payload = {"tenant_id": "demo", "ticket_id": f"tkt-{uuid.uuid4().hex[:8]}", "reason": "e2e"}
    execution = sfn.start_execution(
        stateMachineArn=machine, name=f"e2e-{uuid.uuid4().hex}", input=json.dumps(payload)
    )["executionArn"]
    answered: set[str] = set()

    def progress() -> dict[str, Any] | None:
        # When the machine waits for a person, answer as one would: with the token the task was given.
        for event in sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]:
            scheduled = event.get("taskScheduledEventDetails") or {}
            token = json.loads(scheduled.get("parameters") or "{}").get("Payload", {}).get("token")
            if token and token not in answered:
                answered.add(token)
                sfn.send_task_success(taskToken=token, output=json.dumps({"outcome": "approve", "by": "e2e"}))
        return _finished(sfn, execution)

    done = _until(progress, "the escalation execution to finish")

    assert done["status"] in {"SUCCEEDED", "FAILED"}
    events = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    lambda_results = [_lambda_result(e) for e in events if _lambda_result(e) is not None]
    assert lambda_results, "the machine's Lambda tasks ran"
    if done["status"] == "FAILED":
        # Failure is the handler's own error routed through the template's Catch, never a missing function.
        assert all(not (r.get("error") or "").startswith("Lambda.") for r in lambda_results), lambda_results
