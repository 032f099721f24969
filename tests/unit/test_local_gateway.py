"""The local API Gateway stand-in: events shaped like REST proxy events, the dev authorizer, SQS batches."""

from __future__ import annotations

import base64
import json
import time

import pytest

from infra.local import template as tpl
from infra.local.api import compile_routes, gateway_response, lambda_reply, match, rest_event
from infra.local.dev_issuer import DevIssuer, InvalidToken, bearer, gateway_claims
from infra.local.pollers import sqs_event, to_delete


def _route(method: str, path: str, auth: str | None = None) -> tpl.Route:
    return tpl.Route("F", method, path, auth, "functions/f")


def test_literal_segments_win_over_parameters():
    routes = compile_routes(
        [
            _route("GET", "/v1/tasks/{id}"),
            _route("GET", "/v1/tasks/mine"),
            _route("POST", "/v1/tasks/{id}/claim"),
        ]
    )

    assert match(routes, "GET", "/v1/tasks/mine")[0].path == "/v1/tasks/mine"
    route, params = match(routes, "GET", "/v1/tasks/t%201")
    assert (route.path, params) == ("/v1/tasks/{id}", {"id": "t 1"})
    assert match(routes, "POST", "/v1/tasks/t1/claim")[1] == {"id": "t1"}
    assert match(routes, "DELETE", "/v1/tasks/t1") is None


def test_every_template_route_is_reachable():
    routes = compile_routes(tpl.routes())
    for route in tpl.routes():
        concrete = route.path.replace("{", "").replace("}", "")
        found = match(routes, route.method, concrete)
        assert found is not None and found[0].path == route.path


def test_request_becomes_a_rest_proxy_event():
    event = rest_event(
        _route("POST", "/v1/webhooks/{provider}/{tenant_id}"),
        method="POST",
        path="/v1/webhooks/zendesk/demo",
        query="a=1&a=2&b=",
        headers=[("X-Sig", "s1"), ("X-Multi", "1"), ("X-Multi", "2")],
        body=b'{"x": 1}',
        path_parameters={"provider": "zendesk", "tenant_id": "demo"},
        claims=None,
        stage="local",
        request_id="req-1",
    )

    assert event["resource"] == "/v1/webhooks/{provider}/{tenant_id}"
    assert event["path"] == "/v1/webhooks/zendesk/demo"
    assert event["headers"]["X-Multi"] == "2" and event["multiValueHeaders"]["X-Multi"] == ["1", "2"]
    assert event["queryStringParameters"] == {"a": "2", "b": ""}
    assert event["multiValueQueryStringParameters"]["a"] == ["1", "2"]
    assert event["pathParameters"] == {"provider": "zendesk", "tenant_id": "demo"}
    assert event["body"] == '{"x": 1}' and event["isBase64Encoded"] is False
    assert event["requestContext"]["requestId"] == "req-1" and event["requestContext"]["stage"] == "local"
    assert "authorizer" not in event["requestContext"]


def test_binary_bodies_are_base64_and_empty_parts_are_null():
    event = rest_event(
        _route("GET", "/x"),
        method="GET",
        path="/x",
        query="",
        headers=[],
        body=b"\xff\x00",
        path_parameters={},
        claims={"sub": "u1"},
        stage="local",
    )

    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\xff\x00"
    assert event["queryStringParameters"] is None and event["pathParameters"] is None
    assert event["requestContext"]["authorizer"] == {"claims": {"sub": "u1"}}


def test_gateway_errors_use_the_template_response_body():
    status, _, body = gateway_response("DEFAULT_4XX", 401, "Unauthorized")

    assert status == 401
    assert json.loads(body) == {"error": "request_refused", "message": "Unauthorized"}


def test_lambda_results_become_http_answers():
    assert lambda_reply({"statusCode": 201, "headers": {"A": "1"}, "body": "hi"}) == (
        201,
        [("A", "1")],
        b"hi",
    )
    binary = lambda_reply(
        {"statusCode": 200, "body": base64.b64encode(b"\x01").decode(), "isBase64Encoded": True}
    )
    assert binary[2] == b"\x01"
    assert lambda_reply({"no": "status"})[0] == 502


@pytest.fixture
def issuer(tmp_path):
    return DevIssuer.in_dir(tmp_path)


def test_dev_tokens_carry_the_cognito_claims_handlers_read(issuer):
    token = issuer.issue(sub="u1", email="a@b.example", tenant_id="demo", groups=["agent", "approver"])

    claims = gateway_claims(issuer.verify(bearer(f"Bearer {token}")))

    assert claims["custom:tenant_id"] == "demo"
    assert claims["cognito:groups"] == "agent,approver"
    assert claims["sub"] == "u1"


def test_the_issuer_secret_survives_a_restart(tmp_path):
    token = DevIssuer.in_dir(tmp_path).issue(sub="u1", email="e", tenant_id="demo", groups=[])

    assert DevIssuer.in_dir(tmp_path).verify(token)["sub"] == "u1"
    assert (tmp_path / "dev-issuer.key").stat().st_mode & 0o077 == 0


def test_tampered_foreign_expired_and_unsigned_tokens_are_refused(issuer, tmp_path):
    token = issuer.issue(sub="u1", email="e", tenant_id="demo", groups=["agent"])
    header, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["custom:tenant_id"] = "other"
    swapped = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    unsigned_header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    other = DevIssuer.in_dir(tmp_path / "elsewhere").issue(sub="u1", email="e", tenant_id="demo", groups=[])
    expired = issuer.issue(sub="u1", email="e", tenant_id="demo", groups=[], lifetime_s=-10)

    for bad in (f"{header}.{swapped}.{signature}", f"{unsigned_header}.{body}.", other, expired, "x.y", ""):
        with pytest.raises(InvalidToken):
            issuer.verify(bad)


def _message(n: int) -> dict:
    return {
        "MessageId": f"m{n}",
        "ReceiptHandle": f"r{n}",
        "Body": json.dumps({"n": n}),
        "MD5OfBody": "md5",
        "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
        "MessageAttributes": {"tenant_id": {"DataType": "String", "StringValue": "demo"}},
    }


def test_sqs_batches_have_the_lambda_event_shape():
    event = sqs_event([_message(1)], "arn:aws:sqs:us-east-1:123456789012:TriageQueue")

    record = event["Records"][0]
    assert record["messageId"] == "m1" and record["receiptHandle"] == "r1"
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"].endswith(":TriageQueue")
    assert record["messageAttributes"]["tenant_id"]["stringValue"] == "demo"
    assert record["messageAttributes"]["tenant_id"]["dataType"] == "String"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"


def test_only_messages_not_reported_as_failures_are_deleted():
    batch = [_message(1), _message(2), _message(3)]

    assert [m["MessageId"] for m in to_delete(batch, {"batchItemFailures": [{"itemIdentifier": "m2"}]})] == [
        "m1",
        "m3",
    ]
    assert len(to_delete(batch, {"batchItemFailures": []})) == 3
    assert len(to_delete(batch, None)) == 3
    # A malformed answer fails the whole batch, as Lambda treats it.
    assert to_delete(batch, {"batchItemFailures": [{"wrong": "m2"}]}) == []
    assert to_delete(batch, "ok") == []
