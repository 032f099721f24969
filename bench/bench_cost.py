"""Estimated AWS cost per deflected and per escalated ticket, next to a commercial AI agent's per-resolution price.

Every AWS request the code makes is counted by the usage meter (a botocore hook, see deflect/insight/usage.py)
while tickets go through moto in this process, then priced with layers/core/deflect/insight/prices.json
(public on-demand list prices, us-east-1; the model named there, Claude Haiku 4.5 on Bedrock). What runs for real:
the intake handler (signed webhook), the escalation state machine with its task handlers and the approval API,
the writeback service (with a connector that answers like a helpdesk, no HTTP), audit, evidence and the insight
hooks (facts, EventBridge). Triage is represented by its documented storage pattern plus Bedrock calls whose
token counts are assumptions printed below (the triage code decides the real prompts). Lambda time is measured
in-process on moto, which is slower than Lambda: an upper bound. Step Functions transitions are counted from the
execution history.

    python -m bench.bench_cost [--tickets 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import time
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for key, value in {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_LOG_LEVEL": "ERROR",
    "POWERTOOLS_METRICS_DISABLED": "1",
}.items():
    os.environ.setdefault(key, value)

# Assumed Bedrock calls per triaged message (Haiku-class, structured output through tool use):
# classify + grounded draft with ~4 retrieved passages, then a groundedness self-check of the draft.
MODEL_CALLS = [("classify and draft", 2650, 350), ("groundedness self-check", 1900, 60)]
COMMERCIAL_PER_RESOLUTION_USD = 0.99
FUNCTIONS = ("IntakeFunction", "EscalationFunction", "ApprovalFunction")


class StubConnectors:
    """A helpdesk that accepts every effect (writeback's own storage work is what is measured)."""

    def connector(self, tenant_id: str, item: Any) -> Any:
        from deflect.helpdesk.models import HelpdeskReceipt

        class _Accepting:
            def send(self, outbox_item: Any) -> Any:
                return HelpdeskReceipt(
                    outbox_id=outbox_item.outbox_id,
                    provider="zendesk",
                    external_ticket_id=outbox_item.external_ticket_id,
                    effects=[outbox_item.kind],
                    requests=1,
                    delivered_at=datetime.now(UTC),
                )

        return _Accepting()


class Bench:
    def __init__(self, resources: Any, session: Any, functions: Any) -> None:
        from deflect.bootstrap import container
        from deflect.insight.service import ObservedAuditLog
        from infra.local import api
        from infra.local import template as tpl

        self.c = container()
        # The recommended wiring: every audit append also feeds facts, metrics and the event bus.
        self.c.__dict__["audit"] = ObservedAuditLog(self.c.store, self.c.evidence, lambda: self.c.insight)
        self.meter = self.c.usage
        self.resources, self.session, self.functions = resources, session, functions
        self.routes = {r.function: r for r in tpl.routes()}
        self.api = api
        self.approval_routes = api.compile_routes(
            [r for r in tpl.routes() if r.function == "ApprovalFunction"]
        )
        self.intake_routes = api.compile_routes([r for r in tpl.routes() if r.function == "IntakeFunction"])
        self.transitions: list[int] = []
        original = functions.invoke

        def timed_invoke(function: str, event: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(function, event)
            finally:
                self.meter.end_invocation((time.perf_counter() - started) * 1000, 1024)

        functions.invoke = timed_invoke

    # ------------------------------------------------------------------ steps
    def lambda_step(self, action: Any) -> Any:
        started = time.perf_counter()
        try:
            return action()
        finally:
            self.meter.end_invocation((time.perf_counter() - started) * 1000, 1024)

    def http(
        self,
        routes: Any,
        function: str,
        method: str,
        path: str,
        body: bytes,
        headers: dict[str, str],
        claims: Any = None,
        query: str = "",
    ) -> Any:
        route, params = self.api.match(routes, method, path)
        event = self.api.rest_event(
            route, method=method, path=path, query=query, headers=list(headers.items()), body=body,
            path_parameters=params, claims=claims, stage="bench",
        )  # fmt: skip
        reply = self.functions.invoke(function, event)
        return reply["statusCode"], json.loads(reply["body"]) if reply.get("body") else None

    def tenant(self, name: str) -> tuple[str, str]:
        tenant_id = f"{name}-{uuid.uuid4().hex[:6]}"
        created = self.c.tenant_admin.create(tenant_id, name, providers=["generic"], actor="bench")
        return tenant_id, created["webhook_secrets"]["generic"]

    def intake(self, tenant_id: str, secret: str, n: int, text: str) -> str:
        from deflect.webhooks import sign

        body = json.loads((ROOT / "events/generic/ticket_created.json").read_text())
        body["ticket"]["id"] = f"COST-{tenant_id}-{n}"
        body["message"]["id"] = f"m-{tenant_id}-{n}"
        body["message"]["body_html"] = f"<p>{text}</p>"
        raw = json.dumps(body).encode()
        headers = {
            "content-type": "application/json",
            **sign("generic", secret, raw, delivery_id=f"d-{tenant_id}-{n}"),
        }
        status, _ = self.http(
            self.intake_routes, "IntakeFunction", "POST", f"/v1/webhooks/generic/{tenant_id}", raw, headers
        )
        assert status in (200, 202), status
        from deflect.services.intake import ticket_id_for

        return ticket_id_for("generic", body["ticket"]["id"])

    def triage(self, tenant_id: str, ticket_id: str, outcome: str) -> Any:
        """Triage's storage pattern (insight/events.py) with stubbed Bedrock answers carrying token counts."""
        from botocore.stub import Stubber

        from deflect import repositories
        from deflect.domain import keys
        from deflect.domain.canonical import canonical_json
        from deflect.domain.models import Classification, Decision, Draft, RequestedAction
        from deflect.domain.tenancy import TenantContext
        from deflect.escalation import start_escalation
        from deflect.services import outbox

        ctx = TenantContext.system(tenant_id, "triage")
        tickets = repositories.Tickets(self.c.store)

        def run() -> Any:
            self.c.tenants.get(ctx)
            ticket = tickets.require(ctx, ticket_id)
            self.c.store.query(ctx, keys.ticket_pk(tenant_id, ticket_id), "MSG#")
            if ticket.customer_id:
                repositories.Customers(self.c.store).get(ctx, ticket.customer_id)
            bedrock = self.c.client("bedrock-runtime")
            with Stubber(bedrock) as stub:
                for _, tokens_in, tokens_out in MODEL_CALLS:
                    stub.add_response("converse", {
                        "output": {"message": {"role": "assistant", "content": [{"text": "{}"}]}},
                        "stopReason": "end_turn",
                        "usage": {"inputTokens": tokens_in, "outputTokens": tokens_out, "totalTokens": tokens_in + tokens_out},
                        "metrics": {"latencyMs": 1},
                    })  # fmt: skip
                    bedrock.converse(
                        modelId=self.meter.prices.model["model_id"],
                        messages=[{"role": "user", "content": [{"text": "."}]}],
                    )
            escalate = outcome == "escalate"
            action = (
                RequestedAction(kind="refund", amount=40, currency="EUR") if escalate else RequestedAction()
            )
            classification = Classification(
                intent="refund_request" if escalate else "how_to_export", intent_confidence=0.9,
                sensitive_flags=["refund"] if escalate else [], requested_action=action,
            )  # fmt: skip
            decision = Decision(
                tenant_id=tenant_id, ticket_id=ticket_id, outcome=outcome, classification=classification,
                reasons=["sensitive: refund"] if escalate else [], rollout_mode="auto",
                draft=Draft(text="Go to Settings > Export and choose CSV.", confidence=0.8, grounded=True),
            )  # fmt: skip
            ref = self.c.evidence.put_evidence(
                ctx, ticket_id, canonical_json(decision.model_dump(mode="json")), "decision"
            )
            items = (
                []
                if escalate
                else [outbox.reply(ticket, decision.draft.text, caused_by=decision.decision_id)]
            )
            status = "escalated" if escalate else "deflected"
            writes = [
                tickets.decision_write(decision),
                tickets.save_write(ticket.model_copy(update={"status": status})),
                *outbox.writes(items),
            ]
            payload = {"decision_id": decision.decision_id, "outcome": outcome, "reasons": decision.reasons,
                       "classification": classification.model_dump(mode="json"), "rollout_mode": "auto", "policy_version": 1}  # fmt: skip
            self.c.audit.append(ctx, ticket_id, "decision.made", payload, evidence=[ref], writes=writes)
            outbox.enqueue(self.c.writeback_queue, ctx, items)
            if escalate:
                return start_escalation(self.c, decision, tickets.require(ctx, ticket_id))
            return None

        return self.lambda_step(run)

    def approve(self, tenant_id: str, ticket_id: str, arn: str) -> None:
        claims = {"sub": "ann", "custom:tenant_id": tenant_id, "cognito:groups": "agent,approver"}
        call = lambda method, path, body=b"", query="": self.http(  # noqa: E731
            self.approval_routes,
            "ApprovalFunction",
            method,
            path,
            body,
            {"content-type": "application/json"},
            claims,
            query,
        )
        from deflect.domain.tenancy import TenantContext
        from deflect.repositories import Tasks

        deadline = time.monotonic() + 30
        with self.meter.paused():  # waiting for moto's interpreter is not something an agent pays for
            while time.monotonic() < deadline and not any(
                t.ticket_id == ticket_id
                for q in ("tier1", "tier2", "billing", "supervisor")
                for t in Tasks(self.c.store).in_queue(TenantContext.system(tenant_id), q)
            ):
                time.sleep(0.05)
        _, listed = call("GET", "/v1/tasks")  # the agent opens the queue once
        task = next((t for t in listed["tasks"] if t["ticket_id"] == ticket_id), None)
        assert task is not None, "no task appeared"
        call("GET", f"/v1/tasks/{task['task_id']}")
        call("POST", f"/v1/tasks/{task['task_id']}/claim")
        decision = json.dumps({"decision_id": f"d-{uuid.uuid4().hex[:8]}", "outcome": "approve"}).encode()
        status, body = call("POST", f"/v1/tasks/{task['task_id']}/decision", decision)
        assert status == 200, body
        sfn = self.session.client("stepfunctions")
        while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.05)
        history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        self.transitions.append(sum(1 for e in history if "stateEnteredEventDetails" in e))

    def writeback(self, tenant_id: str) -> int:
        from deflect.domain.tenancy import TenantContext
        from deflect.repositories import Outbox
        from deflect.services.outbox import OutboxRef
        from deflect.services.writeback import Writeback

        service = Writeback(self.c.store, StubConnectors(), queue=None, audit=self.c.audit)
        pending = Outbox(self.c.store).by_status(TenantContext.system(tenant_id), "pending")
        for item in pending:
            self.lambda_step(
                lambda item=item: service.dispatch(OutboxRef(tenant_id=tenant_id, outbox_id=item.outbox_id))
            )
        return len(pending)

    # ------------------------------------------------------------------ paths
    def run(self, outcome: str, tickets: int) -> dict[str, Any]:
        from deflect.domain.tenancy import TenantContext

        tenant_id, secret = self.tenant(outcome)
        ctx = TenantContext.system(tenant_id)
        self.meter.flush()
        before = self._counters(ctx)
        effects = 0
        for n in range(tickets):
            text = (
                "I want a refund of my last invoice."
                if outcome == "escalate"
                else "How do I export my data to CSV?"
            )
            ticket_id = self.intake(tenant_id, secret, n, text)
            arn = self.triage(tenant_id, ticket_id, outcome)
            if arn:
                self.approve(tenant_id, ticket_id, arn)
            effects += self.writeback(tenant_id)
        self.meter.flush()
        after = self._counters(ctx)
        per_ticket = {k: (after.get(k, 0) - before.get(k, 0)) / tickets for k in set(after) | set(before)}
        if outcome == "escalate" and self.transitions:
            # The meter estimates transitions at StartExecution; the execution history has the real number.
            per_ticket["sfn_transitions"] = sum(self.transitions) / len(self.transitions)
        cost = self.meter.prices.cost(
            {k: round(v * 1000) for k, v in per_ticket.items()}
        )  # price 1000 tickets
        return {
            "path": "deflected" if outcome == "deflect" else "escalated (approved by an agent)",
            "tickets": tickets,
            "writeback_effects_per_ticket": effects / tickets,
            "per_ticket": {k: round(v, 2) for k, v in sorted(per_ticket.items()) if v},
            "cost_per_ticket_usd": round(cost.total / 1000, 6),
            "cost_parts_per_ticket_usd": {k: round(v / 1000, 7) for k, v in cost.parts.items() if v},
        }

    def _counters(self, ctx: Any) -> dict[str, int]:
        today = datetime.now(UTC).date()
        found = self.meter.days(ctx, today, today)
        return dict(found[0].counters) if found else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=5)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    import boto3
    from moto import mock_aws

    config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    with mock_aws(config=config):
        from deflect import bootstrap
        from infra.local import lambda_router
        from infra.local import template as tpl
        from infra.local.functions import LocalFunctions
        from infra.local.resources import create_all

        session = boto3.session.Session(region_name="us-east-1")
        resources = create_all(session)
        os.environ.pop("AWS_ENDPOINT_URL", None)
        os.environ.update(resources.environment("EscalationFunction"))
        os.environ["ESCALATION_STATE_MACHINE_ARN"] = resources.state_machines["EscalationStateMachine"]
        bootstrap.reset()
        functions = LocalFunctions({n: s for n, s in tpl.functions().items() if n in FUNCTIONS})
        undo = lambda_router.install(functions)
        try:
            bench = Bench(resources, session, functions)
            with contextlib.redirect_stdout(io.StringIO()):  # the handlers' logs and EMF lines
                results = [bench.run("deflect", args.tickets), bench.run("escalate", args.tickets)]
        finally:
            undo()
            bootstrap.reset()
    prices = json.loads((ROOT / "layers/core/deflect/insight/prices.json").read_text())
    for result in results:
        print(json.dumps(result))
    print(json.dumps({
        "assumed_model_calls_per_ticket": [{"call": c, "input_tokens": i, "output_tokens": o} for c, i, o in MODEL_CALLS],
        "model": prices["model"]["name"],
        "prices_as_of": prices["as_of"],
    }))  # fmt: skip
    deflected, escalated = (r["cost_per_ticket_usd"] for r in results)
    print(json.dumps({
        "bench": "cost per ticket (estimated AWS list prices)",
        "deflected_usd": deflected,
        "escalated_usd": escalated,
        "commercial_ai_agent_per_resolution_usd": COMMERCIAL_PER_RESOLUTION_USD,
        "deflected_vs_commercial": f"{COMMERCIAL_PER_RESOLUTION_USD / deflected:.0f}x cheaper" if deflected else None,
        "sfn_transitions_per_escalation": bench.transitions,
        "note": "AWS cost only: excludes OpenSearch (embedded default here), CloudWatch logs, data transfer and agents' time",
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
