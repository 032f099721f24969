"""The demo tenant every local stack starts with: config, webhook secrets and five signed-in users."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from infra.local.dev_issuer import ISSUER, DevIssuer

DEMO_TENANT = "demo"
WEBHOOK_PROVIDERS = ("zendesk", "intercom", "freshdesk", "jira", "generic")


@dataclass(frozen=True)
class DemoUser:
    role: str
    sub: str
    email: str
    groups: tuple[str, ...]


# Two approvers: a refund above the tenant's two-person threshold needs a second approval by a different one.
DEMO_USERS = (
    DemoUser("agent", "demo-agent", "agent@demo.example", ("agent",)),
    DemoUser("approver", "demo-approver", "approver@demo.example", ("agent", "approver")),
    DemoUser("approver2", "demo-approver-2", "approver2@demo.example", ("agent", "approver")),
    DemoUser("supervisor", "demo-supervisor", "supervisor@demo.example", ("agent", "supervisor")),
    DemoUser("admin", "demo-admin", "admin@demo.example", ("admin",)),
)


def _private_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)


def webhook_secrets(data_dir: Path) -> dict[str, str]:
    """One secret per provider, made once per data dir so local signing scripts keep working after a restart."""
    path = data_dir / "demo-secrets.json"
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = [p for p in WEBHOOK_PROVIDERS if p not in known]
    if missing:
        known.update({p: secrets.token_urlsafe(32) for p in missing})
        _private_json(path, known)
    return known


def demo_api_key(data_dir: Path) -> str:
    """The demo tenant's conversation API key, kept in the data dir like its webhook secrets (only its hash is
    stored in the stack, as `deflect tenant create` does)."""
    from deflect.services.intake import new_api_key

    path = data_dir / "demo-api-key.json"
    if path.exists():
        return str(json.loads(path.read_text())["api_key"])
    key = new_api_key(DEMO_TENANT)
    _private_json(path, {"tenant": DEMO_TENANT, "api_key": key})
    return key


def seed_demo_tenant(
    container: Any, data_dir: Path, issuer: DevIssuer
) -> tuple[dict[str, str], dict[str, str]]:
    """Save the demo TenantConfig and webhook secrets through the app's own ports; write dev tokens.

    Returns (tokens by role, webhook secrets by provider).
    """
    from deflect.domain.models import TenantConfig
    from deflect.domain.tenancy import TenantContext
    from deflect.repositories import save
    from deflect.services.intake import API_PROVIDER, hash_api_key

    ctx = TenantContext.system(DEMO_TENANT, actor="local-stack")
    config = TenantConfig(
        tenant_id=DEMO_TENANT,
        display_name="Demo Company",
        providers=list(WEBHOOK_PROVIDERS),
        updated_by="local-stack",
    )
    save(container.store, ctx, [container.tenants.save_write(config)])
    found = webhook_secrets(data_dir)
    for provider, value in found.items():
        container.secrets.put_secret(DEMO_TENANT, provider, value, keep_previous=False)
    api_key = demo_api_key(data_dir)
    container.secrets.put_secret(DEMO_TENANT, API_PROVIDER, hash_api_key(api_key), keep_previous=False)

    tokens = {
        user.role: issuer.issue(
            sub=user.sub, email=user.email, tenant_id=DEMO_TENANT, groups=list(user.groups)
        )
        for user in DEMO_USERS
    }
    _private_json(
        data_dir / "tokens.json",
        {
            "tenant": DEMO_TENANT,
            "issuer": ISSUER,
            "tokens": tokens,
            "users": {u.role: {**asdict(u), "groups": list(u.groups)} for u in DEMO_USERS},
        },
    )
    return tokens, found
