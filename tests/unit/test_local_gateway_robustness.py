"""The local API Gateway stand-in answers every request, as API Gateway does: malformed bearer tokens are a 401,
a bad Content-Length a 400, and chunked request bodies reach the function whole.

Requests are raw HTTP bytes written to the stand-in's real request handler over a socket pair (unit tests have no
network), and answers are read back with http.client, as curl or a helpdesk would see them.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import socket
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

# Imported while sockets are still allowed: on first import, urllib3 (under botocore) opens a socket to probe for
# IPv6, which the unit tests' socket ban would report as a warning in the moto-backed tests below.
import urllib3  # noqa: F401

from infra.local.api import LocalApi, _Handler
from infra.local.dev_issuer import DevIssuer, InvalidToken

WEBHOOK = "/v1/webhooks/jira/acme-gw"
LIMIT = 64


class RecordingFunctions:
    """Stands in for the handlers: records each event and echoes the body it was given."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def invoke(self, function: str, event: dict[str, Any]) -> dict[str, Any]:
        self.events.append(event)
        return {"statusCode": 200, "body": json.dumps({"function": function, "body": event["body"]})}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def issuer(tmp_path: Path) -> DevIssuer:
    return DevIssuer.in_dir(tmp_path / "issuer")


@pytest.fixture
def functions() -> RecordingFunctions:
    return RecordingFunctions()


@pytest.fixture
def gateway(issuer: DevIssuer, functions: RecordingFunctions) -> LocalApi:
    return LocalApi(functions, issuer, stage="local", max_body_bytes=LIMIT)


class _Received:
    """What came back on the connection, for http.client to read answer after answer from (it closes its file
    after each answer; a pipelined answer follows in the same bytes)."""

    def __init__(self, data: bytes) -> None:
        self._file = _Unclosed(data)

    def makefile(self, mode: str) -> io.BytesIO:
        return self._file


class _Unclosed(io.BytesIO):
    def close(self) -> None:
        pass


def _exchange(api: LocalApi, raw: bytes, answers: int = 1) -> list[http.client.HTTPResponse]:
    """Send `raw` on one connection, as a client would, and read `answers` HTTP answers back.

    A request the stand-in failed to answer shows as http.client.RemoteDisconnected."""
    client, served = socket.socketpair()
    handler = threading.Thread(
        target=_Handler, args=(served, ("127.0.0.1", 40000), SimpleNamespace(api=api, quiet=True))
    )
    handler.start()
    try:
        client.sendall(raw)
        client.shutdown(socket.SHUT_WR)  # nothing more to send: the handler stops after its answers
        handler.join(timeout=30)
        assert not handler.is_alive(), "the stand-in is still waiting for the request"
        served.close()
        received = b"".join(iter(lambda: client.recv(65536), b""))
    finally:
        served.close()
        client.close()
    connection = _Received(received)
    replies = []
    for _ in range(answers):
        reply = http.client.HTTPResponse(connection)  # type: ignore[arg-type]
        reply.begin()
        reply.body = reply.read()  # type: ignore[attr-defined]
        replies.append(reply)
    return replies


