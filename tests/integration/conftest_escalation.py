"""Escalation fixtures: moto with every template resource, the escalation state machine executing its real ASL,
its Lambda tasks routed in-process to functions/escalation/app.py (through the local stack's router), and the
approval API called through functions/approval/app.py with API Gateway events.

Import the fixture into a test module (`from tests.integration.conftest_escalation import escalation_fixture`)
and ask for `escalation`.
One stack per module; tests keep apart by using their own tenants.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from deflect.domain.models import (
    Classification,
    Decision,
    Draft,
    Message,
    RequestedAction,
    SlaTier,
    TenantConfig,
    Ticket,
)
from deflect.domain.tenancy import TenantContext
from infra.local.moto_patches import dynamodb_serialised, sfn_token_per_attempt

WAIT_S = 20.0
POLL_S = 0.05
ESCALATION_FUNCTION = "EscalationFunction"
APPROVAL_FUNCTION = "ApprovalFunction"


class EscalationHarness:
    def __init__(self, resources: Any, session: Any, functions: Any) -> None:
        from infra.local import api

        self.resources = resources
        self.session = session
        self.functions = functions
        self.sfn = session.client("stepfunctions")
        self.sqs = session.client("sqs")
        self._routes = api.compile_routes([r for r in _template_routes() if r.function == APPROVAL_FUNCTION])

    # ------------------------------------------------------------------ the system under test
    @property
    def container(self) -> Any:
        """The composition root the handlers use (one per process, as on Lambda)."""
        from deflect.bootstrap import container

        return container()

    @property
    def state_machine_arn(self) -> str:
        return self.resources.state_machines["EscalationStateMachine"]

    # ------------------------------------------------------------------ data
    def tenant(
        self,
        prefix: str,
        *,
        review_timeout_s: int = 60,
        max_hops: int = 2,
        queues: list[str] | None = None,
        threshold: Decimal = Decimal("500"),
    ) -> str:
        tenant_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
        tier = SlaTier(name="standard", first_response_minutes=240, review_timeout_seconds=review_timeout_s)
        config = TenantConfig(
            tenant_id=tenant_id,
            display_name=prefix,
            providers=["zendesk"],
            escalation_queues=queues or ["billing", "tier1", "tier2", "supervisor"],
            max_reassign_hops=max_hops,
            sla_tiers={"standard": tier},
        )
        config.policy.two_person_amount_threshold = threshold
        ctx = TenantContext.system(tenant_id)
        self.container.store.put(ctx, self.container.tenants.save_write(config))
        return tenant_id

    def ticket(
        self,
        tenant_id: str,
        *,
        locale: str = "en",
        text: str = "Please refund my last invoice.",
        customer_id: str | None = None,
    ) -> Ticket:
        from deflect.repositories import Tickets

        ticket_id = f"t-{uuid.uuid4().hex[:10]}"
        ticket = Ticket(
            tenant_id=tenant_id,
            ticket_id=ticket_id,
            provider="zendesk",
            external_id=str(uuid.uuid4().int)[:8],
            subject_redacted="Refund request",
            status="triaging",
            locale=locale,
            customer_id=customer_id,
        )
        message = Message(tenant_id=tenant_id, ticket_id=ticket_id, message_id="m1", body_redacted=text)
        ctx = TenantContext.system(tenant_id)
        self.container.store.transact(
            ctx, [Tickets(self.container.store).save_write(ticket), Tickets.message_write(message)]
        )
        return ticket

    @staticmethod
    def decision(
        ticket: Ticket,
        *,
        action: RequestedAction | None = None,
        reply: str = "We have reviewed your invoice.",
        severity: str = "P3",
        product_area: str = "billing",
    ) -> Decision:
        classification = Classification(
            intent="refund_request",
            intent_confidence=0.91,
            product_area=product_area,
            severity=severity,  # type: ignore[arg-type]
            language=ticket.locale,
            sensitive_flags=["refund"] if action and action.kind == "refund" else [],
            requested_action=action or RequestedAction(),
        )
        return Decision(
            tenant_id=ticket.tenant_id,
            ticket_id=ticket.ticket_id,
            outcome="escalate",
            reasons=["refund requested: policy requires a person"],
            classification=classification,
            draft=Draft(text=reply, confidence=0.8, grounded=True),
        )

    def escalate(self, ticket: Ticket, decision: Decision) -> str:
        from deflect.escalation import start_escalation

        return start_escalation(self.container, decision, ticket)

    # ------------------------------------------------------------------ the agents' API
    def api(
        self,
        method: str,
        path: str,
        *,
        tenant_id: str,
        roles: tuple[str, ...] = ("agent",),
        sub: str = "alice",
        body: Any = None,
        query: str = "",
    ) -> tuple[int, Any]:
        from infra.local import api

        found = api.match(self._routes, method, path)
        assert found is not None, f"no approval route for {method} {path}"
        route, params = found
        claims = {"sub": sub, "custom:tenant_id": tenant_id, "cognito:groups": ",".join(roles)}
        event = api.rest_event(
            route,
            method=method,
            path=path,
            query=query,
            headers=[("content-type", "application/json")],
            body=json.dumps(body).encode() if body is not None else b"",
            path_parameters=params,
            claims=claims,
            stage="local",
        )
        reply = self.functions.invoke(APPROVAL_FUNCTION, event)
        return reply["statusCode"], json.loads(reply["body"]) if reply.get("body") else None

    def decide(
        self, tenant_id: str, task_id: str, outcome: str, *, roles: tuple[str, ...], sub: str, **extra: Any
    ):
        body = {"decision_id": f"d-{uuid.uuid4().hex[:12]}", "outcome": outcome, **extra}
        return self.api(
            "POST", f"/v1/tasks/{task_id}/decision", tenant_id=tenant_id, roles=roles, sub=sub, body=body
        )

    def wait_task(
        self,
        tenant_id: str,
        ticket_id: str,
        *,
        exclude: set[str] | frozenset[str] = frozenset(),
        wait_s: float = WAIT_S,
    ) -> dict[str, Any]:
        """The first open task of the ticket not in `exclude`, as GET /v1/tasks shows it."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            status, body = self.api(
                "GET", "/v1/tasks", tenant_id=tenant_id, roles=("supervisor",), sub="watcher"
            )
            assert status == 200, body
            for task in body["tasks"]:
                if task["ticket_id"] == ticket_id and task["task_id"] not in exclude:
                    return task
            time.sleep(POLL_S)
        raise AssertionError(f"no task for {ticket_id} within {wait_s}s")

    def wait_execution(self, arn: str, wait_s: float = WAIT_S) -> dict[str, Any]:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            described = self.sfn.describe_execution(executionArn=arn)
            if described["status"] != "RUNNING":
                return described
            time.sleep(POLL_S)
        raise AssertionError(f"execution still running after {wait_s}s: {arn}")

    def states_entered(self, arn: str) -> list[str]:
        events = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]

    def drain(self, queue: str) -> list[dict[str, Any]]:
        """All messages currently in one of the template's queues (received and deleted)."""
        url = self.resources.queues[queue]
        found: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return found
            for message in batch:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def audit_types(self, tenant_id: str, ticket_id: str) -> list[str]:
        return [e.type for e in self.container.audit.entries(TenantContext.system(tenant_id), ticket_id)]

    def outbox_items(self, tenant_id: str) -> list[Any]:
        return self.container.escalation_ports.outbox.by_status(TenantContext.system(tenant_id), "pending")


