"""Where escalation records live in SupportTable, and the ports the escalation services share.

| item | PK | SK |
|---|---|---|
| decision on a task | `T#{t}#TASK#{task}` | `DECISION` (one per task: the guard against a second decision) |
| decision id | `T#{t}#TASKDECISION#{decision_id}` | `META` (idempotency by the agent's decision_id) |
| step done | `T#{t}#TICKET#{ticket}` | `ESCALATION#{execution}#{step}` (exactly-once workflow steps) |
| the ticket's latest escalation | `T#{t}#TICKET#{ticket}` | `ESCALATION#OPEN` (open until its execution is decided, expired or failed) |
| an account action queued | `T#{t}#TICKET#{ticket}` | `ACTION#{sha256 of kind, amount, currency, target}` (once per ticket) |
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from deflect.domain import keys
from deflect.domain.canonical import sha256_hex
from deflect.domain.models import EvidenceRef, RequestedAction, TenantConfig, utcnow
from deflect.domain.tenancy import TenantContext
from deflect.escalation.models import Delivery, TaskDecision
from deflect.escalation.policy import supervisor_queue
from deflect.observability import metrics
from deflect.ports import (
    Delete,
    EvidenceStore,
    Item,
    Notifier,
    Put,
    SupportStore,
    TokenCipher,
    Workflow,
    WorkQueue,
)
from deflect.repositories import Outbox, Tasks, TenantConfigs, Tickets, put_new
from deflect.services.audit import AuditLog

log = logging.getLogger(__name__)


@dataclass
class EscalationPorts:
    store: SupportStore
    evidence: EvidenceStore
    audit: AuditLog
    workflow: Workflow
    cipher: TokenCipher
    notifier: Notifier
    writeback: WorkQueue
    now: Callable[[], datetime] = field(default=utcnow)
    sleep: Callable[[float], None] = field(default=time.sleep)
    # Summaries quote the customer: sealed with their data key when known, so erasure can shred them.
    seal_for_customer: Callable[[TenantContext, str, str, bytes, str], EvidenceRef] | None = None

    @property
    def tasks(self) -> Tasks:
        return Tasks(self.store)

    @property
    def tickets(self) -> Tickets:
        return Tickets(self.store)

    @property
    def tenants(self) -> TenantConfigs:
        return TenantConfigs(self.store)

    @property
    def outbox(self) -> Outbox:
        return Outbox(self.store)

    @property
    def decisions(self) -> TaskDecisions:
        return TaskDecisions(self.store)


def task_id_for(execution: str, kind: str, hops: int) -> str:
    """One task per execution, review kind and hop: a retried or re-opened step finds the same task."""
    return "task_" + sha256_hex(f"{execution}:{kind}:{hops}".encode())[:32]


def outbox_id_for(execution: str, step: str, kind: str) -> str:
    return "obx_" + sha256_hex(f"{execution}:{step}:{kind}".encode())[:32]


def step_key(tenant_id: str, ticket_id: str, execution: str, step: str) -> tuple[str, str]:
    return keys.ticket_pk(tenant_id, ticket_id), f"ESCALATION#{execution}#{step}"


def action_key(tenant_id: str, ticket_id: str, action: RequestedAction) -> tuple[str, str]:
    """Where the ticket records that this account action is queued: the same kind, amount (1E+2 = 100.00),
    currency and target is one action, whichever escalation approved it."""
    amount = "" if action.amount is None else format(action.amount.normalize(), "f")
    what = f"{action.kind}|{amount}|{(action.currency or '').upper()}|{action.target or ''}"
    return keys.ticket_pk(tenant_id, ticket_id), "ACTION#" + sha256_hex(what.encode())


OPEN_SK = "ESCALATION#OPEN"
# Step markers after which a follow-up can change nothing of the escalation: the agents' final decision was turned
# into outbox items, the outcome recorded, every queue let its review expire, or the workflow failed (its state went
# to the human failure queue: no task takes the follow-up any more).
CLOSING_STEPS = ("writeback", "completed", "review_expired", "failed")
# Beyond the longest review a tenant's SLA allows: step retries, and a review timeout raised while a task waited.
REVIEW_MARGIN = timedelta(days=1)


def longest_review(config: TenantConfig) -> timedelta:
    """How long an escalation of this tenant can run at most (deflect.escalation.policy): each queue of the longest
    plan (its generic tiers up to `max_reassign_hops`, then the supervisor's) waits the slowest SLA tier's review
    timeout twice (a first approval just before due, then the second approval's own window), plus REVIEW_MARGIN."""
    ladder = [q for q in config.escalation_queues if q != supervisor_queue(config)]
    queues = min(max(0, config.max_reassign_hops), len(ladder)) + 1
    slowest = max((tier.review_timeout_seconds for tier in config.sla_tiers.values()), default=0)
    return timedelta(seconds=2 * queues * slowest) + REVIEW_MARGIN


class OpenEscalation(BaseModel):
    """The ticket's latest escalation, as started: while its execution is neither decided nor expired, a customer's
    follow-up joins it (deflect.triage.service) instead of starting another."""

    execution: str
    decision_id: str
    message_id: str | None = None
    proposed_action: RequestedAction = Field(default_factory=RequestedAction)
    opened_at: datetime
    follow_ups: int = 0


class OpenEscalations:
    """One `ESCALATION#OPEN` item per ticket, replaced (guarded on the version read) only once its escalation closed:
    two escalations of one ticket cannot be open at once, also when two messages are triaged side by side."""

    def __init__(self, store: SupportStore, now: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.now = now

    def latest(self, ctx: TenantContext, ticket_id: str) -> Item | None:
        return self.store.get(ctx, keys.ticket_pk(ctx.tenant_id, ticket_id), OPEN_SK)

    def is_closed(self, ctx: TenantContext, ticket_id: str, execution: str) -> bool:
        pk = keys.ticket_pk(ctx.tenant_id, ticket_id)
        done = self.store.query(ctx, pk, f"ESCALATION#{execution}#")
        return any(i.sk.rsplit("#", 1)[-1] in CLOSING_STEPS for i in done)

    def has_run(self, ctx: TenantContext, ticket_id: str, execution: str) -> bool:
        """Whether the execution already ran a step (starting it again is a no-op)."""
        pk = keys.ticket_pk(ctx.tenant_id, ticket_id)
        return bool(self.store.query(ctx, pk, f"ESCALATION#{execution}#", limit=1))

    def current(self, ctx: TenantContext, ticket_id: str, item: Item | None = None) -> OpenEscalation | None:
        """The ticket's escalation if it is still open (`item`: the record, when the caller read it already)."""
        item = item if item is not None else self.latest(ctx, ticket_id)
        if item is None:
            return None
        found = OpenEscalation.model_validate(item.data)
        if self.is_closed(ctx, ticket_id, found.execution) or self.outlived(ctx, found):
            return None
        return found

    def outlived(self, ctx: TenantContext, record: OpenEscalation) -> bool:
        """Open for longer than any review of the tenant can take (`longest_review`): its workflow ended without a
        closing marker (its failure step failed too, or it was stopped), so no task takes a follow-up any more."""
        age = self.now() - record.opened_at
        if age <= REVIEW_MARGIN:
            return False  # no config read while the escalation is young
        config = TenantConfigs(self.store).find(ctx)
        if config is None or age <= longest_review(config):
            return False
        log.warning("escalation %s still open after the longest review: counted as closed", record.execution)
        return True

    @staticmethod
    def write(tenant_id: str, ticket_id: str, record: OpenEscalation, previous: Item | None) -> Put:
        """The record, guarded on what was read: new, or the version of the record it replaces or updates."""
        data: dict[str, Any] = record.model_dump(mode="json")
        pk = keys.ticket_pk(tenant_id, ticket_id)
        if previous is None:
            return Put(pk=pk, sk=OPEN_SK, data=data, expect="new")
        return Put(pk=pk, sk=OPEN_SK, data=data, expect="version", expected_version=previous.version)


def count(name: str, value: float = 1, unit: str = "Count") -> None:
    metrics().add_metric(name=name, unit=unit, value=value)


class TaskDecisions:
    def __init__(self, store: SupportStore) -> None:
        self.store = store

    def for_task(self, ctx: TenantContext, task_id: str) -> TaskDecision | None:
        item = self.store.get(ctx, keys.task_pk(ctx.tenant_id, task_id), "DECISION")
        return TaskDecision.model_validate(item.data) if item else None

    def by_id(self, ctx: TenantContext, decision_id: str) -> TaskDecision | None:
        item = self.store.get(ctx, keys.entity_pk(ctx.tenant_id, "TASKDECISION", decision_id), "META")
        return self.for_task(ctx, item.data["task_id"]) if item else None

    def mark(self, ctx: TenantContext, task_id: str, delivery: Delivery) -> None:
        """Move the task's decision to `delivery`, guarded on the version read: never back from delivered, and
        never onto a decision taken back meanwhile. Raises Conflict when it changed under us."""
        item = self.store.get(ctx, keys.task_pk(ctx.tenant_id, task_id), "DECISION")
        if item is None:
            return
        record = TaskDecision.model_validate(item.data)
        if record.delivery in ("delivered", delivery):
            return
        marked = record.model_copy(update={"delivery": delivery}).model_dump(mode="json")
        self.store.put(
            ctx, Put(pk=item.pk, sk=item.sk, data=marked, expect="version", expected_version=item.version)
        )

    @staticmethod
    def writes(record: TaskDecision) -> list[Put]:
        """Both guarded as new: a second decision on the task, or a reused decision_id, cancels the transaction."""
        t = record.tenant_id
        return [
            put_new(keys.task_pk(t, record.task_id), "DECISION", record),
            Put(
                pk=keys.entity_pk(t, "TASKDECISION", record.decision_id),
                sk="META",
                data={"task_id": record.task_id, "actor": record.actor},
                expect="new",
            ),
        ]

    @staticmethod
    def delete_writes(record: TaskDecision) -> list[Delete]:
        t = record.tenant_id
        return [
            Delete(keys.task_pk(t, record.task_id), "DECISION"),
            Delete(keys.entity_pk(t, "TASKDECISION", record.decision_id), "META"),
        ]
