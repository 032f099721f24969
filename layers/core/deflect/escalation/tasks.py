"""Human tasks on the workflow side: open (store the task and its encrypted token), SLA check, reassignment.

The task token is a bearer credential for the workflow: it is encrypted with the tenant bound in the encryption
context, stored with its hash, and never logged or returned. Agents only ever see the opaque task id.
"""

from __future__ import annotations

import math
from datetime import timedelta

from deflect.domain.canonical import sha256_hex
from deflect.domain.errors import Conflict, NotFound
from deflect.domain.models import HumanTask
from deflect.domain.tenancy import TenantContext
from deflect.escalation import policy
from deflect.escalation.models import EscalationState, ReviewRoute
from deflect.escalation.records import EscalationPorts, count, task_id_for
from deflect.observability import logger

ATTEMPTS = 5


class HumanTasks:
    def __init__(self, ports: EscalationPorts) -> None:
        self.p = ports

    def current_task_id(self, state: EscalationState, execution: str) -> str:
        route = _route(state)
        return task_id_for(execution, route.kind, route.hops)

    def open(self, ctx: TenantContext, state: EscalationState, execution: str, token: str) -> dict[str, str]:
        """Store the task (first call) or its fresh token (a retry, or the wait resumed after an SLA warning)."""
        route = _route(state)
        task_id = task_id_for(execution, route.kind, route.hops)
        ciphertext = self.p.cipher.encrypt(ctx.tenant_id, token)
        digest = sha256_hex(token.encode())
        for _ in range(ATTEMPTS):
            existing = self.p.tasks.get(ctx, task_id)
            try:
                if existing is not None:
                    renewed = existing.model_copy(
                        update={
                            "token_ciphertext": ciphertext,
                            "token_sha256": digest,
                            "updated_at": self.p.now(),
                        }
                    )
                    self.p.store.put(ctx, self.p.tasks.save_write(renewed))
                    return {"task_id": task_id, "due_at": existing.due_at.isoformat()}
                task = self._new_task(ctx, state, route, task_id, execution)
                task = task.model_copy(update={"token_ciphertext": ciphertext, "token_sha256": digest})
                payload = {
                    "task_id": task_id,
                    "queue": task.queue,
                    "kind": route.kind,
                    "hops": route.hops,
                    "required_role": task.required_role,
                    "due_at": task.due_at.isoformat(),
                }
                self.p.audit.append(
                    ctx, task.ticket_id, "task.opened", payload, writes=[self.p.tasks.save_write(task)]
                )
                count("HumanTaskOpened")
                logger().info("human task opened", extra={"task_id": task_id, "queue": task.queue})
                return {"task_id": task_id, "due_at": task.due_at.isoformat()}
            except Conflict:
                continue  # someone else wrote the task meanwhile: read it again
        raise Conflict("could not store the human task")

    def _new_task(
        self, ctx: TenantContext, state: EscalationState, route: ReviewRoute, task_id: str, execution: str
    ) -> HumanTask:
        action, reply, approvals = state.proposed_action, state.proposed_reply, []
        if route.kind == "second_approval":
            # The second approver sees exactly what the first one approved (possibly edited).
            if state.applied is None:
                raise NotFound("second approval without a first decision")
            first = self.p.decisions.by_id(ctx, state.applied.decision_id)
            if first is None:
                raise NotFound("first decision not found")
            action, reply, approvals = first.action, first.reply, list(first.approvals)
        now = self.p.now()
        return HumanTask(
            tenant_id=ctx.tenant_id,
            task_id=task_id,
            ticket_id=state.ticket_id,
            queue=route.queue,
            required_role=route.required_role,
            due_at=now + timedelta(seconds=route.timeout_seconds),
            hops=route.hops,
            approvals=approvals,
            approvals_required=route.approvals_required,
            proposed_action=action,
            proposed_reply=reply,
            summary=state.summary.ref if state.summary else None,
            execution_name=execution,
            created_at=now,
            updated_at=now,
        )

    def check_sla(self, ctx: TenantContext, state: EscalationState, execution: str) -> ReviewRoute:
        """The wait ended without a decision: warn once when near due and wait out the rest, else reassign."""
        route = _route(state)
        task = self.p.tasks.get(ctx, task_id_for(execution, route.kind, route.hops))
        now = self.p.now()
        if task is not None and task.status in ("open", "claimed", "decided") and not route.warned:
            remaining = (task.due_at - now).total_seconds()
            if remaining > 0:
                detail = {
                    "task_id": task.task_id,
                    "ticket_id": task.ticket_id,
                    "queue": task.queue,
                    "due_at": task.due_at.isoformat(),
                }
                self.p.notifier.notify(ctx, "task_near_due", detail)
                count("HumanTaskNearDue")
                return route.model_copy(update={"warned": True, "wait_seconds": max(1, math.ceil(remaining))})
        return self.reassign(ctx, state, execution, reason="timeout")

    def reassign(
        self, ctx: TenantContext, state: EscalationState, execution: str, *, reason: str
    ) -> ReviewRoute:
        """Move the review to the next queue of the plan; `exhausted` after the supervisor's turn. Never approves."""
        route = _route(state)
        config = self.p.tenants.get(ctx)
        after = policy.next_route(route, state.proposed_action, config)
        task_id = task_id_for(execution, route.kind, route.hops)
        event = "escalation.review_expired" if after.exhausted else "task.reassigned"
        payload = {
            "task_id": task_id,
            "from": route.queue,
            "to": None if after.exhausted else after.queue,
        }
        payload |= {"hops": after.hops, "reason": reason}
        for _ in range(ATTEMPTS):
            task = self.p.tasks.get(ctx, task_id)
            if task is None:
                return after  # no task was ever stored for this hop: nothing to move or to tell anyone about
            if task.status in ("reassigned", "expired"):
                # Done by an earlier attempt of this step, whose notification may have failed after the commit
                # (a throttled publish is what made Step Functions retry): send it again. A duplicate alert is
                # harmless; a lost one leaves the next queue or the supervisor unaware.
                self._notify(ctx, task, event, payload)
                return after
            changes: dict[str, object] = {"status": "expired" if after.exhausted else "reassigned"}
            if reason == "timeout" and task.status == "decided":
                # The wait timed out, so the workflow never got this decision (its callback failed and no retry
                # came in time): take it back in the audit log, and the agent's late retry is told it expired.
                try:
                    self._take_back(ctx, task)
                except Conflict:
                    continue
                changes["decided_outcome"] = None
            writes = [
                self.p.tasks.save_write(task.model_copy(update={**changes, "updated_at": self.p.now()}))
            ]
            try:
                self.p.audit.append(ctx, task.ticket_id, event, payload, writes=writes)
            except Conflict:
                continue
            count("EscalationReviewExpired" if after.exhausted else "HumanTaskReassigned")
            self._notify(ctx, task, event, payload)
            return after
        raise Conflict("could not reassign the human task")

    def _notify(self, ctx: TenantContext, task: HumanTask, event: str, payload: dict[str, object]) -> None:
        self.p.notifier.notify(ctx, event.split(".")[-1], {"ticket_id": task.ticket_id, **payload})

    def _take_back(self, ctx: TenantContext, task: HumanTask) -> None:
        record = self.p.decisions.for_task(ctx, task.task_id)
        if record is None:
            return  # taken back by an earlier attempt of this step, or by the deciding request itself
        payload = {
            "task_id": task.task_id,
            "decision_id": record.decision_id,
            "outcome": record.outcome,
            "decided_by": record.actor,
            "reason": "timeout",
        }
        self.p.audit.append(
            ctx,
            task.ticket_id,
            "task.decision_undelivered",
            payload,
            writes=self.p.decisions.delete_writes(record),
        )
        count("HumanTaskDecisionUndelivered")
        logger().warning("undelivered decision taken back", extra={"task_id": task.task_id})


def _route(state: EscalationState) -> ReviewRoute:
    if state.route is None:
        raise NotFound("the escalation has no route yet")
    return state.route
