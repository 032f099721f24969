"""Reading a ticket's text attachments for diagnostics, against a helpdesk on 127.0.0.1: credentials only to the
helpdesk's own host, a secure-download redirect followed without them, text only, bounded."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from deflect.domain.models import AttachmentRef, Ticket
from deflect.domain.tenancy import TenantContext
from deflect.helpdesk.attachments import HelpdeskAttachmentReader
from deflect.helpdesk.directory import HelpdeskDirectory

LOG = "2026-11-27 10:02:11 Syncbeam desktop v4.12.3 (macOS 14.5)\nERROR SB-4040 source object not found\n"


def _zipped_logs() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("logs/desktop.log", LOG)
        archive.writestr("logs/screen.png", b"\x89PNG\r\n\x1a\n\x00\x00")
    return out.getvalue()


ZIPPED_LOGS = _zipped_logs()
ctx = TenantContext.system("acme")


class Helpdesk(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:
        Helpdesk.seen.append((self.path, self.headers.get("Authorization")))
        if self.path.startswith("/attachments/token/abc"):
            # Zendesk's secure downloads: the authenticated URL answers with a temporary link elsewhere.
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_port}/signed/console.log")
            self.end_headers()
        elif self.path.startswith(("/signed/", "/plain/")):
            self._text(LOG.encode())
        elif self.path.startswith("/zip/"):
            self._text(ZIPPED_LOGS, "application/zip")
        elif self.path.startswith("/huge/"):
            self._text(b"v9.9.9 " + b"x" * 600_000)
        else:
            self.send_response(404)
            self.end_headers()

    def _text(self, body: bytes, kind: str = "text/plain") -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the reader stopped at its cap and hung up, as it should

    def log_message(self, *args: Any) -> None:
        return


class Secrets:
    def __init__(self, stored: dict[str, str]) -> None:
        self.stored = stored

    def secrets(self, tenant_id: str, provider: str) -> list[str]:
        return [self.stored[provider]] if provider in self.stored else []


@pytest.fixture
def helpdesk() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Helpdesk)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Helpdesk.seen = []
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _reader(base: str, **kw: Any) -> HelpdeskAttachmentReader:
    credentials = {"base_url": base, "email": "bot@acme.example", "api_token": "tok", "bot_user_id": "42"}
    return HelpdeskAttachmentReader(
        HelpdeskDirectory(Secrets({"zendesk-writeback": json.dumps(credentials)})), **kw
    )


TICKET = Ticket(tenant_id="acme", ticket_id="t-1", provider="zendesk", external_id="1")


def test_the_helpdesks_own_link_gets_credentials_and_its_redirect_does_not(helpdesk):
    attachment = AttachmentRef(
        name="console.log",
        url=f"{helpdesk}/attachments/token/abc/?name=console.log",
        content_type="text/plain",
    )
    assert _reader(helpdesk).read_text(ctx, TICKET, attachment) == LOG
    (first, auth), (second, after) = Helpdesk.seen
    assert first.startswith("/attachments/token/abc") and auth and auth.startswith("Basic ")
    assert second == "/signed/console.log" and after is None


def test_a_link_on_another_host_is_fetched_without_credentials(helpdesk):
    other = helpdesk.replace("127.0.0.1", "localhost")
    attachment = AttachmentRef(name="app.txt", url=f"{other}/plain/app.txt")
    assert _reader(helpdesk).read_text(ctx, TICKET, attachment) == LOG
    assert Helpdesk.seen == [("/plain/app.txt", None)]


def test_only_text_files_on_https_or_loopback_are_read_and_never_more_than_the_cap(helpdesk):
    reader = _reader(helpdesk, max_bytes=1024)
    screenshot = AttachmentRef(
        name="screen.png", url=f"{helpdesk}/plain/screen.png", content_type="image/png"
    )
    plain_http = AttachmentRef(name="app.log", url="http://files.example.com/app.log")
    assert reader.read_text(ctx, TICKET, screenshot) is None
    assert reader.read_text(ctx, TICKET, plain_http) is None
    assert Helpdesk.seen == []  # neither was requested
    huge = reader.read_text(ctx, TICKET, AttachmentRef(name="big.log", url=f"{helpdesk}/huge/big.log"))
    assert huge is not None and len(huge) == 1024 and huge.startswith("v9.9.9")
    too_big = AttachmentRef(name="dump.log", url=f"{helpdesk}/huge/dump.log", size=50_000_000)
    assert reader.read_text(ctx, TICKET, too_big) is None


def test_a_missing_file_or_an_unreachable_helpdesk_is_no_text_not_an_error(helpdesk):
    reader = _reader(helpdesk)
    assert reader.read_text(ctx, TICKET, AttachmentRef(name="a.log", url=f"{helpdesk}/gone/a.log")) is None
    closed = AttachmentRef(name="a.log", url="http://127.0.0.1:9/a.log")
    assert reader.read_text(ctx, TICKET, closed) is None


def test_the_logs_in_an_attached_zip_are_read_and_a_zip_too_big_to_open_is_not_fetched(helpdesk):
    reader = _reader(helpdesk, max_archive_bytes=len(ZIPPED_LOGS))
    logs = AttachmentRef(name="logs.zip", url=f"{helpdesk}/zip/logs.zip", content_type="application/zip")
    assert reader.read_text(ctx, TICKET, logs) == f"--- logs/desktop.log ---\n{LOG}"
    big = AttachmentRef(name="all-logs.zip", url=f"{helpdesk}/zip/all-logs.zip", size=len(ZIPPED_LOGS) + 1)
    assert reader.read_text(ctx, TICKET, big) is None
    # Cut at the cap, a zip has lost its directory at the end: no text, and no error either.
    cut = _reader(helpdesk, max_archive_bytes=len(ZIPPED_LOGS) - 10)
    assert cut.read_text(ctx, TICKET, AttachmentRef(name="logs.zip", url=f"{helpdesk}/zip/x.zip")) is None
    assert [path for path, _ in Helpdesk.seen] == ["/zip/logs.zip", "/zip/x.zip"]
