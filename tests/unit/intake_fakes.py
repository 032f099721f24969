"""Ports that intake's unit tests share: a tenant without connections, and a delivery guard whose records expired."""

from __future__ import annotations

from typing import Any


class NoSecrets:
    """A tenant without any connection: no helpdesk, `generic-writeback` or CRM secrets."""

    def secrets(self, tenant_id: str, name: str) -> list[str]:
        return []


class ForgetfulGuard:
    """The delivery guard after its records expired: every request runs again."""

    def once(self, key: Any, fingerprint: Any, work: Any) -> Any:
        return work()
