"""What a refused caller is told, by whether they are authenticated.

Before authentication (no token, a webhook whose signature is not verified yet, an API key not yet checked) a refusal
carries its public message only. After it, the caller is told why (`detail`) for refused input, a conflict or a
missing permission, plus any field meant for them (a quarantined body's key). The escalation policy's refusals say
what is missing without naming an action's target."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from deflect.domain import errors
from deflect.domain.models import DecisionPolicy, HumanTask, RequestedAction
from deflect.domain.tenancy import TenantContext
from deflect.escalation import policy
from deflect.http import (
    authenticated_caller,
    build_resolver,
    error_response,
    explain_to_caller,
    require_role,
)

AGENT = {"sub": "ann", "custom:tenant_id": "acme", "cognito:groups": "agent"}


def _call(app: Any, path: str, claims: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    event = {
        "httpMethod": "POST",
        "path": path,
        "resource": path,
        "headers": {"content-type": "application/json"},
        "body": "{}",
        "requestContext": {
            "requestId": "r",
            "stage": "test",
            **({"authorizer": {"claims": claims}} if claims else {}),
        },
        "isBase64Encoded": False,
    }
    answer = app.resolve(event, None)
    return answer["statusCode"], json.loads(answer["body"])


def _app() -> Any:
    app = build_resolver()

    @app.post("/v1/forbidden")
    def forbidden() -> dict[str, Any]:
        raise errors.Forbidden("refunds need the approver role")

    @app.post("/v1/signed")
    def signed() -> dict[str, Any]:
        # As a webhook route: the caller is anonymous to the resolver; the service verifies them, then refuses.
        with authenticated_caller():
            raise errors.MalformedPayload("X-Deflect-Delivery header is required (1..200 characters)")

    @app.post("/v1/unsigned")
    def unsigned() -> dict[str, Any]:
        raise errors.Unauthorized("signature, secret or timestamp rejected")

    return app


# --------------------------------------------------------------------------- the mapping


def test_a_signed_in_agent_is_told_which_permission_is_missing_and_an_anonymous_caller_is_not():
    status, told = _call(_app(), "/v1/forbidden", AGENT)
    assert status == 403
    assert told == {"error": "forbidden", "message": "forbidden", "detail": "refunds need the approver role"}
    status, anonymous = _call(_app(), "/v1/forbidden")
    assert status == 403 and anonymous == {"error": "forbidden", "message": "forbidden"}


def test_a_refusal_after_the_service_authenticated_the_caller_is_explained_without_a_token():
    status, told = _call(_app(), "/v1/signed")
    assert status == 400
    assert told == {
        "error": "malformed_payload",
        "message": "malformed payload",
        "detail": "X-Deflect-Delivery header is required (1..200 characters)",
    }


def test_a_refusal_before_authentication_is_unchanged():
    status, told = _call(_app(), "/v1/unsigned")
    assert (status, told) == (401, {"error": "unauthorized", "message": "unauthorized"})


def test_fields_for_the_caller_appear_only_once_it_is_authenticated_and_never_replace_the_error():
    error = errors.MalformedPayload("body is not valid UTF-8 JSON")
    assert error_response(error).body == {"error": "malformed_payload", "message": "malformed payload"}

    explain_to_caller(error, quarantine_key="tenant=acme/quarantine/generic/ab.json", error="x", message="y")
    assert error_response(error).body == {
        "error": "malformed_payload",
        "message": "malformed payload",
        "detail": "body is not valid UTF-8 JSON",
        "quarantine_key": "tenant=acme/quarantine/generic/ab.json",
    }


def test_only_refusals_written_for_the_caller_carry_a_detail():
    # Throttling, outages and not-found say what they say publicly; their detail names internals.
    for error in (
        errors.Throttled("ticket is busy, retry later"),
        errors.TransientFailure("delivery dedupe store unavailable"),
        errors.NotFound("conversation not found"),
        errors.Unauthorized("api key rejected"),
    ):
        body = error_response(explain_to_caller(error)).body
        assert "detail" not in body and body["message"] == error.public_message


def test_authenticated_caller_marks_what_is_raised_inside_and_nothing_before():
    before = errors.Forbidden("outside")
    with pytest.raises(errors.Forbidden) as raised, authenticated_caller():
        raise errors.Forbidden("inside")
    assert error_response(raised.value).body["detail"] == "inside"
    assert "detail" not in error_response(before).body


def test_require_role_names_the_roles_that_would_do():
    ctx = TenantContext(tenant_id="acme", actor="agent:ann", roles=frozenset({"agent"}), via="jwt")
    with pytest.raises(errors.Forbidden) as one:
        require_role(ctx, "admin")
    assert one.value.detail == "this request needs the admin role"
    with pytest.raises(errors.Forbidden) as several:
        require_role(ctx, "supervisor", "admin")
    assert several.value.detail == "this request needs one of the roles supervisor, admin"


# --------------------------------------------------------------------------- escalation policy


def _task(
    action: RequestedAction, *, role: str = "approver", approvals: int = 1, approved_by: tuple[str, ...] = ()
) -> HumanTask:
    return HumanTask(
        tenant_id="acme",
        ticket_id="t1",
        queue="billing",
        required_role=role,  # type: ignore[arg-type]
        due_at=datetime.now(UTC) + timedelta(hours=1),
        approvals_required=approvals,
        approvals=list(approved_by),
        proposed_action=action,
    )


def _refused(call: Any, *args: Any) -> str:
    with pytest.raises(errors.Forbidden) as refused:
        call(*args)
    return refused.value.detail


def test_an_agent_is_told_the_refund_needs_the_approver_role_and_a_second_approver():
    task = _task(RequestedAction(kind="refund", amount=Decimal("750"), currency="USD"), approvals=2)
    assert _refused(policy.authorize_work, {"agent"}, task) == (
        "this task needs an approver: a refund of 750 USD needs the approver role and a second, different approver"
    )
    open_ended = _task(RequestedAction(kind="refund"))
    assert _refused(policy.authorize_work, {"agent"}, open_ended) == (
        "this task needs an approver: a refund with no amount needs the approver role"
    )
    # A task without an action keeps its short reason (the task view shows it as why tool output is withheld).
    assert (
        _refused(policy.authorize_work, {"agent"}, _task(RequestedAction())) == "this task needs an approver"
    )


def test_decision_refusals_say_what_is_missing_in_the_tenants_terms():
    plain = _task(RequestedAction(), role="agent")
    usd = DecisionPolicy(two_person_amount_threshold=Decimal("500"), two_person_currency="USD")
    refund = RequestedAction(kind="refund", amount=Decimal("40"), currency="EUR")
    assert _refused(policy.authorize_decision, {"agent"}, "agent:ann", plain, "edit", refund, usd) == (
        "a refund of 40 EUR needs the approver role"
    )
    amount = RequestedAction(amount=Decimal("900"), currency="USD")
    assert _refused(policy.authorize_decision, {"agent"}, "agent:ann", plain, "edit", amount, usd) == (
        "an amount of 900 USD is above this tenant's 500 USD line: it needs the approver role and a second, "
        "different approver"
    )
    other = RequestedAction(amount=Decimal("20"), currency="EUR")
    assert "cannot be compared with this tenant's 500 USD line" in _refused(
        policy.authorize_decision, {"agent"}, "agent:ann", plain, "edit", other, usd
    )
    approver_work = _task(refund)
    assert _refused(
        policy.authorize_decision, {"supervisor"}, "agent:sue", approver_work, "approve", refund, usd
    ) == (
        "approving this task needs the approver role: a supervisor may reassign or reject it, not approve it"
    )
    second = _task(refund, approvals=2, approved_by=("agent:ann",))
    assert _refused(policy.authorize_decision, {"approver"}, "agent:ann", second, "approve", refund, usd) == (
        "the second approval must come from a different approver: you gave the first"
    )
    assert _refused(policy.authorize_work, {"admin"}, plain) == (
        "an agent, approver or supervisor role is required"
    )
    supervisor_task = _task(RequestedAction(), role="supervisor")
    assert _refused(policy.authorize_work, {"agent"}, supervisor_task) == (
        "this task waits in the supervisor queue: it needs the supervisor role"
    )


def test_a_refusal_never_names_the_actions_target():
    change = RequestedAction(kind="change_email", target="dana.private@example.com")
    detail = _refused(policy.authorize_work, {"agent"}, _task(change))
    assert detail == "this task needs an approver: a change_email needs the approver role"
    detail = _refused(
        policy.authorize_decision,
        {"agent"},
        "agent:ann",
        _task(RequestedAction(), role="agent"),
        "edit",
        change,
        DecisionPolicy(),
    )
    assert "dana.private" not in detail and "change_email" in detail
