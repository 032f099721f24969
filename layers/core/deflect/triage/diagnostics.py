"""Diagnostics: what a product area needs to investigate a problem, what the customer already gave us, a clear
request for the rest, and read-only diagnostic tools scoped per tenant and per role.

Checklists live in TenantConfig.diagnostics (product area → required names). Known names have extractors and
customer-facing wording; any other name is matched as "<name>: value" in the message and asked for by name.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deflect.domain.canonical import canonical_json
from deflect.domain.errors import Forbidden, NotFound, TransientFailure
from deflect.domain.models import AttachmentRef, EvidenceRef, TenantConfig
from deflect.domain.tenancy import TenantContext
from deflect.ports import DiagnosticTool, EvidenceStore, TelemetrySource

# --------------------------------------------------------------------------- extraction

_VERSION = re.compile(
    r"\b(?:app|client|cli|sdk|plugin|extension|desktop|agent|build|release)?\s*(?:version|ver\.?|v)\s*[:=#]?\s*"
    r"(\d+\.\d+(?:\.\d+){0,2}(?:[-+][0-9A-Za-z.]+)?)\b",
    re.I,
)
_OS = re.compile(
    r"\b(windows\s*(?:1[01]|[78]|xp|vista|server\s*\d{4})?|mac\s?os(?:\s*x)?(?:\s*\d+(?:\.\d+)*)?|osx|os x|"
    r"macbook|sonoma|ventura|monterey|sequoia|big sur|ios\s*\d+(?:\.\d+)*|ipados\s*\d*|android\s*\d+(?:\.\d+)*|"
    r"ubuntu(?:\s*\d+\.\d+)?|debian|fedora|centos|red hat|rhel|linux|chrome\s?os)\b",
    re.I,
)
_BROWSER = re.compile(
    r"\b(chrome|chromium|firefox|safari|edge|opera|brave|vivaldi)(?:\s*(?:version\s*)?\d+(?:\.\d+)*)?\b", re.I
)
_ERROR_CODE = re.compile(
    r"\b([A-Z]{2,5}-\d{3,5})\b|\berror\s*(?:code)?\s*[:#]?\s*([A-Z]*\d{3,5})\b|\b((?:4|5)\d\d)\s+(?:error|status)\b",
    re.I,
)
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_REQUEST_ID = re.compile(
    rf"\b(?:request|req|trace|correlation|x-request)[ _-]?id\s*[:=#]?\s*([A-Za-z0-9_-]{{8,}})|\b({_UUID})\b",
    re.I,
)
_RUN_ID = re.compile(
    r"\brun\s*(?:id|#|number|no\.?)\s*[:=#]?\s*([A-Za-z0-9_-]{4,})|\b(run_[A-Za-z0-9]{4,})\b", re.I
)
_LOG_BLOCK = re.compile(
    r"(?:^\s*\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}.*(?:ERROR|WARN|INFO|DEBUG).*$)|Traceback \(most recent call last\)|"
    r"^\s+at [\w$.]+\(.*\)$",
    re.M,
)
_LOG_FILES = re.compile(r"\.(?:log|txt|har|json|zip|gz|tgz)$|\blogs?\b", re.I)
_IMAGE_FILES = re.compile(r"\.(?:png|jpe?g|gif|webp|heic)$", re.I)


def _first_group(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    if not match:
        return None
    return next((g for g in match.groups() if g), match.group(0)).strip()


def _logs(text: str, attachments: Sequence[AttachmentRef]) -> str | None:
    for attachment in attachments:
        if _LOG_FILES.search(attachment.name or "") or (attachment.content_type or "").startswith("text/"):
            return f"attachment:{attachment.name}"
    return "inline" if len(_LOG_BLOCK.findall(text)) >= 1 else None


def _screenshot(_text: str, attachments: Sequence[AttachmentRef]) -> str | None:
    for attachment in attachments:
        if _IMAGE_FILES.search(attachment.name or "") or (attachment.content_type or "").startswith("image/"):
            return f"attachment:{attachment.name}"
    return None


Extractor = Callable[[str, Sequence[AttachmentRef]], str | None]

EXTRACTORS: dict[str, Extractor] = {
    "app_version": lambda text, _a: _first_group(_VERSION, text),
    "os": lambda text, _a: _first_group(_OS, text),
    "browser": lambda text, _a: _first_group(_BROWSER, text),
    "error_code": lambda text, _a: _first_group(_ERROR_CODE, text),
    "request_id": lambda text, _a: _first_group(_REQUEST_ID, text),
    "run_id": lambda text, _a: _first_group(_RUN_ID, text),
    "logs": _logs,
    "screenshot": _screenshot,
}
ALIASES = {
    "version": "app_version",
    "operating_system": "os",
    "error": "error_code",
    "log": "logs",
    "trace_id": "request_id",
}

# What we ask the customer for, and where they find it.
WORDING: dict[str, str] = {
    "app_version": "the app version you are using (shown under Settings → About, or `--version` for the CLI)",
    "os": "your operating system and its version (for example macOS 14.4 or Windows 11)",
    "browser": "your browser and its version",
    "error_code": "the exact error code or message you see",
    "request_id": "the request ID from the error details or the API response headers",
    "run_id": "the run ID of the failed run (open the run and copy its ID)",
    "logs": "the log file or the lines around the error (attach it to your reply)",
    "screenshot": "a screenshot of the error",
}


def canonical_name(name: str) -> str:
    key = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    return ALIASES.get(key, key)


def _generic(name: str) -> Extractor:
    label = re.escape(name.replace("_", " "))
    pattern = re.compile(rf"\b{label}\s*[:=#]\s*([^\n,;]{{2,80}})", re.I)
    return lambda text, _a: _first_group(pattern, text)


_TEXT_TYPES = ("text/", "application/json", "application/x-ndjson", "application/xml")
# Files a person could read as text, by name: logs (also rotated, app.log.1), dumps, HTTP archives (.har).
TEXT_FILE_NAME = re.compile(r"\.(?:log|txt|json|ndjson|out|err|xml|csv|har)(?:\.\d+)?$", re.I)


def is_text_attachment(attachment: AttachmentRef) -> bool:
    """A file a person could read as text (a log, a console dump), by its type or its name."""
    kind = (attachment.content_type or "").lower()
    return kind.startswith(_TEXT_TYPES) or bool(TEXT_FILE_NAME.search(attachment.name or ""))


_ARCHIVE_TYPES = (
    "application/zip",
    "application/x-zip-compressed",
    "application/gzip",
    "application/x-gzip",
    "application/x-tar",
    "application/x-compressed-tar",
)
_ARCHIVE_NAMES = re.compile(r"\.(?:zip|gz|tgz|tar)$", re.I)


def is_archive_attachment(attachment: AttachmentRef) -> bool:
    """A zip, tar or gzip file: how customers usually send logs (its text members are read)."""
    kind = (attachment.content_type or "").lower()
    return kind.startswith(_ARCHIVE_TYPES) or bool(_ARCHIVE_NAMES.search(attachment.name or ""))


def is_readable_attachment(attachment: AttachmentRef) -> bool:
    return is_text_attachment(attachment) or is_archive_attachment(attachment)


# Values a log file states as well as a message does; only these are read from attachments' text (a custom
# checklist item's generic pattern could pick up personal data from a raw log).
FROM_ATTACHED_TEXT = ("app_version", "os", "browser", "error_code", "request_id", "run_id")


def extract(names: Iterable[str], text: str, attachments: Sequence[AttachmentRef] = ()) -> dict[str, str]:
    """Values the customer already provided, by canonical name (only the names asked for): from the message,
    else from the text of an attached log (read by the triage service)."""
    found: dict[str, str] = {}
    for raw in names:
        name = canonical_name(raw)
        extractor = EXTRACTORS.get(name) or _generic(name)
        value = extractor(text or "", attachments)
        if not value and name in FROM_ATTACHED_TEXT:
            value = next((v for a in attachments if a.text and (v := extractor(a.text, ()))), None)
        if value:
            found[name] = value[:200]
    return found


def wants_attached_text(config: TenantConfig | None) -> bool:
    """Whether any of the tenant's checklists asks for something a log file could tell."""
    return config is not None and any(
        canonical_name(n) in FROM_ATTACHED_TEXT for item in config.diagnostics for n in item.required
    )


