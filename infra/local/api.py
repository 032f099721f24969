"""API Gateway (REST, Lambda proxy) in front of the real handlers, on 127.0.0.1.

Routes, the authorizer requirement, the gateway's error bodies and the request size limit come from
template.yaml. Requests become REST proxy events (format 1.0); the `AgentAuthorizer` is played by the local
dev issuer. What API Gateway answers itself (401, 403 for unknown routes, 413, 502) is answered here too.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from infra.local import template as tpl
from infra.local.dev_issuer import DevIssuer, InvalidToken, bearer, gateway_claims
from infra.local.functions import FunctionFailed, LocalFunctions
from infra.local.resources import ACCOUNT

Headers = list[tuple[str, str]]
Reply = tuple[int, Headers, bytes]


@dataclass(frozen=True)
class CompiledRoute:
    route: tpl.Route
    pattern: re.Pattern[str]
    literal_segments: int


def compile_routes(routes: list[tpl.Route]) -> list[CompiledRoute]:
    """Most specific first, as API Gateway matches: literal segments beat `{param}`, `{proxy+}` comes last."""
    compiled = []
    for route in routes:
        regex, literals = "", 0
        for segment in route.path.strip("/").split("/"):
            if segment.startswith("{") and segment.endswith("+}"):
                regex += f"/(?P<{segment[1:-2]}>.+)"
            elif segment.startswith("{") and segment.endswith("}"):
                regex += f"/(?P<{segment[1:-1]}>[^/]+)"
            else:
                regex += "/" + re.escape(segment)
                literals += 1
        compiled.append(CompiledRoute(route, re.compile(f"^{regex}$"), literals))
    return sorted(compiled, key=lambda c: (-c.literal_segments, "+}" in c.route.path))


def match(routes: list[CompiledRoute], method: str, path: str) -> tuple[tpl.Route, dict[str, str]] | None:
    for compiled in routes:
        if compiled.route.method not in (method, "ANY"):
            continue
        found = compiled.pattern.match(path)
        if found:
            return compiled.route, {k: unquote(v) for k, v in found.groupdict().items()}
    return None


def rest_event(
    route: tpl.Route,
    *,
    method: str,
    path: str,
    query: str,
    headers: Headers,
    body: bytes,
    path_parameters: dict[str, str],
    claims: dict[str, str] | None,
    stage: str,
    source_ip: str = "127.0.0.1",
    request_id: str | None = None,
) -> dict[str, Any]:
    """The REST API Lambda proxy event API Gateway would send for this request."""
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        multi_headers.setdefault(name, []).append(value)
    pairs = parse_qsl(query, keep_blank_values=True)
    multi_query: dict[str, list[str]] = {}
    for name, value in pairs:
        multi_query.setdefault(name, []).append(value)
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    now = datetime.now(UTC)
    request_id = request_id or str(uuid.uuid4())
    context: dict[str, Any] = {
        "accountId": ACCOUNT,
        "apiId": "local",
        "resourceId": "local",
        "resourcePath": route.path,
        "httpMethod": method,
        "path": f"/{stage}{path}",
        "protocol": "HTTP/1.1",
        "stage": stage,
        "requestId": request_id,
        "extendedRequestId": request_id,
        "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "requestTimeEpoch": int(now.timestamp() * 1000),
        "domainName": next((v for k, v in headers if k.lower() == "host"), "127.0.0.1"),
        "identity": {
            "sourceIp": source_ip,
            "userAgent": next((v for k, v in headers if k.lower() == "user-agent"), None),
        },
    }
    if claims is not None:
        context["authorizer"] = {"claims": claims}
    return {
        "resource": route.path,
        "path": path,
        "httpMethod": method,
        "headers": {name: values[-1] for name, values in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {name: values[-1] for name, values in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": context,
        "body": text if body else None,
        "isBase64Encoded": encoded,
    }


def gateway_response(kind: str, status: int, message: str) -> Reply:
    """An error API Gateway answers itself, rendered with the template's GatewayResponses body."""
    api = next(iter(tpl.resources("AWS::Serverless::Api").values()), {})
    responses = api.get("Properties", {}).get("GatewayResponses", {})
    template = responses.get(kind, {}).get("ResponseTemplates", {}).get("application/json")
    body = (
        template.replace("$context.error.messageString", json.dumps(message))
        if template
        else json.dumps({"message": message})
    )
    return status, [("Content-Type", "application/json")], body.encode()


def too_large() -> Reply:
    """The template's WAF rule answers before API Gateway: 413, empty body."""
    return 413, [("Content-Type", "application/json")], b""


# API Gateway refuses a larger payload itself (answered here like the WAF rule, 413).
API_GATEWAY_MAX_BODY_BYTES = 10 * 1024 * 1024
# How much of a body AWS WAF inspects behind API Gateway unless the web ACL's AssociationConfig raises it.
WAF_DEFAULT_INSPECTION_BYTES = 16 * 1024


