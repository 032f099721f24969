"""The one place that maps domain errors to HTTP, and reads the caller's identity from the authorizer."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from deflect.domain import errors
from deflect.domain.tenancy import TenantContext
from deflect.observability import bind_tenant, logger

STATUS: dict[type[errors.DeflectError], int] = {
    errors.InvalidTenant: 404,
    errors.TenantNotFound: 404,
    errors.NotFound: 404,
    errors.SignatureInvalid: 401,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.Conflict: 409,
    errors.Gone: 410,
    errors.PayloadTooLarge: 413,
    errors.MalformedPayload: 400,
    errors.Throttled: 429,
    errors.TransientFailure: 503,
    errors.EvidenceTampered: 500,
}


# What an authenticated caller may be told about a refused request: why their input was refused and what they lack
# (these details are written for them, e.g. "approve cannot change the proposed reply; use outcome=edit", "this
# request needs the admin role"). A caller not yet authenticated is told the public message only.
EXPLAINED_TO_AGENTS = (errors.MalformedPayload, errors.Conflict, errors.Forbidden)

# Context keys of a refusal raised after its caller was authenticated by other means than a token (a webhook whose
# signature verified, an API key): see `explain_to_caller`.
_EXPLAIN = "explain_to_caller"
_CALLER_FIELDS = "caller_fields"
# Context key set once Powertools has read and validated the body and the route's own code starts.
_BODY_READ = "body_read"
E = TypeVar("E", bound=errors.DeflectError)


def explain_to_caller(error: E, /, **fields: str) -> E:
    """Mark `error` as raised after its caller proved who they are: its response then carries `detail` as a signed-in
    agent's does, and `fields` (e.g. a quarantined body's key) for that caller. Never call it before authentication:
    until then a refusal says no more than its public message (an unknown tenant and a bad signature look alike)."""
    error.context[_EXPLAIN] = True
    if fields:
        error.context[_CALLER_FIELDS] = {**error.context.get(_CALLER_FIELDS, {}), **fields}
    return error


@contextmanager
def authenticated_caller() -> Iterator[None]:
    """Refusals raised inside are explained to the caller (`explain_to_caller`): enter once it is authenticated."""
    try:
        yield
    except errors.DeflectError as refused:
        explain_to_caller(refused)
        raise


def error_response(error: errors.DeflectError, *, explain: bool = False) -> Response:
    status = next((code for kind, code in STATUS.items() if isinstance(error, kind)), 400)
    headers: dict[str, str] = {}
    if isinstance(error, errors.Throttled):
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
    # Public message only, unless `explain` (an authenticated caller): the detail may name internals and is logged.
    logger().info("request refused", extra={"error": error.code, "status": status, "detail": error.detail})
    context = getattr(error, "context", None) or {}
    explain = explain or bool(context.get(_EXPLAIN))
    body = {"error": error.code, "message": error.public_message}
    if explain and isinstance(error, EXPLAINED_TO_AGENTS) and error.detail != error.public_message:
        body["detail"] = error.detail
    if explain:
        for name, value in (context.get(_CALLER_FIELDS) or {}).items():
            body.setdefault(name, value)
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers
    )


def _problem(error: dict[str, Any]) -> tuple[str, str]:
    """(field, what is wrong with it) of one validation error; an unreadable body is the body, not a character."""
    loc = [str(p) for p in error.get("loc", ())]
    if error.get("type") == "json_invalid":
        return "body", "is not valid JSON"
    return ".".join(loc), str(error.get("msg", "is not valid"))


def build_resolver(
    caller_check: Callable[[APIGatewayRestResolver], None] | None = None,
) -> APIGatewayRestResolver:
    """The resolver every API function uses. `caller_check(app)` authenticates a caller that only the function can
    (an API key): Powertools validates the body before any route code runs, so without it a caller with no key
    would learn what the body must look like (422 naming the fields) instead of getting 401."""
    app = APIGatewayRestResolver(enable_validation=True)

    @app.exception_handler(errors.DeflectError)
    def _domain_error(error: errors.DeflectError) -> Response:
        return error_response(error, explain=bool(claims(app)))

    def _refused_caller() -> Response | None:
        if caller_check is not None:
            try:
                caller_check(app)
            except errors.DeflectError as refused:
                return error_response(refused)
        return None

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported_body(_: RequestUnsupportedContentType) -> Response:
        # Powertools' own 415 body has another shape ({"statusCode", "detail"}); every refusal here has one shape.
        return _refused_caller() or Response(
            status_code=415,
            content_type=content_types.APPLICATION_JSON,
            body={"error": "unsupported_media_type", "message": "send the body as application/json"},
        )

    def _body_read(resolver: APIGatewayRestResolver, next_middleware: Callable[..., Any]) -> Any:
        # Runs after Powertools' request validation (which reads the body), before the route's code.
        resolver.append_context(**{_BODY_READ: True})
        return next_middleware(resolver)

    app.use([_body_read])

    @app.exception_handler([RecursionError, ValueError])
    def _unreadable_body(error: Exception) -> Response:
        # Powertools lets these escape while it reads the body: JSON nested past Python's recursion limit, bytes
        # that are not UTF-8 (a base64-encoded body), a multipart type with no boundary. Raised by the route's own
        # code they are a fault, not the caller's: those are re-raised untouched.
        if app.context.get(_BODY_READ):
            raise error
        refused = _refused_caller()
        if refused is not None:
            return refused
        logger().info(
            "request refused", extra={"error": "malformed_body", "status": 400, "detail": type(error).__name__}
        )
        return Response(
            status_code=400,
            content_type=content_types.APPLICATION_JSON,
            body={"error": "malformed_body", "message": "the body could not be read; send it as UTF-8 JSON"},
        )

    @app.exception_handler(RequestValidationError)
    def _validation_error(error: RequestValidationError) -> Response:
        refused = _refused_caller()
        if refused is not None:
            return refused
        problems = [_problem(e) for e in error.errors()][:10]
        return Response(
            status_code=422,
            content_type=content_types.APPLICATION_JSON,
            body={
                "error": "invalid_request",
                "message": "request failed validation",
                "fields": [field for field, _ in problems],
                "problems": [f"{field}: {what}" for field, what in problems],
            },
        )

    return app


def claims(app: APIGatewayRestResolver) -> dict[str, Any]:
    context = app.current_event.request_context
    authorizer = context.authorizer.raw_event if context.authorizer else {}
    return dict(authorizer.get("claims") or authorizer)


def agent_context(app: APIGatewayRestResolver, *, suspended_too: bool = False) -> TenantContext:
    """Tenant and roles come from the verified token only, never from the path or body.

    `suspended_too`: the one route that may reach a suspended tenant (its admin's config PUT, which can set the
    tenant active again)."""
    found = claims(app)
    tenant_id = found.get("custom:tenant_id")
    subject = found.get("sub") or found.get("username")
    if not tenant_id or not subject:
        raise errors.Unauthorized("no agent identity on the request")
    groups = found.get("cognito:groups") or ""
    if isinstance(groups, str):
        groups = [g.strip() for g in groups.strip("[]").replace(",", " ").split() if g.strip()]
    roles = frozenset(g for g in groups if g in {"agent", "approver", "supervisor", "admin"})
    ctx = TenantContext(tenant_id=tenant_id, actor=f"agent:{subject}", roles=roles, via="jwt")  # type: ignore[arg-type]
    bind_tenant(ctx.tenant_id)
    # A token can outlive its tenant (offboarded, suspended) or name one never created: nothing is read or
    # written for it (404, the body of any unknown tenant). One GetItem; the composition root knows the table.
    from deflect.bootstrap import container

    config = container().tenants.find(ctx)
    if config is None or (config.status != "active" and not suspended_too):
        raise errors.TenantNotFound()
    return ctx


def require_role(ctx: TenantContext, *roles: str) -> None:
    if not any(ctx.has_role(r) for r in roles):  # type: ignore[arg-type]
        wanted = f"the {roles[0]} role" if len(roles) == 1 else "one of the roles " + ", ".join(roles)
        raise errors.Forbidden(f"this request needs {wanted}")