def extract_all(text: str, attachments: Sequence[AttachmentRef] = ()) -> dict[str, str]:
    return extract(EXTRACTORS, text, attachments)


def checklist(config: TenantConfig | None, product_area: str) -> list[str]:
    """Required diagnostics of the product area (names in canonical form, order kept)."""
    if config is None:
        return []
    for item in config.diagnostics:
        if item.product_area == product_area:
            return list(dict.fromkeys(canonical_name(n) for n in item.required))
    return []


def request_text(missing: Sequence[str], *, product_area: str = "") -> str:
    """A clear request for the missing diagnostics, one line each, in the order of the checklist."""
    if not missing:
        return ""
    area = product_area.replace("_", " ").replace("-", " ")
    intro = (
        "To look into this"
        + (f" ({area})" if area and area != "general" else "")
        + ", we need a few details:"
    )
    lines = [intro]
    for name in missing:
        lines.append(f"- {WORDING.get(name, name.replace('_', ' '))}")
    lines.append("Reply to this message with them and we will pick it up from there.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- diagnostic tools


@dataclass(frozen=True)
class ToolGrant:
    """Tenant-level permission to run a tool: which roles may run it, for which product areas (empty = all)."""

    tool: str
    roles: frozenset[str]
    product_areas: frozenset[str] = frozenset()

    def allows(self, roles: Iterable[str], product_area: str) -> bool:
        return bool(self.roles.intersection(roles)) and (
            not self.product_areas or product_area in self.product_areas
        )


@dataclass(frozen=True)
class ToolResult:
    tool: str
    ok: bool
    output: Mapping[str, Any]
    evidence: EvidenceRef | None = None


SealForCustomer = Callable[[TenantContext, str, str, bytes, str], EvidenceRef]
Seal = Callable[[TenantContext, str, bytes, str], EvidenceRef]


def sealed_for(seal_for_customer: SealForCustomer | None, customer_id: str | None) -> Seal | None:
    """`seal(ctx, ticket_id, body, kind)` with the customer's key, for tool output about a known customer."""
    if seal_for_customer is None or not customer_id:
        return None

    def seal(ctx: TenantContext, ticket_id: str, body: bytes, kind: str) -> EvidenceRef:
        return seal_for_customer(ctx, ticket_id, customer_id, body, kind)

    return seal


class DiagnosticToolRegistry:
    """Tools known to this deployment; which of them may run is decided per tenant (grants) and per role."""

    def __init__(self, tools: Iterable[DiagnosticTool] = ()) -> None:
        self._tools: dict[str, DiagnosticTool] = {t.name: t for t in tools}

    def register(self, tool: DiagnosticTool) -> None:
        self._tools[tool.name] = tool

    def names(self) -> list[str]:
        return sorted(self._tools)

    def allowed(self, grants: Iterable[ToolGrant], roles: Iterable[str], product_area: str) -> list[str]:
        roles = set(roles)
        return sorted(g.tool for g in grants if g.tool in self._tools and g.allows(roles, product_area))

    def run(
        self,
        ctx: TenantContext,
        name: str,
        subject: Mapping[str, Any],
        *,
        grants: Iterable[ToolGrant],
        product_area: str,
        evidence: EvidenceStore | None = None,
        seal: Callable[[TenantContext, str, bytes, str], EvidenceRef] | None = None,
    ) -> ToolResult:
        """Run one tool if the tenant granted it to one of the caller's roles; keep its output as evidence.

        `seal(ctx, ticket_id, body, kind)` keeps it sealed instead (with the ticket's customer's key): a tool's
        output may name people (an account's recent errors carry user emails), and erasure must reach it.
        """
        tool = self._tools.get(name)
        if tool is None:
            raise NotFound("diagnostic tool not found")
        if name not in self.allowed(grants, ctx.roles, product_area):
            raise Forbidden("this diagnostic tool is not allowed for your role")
        try:
            output = dict(tool.run(ctx, subject))
            ok = True
        except (TransientFailure, OSError, ValueError) as error:
            output, ok = {"error": type(error).__name__}, False
        ref = None
        keep = seal or (evidence.put_evidence if evidence is not None else None)
        if keep is not None and subject.get("ticket_id"):
            body = canonical_json(
                {"tool": name, "subject": dict(subject), "ok": ok, "output": output, "actor": ctx.actor}
            )
            ref = keep(ctx, str(subject["ticket_id"]), body, "diagnostic_tool")
        return ToolResult(tool=name, ok=ok, output=output, evidence=ref)


class RecentErrorsTool:
    name = "recent_errors"
    description = "Recent errors recorded for the customer's account by the product's telemetry"

    def __init__(self, source: TelemetrySource, limit: int = 20) -> None:
        self.source = source
        self.limit = limit

    def run(self, ctx: TenantContext, subject: Mapping[str, Any]) -> Mapping[str, Any]:
        account_id = subject.get("account_id")
        if not account_id:
            return {"errors": [], "note": "no account is linked to this ticket"}
        errors = self.source.recent_errors(ctx, str(account_id), limit=self.limit)
        return {"account_id": account_id, "errors": list(errors)[: self.limit]}


class ServiceStatusTool:
    name = "service_status"
    description = "Current status of the product's services (status page)"

    def __init__(self, source: TelemetrySource) -> None:
        self.source = source

    def run(self, ctx: TenantContext, subject: Mapping[str, Any]) -> Mapping[str, Any]:
        return dict(self.source.service_status(ctx))


class HttpTelemetrySource:
    """TelemetrySource over HTTP: a status page in Atlassian Statuspage's `/api/v2/summary.json` shape and an
    errors endpoint `GET {errors_url}?account_id=…&limit=…` answering `{"errors": [...]}`."""

    def __init__(
        self,
        *,
        status_url: str | None = None,
        errors_url: str | None = None,
        token: Callable[[TenantContext], str | None] | None = None,
        timeout_s: float = 3.0,
    ) -> None:
        self.status_url = status_url
        self.errors_url = errors_url
        self.token = token
        self.timeout_s = timeout_s

    def _get(self, ctx: TenantContext, url: str) -> Any:
        if not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError("telemetry URLs must use https")
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - scheme checked
        secret = self.token(ctx) if self.token else None
        if secret:
            request.add_header("Authorization", f"Bearer {secret}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - scheme checked
                return json.loads(response.read(1_000_000))
        except (OSError, ValueError) as error:
            raise TransientFailure(f"telemetry: {type(error).__name__}") from error

    def recent_errors(
        self, ctx: TenantContext, account_id: str, *, limit: int = 20
    ) -> list[Mapping[str, Any]]:
        if not self.errors_url:
            return []
        query = urllib.parse.urlencode({"account_id": account_id, "limit": limit})
        data = self._get(ctx, f"{self.errors_url}?{query}")
        return [e for e in data.get("errors", []) if isinstance(e, dict)][:limit]

    def service_status(self, ctx: TenantContext) -> Mapping[str, Any]:
        if not self.status_url:
            return {"status": "unknown"}
        data = self._get(ctx, self.status_url)
        components = [
            {"name": c.get("name"), "status": c.get("status")}
            for c in data.get("components", [])
            if isinstance(c, dict) and c.get("status") != "operational"
        ]
        incidents = [
            {"name": i.get("name"), "status": i.get("status"), "impact": i.get("impact")}
            for i in data.get("incidents", [])
            if isinstance(i, dict)
        ]
        status = data.get("status", {}) if isinstance(data.get("status"), dict) else {}
        return {
            "indicator": status.get("indicator", "unknown"),
            "description": status.get("description", ""),
            "degraded_components": components,
            "incidents": incidents,
        }