@dataclass(frozen=True)
class BodySizeRule:
    """The template's WAF body-size rule as AWS WAF applies it. WAF sees at most `inspected` bytes of a body;
    `oversize` (OversizeHandling) says what a longer body gets: MATCH blocks it, NO_MATCH lets it through,
    CONTINUE compares only the part inspected. What gets through is the function's to check (413)."""

    limit: int
    oversize: str | None  # None: the template has no such rule
    inspected: int = WAF_DEFAULT_INSPECTION_BYTES

    def blocks(self, size: int) -> bool:
        if self.oversize is None:
            return size > API_GATEWAY_MAX_BODY_BYTES
        if size > self.inspected and self.oversize in ("MATCH", "NO_MATCH"):
            return self.oversize == "MATCH"
        return min(size, self.inspected) > self.limit or size > API_GATEWAY_MAX_BODY_BYTES

    def largest_passed(self) -> int:
        """The longest body that can get past the edge: reading stops (413) beyond it."""
        if self.oversize == "MATCH":
            return min(self.limit, self.inspected)
        if self.oversize == "CONTINUE" and self.limit < self.inspected:
            return self.limit
        return API_GATEWAY_MAX_BODY_BYTES

    @classmethod
    def from_template(cls, limit: int) -> BodySizeRule:
        for acl in tpl.resources("AWS::WAFv2::WebACL").values():
            props = acl.get("Properties", {})
            association = props.get("AssociationConfig", {}).get("RequestBody", {}).get("API_GATEWAY", {})
            kb = str(association.get("DefaultSizeInspectionLimit", "KB_16")).removeprefix("KB_")
            for rule in props.get("Rules", []):
                statement = rule.get("Statement", {}).get("SizeConstraintStatement", {})
                body = statement.get("FieldToMatch", {}).get("Body")
                if body is not None and "Block" in rule.get("Action", {}):
                    return cls(limit, body.get("OversizeHandling", "CONTINUE"), int(kb) * 1024)
        return cls(limit, None)


def bad_request(message: str) -> Reply:
    """A request whose body cannot even be framed (bad Content-Length, broken chunked encoding): 400."""
    return gateway_response("DEFAULT_4XX", 400, message)


def lambda_reply(result: Any) -> Reply:
    """Turn a proxy integration result into the HTTP answer; a malformed result is a 502 as on AWS."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return gateway_response("DEFAULT_5XX", 502, "Internal server error")
    headers: Headers = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((name, str(value)))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        single = (result.get("headers") or {}).get(name)
        headers.extend((name, str(v)) for v in values if str(v) != str(single))
    body = result.get("body") or ""
    payload = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    return int(result["statusCode"]), headers, payload


class LocalApi:
    def __init__(
        self,
        functions: LocalFunctions,
        issuer: DevIssuer,
        *,
        stage: str,
        max_body_bytes: int,
        extra_routes: dict[tuple[str, str], Callable[[], Reply]] | None = None,
    ) -> None:
        self.functions = functions
        self.issuer = issuer
        self.stage = stage
        self.max_body_bytes = max_body_bytes
        self.body_rule = BodySizeRule.from_template(max_body_bytes)
        self.routes = compile_routes(tpl.routes())
        self.extra_routes = extra_routes or {}
        # Local additions to a handler's JSON object answer, by (method, path), e.g. the stack's warm-up state in
        # `GET /v1/health`: each callable's dict is merged into the body the function returned.
        self.annotations: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {}

    def handle(self, method: str, target: str, headers: Headers, body: bytes, source_ip: str) -> Reply:
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        local = self.extra_routes.get((method, path))
        if local is not None:
            return local()
        if self.body_rule.blocks(len(body)):
            return too_large()
        found = match(self.routes, method, path)
        if found is None:
            return gateway_response("DEFAULT_4XX", 403, "Missing Authentication Token")
        route, params = found
        claims = None
        if route.authorizer:
            token = bearer(next((v for k, v in headers if k.lower() == "authorization"), None))
            try:
                claims = gateway_claims(self.issuer.verify(token or ""))
            except InvalidToken:
                return gateway_response("DEFAULT_4XX", 401, "Unauthorized")
        event = rest_event(
            route,
            method=method,
            path=path,
            query=parts.query,
            headers=headers,
            body=body,
            path_parameters=params,
            claims=claims,
            stage=self.stage,
            source_ip=source_ip,
        )
        try:
            result = self.functions.invoke(route.function, event)
        except FunctionFailed as failed:
            print(f"[api] {route.function} failed: {failed}", file=sys.stderr)
            return gateway_response("DEFAULT_5XX", 502, "Internal server error")
        except Exception as error:  # the function could not even load
            print(f"[api] {route.function} unavailable: {error}", file=sys.stderr)
            return gateway_response("DEFAULT_5XX", 502, "Internal server error")
        reply = lambda_reply(result)
        annotate = self.annotations.get((method, path))
        return annotated(reply, annotate()) if annotate else reply


def annotated(reply: Reply, extra: dict[str, Any]) -> Reply:
    """`reply` with `extra` merged into its JSON object body; any other body is left as the function sent it."""
    status, headers, payload = reply
    try:
        body = json.loads(payload)
    except ValueError:
        return reply
    if not isinstance(body, dict):
        return reply
    return status, headers, json.dumps({**body, **extra}).encode()


# Longest chunk-size or trailer line read, and most trailer lines, in a chunked request body.
MAX_CHUNK_LINE = 4096
MAX_TRAILERS = 100
_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")


class _Refused(Exception):
    """The request's body cannot be read as sent: answered with `reply`, then the connection is closed (what is
    left of the body was not read, so the next bytes on the connection are not a request)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply[0])
        self.reply = reply


