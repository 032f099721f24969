"""Tenant onboarding, tenant configuration, and the identity/entitlement records CRM and billing keep current.

Every change is an audit event. Admin changes are not about a ticket, so they use their own chains, named so they
can never collide with ticket ids (`tkt_...`, `cnv_...`): `tenant-config`, `customer-<id>`, `account-<id>`.
Secrets are written to the SecretStore and shown once to the operator; audit payloads name the provider only.
"""

from __future__ import annotations

import re
import secrets as token_source
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from deflect.domain import keys
from deflect.domain.errors import Conflict, MalformedPayload, NotFound
from deflect.domain.models import (
    Account,
    Customer,
    DecisionPolicy,
    DiagnosticsChecklist,
    Provider,
    SlaTier,
    TenantConfig,
    VouchingProviders,
    utcnow,
)
from deflect.domain.tenancy import TenantContext, validate_tenant_id
from deflect.ports import Delete, Put, SecretStore, SupportStore
from deflect.repositories import Accounts, Customers, TenantConfigs, bumped
from deflect.services.audit import AuditLog
from deflect.services.intake import API_PROVIDER, hash_api_key, new_api_key
from deflect.triage.policy import POLICY_CHAIN, change_writes, has_snapshot, snapshot_write

WEBHOOK_PROVIDERS: tuple[str, ...] = ("zendesk", "intercom", "freshdesk", "jira", "generic")
# Providers whose secret we may mint; Zendesk and Intercom generate theirs and the operator copies it in.
MINTED_SECRETS = {"freshdesk", "jira", "generic"}
CONFIG_CHAIN = "tenant-config"
# Config fields whose old and new values a change event keeps, so any past configuration can be rebuilt from the
# chain (a suspension told from a reactivation). None holds a secret (those live in the SecretStore); a new field
# is recorded only once it is listed here or in UNAUDITED_CONFIG_VALUES. The policy has its own versioned snapshots.
AUDITED_CONFIG_VALUES = frozenset(
    {
        "display_name",
        "status",
        "providers",
        "email_vouching_providers",
        "freshdesk_secret_header",  # the header's name, not the secret
        "default_locale",
        "escalation_queues",
        "max_reassign_hops",
        "sla_tiers",
        "diagnostics",
        "retention_days",
        "daily_budget_usd",
        "requests_per_minute",
    }
)
UNAUDITED_CONFIG_VALUES = frozenset({"policy"})
# Connections Deflect makes to the tenant's systems (see deflect.helpdesk.directory.secret_name).
WRITEBACK_CONNECTORS: tuple[str, ...] = ("zendesk", "intercom", "freshdesk", "jira", "crm", "generic")
WRITEBACK_SUFFIX = "-writeback"
TELEMETRY_SECRET = "telemetry"
ENTITY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[A-Za-z]{2,24}$")


def _entity_id(value: str, kind: str) -> str:
    if not ENTITY_ID.match(value or ""):
        raise MalformedPayload(f"{kind} id must match {ENTITY_ID.pattern}")
    return value


class _Patch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expected_version: int | None = Field(
        default=None, ge=0, description="optimistic lock: the version you read"
    )

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True, exclude={"expected_version"})


class PolicyVersionNotSettable(MalformedPayload):
    code = "policy_version_not_settable"
    public_message = "policy.version is assigned by the server: omit it (expected_version guards against concurrent changes)"