def decisions_meet_at_commit(audit: Any, monkeypatch: Any) -> None:
    """Hold two deciding requests at their commit (the `task.decided` append) until both are there, so both have
    read the task and looked up their decision id before either writes."""
    barrier = threading.Barrier(2, timeout=10)
    original = audit.append

    def append_together(ctx, ticket_id, type, payload, **kw):
        if type == "task.decided":
            barrier.wait()
        return original(ctx, ticket_id, type, payload, **kw)

    monkeypatch.setattr(audit, "append", append_together)


def _template_routes() -> list[Any]:
    from infra.local import template as tpl

    return tpl.routes()


@pytest.fixture(scope="module", name="escalation")
def escalation_fixture() -> Iterator[EscalationHarness]:
    import boto3
    from moto import mock_aws

    from deflect import bootstrap
    from deflect.observability import metrics
    from infra.local import lambda_router
    from infra.local import template as tpl
    from infra.local.functions import LocalFunctions
    from infra.local.resources import create_all

    config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    with pytest.MonkeyPatch.context() as env, mock_aws(config=config), dynamodb_serialised(), sfn_token_per_attempt():
        env.delenv("AWS_ENDPOINT_URL", raising=False)
        session = boto3.session.Session(region_name="us-east-1")
        resources = create_all(session)
        for key, value in resources.environment(ESCALATION_FUNCTION).items():
            env.setenv(key, value)
        env.setenv("ESCALATION_STATE_MACHINE_ARN", resources.state_machines["EscalationStateMachine"])
        _watch_sla_topic(session, resources)
        without_table_stream()
        bootstrap.reset()
        specs = {
            name: spec
            for name, spec in tpl.functions().items()
            if name in (ESCALATION_FUNCTION, APPROVAL_FUNCTION)
        }
        functions = LocalFunctions(specs)
        undo = lambda_router.install(functions)
        try:
            yield EscalationHarness(resources, session, functions)
        finally:
            undo()
            _stop_running_executions(session)
            bootstrap.reset()
            metrics().clear_metrics()  # services called outside a handler leave metrics no handler flushed


# The same fixture under its own name, for modules that import it as `escalation` (with a noqa for F811).
escalation = escalation_fixture


def _watch_sla_topic(session: Any, resources: Any) -> None:
    """A queue subscribed to the SLA topic, standing in for the people who get paged: `drain("SlaWatch")`."""
    sqs = session.client("sqs")
    url = sqs.create_queue(QueueName="SlaWatch")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    session.client("sns").subscribe(TopicArn=resources.topics["SlaTopic"], Protocol="sqs", Endpoint=arn)
    resources.queues["SlaWatch"] = url


def without_table_stream() -> None:
    """Stop moto recording SupportTable's stream (nothing local consumes it: the template disables the writeback
    function's stream event). moto deep-copies the table with its whole stream history for every item of every
    transaction, so each transaction gets slower with every write before it. (moto's UpdateTable cannot switch
    a stream off, hence its backend directly.)"""
    from moto.dynamodb.models import dynamodb_backends

    from infra.local.resources import ACCOUNT, REGION

    table = dynamodb_backends[ACCOUNT][REGION].get_table("SupportTable")
    table.stream_specification = {"StreamEnabled": False}
    table.stream_shard = None


def _stop_running_executions(session: Any) -> None:
    # Executions left waiting for a human would keep their threads busy until their timeout.
    sfn = session.client("stepfunctions")
    for machine in sfn.list_state_machines()["stateMachines"]:
        running = sfn.list_executions(stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING")
        for execution in running["executions"]:
            sfn.stop_execution(executionArn=execution["executionArn"])
