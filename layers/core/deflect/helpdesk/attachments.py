"""Reads small text attachments (logs, .txt, .json) and log archives (.zip, .gz, .tgz) from the helpdesk, so triage
can find the diagnostics in them.

Rules, because the URL comes from a webhook and credentials must not leak:
- the tenant's helpdesk credentials (`<provider>-writeback`) are sent only to the host of its `base_url`; a
  redirect from there (Zendesk's secure downloads answer 302 to a temporary URL) is followed once, without them;
- other hosts (Intercom's and Freshdesk's signed storage links) are fetched without credentials, https only
  (http only on loopback, for the local helpdesks);
- text types only, at most `max_bytes` read (a bigger file is read up to the cap: logs start with the version);
- archives up to `max_archive_bytes` (a zip's directory is at its end, so a bigger one is not fetched), their
  text members read in memory within the same `max_bytes` of text (deflect.helpdesk.archives);
- every failure is "no text" with its reason class (timeout, connection, http_<status>): attachments help
  diagnostics, they never block triage, but the decision records that a log was attached and could not be read.

The text is returned to the caller and never stored.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from deflect.domain.models import AttachmentRead, AttachmentRef, Ticket
from deflect.domain.tenancy import TenantContext
from deflect.helpdesk.archives import archive_text
from deflect.helpdesk.directory import HelpdeskDirectory
from deflect.helpdesk.errors import HelpdeskNotConfigured
from deflect.helpdesk.models import _is_loopback
from deflect.triage.diagnostics import is_archive_attachment, is_text_attachment

log = logging.getLogger(__name__)

MAX_BYTES = 256 * 1024
MAX_ARCHIVE_BYTES = 2 * 1024 * 1024
PROVIDERS = ("zendesk", "intercom", "freshdesk", "jira")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


def _allowed(url: str) -> bool:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return bool(host) and (parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host)))


class HelpdeskAttachmentReader:
    def __init__(
        self,
        directory: HelpdeskDirectory,
        *,
        max_bytes: int = MAX_BYTES,
        max_archive_bytes: int = MAX_ARCHIVE_BYTES,
        timeout_s: float = 5.0,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_archive_bytes = max_archive_bytes
        self.timeout_s = timeout_s
        self._opener = urllib.request.build_opener(_NoRedirects())
        self._loopback = urllib.request.build_opener(_NoRedirects(), urllib.request.ProxyHandler({}))

    def read_text(self, ctx: TenantContext, ticket: Ticket, attachment: AttachmentRef) -> str | None:
        return self.read_attachment(ctx, ticket, attachment).text

    def read_attachment(self, ctx: TenantContext, ticket: Ticket, attachment: AttachmentRef) -> AttachmentRead:
        url = attachment.url
        archive = not is_text_attachment(attachment) and is_archive_attachment(attachment)
        if not (archive or is_text_attachment(attachment)):
            return AttachmentRead(outcome="skipped", reason="type")
        if not url or not _allowed(url):
            return AttachmentRead(outcome="skipped", reason="link")
        limit = self.max_archive_bytes if archive else self.max_bytes
        # A huge log is a dump, not something to skim; a huge archive cannot be opened in part.
        if attachment.size is not None and attachment.size > (limit if archive else 4 * limit):
            return AttachmentRead(outcome="skipped", reason="size")
        headers: dict[str, str] = {}
        if ticket.provider in PROVIDERS:
            try:
                connector = self.directory.connector_for(ctx.tenant_id, ticket.provider)
            except (HelpdeskNotConfigured, ValueError):
                connector = None
            if (
                connector is not None
                and urlsplit(connector.credentials.base_url).hostname == urlsplit(url).hostname
            ):
                headers = connector.auth_headers()
        try:
            status, location, body = self._get(url, headers, limit)
            if status in (301, 302, 303, 307, 308) and location and _allowed(location):
                # A temporary link: never with our credentials.
                status, _, body = self._get(location, {}, limit)
        except (OSError, urllib.error.URLError, ValueError) as error:
            log.warning("attachment not read", extra={"reason": type(error).__name__})
            return AttachmentRead(outcome="failed", reason=_failure(error))
        if status != 200:
            log.warning("attachment not read", extra={"status": status})
            return AttachmentRead(outcome="failed", reason=f"http_{status}")
        if archive:
            # An archive without a text member was read: there is nothing in it to look for.
            text = archive_text(attachment.name or "", body, max_text=self.max_bytes)
            return AttachmentRead(outcome="read", text=text)
        return AttachmentRead(outcome="read", text=body.decode("utf-8", errors="replace"))

    def _get(self, url: str, headers: dict[str, str], limit: int) -> tuple[int, str | None, bytes]:
        request = urllib.request.Request(url, headers={"Accept": "*/*", **headers})  # noqa: S310 - scheme checked
        opener = self._loopback if _is_loopback(urlsplit(url).hostname or "") else self._opener
        try:
            with opener.open(request, timeout=self.timeout_s) as answer:
                return answer.status, None, answer.read(limit)
        except urllib.error.HTTPError as answer:
            with answer:
                return answer.code, answer.headers.get("Location"), b""


def _failure(error: Exception) -> str:
    """The reason class of a failed download (no URL, no message text: they may name the customer)."""
    cause = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(cause, TimeoutError):
        return "timeout"
    return "connection" if isinstance(cause, OSError) else "error"