def _get(api: LocalApi, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return _exchange(api, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{lines}\r\n".encode("latin-1"))[0]


def _post(api: LocalApi, head: str, body: bytes = b"", answers: int = 1) -> list[http.client.HTTPResponse]:
    return _exchange(
        api, f"POST {WEBHOOK} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n".encode() + body, answers
    )


def _chunked(*chunks: bytes, trailer: bytes = b"") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n" + trailer + b"\r\n"


# --------------------------------------------------------------------------- malformed bearer tokens


def _malformed_tokens(issuer: DevIssuer) -> dict[str, str]:
    header, body, _ = issuer.issue(sub="u1", email="e", tenant_id="demo", groups=["agent"]).split(".")
    string_header = _b64(b'"HS256"')
    latin_header = _b64(b'{"alg":"\xff"}')
    broken_utf8_claims = _b64(b'{"sub":"\xc3\x28"}')
    deep_header = _b64(b"[" * 5000)
    return {
        "header is a list": "W10.e30.x",
        "header is a number": "MQ.e30.x",
        "header is null": "bnVsbA.e30.x",
        "header is a string": f"{string_header}.e30.x",
        "claims are a list": f"{header}.W10.x",
        "claims are a number": f"{header}.MQ.x",
        "claims are null": f"{header}.bnVsbA.x",
        "header not base64": "a.e30.x",
        "claims not base64": f"{header}.a.x",
        "padded segment": f"{header}=.{body}.x",
        "header not UTF-8": f"{latin_header}.e30.x",
        "claims not UTF-8": f"{header}.{broken_utf8_claims}.x",
        "header not JSON": f"{_b64(b'{alg')}.e30.x",
        "header nested too deep": f"{deep_header}.e30.x",
        "empty segments": "..",
        "non-ASCII signature": f"{header}.{body}.\u00e9\u00e9",
    }


MALFORMED = list(_malformed_tokens(DevIssuer(b"k" * 32)))


@pytest.mark.parametrize("case", MALFORMED)
def test_the_issuer_refuses_a_malformed_token_as_invalid(issuer, case):
    # InvalidToken, never an AttributeError / TypeError / RecursionError escaping the issuer.
    with pytest.raises(InvalidToken):
        issuer.verify(_malformed_tokens(issuer)[case])


def test_an_invalid_token_gets_the_template_401_body(gateway):
    refused = _get(gateway, "/v1/tasks", {"Authorization": "Bearer not-a-jwt"})

    assert refused.status == 401 and refused.getheader("Content-Type") == "application/json"
    assert json.loads(refused.body) == {"error": "request_refused", "message": "Unauthorized"}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_token_gets_the_same_401_as_any_invalid_token(gateway, issuer, functions, case):
    refused = _get(gateway, "/v1/tasks", {"Authorization": "Bearer not-a-jwt"})
    token = _malformed_tokens(issuer)[case]

    # Sent as a client would: the header line as UTF-8 bytes on the wire.
    raw = f"GET /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
    [answer] = _exchange(gateway, raw.encode())

    assert (answer.status, answer.getheader("Content-Type"), answer.body) == (
        refused.status,
        refused.getheader("Content-Type"),
        refused.body,
    )
    assert functions.events == []  # refused by the gateway, the function was not called


def test_a_valid_token_still_reaches_the_function(gateway, issuer, functions):
    token = issuer.issue(sub="u1", email="e", tenant_id="demo", groups=["agent"])

    answer = _get(gateway, "/v1/tasks", {"Authorization": f"Bearer {token}"})

    assert answer.status == 200
    assert functions.events[0]["requestContext"]["authorizer"]["claims"]["cognito:groups"] == "agent"


# --------------------------------------------------------------------------- Content-Length


@pytest.mark.parametrize("length", ["abc", "-5", "+5", "1.5", "0x10", "", "5, 6"], ids=repr)
def test_a_bad_content_length_is_a_400_with_the_gateway_error_body(gateway, functions, length):
    [answer] = _post(gateway, f"Content-Length: {length}\r\n", b"hello")

    assert answer.status == 400
    body = json.loads(answer.body)
    assert body["error"] == "request_refused" and "Content-Length" in body["message"]
    assert answer.getheader("Connection") == "close"  # the body was not read: nothing after it is a request
    assert functions.events == []


def test_conflicting_content_length_headers_are_a_400(gateway, functions):
    [answer] = _post(gateway, "Content-Length: 2\r\nContent-Length: 5\r\n", b"hello")

    assert answer.status == 400 and functions.events == []


def test_a_body_shorter_than_its_content_length_is_a_400(gateway, functions):
    [answer] = _post(gateway, "Content-Length: 50\r\n", b"only this")

    assert answer.status == 400 and "Content-Length" in json.loads(answer.body)["message"]
    assert functions.events == []


def test_a_declared_length_over_the_limit_is_a_413_without_reading_the_body(gateway, functions):
    for length in (str(LIMIT + 1), "9" * 5000):
        [answer] = _post(gateway, f"Content-Length: {length}\r\n", b"x" * 10)

        assert (answer.status, answer.body) == (413, b"")  # as the template's WAF rule answers
    assert functions.events == []


def test_a_good_content_length_still_delivers_the_body(gateway, functions):
    [answer] = _post(gateway, "Content-Length: 5\r\n", b"hello")

    assert answer.status == 200 and functions.events[0]["body"] == "hello"


# --------------------------------------------------------------------------- chunked request bodies


def test_a_chunked_body_reaches_the_function_whole(gateway, functions):
    sent = _chunked(b'{"issue": ', b'"10042", "x": "', b'\xc3\xa9"}')

    [answer] = _post(gateway, "Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n", sent)

    assert answer.status == 200
    assert functions.events[0]["body"] == '{"issue": "10042", "x": "\u00e9"}'
    assert functions.events[0]["isBase64Encoded"] is False


def test_chunk_extensions_and_trailers_are_read_and_the_connection_stays_usable(gateway, functions):
    body = b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n"
    follow_up = b"GET /v1/no-such-route HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

    first, second = _post(gateway, "Transfer-Encoding: chunked\r\n", body + follow_up, answers=2)

    assert first.status == 200 and functions.events[0]["body"] == "hello world"
    # The chunked body was consumed exactly: the next bytes on the connection are read as the next request.
    assert second.status == 403 and json.loads(second.body)["message"] == "Missing Authentication Token"


def test_an_empty_chunked_body_is_no_body(gateway, functions):
    [answer] = _post(gateway, "Transfer-Encoding: chunked\r\n", b"0\r\n\r\n")

    assert answer.status == 200 and functions.events[0]["body"] is None


def test_a_chunked_body_over_the_limit_is_a_413(gateway, functions):
    over = _chunked(b"x" * 40, b"y" * 40)  # each chunk is under the limit, the body is not

    [answer] = _post(gateway, "Transfer-Encoding: chunked\r\n", over)

    assert (answer.status, answer.body) == (413, b"")
    assert answer.getheader("Connection") == "close"
    assert functions.events == []


def test_a_chunked_body_at_the_limit_is_accepted(gateway, functions):
    [answer] = _post(gateway, "Transfer-Encoding: chunked\r\n", _chunked(b"x" * 32, b"y" * 32))

    assert answer.status == 200 and len(functions.events[0]["body"]) == LIMIT


@pytest.mark.parametrize(
    "sent",
    [
        b"zz\r\nhello\r\n0\r\n\r\n",  # chunk size not hex
        b"5\r\nhel",  # ends inside a chunk
        b"5\r\nhelloXX0\r\n\r\n",  # chunk longer than its size
        b"5\r\nhello\r\n",  # no last chunk
        b"",  # nothing at all
        b"f" * 5000 + b"\r\n",  # overlong size line
    ],
    ids=["bad size", "truncated", "overrun", "no last chunk", "empty", "overlong line"],
)
def test_a_broken_chunked_body_is_a_400(gateway, functions, sent):
    [answer] = _post(gateway, "Transfer-Encoding: chunked\r\n", sent)

    assert answer.status == 400
    body = json.loads(answer.body)
    assert body["error"] == "request_refused" and "chunked" in body["message"]
    assert functions.events == []


def test_a_transfer_coding_other_than_chunked_is_a_400(gateway, functions):
    [answer] = _post(gateway, "Transfer-Encoding: gzip\r\n", b"hello")

    assert answer.status == 400 and "Transfer-Encoding" in json.loads(answer.body)["message"]
    assert functions.events == []


def test_chunked_wins_over_a_content_length_and_the_connection_is_closed(gateway, functions):
    [answer] = _post(gateway, "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", _chunked(b"hello"))

    assert answer.status == 200 and functions.events[0]["body"] == "hello"
    assert answer.getheader("Connection") == "close"


def test_a_fault_of_the_stand_in_is_an_answer_not_a_dropped_connection(gateway, monkeypatch, capsys):
    def broken(*args: Any) -> Any:
        raise RuntimeError("bug in the stand-in")

    monkeypatch.setattr(gateway, "handle", broken)

    answer = _get(gateway, "/v1/tasks", {})

    assert answer.status == 500
    assert json.loads(answer.body)["error"] == "unavailable"  # the template's DEFAULT_5XX body
    assert "bug in the stand-in" in capsys.readouterr().err


# --------------------------------------------------------------------------- a real signed webhook, chunked


def test_a_correctly_signed_chunked_webhook_is_accepted_by_the_real_handler(moto_stack, monkeypatch, issuer):
    """What a helpdesk sending `Transfer-Encoding: chunked` sees: its signed webhook is accepted (it was a 401)."""
    from deflect import bootstrap
    from deflect.webhooks import sign
    from infra.local import template as tpl
    from infra.local.functions import LocalFunctions

    for key, value in moto_stack.resources.environment("IntakeFunction").items():
        monkeypatch.setenv(key, value)
    bootstrap.reset()
    created = bootstrap.container().tenant_admin.create(
        "acme-gw", "Acme", providers=["jira"], actor="test", provided_secrets={}
    )
    secret = created["webhook_secrets"]["jira"]
    functions = LocalFunctions({"IntakeFunction": tpl.functions()["IntakeFunction"]})
    api = LocalApi(functions, issuer, stage="local", max_body_bytes=262144)
    body = (Path(__file__).resolve().parents[2] / "events/jira/issue_created.json").read_bytes()
    middle = len(body) // 2

    def deliver(headers: dict[str, str]) -> http.client.HTTPResponse:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        return _post(api, head, _chunked(body[:middle], body[middle:]))[0]

    accepted = deliver(sign("jira", secret, body, delivery_id="chunked-1"))
    forged = deliver(sign("jira", "a guess", body, delivery_id="chunked-2"))

    assert accepted.status == 200, accepted.body
    assert json.loads(accepted.body)["ticket_id"]
    assert forged.status == 401  # the signature is still checked, on the whole body
