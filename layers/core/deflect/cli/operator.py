"""Who an operator's admin command acts as: the tenant (validated) and a named actor for the audit trail."""

from __future__ import annotations

import getpass

from deflect.domain.tenancy import TenantContext, validate_tenant_id


def admin_context(tenant: str, actor: str | None = None) -> TenantContext:
    """`actor` as given (e.g. "admin:dana"), else cli:<OS user>, with the admin role."""
    who = actor or f"cli:{getpass.getuser()}"
    return TenantContext(
        tenant_id=validate_tenant_id(tenant), actor=who, roles=frozenset({"admin"}), via="cli"
    )
