"""The local helpdesks without a socket: a `HelpdeskHttp` whose exchange calls the same provider code directly.

Unit tests (sockets disabled) use it to drive the real connectors and the real retry/limit logic against the
same stateful helpdesks that `start_helpdesks` serves over HTTP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from deflect.helpdesk.http import HelpdeskHttp, HttpResponse, NoAnswer, RequestEvent
from infra.local.helpdesks.server import serve
from infra.local.helpdesks.state import HelpdeskState

BASE_URL = "http://127.0.0.1:9"  # never dialled: the in-process exchange answers


@dataclass
class Sent:
    method: str
    url: str
    headers: dict[str, str]
    body: Any


def _hang(seconds: float) -> None:
    raise NoAnswer("timed out (injected hang)")


@dataclass
class InProcessHttp(HelpdeskHttp):
    state: HelpdeskState = field(default_factory=HelpdeskState)
    sent: list[Sent] = field(default_factory=list)

    def _exchange(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout_s: float,
        attempt: int,
    ) -> HttpResponse:
        target = url.removeprefix(BASE_URL)
        self.sent.append(Sent(method, url, dict(headers), json.loads(body) if body else None))
        status: int | None = None
        error: str | None = None
        try:
            answer = serve(
                self.state,
                BASE_URL,
                method,
                target,
                {k.lower(): v for k, v in headers.items()},
                body or b"",
                stall=_hang,
            )
            status = answer.status
            payload = b"" if answer.payload is None else json.dumps(answer.payload).encode()
            return HttpResponse(answer.status, {k.lower(): v for k, v in answer.headers.items()}, payload)
        except NoAnswer as hung:
            error = str(hung)
            raise
        finally:
            for hook in self.hooks:
                hook(RequestEvent(method, target, status, 0.0, attempt, error))
