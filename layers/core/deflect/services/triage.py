"""Triage as the intake capability's synchronous seam (`SyncTriage`): see deflect.triage.triage_message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deflect.domain.tenancy import TenantContext


def sync_triage(container: Any) -> Callable[[TenantContext, str, str], dict[str, Any]]:
    """`(ctx, ticket_id, message_id) -> TriageResult as a JSON-able dict`, idempotent per message id."""
    from deflect.triage import triage_message

    def run(ctx: TenantContext, ticket_id: str, message_id: str) -> dict[str, Any]:
        return triage_message(container, ctx, ticket_id, message_id).model_dump(mode="json")

    return run