class PolicyUpdate(DecisionPolicy):
    """Decision policy fields to set; omitted fields keep their current value. Unknown fields are refused, so a
    misspelt threshold is an error rather than a silent no-op."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(
        default=1,
        description="assigned by the server (previous + 1 on each change); a request that sets it is refused (400)",
        json_schema_extra={"readOnly": True},
    )


class TenantConfigUpdate(_Patch):
    """Fields to set on the tenant configuration; omitted fields keep their value (inside `policy` too).

    A policy change is versioned: its version goes up by one, every version is kept (`deflect policy history`)
    and the change is audited as `policy.changed` with who made it."""

    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    status: Literal["active", "suspended"] | None = None
    providers: list[Provider] | None = None
    email_vouching_providers: VouchingProviders | None = Field(
        default=None,
        description="helpdesks whose requester emails name the CRM-verified customer with that email "
        "(zendesk, freshdesk, jira, generic); [] trusts none",
    )
    freshdesk_secret_header: str | None = None
    default_locale: str | None = Field(default=None, min_length=2, max_length=20)
    escalation_queues: list[str] | None = Field(default=None, min_length=1)
    max_reassign_hops: int | None = Field(default=None, ge=0, le=10)
    sla_tiers: dict[str, SlaTier] | None = None
    diagnostics: list[DiagnosticsChecklist] | None = None
    policy: PolicyUpdate | None = None
    retention_days: int | None = Field(default=None, ge=1, le=3650)
    daily_budget_usd: Decimal | None = Field(default=None, ge=0)
    requests_per_minute: int | None = Field(default=None, ge=1)

    @field_validator("freshdesk_secret_header")
    @classmethod
    def _header(cls, value: str | None) -> str | None:
        if value is not None and not HEADER_NAME.match(value):
            raise ValueError("header name: letters, digits and '-' only")
        return value

    @field_validator("policy", mode="before")
    @classmethod
    def _policy(cls, value: Any) -> Any:
        # Callers in code pass a DecisionPolicy; keep only the fields they set, as a JSON body would.
        if isinstance(value, DecisionPolicy) and not isinstance(value, PolicyUpdate):
            return value.model_dump(exclude_unset=True)
        return value


class CustomerUpdate(_Patch):
    email: str | None = None
    external_ids: dict[str, str] | None = None
    name: str | None = Field(default=None, max_length=200)
    account_id: str | None = None
    verified: bool = True  # identities supplied by CRM are verified

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not EMAIL.match(value):
            raise ValueError("not an email address")
        # As intake compares it (A-Z folded only): str.lower() would turn a look-alike ("\u212aate@") into kate@.
        return Customers.identity_value("email", value) if value else value


class AccountUpdate(_Patch):
    name: str | None = Field(default=None, max_length=200)
    plan: str | None = Field(default=None, min_length=1, max_length=100)
    sla_tier: str | None = Field(default=None, min_length=1, max_length=50)
    owner: str | None = Field(default=None, max_length=200)
    entitlements: list[str] | None = None


def _changed_values(before: TenantConfig, after: TenantConfig, fields: Iterable[str]) -> dict[str, Any]:
    """`{field: {"old": ..., "new": ...}}` for the audited fields set, as `triage.profile_updated` records them."""
    old, new = before.model_dump(mode="json"), after.model_dump(mode="json")
    return {name: {"old": old[name], "new": new[name]} for name in sorted(set(fields) & AUDITED_CONFIG_VALUES)}


def _check_version(current_version: int, expected: int | None) -> None:
    if expected is not None and expected != current_version:
        raise Conflict("record changed since it was read")


class TenantAdmin:
    def __init__(self, store: SupportStore, secrets: SecretStore, audit: AuditLog) -> None:
        self.store = store
        self.secrets = secrets
        self.audit = audit
        self.tenants = TenantConfigs(store)
        self.customers = Customers(store)
        self.accounts = Accounts(store)

    # ------------------------------------------------------------------ onboarding (CLI)

    def create(
        self,
        tenant_id: str,
        display_name: str,
        *,
        providers: list[str],
        actor: str,
        provided_secrets: dict[str, str] | None = None,
        freshdesk_secret_header: str | None = None,
    ) -> dict[str, Any]:
        ctx = TenantContext(tenant_id=validate_tenant_id(tenant_id), actor=actor, via="cli")
        unknown = sorted(set(providers) - set(WEBHOOK_PROVIDERS))
        if unknown:
            raise MalformedPayload(f"unknown providers: {', '.join(unknown)}")
        if self.tenants.find(ctx) is not None:
            raise Conflict("tenant already exists")
        fields: dict[str, Any] = {
            "tenant_id": tenant_id,
            "display_name": display_name,
            "providers": providers,
        }
        if freshdesk_secret_header:
            fields["freshdesk_secret_header"] = TenantConfigUpdate(
                freshdesk_secret_header=freshdesk_secret_header
            ).freshdesk_secret_header
        config = TenantConfig(**fields, updated_by=actor)
        self.audit.append(
            ctx,
            CONFIG_CHAIN,
            "tenant.created",
            {"tenant_id": tenant_id, "providers": providers, "version": 1},
            writes=[
                self.tenants.save_write(config),
                # policy history starts at the tenant's first policy, so `policy history` names who set v1
                snapshot_write(tenant_id, config.policy, changed_by=actor, changed_at=config.updated_at),
            ],
        )
        shown: dict[str, str] = {}
        for name in providers:
            value = (provided_secrets or {}).get(name) or (
                token_source.token_urlsafe(32) if name in MINTED_SECRETS else None
            )
            if value:
                self.secrets.put_secret(tenant_id, name, value, keep_previous=False)
                shown[name] = value
        api_key = self._mint_api_key(ctx, keep_previous=False)
        return {
            "tenant": tenant_id,
            "config": self.tenants.get(ctx).model_dump(mode="json"),
            "api_key": api_key,
            "webhook_secrets": shown,
            "secrets_still_needed": sorted(set(providers) - set(shown)),
        }

    def show(self, tenant_id: str) -> dict[str, Any]:
        ctx = TenantContext(tenant_id=validate_tenant_id(tenant_id), actor="cli:tenant", via="cli")
        config = self.tenants.find(ctx)
        if config is None:
            raise NotFound("tenant not found")
        names = (*config.providers, API_PROVIDER, TELEMETRY_SECRET)
        names += tuple(f"{c}{WRITEBACK_SUFFIX}" for c in WRITEBACK_CONNECTORS)
        secret_state = {name: len(self.secrets.secrets(tenant_id, name)) for name in names}
        return {
            "config": config.model_dump(mode="json"),
            # How many secrets each provider has (2 = mid-rotation); never the values.
            "secrets": secret_state,
            "webhook_paths": {p: f"/v1/webhooks/{p}/{tenant_id}" for p in config.providers},
        }

    def rotate_secret(
        self, tenant_id: str, provider_name: str, *, actor: str, value: str | None = None
    ) -> dict[str, Any]:
        """New current secret; the old one stays valid as `previous` until the next rotation."""
        ctx = TenantContext(tenant_id=validate_tenant_id(tenant_id), actor=actor, via="cli")
        self.tenants.get(ctx)
        if provider_name == API_PROVIDER:
            shown = self._mint_api_key(ctx, keep_previous=True)
        elif provider_name in WEBHOOK_PROVIDERS:
            if value is None and provider_name not in MINTED_SECRETS:
                raise MalformedPayload(f"{provider_name} generates its own secret: pass it with --value")
            shown = value or token_source.token_urlsafe(32)
            self.secrets.put_secret(tenant_id, provider_name, shown, keep_previous=True)
        else:
            raise MalformedPayload("unknown provider")
        self.audit.append(
            ctx, CONFIG_CHAIN, "tenant.secret_rotated", {"provider": provider_name}, actor=actor
        )
        return {"tenant": tenant_id, "provider": provider_name, "secret": shown, "previous_still_valid": True}

    def set_connection(self, tenant_id: str, name: str, value: str, *, actor: str) -> dict[str, Any]:
        """Store how Deflect reaches a tenant's systems: `<connector>-writeback` credentials (JSON, checked the way
        writeback will read them) or the `telemetry` bearer token of the diagnostic tools. Never echoed back."""
        ctx = TenantContext(tenant_id=validate_tenant_id(tenant_id), actor=actor, via="cli")
        self.tenants.get(ctx)
        if name == TELEMETRY_SECRET:
            if not value.strip():
                raise MalformedPayload("the telemetry token is empty")
        elif name.endswith(WRITEBACK_SUFFIX) and name[: -len(WRITEBACK_SUFFIX)] in WRITEBACK_CONNECTORS:
            # loaded here, not at module level: intake imports this module and should not pay for it
            from deflect.helpdesk.errors import HelpdeskNotConfigured
            from deflect.helpdesk.models import HelpdeskCredentials

            try:
                HelpdeskCredentials.parse(name[: -len(WRITEBACK_SUFFIX)], value)
            except HelpdeskNotConfigured as error:  # names the fields at fault, never their values
                fields = ", ".join(str(f) for f in error.context.get("fields") or [])  # type: ignore[union-attr]
                raise MalformedPayload(f"{error.detail}{': ' + fields if fields else ''}") from None
        else:
            raise MalformedPayload("unknown connection")
        self.secrets.put_secret(tenant_id, name, value, keep_previous=True)
        self.audit.append(ctx, CONFIG_CHAIN, "tenant.connection_set", {"name": name}, actor=actor)
        return {"tenant": tenant_id, "connection": name, "stored": True, "previous_still_valid": True}

    def _mint_api_key(self, ctx: TenantContext, *, keep_previous: bool) -> str:
        key = new_api_key(ctx.tenant_id)
        # Only the hash is stored; the key itself is shown once.
        self.secrets.put_secret(ctx.tenant_id, API_PROVIDER, hash_api_key(key), keep_previous=keep_previous)
        return key

    # ------------------------------------------------------------------ admin API

    def update_config(self, ctx: TenantContext, tenant_id: str, update: TenantConfigUpdate) -> TenantConfig:
        """Apply a config patch in one audited transaction, guarded on the config version read.

        A changed policy gets the next version, a snapshot, and the event `policy.changed` (actor, from/to policy
        version, policy fields changed, plus the config fields and version); an identical policy keeps its version.
        """
        if tenant_id != ctx.tenant_id:
            raise NotFound("tenant not found")  # another tenant's config does not exist for this caller
        current = self.tenants.find(ctx)
        if current is None:
            raise NotFound("tenant not found")
        _check_version(current.version, update.expected_version)
        changes = update.changes()
        policy_sent = "policy" in changes
        policy_fields = changes.pop("policy", None) or {}
        if policy_sent and update.policy is None:
            raise MalformedPayload("configuration is not valid: policy is null")
        if "version" in policy_fields:
            raise PolicyVersionNotSettable()
        try:
            merged = TenantConfig.model_validate(
                {
                    **current.model_dump(),
                    **changes,
                    "updated_by": ctx.actor,
                    "updated_at": utcnow(),
                }
            )
            # merged per field: a PUT of only rollout_default must not reset the thresholds to their defaults.
            # Checked only when sent: a policy stored before the bounds must not block a PUT of the display name.
            proposed = (
                DecisionPolicy.model_validate({**current.policy.model_dump(), **policy_fields})
                if policy_sent
                else current.policy
            )
        except ValidationError as error:
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in error.errors()})
            raise MalformedPayload(f"configuration is not valid: {', '.join(fields)}") from error
        if policy_sent:
            updated, writes, payload = change_writes(
                merged,
                proposed,
                actor=ctx.actor,
                record_previous=not has_snapshot(self.store, ctx, current.policy.version),
            )
            if writes:
                # One transaction carries one audit event: the policy event also names the other fields it wrote.
                self.audit.append(
                    ctx,
                    POLICY_CHAIN,
                    "policy.changed",
                    {
                        **payload,
                        "fields": sorted([*changes, "policy"]),
                        "version": current.version + 1,
                        "values": _changed_values(current, merged, changes),
                    },
                    writes=writes,
                )
                return bumped(updated)
        if not changes:
            return current  # nothing to set (or the current policy again): nothing to write, version or audit
        self.audit.append(
            ctx,
            CONFIG_CHAIN,
            "tenant.config_updated",
            {
                "actor": ctx.actor,
                "fields": sorted(changes),
                "version": current.version + 1,
                "values": _changed_values(current, merged, changes),
            },
            writes=[self.tenants.save_write(merged)],
        )
        return bumped(merged)

    def put_customer(self, ctx: TenantContext, customer_id: str, update: CustomerUpdate) -> Customer:
        customer_id = _entity_id(customer_id, "customer")
        if update.account_id is not None:
            _entity_id(update.account_id, "account")
        current = self.customers.get(ctx, customer_id)
        changes = update.changes()
        changes.setdefault("verified", update.verified)
        if current is None:
            record = Customer(tenant_id=ctx.tenant_id, customer_id=customer_id, **changes)
            stale: list[Delete] = []
        else:
            _check_version(current.version, update.expected_version)
            record = current.model_copy(update={**changes, "updated_at": utcnow()})
            stale = self._stale_identities(current, record)
        writes: list[Put | Delete] = [
            *self.customers.save_writes(record),
            *stale,
            *self._identity_claims(ctx, current, record),
        ]
        self.audit.append(
            ctx,
            f"customer-{customer_id}",
            "customer.created" if current is None else "customer.updated",
            {
                "customer_id": customer_id,
                "fields": sorted(changes),
                "verified": record.verified,
                "account_id": record.account_id,
            },
            writes=writes,
        )
        return bumped(record)

    def _identity_claims(self, ctx: TenantContext, before: Customer | None, after: Customer) -> list[Put | Delete]:
        """One verified customer per identity, or tickets from it could carry either customer's plan and SLA: new
        identities are claimed create-once (two concurrent claims cannot both land), dropped ones released. (An
        unverified customer intake made from the person's earlier messages may share one: the verified one wins.)"""
        held = set(Customers.identities(before)) if before is not None and before.verified else set()
        wanted = set(Customers.identities(after)) if after.verified else set()
        writes: list[Put | Delete] = []
        for kind, value in sorted(wanted):
            owner = self.customers.claimant(ctx, kind, value)
            if owner == after.customer_id:
                continue
            # Customers saved before claims existed are found through the lookup index.
            others = [owner] if owner else [
                c.customer_id for c in self.customers.holders(ctx, kind, value)
                if c.verified and c.customer_id != after.customer_id
            ]  # fmt: skip
            if others:
                what = "email" if kind == "email" else f"{kind.removeprefix('ext:')} id"
                raise Conflict(f"that {what} already identifies customer {others[0]}")
            writes.append(self.customers.claim_write(ctx.tenant_id, kind, value, after.customer_id))
        for kind, value in sorted(held - wanted):
            if self.customers.claimant(ctx, kind, value) == after.customer_id:
                writes.append(Delete(pk=Customers.claim_pk(ctx.tenant_id, kind, value), sk="OWNER"))
        return writes

    @staticmethod
    def _stale_identities(before: Customer, after: Customer) -> list[Delete]:
        """Lookup items for identities the customer no longer has (so requesters stop resolving to them)."""

        def kinds(c: Customer) -> set[str]:
            return {kind for kind, _ in Customers.identities(c)}

        pk = keys.customer_pk(before.tenant_id, before.customer_id)
        return [Delete(pk=pk, sk=f"REQ#{kind}") for kind in sorted(kinds(before) - kinds(after))]

    def put_account(self, ctx: TenantContext, account_id: str, update: AccountUpdate) -> Account:
        account_id = _entity_id(account_id, "account")
        config = self.tenants.get(ctx)
        if update.sla_tier is not None and update.sla_tier not in config.sla_tiers:
            raise MalformedPayload(
                f"unknown SLA tier; this tenant has: {', '.join(sorted(config.sla_tiers))}"
            )
        current = self.accounts.get(ctx, account_id)
        changes = update.changes()
        if current is None:
            record = Account(tenant_id=ctx.tenant_id, account_id=account_id, **changes)
        else:
            _check_version(current.version, update.expected_version)
            record = current.model_copy(update={**changes, "updated_at": utcnow()})
        self.audit.append(
            ctx,
            f"account-{account_id}",
            "account.created" if current is None else "account.updated",
            {
                "account_id": account_id,
                "fields": sorted(changes),
                "plan": record.plan,
                "sla_tier": record.sla_tier,
                "entitlements": record.entitlements,
            },
            writes=[self.accounts.save_write(record)],
        )
        return bumped(record)
