"""Usage is counted per tenant and day from the requests actually made; budgets and rate limits answer 429
with Retry-After before any work, and the same request succeeds once allowed again (nothing lost)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from botocore.stub import Stubber

from deflect.domain import keys
from deflect.domain.tenancy import TenantContext
from deflect.http import build_resolver
from deflect.insight.metering import metered
from deflect.insight.usage import Guard, UsageMeter
from deflect.ports import Put
from tests.integration.insight_story import seed_tenant

NOON = datetime(2031, 5, 6, 12, 0, 30, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.value = now

    def now(self) -> datetime:
        return self.value


class LambdaContext:
    function_name = "intake"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:intake"
    aws_request_id = "req-1"


def test_requests_tokens_and_lambda_time_are_counted_per_tenant(moto_stack):
    container = moto_stack.container()
    meter = container.usage
    acme, globex = seed_tenant(container, "acme"), seed_tenant(container, "globex")
    container.store.put(acme, Put(pk=keys.ticket_pk("acme", "t1"), sk="META", data={"x": 1}))
    container.store.get(acme, keys.ticket_pk("acme", "t1"), "META")
    container.evidence.put_evidence(globex, "t2", b"{}", "note")
    # Bedrock tokens come from the Converse response itself
    bedrock = container.client("bedrock-runtime")
    with Stubber(bedrock) as stub:
        stub.add_response(
            "converse",
            {
                "output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 1200, "outputTokens": 300, "totalTokens": 1500},
                "metrics": {"latencyMs": 10},
            },
        )
        meter.bind("acme")
        bedrock.converse(modelId="m", messages=[{"role": "user", "content": [{"text": "hi"}]}])
    meter.end_invocation(duration_ms=200, memory_mb=1024)
    meter.flush()

    today = datetime.now(UTC).date()
    acme_day = meter.days(acme, today, today)[0]
    globex_day = meter.days(globex, today, today)[0]
    assert acme_day.counters["model_input_tokens"] == 1200 and acme_day.counters["model_output_tokens"] == 300
    assert acme_day.counters["ddb_write_units"] >= 2 and acme_day.counters["ddb_read_units"] >= 1
    assert globex_day.counters["s3_put"] == 1 and globex_day.counters["model_input_tokens"] == 0
    assert acme_day.counters["lambda_invocations"] == 1
    # 1200 in + 300 out at $1.10 / $5.50 per million tokens
    assert acme_day.cost.parts["model"] == pytest.approx(0.00132 + 0.00165)
    assert acme_day.cost.total > acme_day.cost.parts["model"]


def test_metered_handler_flushes_usage_even_when_the_handler_fails(moto_stack):
    from deflect.bootstrap import container

    c = container()
    ctx = seed_tenant(c, "acme")

    @metered
    def handler(event: dict[str, Any], context: Any) -> None:
        c.store.get(ctx, keys.ticket_pk("acme", "t1"), "META")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        handler({}, LambdaContext())
    today = datetime.now(UTC).date()
    counted = c.usage.days(ctx, today, today)[0].counters
    assert (
        counted["lambda_invocations"] == 1 and counted["lambda_mb_ms"] > 0 and counted["ddb_read_units"] >= 1
    )


def test_an_invocation_that_works_for_no_tenant_is_not_billed_to_the_one_before(moto_stack):
    from deflect.bootstrap import container

    c = container()
    ctx = seed_tenant(c, "billedco")

    @metered
    def tenant_work(event: dict[str, Any], context: Any) -> None:
        c.store.get(ctx, keys.ticket_pk("billedco", "t1"), "META")

    @metered
    def ping(event: dict[str, Any], context: Any) -> None:
        return None  # a health check, a 401, an unknown tenant's 404: nobody's work

    tenant_work({}, LambdaContext())
    for _ in range(3):
        ping({}, LambdaContext())
    today = datetime.now(UTC).date()
    assert c.usage.days(ctx, today, today)[0].counters["lambda_invocations"] == 1


# ------------------------------------------------------------------ 429 with Retry-After, nothing lost


def intake_like_app(guard: Guard, container: Any):
    """The shape every work-starting route has: tenant resolved → guard → work."""
    app = build_resolver()

    @app.post("/v1/demo/<tenant_id>/messages")
    def receive(tenant_id: str) -> dict[str, Any]:
        ctx = TenantContext.system(tenant_id, "webhook:generic")
        guard(ctx)
        body = app.current_event.json_body
        container.store.put(
            ctx, Put(pk=keys.ticket_pk(tenant_id, body["ticket"]), sk="META", data=body, expect="new")
        )
        return {"stored": body["ticket"]}

    return app


def post(app: Any, tenant: str, ticket: str) -> dict[str, Any]:
    event = {
        "httpMethod": "POST",
        "path": f"/v1/demo/{tenant}/messages",
        "resource": "/v1/demo/{tenant_id}/messages",
        "pathParameters": {"tenant_id": tenant},
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"ticket": ticket}),
        "requestContext": {"requestId": "r", "stage": "test"},
        "isBase64Encoded": False,
    }
    return app.resolve(event, LambdaContext())


def guard_for(container: Any, clock: Clock) -> Guard:
    meter = UsageMeter(container.store, clock=clock)
    return Guard(container.tenants, container.store, meter, clock=clock, config_cache_s=0)


def test_budget_exceeded_answers_429_with_retry_after_and_does_no_work(moto_stack):
    container = moto_stack.container()
    clock = Clock(NOON)
    ctx = seed_tenant(container, "acme", daily_budget_usd=Decimal("0.50"))
    guard = guard_for(container, clock)
    # today's usage already costs more than the budget: 1M output tokens = $4.00
    guard.meter.add("acme", model_output_tokens=1_000_000)
    guard.meter.flush()
    app = intake_like_app(guard, container)

    response = post(app, "acme", "tkt_1")

    assert response["statusCode"] == 429
    assert response["multiValueHeaders"]["Retry-After"] == [str((24 * 3600) - (12 * 3600 + 30))]
    assert json.loads(response["body"])["error"] == "throttled"
    assert container.store.get(ctx, keys.ticket_pk("acme", "tkt_1"), "META") is None  # no work done

    # the sender retries after the budget is raised (or the day turns): processed once, nothing lost
    config = container.tenants.get(ctx)
    container.store.put(
        ctx, container.tenants.save_write(config.model_copy(update={"daily_budget_usd": Decimal("10")}))
    )
    assert post(app, "acme", "tkt_1")["statusCode"] == 200
    assert container.store.get(ctx, keys.ticket_pk("acme", "tkt_1"), "META").data["ticket"] == "tkt_1"


def test_request_rate_limit_answers_429_until_the_next_minute(moto_stack):
    container = moto_stack.container()
    clock = Clock(NOON)
    seed_tenant(container, "acme", requests_per_minute=2)
    seed_tenant(container, "globex", requests_per_minute=2)
    app = intake_like_app(guard_for(container, clock), container)

    assert [post(app, "acme", f"t{i}")["statusCode"] for i in range(3)] == [200, 200, 429]
    refused = post(app, "acme", "t3")
    assert refused["multiValueHeaders"]["Retry-After"] == ["30"]  # 30 s left in this minute
    assert post(app, "globex", "g1")["statusCode"] == 200  # one tenant's limit is not another's

    clock.value = NOON.replace(minute=1)
    assert post(app, "acme", "t3")["statusCode"] == 200
