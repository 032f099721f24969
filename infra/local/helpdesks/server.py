"""One ThreadingHTTPServer on 127.0.0.1 for every local helpdesk, routed by `/{provider}/{account}/...`,
plus a small control API under `/_control/` (create tickets, human edits, faults, calls, effect counts, credentials,
reset); `GET /_control/` lists its calls.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from infra.local.helpdesks.providers import HANDLERS, Reject, Request, Response, parse_query
from infra.local.helpdesks.state import PROVIDERS, Call, Fault, HelpdeskState, credentials_for

OUTBOX_HEADER = "x-deflect-outbox-id"


class _Handler(BaseHTTPRequestHandler):
    server: HelpdeskServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: calls are recorded in state instead
        return

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def do_PUT(self) -> None:
        self._route()

    def do_DELETE(self) -> None:
        self._route()

    # ------------------------------------------------------------------ routing
    def _route(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path)
        if parts.path == "/_control" or parts.path.startswith("/_control/"):
            return self._send(self.server.control(self.command, parts.path, raw, parse_query(parts.query)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        self._send(serve(self.server.state, self.server.url, self.command, self.path, headers, raw))

    def _send(self, response: Response) -> None:
        payload = b"" if response.payload is None else json.dumps(response.payload).encode()
        try:
            self.send_response(response.status)
            for key, value in response.headers.items():
                self.send_header(key, value)
            if payload:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left


def serve(
    state: HelpdeskState,
    base_url: str,
    method: str,
    target: str,
    headers: dict[str, str],
    raw: bytes,
    *,
    stall: Callable[[float], None] = time.sleep,
) -> Response:
    """Answer one helpdesk request as the provider would, after recording it and applying any injected fault.

    `stall` is how a hang is played: a real sleep on the socket server, an exception for in-process transports.
    """
    parts = urlsplit(target)
    segments = parts.path.split("/", 3)  # "", provider, account, rest
    if len(segments) < 3 or segments[1] not in PROVIDERS or not segments[2]:
        return Response(404, {"error": "unknown helpdesk"})
    provider, account = segments[1], segments[2]
    rest = "/" + segments[3] if len(segments) > 3 else ""
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode(errors="replace")
    recorded = {k: ("<redacted>" if k == "x-deflect-signature" else v) for k, v in headers.items()}
    call = Call(
        provider,
        account,
        method,
        rest + (f"?{parts.query}" if parts.query else ""),
        recorded,
        body,
        outbox_id=headers.get(OUTBOX_HEADER),
    )
    with state.lock:
        state.calls.append(call)
    request = Request(
        provider, account, method, rest, parse_query(parts.query), headers, raw, call.outbox_id, base_url
    )
    fault = state.take_fault(provider, method, rest)
    if fault and fault.mode == "hang_before":
        call.status = 504
        stall(fault.delay_s)
        return Response(504, {"error": "gateway timeout"})
    if fault and fault.mode == "before":
        call.status = fault.status
        return _fault_response(fault, provider)
    try:
        response = HANDLERS[provider](state, request)
    except Reject as reject:
        response = reject.response
    call.status = response.status
    if fault and fault.mode == "after":
        call.status = fault.status
        return _fault_response(fault, provider)
    if fault and fault.mode == "hang_after":
        stall(fault.delay_s)  # the change is made; the caller has given up waiting by the time we answer
    return response


def _fault_response(fault: Fault, provider: str) -> Response:
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
    if provider == "intercom" and fault.status == 429 and fault.retry_after is not None:
        # Intercom's 429 names when the window resets (a unix time) and sends no Retry-After.
        reset = int(time.time() + float(fault.retry_after))
        headers = {"X-RateLimit-Limit": "167", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
    return Response(fault.status, {"error": f"injected {fault.status}"}, headers)


class HelpdeskServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int = 0, state: HelpdeskState | None = None) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.state = state or HelpdeskState()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    # ------------------------------------------------------------------ control API
    def control(self, method: str, path: str, raw: bytes, query: dict[str, list[str]]) -> Response:
        state = self.state
        body = json.loads(raw) if raw else {}
        parts = path.strip("/").split("/")[1:]  # after "_control"
        if not parts and method == "GET":
            return Response(200, control_index(self.url))
        if parts == ["reset"] and method == "POST":
            state.reset()
            return Response(204)
        if parts == ["faults"] and method == "POST":
            state.faults.append(Fault(**body))
            return Response(201, body)
        if parts == ["calls"] and method == "GET":
            provider = (query.get("provider") or [None])[0]
            return Response(200, [asdict(c) for c in state.calls if provider in (None, c.provider)])
        if parts == ["effects"] and method == "GET":
            return Response(200, dict(state.effects))
        if len(parts) == 3 and parts[2] == "credentials" and method == "GET":
            return Response(200, credentials_for(parts[0], parts[1], self.url))
        if len(parts) == 3 and parts[2] == "tickets" and method == "POST":
            ticket = state.create_ticket(parts[0], parts[1], body.pop("id", None), **body)
            return Response(201, {"id": ticket.id, "updated_at": ticket.updated_at.isoformat()})
        if len(parts) == 5 and parts[2] == "tickets" and parts[4] == "human" and method == "POST":
            try:
                event = state.human_edit(
                    parts[0],
                    parts[1],
                    parts[3],
                    body.get("kind", "comment"),
                    body.get("value"),
                    body.get("body"),
                )
            except (KeyError, ValueError) as error:
                return Response(400, {"error": str(error)})
            return Response(201, {"id": event.id, "at": event.at.isoformat()})
        return Response(404, {"error": "unknown control call", "index": f"GET {self.url}/_control/"})


def control_index(base_url: str) -> dict[str, Any]:
    """What `GET /_control/` answers: every call `HelpdeskServer.control` serves and what it does."""
    where = f"{base_url}/_control"
    return {
        "service": "local helpdesks control API",
        "helpdesks": f"{base_url}/{{provider}}/{{account}}/... (the account is the tenant id, e.g. demo)",
        "providers": list(PROVIDERS),
        "calls": [
            {"method": "GET", "path": f"{where}/", "does": "this index"},
            {
                "method": "GET",
                "path": f"{where}/calls?provider={{provider}}",
                "does": "every request the helpdesks received, oldest first: method, path, headers (signature "
                "redacted), body, status answered, outbox id; `provider` is optional",
            },
            {
                "method": "GET",
                "path": f"{where}/effects",
                "does": "changes applied per outbox id (the x-deflect-outbox-id header): exactly-once writeback "
                "shows 1 per id",
            },
            {
                "method": "POST",
                "path": f"{where}/faults",
                "body": {
                    "provider": "zendesk (or *)",
                    "status": 500,
                    "count": 1,
                    "method": "PUT (optional)",
                    "path_contains": "/tickets/ (optional)",
                    "retry_after": "2 (optional)",
                    "mode": "before | after | hang_before | hang_after",
                    "delay_s": 0.0,
                },
                "does": "fail the next `count` matching requests with `status`: before the change (before), after "
                "applying it (after, the answer is lost), or stall `delay_s` first (hang_*)",
            },
            {
                "method": "POST",
                "path": f"{where}/{{provider}}/{{account}}/tickets",
                "body": {
                    "id": "(optional)",
                    "status": "(optional)",
                    "tags": [],
                    "assignee": None,
                    "custom_fields": {},
                    "first_message": "Hello, I need help.",
                },
                "does": "create a ticket with the customer's first message; answers its id and updated_at",
            },
            {
                "method": "POST",
                "path": f"{where}/{{provider}}/{{account}}/tickets/{{id}}/human",
                "body": {
                    "kind": "comment | note | customer_reply | status | assignee",
                    "value": "(status or assignee)",
                    "body": "(text)",
                },
                "does": "a person changes the ticket in the helpdesk UI (a newer comment, a status change, a "
                "reassignment), as writeback's conflict checks see it",
            },
            {
                "method": "GET",
                "path": f"{where}/{{provider}}/{{account}}/credentials",
                "does": "the credentials a tenant stores to reach this helpdesk account",
            },
            {
                "method": "POST",
                "path": f"{where}/reset",
                "does": "forget every ticket, injected fault, recorded call and effect count",
            },
        ],
    }


class HelpdesksHandle:
    """What `start_helpdesks` returns: the URL, the state (for in-process tests) and `stop()`."""

    def __init__(self, server: HelpdeskServer, thread: threading.Thread) -> None:
        self.server = server
        self.state = server.state
        self.url = server.url
        self._thread = thread

    def base_url(self, provider: str, account: str) -> str:
        return f"{self.url}/{provider}/{account}"

    def credentials(self, provider: str, account: str) -> dict[str, Any]:
        return credentials_for(provider, account, self.url)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HelpdesksHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_helpdesks(port: int = 0, state: HelpdeskState | None = None) -> HelpdesksHandle:
    server = HelpdeskServer(port, state)
    thread = threading.Thread(
        target=server.serve_forever, name="local-helpdesks", daemon=True, kwargs={"poll_interval": 0.05}
    )
    thread.start()
    return HelpdesksHandle(server, thread)


def connect_tenant(
    secrets: Any, handle: HelpdesksHandle, tenant_id: str, providers: tuple[str, ...] = PROVIDERS
) -> None:
    """Store the tenant's credentials for every local helpdesk (and CRM) in a SecretStore, as an operator would."""
    from deflect.helpdesk.directory import secret_name

    for provider in providers:
        secrets.put_secret(
            tenant_id, secret_name(provider), json.dumps(handle.credentials(provider, tenant_id))
        )
