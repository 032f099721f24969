"""Tenant ids and the resolved tenant context every read and write needs."""

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict

from deflect.domain.errors import InvalidTenant

TENANT_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")


def validate_tenant_id(value: str) -> str:
    if not isinstance(value, str) or not TENANT_ID_PATTERN.fullmatch(value):
        raise InvalidTenant("tenant id must match ^[a-z0-9][a-z0-9-]{2,62}$")
    return value


TenantId = Annotated[str, AfterValidator(validate_tenant_id)]

Role = Literal["agent", "approver", "supervisor", "admin", "service"]


class TenantContext(BaseModel):
    """Who is acting for which tenant. Built only from verified inputs (signature, JWT, API key)."""

    model_config = ConfigDict(frozen=True)

    tenant_id: TenantId
    actor: str
    roles: frozenset[Role] = frozenset()
    via: Literal["webhook", "jwt", "api_key", "cli", "system"] = "system"

    def has_role(self, role: Role) -> bool:
        return role in self.roles

    @classmethod
    def system(cls, tenant_id: str, actor: str = "deflect") -> "TenantContext":
        return cls(tenant_id=tenant_id, actor=actor, roles=frozenset({"service"}), via="system")
