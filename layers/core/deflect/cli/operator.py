"""Who an operator's admin command acts as: the tenant (validated) and a named actor for the audit trail."""

from __future__ import annotations

import argparse
import getpass

from deflect.domain.tenancy import TenantContext, validate_tenant_id


def add_actor(parser: argparse.ArgumentParser) -> None:
    """--actor on a command that changes something: the audit trail names a person, not the command."""
    parser.add_argument(
        "--actor", default=None, help="who makes the change, for the audit trail (default: cli:<OS user>)"
    )


def operator_name(actor: str | None = None) -> str:
    """`actor` as given (e.g. "admin:dana"), else cli:<OS user>."""
    return actor or f"cli:{getpass.getuser()}"


def admin_context(tenant: str, actor: str | None = None) -> TenantContext:
    """`actor` as given (e.g. "admin:dana"), else cli:<OS user>, with the admin role."""
    who = operator_name(actor)
    return TenantContext(
        tenant_id=validate_tenant_id(tenant), actor=who, roles=frozenset({"admin"}), via="cli"
    )
