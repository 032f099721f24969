"""Triage: classification, grounded answers, diagnostics, the decision policy and rollout modes.

Entry points (for intake and the workers):

- `triage_message(container, ctx, ticket_id, message_id) -> TriageResult` — the synchronous path (conversation
  API) and what the SQS worker calls per message. Idempotent per message id: a second call returns the first
  decision (`replayed=True`) and finishes any hand-off a crash interrupted. `TriageResult.reply` is set only
  when the customer receives it now (rollout mode `auto`, outcome deflect / ask_diagnostics).
- `deflect.services.triage.sync_triage(container)` — the same, shaped as intake's `SyncTriage` seam
  (`(ctx, ticket_id, message_id) -> dict`).
- Queue message (intake → triage queue): `{"tenant_id", "ticket_id", "message_id", ...}`.

Modules: detectors (rules), intents (taxonomy, heads, classifier), classification, grounding, diagnostics,
policy, history (repeat contacts), profile (per-tenant model ids, tool grants), engine (assessment without
storage: used by evals and replay), service (the transaction and hand-offs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deflect.domain.tenancy import TenantContext
    from deflect.triage.service import TriageResult


def triage_message(container: Any, ctx: TenantContext, ticket_id: str, message_id: str) -> TriageResult:
    """Triage one stored message of `ticket_id` for `ctx.tenant_id` and return what it came to."""
    return container.triage.triage(ctx, ticket_id, message_id)


__all__ = ["triage_message"]
