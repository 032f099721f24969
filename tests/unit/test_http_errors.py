"""What a refused request is told: signed-in agents learn why their input was refused; anonymous callers (webhooks,
API keys) get the public message only; an unreadable body is named as such, not as a character offset."""

from __future__ import annotations

import json
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel

from deflect.domain import errors
from deflect.http import build_resolver


class Reply(BaseModel):
    text: str


def _app() -> Any:
    app = build_resolver()

    @app.post("/v1/things")
    def refuse() -> dict[str, Any]:
        raise errors.MalformedPayload("approve cannot change the proposed reply; use outcome=edit")

    @app.post("/v1/replies")
    def reply(body: Annotated[Reply, Body()]) -> dict[str, Any]:
        return {"ok": body.text}

    return app


def _call(app: Any, path: str, body: str, claims: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    event = {
        "httpMethod": "POST",
        "path": path,
        "resource": path,
        "headers": {"content-type": "application/json"},
        "body": body,
        "requestContext": {
            "requestId": "r",
            "stage": "test",
            **({"authorizer": {"claims": claims}} if claims else {}),
        },
        "isBase64Encoded": False,
    }
    answer = app.resolve(event, None)
    return answer["statusCode"], json.loads(answer["body"])


AGENT = {"sub": "ann", "custom:tenant_id": "acme", "cognito:groups": "approver"}


def test_an_agent_is_told_why_their_input_was_refused_and_an_anonymous_caller_is_not():
    status, told = _call(_app(), "/v1/things", "{}", AGENT)
    assert status == 400 and told["detail"] == "approve cannot change the proposed reply; use outcome=edit"
    status, anonymous = _call(_app(), "/v1/things", "{}")
    assert status == 400 and anonymous == {"error": "malformed_payload", "message": "malformed payload"}


def test_an_unreadable_body_is_named_as_the_body_and_a_missing_field_by_its_name():
    status, answer = _call(_app(), "/v1/replies", '{"text": "hi",', AGENT)
    assert (
        status == 422 and answer["fields"] == ["body"] and answer["problems"] == ["body: is not valid JSON"]
    )
    status, answer = _call(_app(), "/v1/replies", "{}", AGENT)
    assert (
        status == 422
        and answer["fields"] == ["body.text"]
        and answer["problems"] == ["body.text: Field required"]
    )


def test_a_body_that_is_not_json_gets_the_same_error_shape():
    app = _app()
    event = {
        "httpMethod": "POST",
        "path": "/v1/replies",
        "resource": "/v1/replies",
        "headers": {"content-type": "text/plain"},
        "body": "hello",
        "requestContext": {"requestId": "r", "stage": "test", "authorizer": {"claims": AGENT}},
        "isBase64Encoded": False,
    }
    answer = app.resolve(event, None)
    assert answer["statusCode"] == 415
    assert json.loads(answer["body"]) == {
        "error": "unsupported_media_type",
        "message": "send the body as application/json",
    }