class _Handler(BaseHTTPRequestHandler):
    server: _ApiServer
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        started = time.perf_counter()
        api = self.server.api
        try:
            body = self._body(api.body_rule.largest_passed())
        except _Refused as refused:
            status, headers, payload = refused.reply
            self.close_connection = True
        else:
            try:
                status, headers, payload = api.handle(
                    self.command, self.path, list(self.headers.items()), body, self.client_address[0]
                )
            except Exception:
                # A fault of the stand-in itself: answered like API Gateway would, never a dropped connection.
                traceback.print_exc()
                status, headers, payload = gateway_response("DEFAULT_5XX", 500, "Internal server error")
        self.send_response(status)
        names = {name.lower() for name, _ in headers}
        for name, value in headers:
            if name.lower() not in {"content-length", "connection"}:
                self.send_header(name, value)
        if "content-type" not in names:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        elapsed = (time.perf_counter() - started) * 1000
        if not self.server.quiet:
            print(f"[api] {self.command} {self.path} -> {status} ({elapsed:.0f} ms)", file=sys.stderr)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

    def _body(self, limit: int) -> bytes:
        """The request body as sent, with Content-Length or chunked; _Refused with 400 or 413 when it cannot be."""
        codings = [
            coding.strip().lower()
            for value in self.headers.get_all("Transfer-Encoding") or []
            for coding in value.split(",")
            if coding.strip()
        ]
        if codings:
            if codings != ["chunked"]:
                raise _Refused(bad_request("Unsupported Transfer-Encoding: only chunked is accepted"))
            if self.headers.get("Content-Length") is not None:
                # Transfer-Encoding wins (RFC 9112 6.3); such a message is not trusted to frame the next one.
                self.close_connection = True
            return self._chunked(limit)
        declared = {
            length.strip()
            for value in self.headers.get_all("Content-Length") or []
            for length in value.split(",")
        }
        if not declared:
            return b""
        text = declared.pop()
        if declared or not _DIGITS.fullmatch(text):
            raise _Refused(bad_request("Invalid Content-Length header: expected one non-negative integer"))
        if len(text.lstrip("0")) > len(str(limit)) or int(text) > limit:
            raise _Refused(too_large())
        length = int(text)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise _Refused(bad_request("Request body ended before its Content-Length"))
        return body

    def _chunked(self, limit: int) -> bytes:
        """A `Transfer-Encoding: chunked` body (RFC 9112 7.1), at most `limit` bytes once reassembled."""
        body = bytearray()
        while True:
            size_text = self._chunk_line().split(b";", 1)[0].strip()  # chunk extensions are ignored
            if not _HEX.fullmatch(size_text):
                raise _Refused(bad_request("Invalid chunked body: bad chunk size"))
            if len(size_text.lstrip(b"0")) > 16 or len(body) + int(size_text, 16) > limit:
                raise _Refused(too_large())
            size = int(size_text, 16)
            if size == 0:
                break
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise _Refused(bad_request("Invalid chunked body: chunk shorter than its size"))
            body += chunk
        for _ in range(MAX_TRAILERS):  # trailer fields, up to the empty line that ends the body
            if self._chunk_line() in (b"\r\n", b"\n"):
                return bytes(body)
        raise _Refused(bad_request("Invalid chunked body: too many trailer fields"))

    def _chunk_line(self) -> bytes:
        line = self.rfile.readline(MAX_CHUNK_LINE + 1)
        if not line.endswith(b"\n") or len(line) > MAX_CHUNK_LINE:
            raise _Refused(bad_request("Invalid chunked body: incomplete or overlong line"))
        return line

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request is printed by _serve


class _ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: LocalApi, quiet: bool) -> None:
        super().__init__(address, _Handler)
        self.api = api
        self.quiet = quiet


def serve(api: LocalApi, port: int, *, quiet: bool = False) -> tuple[ThreadingHTTPServer, int]:
    """Start serving on 127.0.0.1:port (0 picks a free port) in a background thread."""
    server = _ApiServer(("127.0.0.1", port), api, quiet)
    threading.Thread(target=server.serve_forever, name="deflect-api", daemon=True).start()
    return server, server.server_address[1]
