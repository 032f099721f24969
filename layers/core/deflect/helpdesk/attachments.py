"""Reads small text attachments (logs, .txt, .json) from the helpdesk, so triage can find the diagnostics in them.

Rules, because the URL comes from a webhook and credentials must not leak:
- the tenant's helpdesk credentials (`<provider>-writeback`) are sent only to the host of its `base_url`; a
  redirect from there (Zendesk's secure downloads answer 302 to a temporary URL) is followed once, without them;
- other hosts (Intercom's and Freshdesk's signed storage links) are fetched without credentials, https only
  (http only on loopback, for the local helpdesks);
- text types only, at most `max_bytes` read (a bigger file is read up to the cap: logs start with the version);
- every failure is "no text": attachments help diagnostics, they never block triage.

The text is returned to the caller and never stored.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from deflect.domain.models import AttachmentRef, Ticket
from deflect.domain.tenancy import TenantContext
from deflect.helpdesk.directory import HelpdeskDirectory
from deflect.helpdesk.errors import HelpdeskNotConfigured
from deflect.helpdesk.models import _is_loopback
from deflect.triage.diagnostics import is_text_attachment

log = logging.getLogger(__name__)

MAX_BYTES = 256 * 1024
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
        self, directory: HelpdeskDirectory, *, max_bytes: int = MAX_BYTES, timeout_s: float = 5.0
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self._opener = urllib.request.build_opener(_NoRedirects())
        self._loopback = urllib.request.build_opener(_NoRedirects(), urllib.request.ProxyHandler({}))

    def read_text(self, ctx: TenantContext, ticket: Ticket, attachment: AttachmentRef) -> str | None:
        url = attachment.url
        if not url or not is_text_attachment(attachment) or not _allowed(url):
            return None
        if attachment.size is not None and attachment.size > 4 * self.max_bytes:
            return None  # a huge file is an archive of logs, not something to skim
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
            status, location, body = self._get(url, headers)
            if status in (301, 302, 303, 307, 308) and location and _allowed(location):
                status, _, body = self._get(location, {})  # a temporary link: never with our credentials
        except (OSError, urllib.error.URLError, ValueError) as error:
            log.warning("attachment not read", extra={"reason": type(error).__name__})
            return None
        if status != 200:
            log.warning("attachment not read", extra={"status": status})
            return None
        return body.decode("utf-8", errors="replace")

    def _get(self, url: str, headers: dict[str, str]) -> tuple[int, str | None, bytes]:
        request = urllib.request.Request(url, headers={"Accept": "*/*", **headers})  # noqa: S310 - scheme checked
        opener = self._loopback if _is_loopback(urlsplit(url).hostname or "") else self._opener
        try:
            with opener.open(request, timeout=self.timeout_s) as answer:
                return answer.status, None, answer.read(self.max_bytes)
        except urllib.error.HTTPError as answer:
            with answer:
                return answer.code, answer.headers.get("Location"), b""
