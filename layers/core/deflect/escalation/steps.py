"""The workflow steps around the human task: summarize, route, acknowledge, apply the decision, hand the effects
to the outbox, record the outcome; or, when no queue decided in time, hand the escalation back to the helpdesk.

Each step that changes state does it once per execution: its result is stored with a step marker in the same
transaction as the change and the audit event, so a retried Lambda invocation returns the stored result.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any

from deflect.domain import keys
from deflect.domain.canonical import canonical_json
from deflect.domain.errors import Conflict, Forbidden, Gone, NotFound
from deflect.domain.models import EvidenceRef, HumanTask, OutboxItem, OutboxKind, TenantConfig, Ticket
from deflect.domain.tenancy import TenantContext
from deflect.escalation import policy
from deflect.escalation.acknowledgement import acknowledgement_text, language_of
from deflect.escalation.models import (
    AppliedDecision,
    EscalationState,
    ReviewRoute,
    SummaryResult,
    TaskDecision,
)
from deflect.escalation.records import (
    EscalationPorts,
    action_key,
    count,
    outbox_id_for,
    step_key,
    task_id_for,
)
from deflect.escalation.summary import (
    EscalationSummary,
    build_summary,
    collected_diagnostics,
    render_markdown,
    stored_document,
)
from deflect.ports import Put
from deflect.repositories import Accounts, Customers
from deflect.services import outbox as outbox_service
from deflect.triage import policy as triage_policy

ATTEMPTS = 5
EXPIRED_TAG = "deflect_review_expired"
# Statuses a late expiry note leaves alone: the ticket was settled on the helpdesk meanwhile.
SETTLED: frozenset[str] = frozenset({"resolved", "closed"})
# (result, audit type, audit payload, audit evidence, writes)
StepPlan = tuple[dict[str, Any], str, dict[str, Any], list[EvidenceRef], list[Put]]


class EscalationSteps:
    def __init__(self, ports: EscalationPorts) -> None:
        self.p = ports

    # ------------------------------------------------------------------ before the human task
    def summarize(self, ctx: TenantContext, state: EscalationState, execution: str) -> SummaryResult:
        def plan() -> StepPlan:
            ticket = self.p.tickets.require(ctx, state.ticket_id)
            config = self.p.tenants.get(ctx)
            customer = Customers(self.p.store).get(ctx, ticket.customer_id) if ticket.customer_id else None
            account = Accounts(self.p.store).get(ctx, ticket.account_id) if ticket.account_id else None
            messages = self.p.tickets.messages(ctx, state.ticket_id)
            # Each diagnostic with its value (redacted), so the agent does not have to ask the customer again.
            collected = collected_diagnostics(
                (
                    {**i.data, "name": i.data.get("name") or i.sk.removeprefix("DIAG#")}
                    for i in self.p.store.query(ctx, keys.ticket_pk(ctx.tenant_id, ticket.ticket_id), "DIAG#")
                ),
                messages,
                ticket.subject_redacted,
            )
            summary = build_summary(
                state,
                ticket,
                messages,
                customer,
                account,
                policy.sla_tier(config, state.sla_tier),
                collected,
            )
            document = canonical_json(stored_document(summary))
            if ticket.customer_id and self.p.seal_for_customer is not None:
                ref = self.p.seal_for_customer(
                    ctx, state.ticket_id, ticket.customer_id, document, "escalation_summary"
                )
            else:
                ref = self.p.evidence.put_evidence(ctx, state.ticket_id, document, "escalation_summary")
            result = SummaryResult(ref=ref).model_dump(mode="json")
            payload = {"decision_id": state.decision_id, "execution": execution, "summary_sha256": ref.sha256}
            return result, "escalation.summarized", payload, [ref], []

        return SummaryResult.model_validate(self._once(ctx, state, execution, "summarized", plan))

    def route(self, ctx: TenantContext, state: EscalationState) -> ReviewRoute:
        return policy.first_route(state, self.p.tenants.get(ctx))

    def acknowledge(self, ctx: TenantContext, state: EscalationState, execution: str) -> dict[str, Any]:
        """Tell the customer a person will follow up, and by when. Shadow mode keeps the AI invisible: the mode
        the tenant has now for this intent, not only the one triage decided under (a switch to shadow since the
        escalation started sends nothing; writeback checks once more before sending)."""
        config = self.p.tenants.get(ctx)
        intent = state.classification.intent
        guessed = triage_policy.intent_uncertain(config.policy, state.classification)
        mode = outbox_service.mode_now(config.policy, state.rollout_mode, intent, intent_uncertain=guessed)
        if mode == "shadow":
            return {"outbox_ids": [], "skipped": "shadow"}

        def plan() -> StepPlan:
            ticket = self.p.tickets.require(ctx, state.ticket_id)
            tier = policy.sla_tier(config, state.sla_tier)
            follow_up_by = state.escalated_at + timedelta(minutes=tier.first_response_minutes)
            language = language_of(state.language, ticket.locale, config.default_locale)
            text = acknowledgement_text(language, follow_up_by)
            item = _outbox(
                ticket,
                execution,
                "acknowledged",
                "public_reply",
                self.p.now(),
                body=text,
                intent=intent,
                rollout_mode=mode,
                intent_uncertain=guessed,
            )
            writes = outbox_service.writes([item])
            if ticket.status != "escalated":
                escalated = ticket.model_copy(update={"status": "escalated", "updated_at": self.p.now()})
                writes.append(self.p.tickets.save_write(escalated))
            payload = {
                "outbox_id": item.outbox_id,
                "language": language,
                "follow_up_by": follow_up_by.isoformat(),
            }
            return {"outbox_ids": [item.outbox_id]}, "escalation.acknowledged", payload, [], writes

        result = self._once(ctx, state, execution, "acknowledged", plan)
        self._dispatch(ctx, result["outbox_ids"])
        return result

    # ------------------------------------------------------------------ after the human task
    def apply_decision(self, ctx: TenantContext, state: EscalationState, execution: str) -> AppliedDecision:
        """Read the stored decision (never the callback's payload) and choose what happens next."""
        if state.route is None:
            raise NotFound("the escalation has no route")
        route = state.route
        task_id = task_id_for(execution, route.kind, route.hops)
        record = self.p.decisions.for_task(ctx, task_id)
        if record is None:
            raise Conflict("the workflow resumed without a stored decision")
        if record.delivery != "delivered":
            # Resuming here proves the callback arrived, even when the request that sent it could not say so.
            # A Conflict means that request marked it meanwhile.
            with suppress(Conflict):
                self.p.decisions.mark(ctx, task_id, "delivered")
        applied = {"task_id": task_id, "decision_id": record.decision_id, "outcome": record.outcome}
        if record.outcome == "reassign":
            return AppliedDecision(next="reassign", **applied)
        if record.outcome == "reject":
            return AppliedDecision(next="writeback", **applied)
        config = self.p.tenants.get(ctx)
        # Checked again here so that no path to the outbox bypasses the approval rules.
        if policy.needs_approver(record.action, config.policy) and "approver" not in record.actor_roles:
            raise Forbidden("decision without the approver role")
        if len(set(record.approvals)) < policy.approvals_needed(record, config.policy):
            return AppliedDecision(
                next="second_approval", route=policy.second_approval_route(route), **applied
            )
        return AppliedDecision(next="writeback", **applied)

    def enqueue_writeback(self, ctx: TenantContext, state: EscalationState, execution: str) -> dict[str, Any]:
        """The decision's customer-visible effects become outbox items, with the ticket's new status."""
        if state.applied is None:
            raise NotFound("no decision to write back")
        decision_id = state.applied.decision_id

        def plan() -> StepPlan:
            record = self.p.decisions.by_id(ctx, decision_id)
            if record is None:
                raise NotFound("decision not found")
            ticket = self.p.tickets.require(ctx, state.ticket_id)
            now = self.p.now()
            items = _effects(ticket, execution, record, now)
            if record.reply is not None and record.reply == state.proposed_reply:
                # The AI's proposal sent unchanged still quotes its articles: writeback checks them before sending.
                # An edited reply is the agent's own.
                items = outbox_service.citing(items, state.citations)
            items, guards, already = self._unless_queued(ctx, state.ticket_id, items)
            writes = [*outbox_service.writes(items), *guards]
            if record.outcome in ("approve", "edit") and ticket.status != "resolved":
                writes.append(
                    self.p.tickets.save_write(
                        ticket.model_copy(update={"status": "resolved", "updated_at": now})
                    )
                )
            ids = [item.outbox_id for item in items]
            payload = {"decision_id": decision_id, "outcome": record.outcome, "outbox_ids": ids}
            if already:
                payload["already_queued"] = already
            return (
                {"outbox_ids": ids, "outcome": record.outcome},
                "escalation.writeback_enqueued",
                payload,
                [],
                writes,
            )

        result = self._once(ctx, state, execution, "writeback", plan)
        self._dispatch(ctx, result["outbox_ids"])
        return result

    def record_outcome(self, ctx: TenantContext, state: EscalationState, execution: str) -> dict[str, Any]:
        if state.applied is None or state.route is None:
            raise NotFound("no decision to record")
        applied, route = state.applied, state.route

        def plan() -> StepPlan:
            record = self.p.decisions.by_id(ctx, applied.decision_id)
            if record is None:
                raise NotFound("decision not found")
            minutes = (record.decided_at - state.escalated_at).total_seconds() / 60
            result = {
                "outcome": record.outcome,
                "decided_by": record.deciders,
                "hops": route.hops,
            }
            payload = {
                **result,
                "decision_id": record.decision_id,
                "queue": route.queue,
                "minutes": round(minutes, 2),
            }
            return result, "escalation.completed", payload, [], []

        result = self._once(ctx, state, execution, "completed", plan)
        count("EscalationCompleted")
        return result

    # ------------------------------------------------------------------ no decision in any queue
    def note_review_expired(
        self, ctx: TenantContext, state: EscalationState, execution: str
    ) -> dict[str, Any]:
        """Every queue let its SLA pass. The escalation goes back to the helpdesk as a tagged internal note (the
        summary, diagnostics, proposed reply and action, the queues it waited in) through the outbox like any
        effect (a note overwrites nothing of an agent's), and the ticket's status says the review expired: the
        work is not left to the human failure queue's retention. Sends nothing to the customer, takes no action."""
        config = self.p.tenants.get(ctx)
        intent = state.classification.intent
        guessed = triage_policy.intent_uncertain(config.policy, state.classification)
        # Carried like the acknowledgement's: writeback holds the note back if the tenant is in shadow by then.
        mode = outbox_service.mode_now(config.policy, state.rollout_mode, intent, intent_uncertain=guessed)

        def plan() -> StepPlan:
            ticket = self.p.tickets.require(ctx, state.ticket_id)
            now = self.p.now()
            tasks = self._tasks_of(ctx, state, execution)
            follow_up_by = self._acknowledged_by(ctx, state, execution, config)
            text = _expired_note(self._stored_summary(ctx, state), state, tasks, follow_up_by)
            item = _outbox(
                ticket,
                execution,
                "review_expired",
                "internal_note",
                now,
                body=text,
                tags=[EXPIRED_TAG],
                intent=intent,
                rollout_mode=mode,
                intent_uncertain=guessed,
            )
            writes = outbox_service.writes([item])
            status = ticket.status
            if status not in SETTLED and status != "review_expired":
                status = "review_expired"
                expired = ticket.model_copy(update={"status": status, "updated_at": now})
                writes.append(self.p.tickets.save_write(expired))
            payload = {
                "outbox_id": item.outbox_id,
                "status": status,
                "tasks": [t.task_id for t in tasks],
                "queues": [t.queue for t in tasks],
            }
            result = {"outbox_ids": [item.outbox_id], "status": status}
            return result, "escalation.expiry_noted", payload, [], writes

        result = self._once(ctx, state, execution, "review_expired", plan)
        self._dispatch(ctx, result["outbox_ids"])
        return result

    # ------------------------------------------------------------------ the workflow failed
    def note_failed(self, ctx: TenantContext, state: EscalationState, execution: str) -> dict[str, Any]:
        """A step failed for good, so the escalation goes to the human failure queue: its `failed` marker closes the
        ticket's escalation (deflect.escalation.records.CLOSING_STEPS), and the customer's next message is triaged
        again instead of joining a task nobody will decide. Changes nothing else."""
        # The error's name only (an exception type, a States.* code): its cause may quote internals.
        error = str((state.error or {}).get("Error") or "unknown")[:200]

        def plan() -> StepPlan:
            payload = {"decision_id": state.decision_id, "execution": execution, "error": error}
            return {"error": error}, "escalation.failed", payload, [], []

        result = self._once(ctx, state, execution, "failed", plan)
        count("EscalationFailed")
        return result

    def _tasks_of(self, ctx: TenantContext, state: EscalationState, execution: str) -> list[HumanTask]:
        """This execution's tasks, in the order they were opened: one per hop, and a second approval's."""
        hops = state.route.hops if state.route else 0
        kinds = ("review", "second_approval")
        ids = [task_id_for(execution, kind, hop) for hop in range(hops + 1) for kind in kinds]
        found = [task for task in (self.p.tasks.get(ctx, i) for i in ids) if task is not None]
        return sorted(found, key=lambda t: t.created_at)

    def _stored_summary(self, ctx: TenantContext, state: EscalationState) -> EscalationSummary | None:
        """The summary the agents saw; None when there is none or the customer's data was erased since."""
        if state.summary is None:
            return None
        try:
            document = json.loads(self.p.evidence.read(ctx, state.summary.ref))
        except (Gone, NotFound):
            return None
        return EscalationSummary.model_validate(document["summary"])

    def _acknowledged_by(
        self, ctx: TenantContext, state: EscalationState, execution: str, config: TenantConfig
    ) -> datetime | None:
        """The follow-up time the customer was given (as `acknowledge` computes it); None when none was queued."""
        done = self.p.store.get(ctx, *step_key(ctx.tenant_id, state.ticket_id, execution, "acknowledged"))
        if done is None or not done.data["result"].get("outbox_ids"):
            return None
        tier = policy.sla_tier(config, state.sla_tier)
        return state.escalated_at + timedelta(minutes=tier.first_response_minutes)

    # ------------------------------------------------------------------ helpers
    def _once(
        self,
        ctx: TenantContext,
        state: EscalationState,
        execution: str,
        step: str,
        plan: Callable[[], StepPlan],
    ) -> dict[str, Any]:
        pk, sk = step_key(ctx.tenant_id, state.ticket_id, execution, step)
        for _ in range(ATTEMPTS):
            done = self.p.store.get(ctx, pk, sk)
            if done is not None:
                return done.data["result"]
            result, event, payload, evidence, writes = plan()
            marker = Put(pk=pk, sk=sk, data={"result": result, "at": self.p.now().isoformat()}, expect="new")
            try:
                self.p.audit.append(
                    ctx, state.ticket_id, event, payload, evidence=evidence, writes=[*writes, marker]
                )
                return result
            except Conflict:
                continue  # the ticket changed, or an earlier attempt finished meanwhile: look again
        raise Conflict(f"escalation step {step} kept conflicting")

    def _unless_queued(
        self, ctx: TenantContext, ticket_id: str, items: list[OutboxItem]
    ) -> tuple[list[OutboxItem], list[Put], list[dict[str, str]]]:
        """Each account action once per ticket: an action (kind, amount, currency, target) another escalation of the
        ticket queued already is dropped, and the internal note says which item carries it. The guard written with
        the items is new-only, so two escalations deciding at once conflict and the later one reads it again; a
        retry of the same step finds its own outbox id there."""
        kept: list[OutboxItem] = []
        guards: list[Put] = []
        already: list[dict[str, str]] = []
        for item in items:
            if item.kind != "account_action" or item.action is None:
                kept.append(item)
                continue
            pk, sk = action_key(ctx.tenant_id, ticket_id, item.action)
            held = self.p.store.get(ctx, pk, sk)
            if held is None or held.data.get("outbox_id") == item.outbox_id:
                if held is None:
                    data = {"outbox_id": item.outbox_id, "at": item.created_at.isoformat()}
                    guards.append(Put(pk=pk, sk=sk, data=data, expect="new"))
                kept.append(item)
                continue
            queued = self.p.outbox.get(ctx, held.data["outbox_id"])
            already.append(
                {
                    "kind": item.action.kind,
                    "outbox_id": item.outbox_id,
                    "queued_as": held.data["outbox_id"],
                    "status": queued.status if queued else "unknown",
                }
            )
        if not already:
            return kept, guards, already
        said = " ".join(
            f"Identical {a['kind']} already queued as {a['queued_as']} ({a['status']}): not queued again."
            for a in already
        )
        noted = [
            item.model_copy(update={"body": f"{item.body} {said}"}) if item.kind == "internal_note" else item
            for item in kept
        ]
        return noted, guards, already

    def _dispatch(self, ctx: TenantContext, outbox_ids: list[str]) -> None:
        """After the commit (also when a retried step found it done): wake the writeback consumer.
        Its receipts make a repeated message harmless."""
        found = (self.p.outbox.get(ctx, outbox_id) for outbox_id in outbox_ids)
        items = [item for item in found if item is not None and item.status == "pending"]
        outbox_service.enqueue(self.p.writeback, ctx, items)


def _outbox(
    ticket: Ticket, execution: str, step: str, kind: OutboxKind, now: datetime, **fields: Any
) -> OutboxItem:
    # Ids derive from the execution and step, so a retried step cannot create a second effect.
    item = outbox_service.new_item(ticket, kind, caused_by=f"escalation:{execution}", **fields)
    return item.model_copy(
        update={"outbox_id": outbox_id_for(execution, step, kind), "created_at": now, "updated_at": now}
    )


def _effects(ticket: Ticket, execution: str, record: TaskDecision, now: datetime) -> list[OutboxItem]:
    items: list[OutboxItem] = []
    if record.reply:
        items.append(_outbox(ticket, execution, "writeback", "public_reply", now, body=record.reply))
    if record.outcome in ("approve", "edit") and record.action.kind != "none":
        items.append(_outbox(ticket, execution, "writeback", "account_action", now, action=record.action))
    deciders = ", ".join(record.deciders)
    lines = [f"Deflect escalation: {record.outcome} by {deciders}."]
    if record.diff:
        lines.append("Edited: " + ", ".join(sorted(record.diff)) + ".")
    if record.note:
        lines.append(f"Note: {record.note}")
    items.append(_outbox(ticket, execution, "writeback", "internal_note", now, body=" ".join(lines)))
    return items


def _expired_note(
    summary: EscalationSummary | None,
    state: EscalationState,
    tasks: list[HumanTask],
    follow_up_by: datetime | None,
) -> str:
    sent = (
        "nothing was sent to the customer but the acknowledgement that a person would follow up by "
        f"{follow_up_by.isoformat(timespec='minutes')}"
        if follow_up_by
        else "nothing was sent to the customer"
    )
    lines = [
        f"Deflect: review expired — no decision was made; {sent}, and no account action was taken.",
        "Please pick this ticket up here: Deflect's task queue refuses a late decision.",
        "",
        "Waited in:",
        *(f"- {t.queue} (task {t.task_id}, due {t.due_at.isoformat(timespec='minutes')})" for t in tasks),
        *([] if tasks else ["- no task was opened"]),
        "",
    ]
    if summary is not None:
        # Evidence is named by kind and id: presigned links would expire long before the note does.
        lines.append(render_markdown(summary))
        if state.summary is not None:
            lines.append(f"Summary evidence: {state.summary.ref.sha256}")
    else:
        # No stored summary to quote (the customer's data was erased, or summarizing never finished): only what
        # Deflect itself decided, nothing of the customer's text.
        lines += [
            "The escalation summary is not available.",
            "Why escalated: " + ("; ".join(state.reasons) or "policy"),
            "Diagnostics missing: " + (", ".join(state.missing_diagnostics) or "none"),
            f"Proposed action: {state.proposed_action.kind}",
            "Evidence: " + (", ".join(ref.sha256 for ref in state.evidence_refs) or "none"),
        ]
    return "\n".join(lines).rstrip() + "\n"
