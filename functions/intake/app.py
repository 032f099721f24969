"""Intake: helpdesk webhooks and the conversation API. Thin: parse → service → mapped errors."""

from __future__ import annotations

import os
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path

from deflect import __version__
from deflect.adapters.aws_probes import aws_probes
from deflect.bootstrap import container
from deflect.http import agent_context, authenticated_caller, build_resolver, require_role
from deflect.insight.metering import metered
from deflect.observability import bind_tenant, logger, metrics
from deflect.services.health import HealthReport, check_health
from deflect.services.intake_api import (
    AccountUpdate,
    ConversationReply,
    ConversationStart,
    CustomerUpdate,
    TenantConfigUpdate,
    api_key_from,
    json_response,
    raw_body,
    requester_from_headers,
)


def _conversation_caller(resolver: Any) -> None:
    """A conversation route's caller must hold a valid API key before its body is judged."""
    if resolver.current_event.path.startswith("/v1/conversations"):
        container().intake.authenticate_api_key(api_key_from(resolver.current_event.headers))


app = build_resolver(caller_check=_conversation_caller)


@app.get(
    "/v1/health",
    summary="Which backing services this deployment reaches",
    responses={
        200: {
            "description": "Every dependency answered",
            "content": {"application/json": {"model": HealthReport}},
        },
        503: {
            "description": "A dependency is missing or unreachable",
            "content": {"application/json": {"model": HealthReport}},
        },
    },
)
def health() -> Response[HealthReport]:
    c = container()
    report = check_health(
        aws_probes(c.client, c.settings), version=__version__, emulator=os.environ.get("DEFLECT_EMULATOR")
    )
    return Response(
        status_code=200 if report.status == "ok" else 503,
        content_type=content_types.APPLICATION_JSON,
        body=report.model_dump(mode="json"),
    )


# ------------------------------------------------------------------ webhooks (signature-verified, no authorizer)


@app.post("/v1/webhooks/<provider>/<tenant_id>", summary="Receive a helpdesk webhook (raw body, signed)")
def webhook(provider: Annotated[str, Path()], tenant_id: Annotated[str, Path()]) -> Response[dict[str, Any]]:
    container().delivery_guard.register_lambda_context(app.lambda_context)
    event = app.current_event
    return _reply(
        container().intake.receive_webhook(provider, tenant_id, event.headers or {}, raw_body(event))
    )


# ------------------------------------------------------------------ conversation API (per-tenant API key)

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


def _api_caller() -> tuple[Any, Any, Any]:
    """The tenant comes from the API key only, never from the path or the body. Once it is authenticated, a route's
    refusal is explained to the key's holder (`authenticated_caller`)."""
    intake = container().intake
    ctx, config = intake.authenticate_api_key(api_key_from(app.current_event.headers))
    bind_tenant(ctx.tenant_id)
    container().delivery_guard.register_lambda_context(app.lambda_context)
    return intake, ctx, config


def _reply(reply: Any) -> Response[dict[str, Any]]:
    return json_response(reply.status_code, reply.body, reply.headers)


@app.post(
    "/v1/conversations", summary="Start a conversation; answers now if triage is ready within the budget"
)
def start_conversation(
    body: Annotated[ConversationStart, Body()], idempotency_key: IdempotencyKey = None
) -> Response[dict[str, Any]]:
    intake, ctx, config = _api_caller()
    with authenticated_caller():
        return _reply(intake.converse(ctx, config, idempotency_key=idempotency_key, **body.as_arguments()))


@app.post("/v1/conversations/<conversation_id>/messages", summary="Add a customer message to a conversation")
def add_message(
    conversation_id: Annotated[str, Path(max_length=100)],
    body: Annotated[ConversationReply, Body()],
    idempotency_key: IdempotencyKey = None,
) -> Response[dict[str, Any]]:
    intake, ctx, config = _api_caller()
    arguments = body.as_arguments()
    with authenticated_caller():
        return _reply(
            intake.converse(
                ctx, config, conversation_id=conversation_id, idempotency_key=idempotency_key, **arguments
            )
        )


@app.get("/v1/conversations/<conversation_id>", summary="Conversation status, messages (redacted) and answer")
def get_conversation(
    conversation_id: Annotated[str, Path(max_length=100)],
    requester_email: Annotated[str | None, Header(alias="X-Requester-Email", max_length=320)] = None,
    requester_external_id: Annotated[str | None, Header(alias="X-Requester-External-Id", max_length=200)] = None,
) -> Response[dict[str, Any]]:
    intake, ctx, _ = _api_caller()
    requester = requester_from_headers(requester_email, requester_external_id)
    with authenticated_caller():
        return json_response(200, intake.conversation(ctx, conversation_id, requester))


# ------------------------------------------------------------------ identity, entitlement, tenant config (admin)

EntityId = Annotated[str, Path(max_length=128)]


def _admin(*, suspended_too: bool = False) -> tuple[Any, Any]:
    ctx = agent_context(app, suspended_too=suspended_too)
    require_role(ctx, "admin")
    return ctx, container().tenant_admin


@app.put("/v1/customers/<customer_id>", summary="Create or update a customer identity (CRM sync)")
def put_customer(customer_id: EntityId, body: Annotated[CustomerUpdate, Body()]) -> Response[dict[str, Any]]:
    ctx, admin = _admin()
    return json_response(200, admin.put_customer(ctx, customer_id, body).model_dump(mode="json"))


@app.put(
    "/v1/accounts/<account_id>", summary="Create or update an account's plan, entitlements, SLA tier, owner"
)
def put_account(account_id: EntityId, body: Annotated[AccountUpdate, Body()]) -> Response[dict[str, Any]]:
    ctx, admin = _admin()
    return json_response(200, admin.put_account(ctx, account_id, body).model_dump(mode="json"))


@app.put("/v1/tenants/<tenant_id>/config", summary="Update the caller's tenant configuration (audited)")
def put_tenant_config(
    tenant_id: Annotated[str, Path(max_length=63)], body: Annotated[TenantConfigUpdate, Body()]
) -> Response[dict[str, Any]]:
    ctx, admin = _admin(suspended_too=True)  # a suspended tenant's admin can set it active again
    return json_response(200, admin.update_config(ctx, tenant_id, body).model_dump(mode="json"))


@logger().inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@metrics().log_metrics
@metered
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
