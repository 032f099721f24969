"""Per-tenant triage settings that are not decision policy: model ids, guardrail, diagnostic tool grants,
telemetry endpoints, the repeat-contact window. Versioned, and every change is audited with who made it.

Stored at `T#{t}` / `TRIAGE#PROFILE`; a tenant without one gets the deployment defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from deflect.domain import keys
from deflect.domain.errors import MalformedPayload
from deflect.domain.models import DecisionOutcome, Versioned, utcnow
from deflect.domain.tenancy import Role, TenantContext, TenantId
from deflect.ports import SupportStore
from deflect.repositories import bumped, put_versioned
from deflect.triage.diagnostics import HttpTelemetrySource, ToolGrant

PROFILE_SK = "TRIAGE#PROFILE"
PROFILE_CHAIN = "tenant-config"
DEFAULT_RISK_TOLERANCE = 0.15
# Fields whose old and new values the change event keeps (numbers and ids; URLs may embed credentials, and tool
# grants are listed by field name only).
AUDITED_VALUES = frozenset(
    {
        "bedrock_model_id",
        "guardrail_id",
        "guardrail_version",
        "low_confidence_risk_tolerance",
        "repeat_window_days",
        "run_tools_for",
    }
)


class ToolGrantSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool: str = Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")
    # "service" is the triage worker itself; agents' roles let them run the tool from the task view.
    roles: list[Role] = Field(min_length=1)
    product_areas: list[str] = Field(default_factory=list)

    def grant(self) -> ToolGrant:
        return ToolGrant(self.tool, frozenset(self.roles), frozenset(self.product_areas))


class TriageProfile(Versioned):
    tenant_id: TenantId
    bedrock_model_id: str | None = None
    # The tenant's own guardrail needs its version (a number, or DRAFT deliberately); without its own guardrail
    # the deployment's BEDROCK_GUARDRAIL_ID and _VERSION apply, so a version alone means nothing and is dropped.
    guardrail_id: str | None = None
    guardrail_version: str | None = Field(default=None, pattern=r"^(?:DRAFT|[1-9][0-9]{0,7})$")
    tool_grants: list[ToolGrantSpec] = Field(default_factory=list)
    # Triage itself runs granted tools only for these outcomes: evidence for the humans who will look.
    run_tools_for: list[DecisionOutcome] = Field(default_factory=lambda: ["escalate", "ask_diagnostics"])
    telemetry_status_url: str | None = None
    telemetry_errors_url: str | None = None
    repeat_window_days: int = Field(default=14, ge=1, le=365)
    # A low-confidence intent escalates only if the classifier gives at least this much probability to intents
    # that always go to a human; 0 escalates every low-confidence classification.
    low_confidence_risk_tolerance: float = Field(default=DEFAULT_RISK_TOLERANCE, ge=0.0, le=1.0)
    updated_by: str = "system"
    updated_at: datetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _guardrail_has_a_version(self) -> TriageProfile:
        if self.guardrail_id and not self.guardrail_version:
            raise ValueError("guardrail_version is required with guardrail_id (a version number, or DRAFT)")
        if not self.guardrail_id and self.guardrail_version is not None:
            # Profiles stored before this rule carry the old default "DRAFT" without an id.
            self.guardrail_version = None
        return self

    def grants(self) -> list[ToolGrant]:
        return [g.grant() for g in self.tool_grants]


class TriageProfiles:
    def __init__(self, store: SupportStore) -> None:
        self.store = store

    def get(self, ctx: TenantContext) -> TriageProfile:
        item = self.store.get(ctx, keys.tenant_pk(ctx.tenant_id), PROFILE_SK)
        return TriageProfile.model_validate(item.data) if item else TriageProfile(tenant_id=ctx.tenant_id)

    def change(self, ctx: TenantContext, audit: Any, changes: dict[str, Any]) -> TriageProfile:
        """Apply field changes, bump the version, and audit who made them (chain `tenant-config`)."""
        fixed = sorted(set(changes) & {"tenant_id", "version", "updated_by", "updated_at"})
        if fixed:
            raise MalformedPayload(f"not changeable: {', '.join(fixed)}")
        if changes.get("guardrail_id") and "guardrail_version" not in changes:
            # Another guardrail's version number would silently apply to the new one.
            raise MalformedPayload("set guardrail_version together with guardrail_id (a version number, or DRAFT)")
        current = self.get(ctx)
        try:
            updated = TriageProfile.model_validate(
                {**current.model_dump(), **changes, "updated_by": ctx.actor, "updated_at": utcnow()}
            )
        except ValidationError as error:
            raise MalformedPayload("triage profile is not valid") from error
        write = put_versioned(keys.tenant_pk(ctx.tenant_id), PROFILE_SK, updated)
        audit.append(
            ctx,
            PROFILE_CHAIN,
            "triage.profile_updated",
            {
                "actor": ctx.actor,
                "fields": sorted(changes),
                "version": current.version + 1,
                # What a decision made under either version was decided with.
                "values": {
                    name: {"old": getattr(current, name), "new": getattr(updated, name)}
                    for name in sorted(set(changes) & AUDITED_VALUES)
                },
            },
            writes=[write],
        )
        return bumped(updated)


class ProfileTelemetry:
    """TelemetrySource per tenant: the endpoints in the tenant's triage profile, the bearer token in the
    SecretStore under provider `telemetry`."""

    def __init__(
        self, profiles: TriageProfiles, secrets: Any | None = None, *, timeout_s: float = 3.0
    ) -> None:
        self.profiles = profiles
        self.secrets = secrets
        self.timeout_s = timeout_s

    def _token(self, ctx: TenantContext) -> str | None:
        if self.secrets is None:
            return None
        found = self.secrets.secrets(ctx.tenant_id, "telemetry")
        return found[0] if found else None

    def _source(self, ctx: TenantContext) -> HttpTelemetrySource:
        profile = self.profiles.get(ctx)
        return HttpTelemetrySource(
            status_url=profile.telemetry_status_url,
            errors_url=profile.telemetry_errors_url,
            token=self._token,
            timeout_s=self.timeout_s,
        )

    def recent_errors(
        self, ctx: TenantContext, account_id: str, *, limit: int = 20
    ) -> list[Mapping[str, Any]]:
        return self._source(ctx).recent_errors(ctx, account_id, limit=limit)

    def service_status(self, ctx: TenantContext) -> Mapping[str, Any]:
        return self._source(ctx).service_status(ctx)
