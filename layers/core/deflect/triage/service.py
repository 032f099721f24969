"""The triage use case for one stored message: context → assessment → ONE audited transaction → hand-offs.

1. Resolve the tenant's config and triage profile, the ticket, the message, the customer, the account (plan,
   SLA tier, segments) and the customer's recent contacts.
2. Assess the message (deflect.triage.engine): classification, retrieval, grounded draft, diagnostics, policy.
3. Run the diagnostic tools the tenant granted to triage, when the outcome calls for human eyes; results are
   evidence.
4. Commit, in ONE transaction through AuditLog.append (`decision.made`): the Decision, the ticket's new status,
   the outbox items the rollout mode allows (a reply, a diagnostics request or an internal note), the extracted
   diagnostics, the contact record and a per-message marker that makes triage idempotent.
5. After the commit: enqueue the outbox items, and start the escalation workflow under a name unique to the
   decision. A crash between 4 and 5 is repaired by the next delivery of the same message (the marker says what
   was committed; both hand-offs are idempotent).

While the ticket's escalation is open (started, and neither decided nor expired), a customer's follow-up is not
decided again: it joins that escalation (`escalation.follow_up_attached`), its diagnostics are stored, and the open
task shows it with what it asks for. No reply, no second workflow, the ticket stays escalated.

Model output never triggers an action: account-changing actions only ever reach a human task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from deflect.domain import keys
from deflect.domain.canonical import canonical_json
from deflect.domain.errors import Conflict, NotFound
from deflect.domain.models import (
    Account,
    ArticleRef,
    AttachmentRead,
    AttachmentRef,
    Citation,
    Classification,
    Decision,
    DecisionOutcome,
    EvidenceRef,
    Message,
    OutboxItem,
    RequestedAction,
    RolloutMode,
    TenantConfig,
    Ticket,
    TicketStatus,
    utcnow,
)
from deflect.domain.tenancy import TenantContext
from deflect.escalation.records import OpenEscalation, OpenEscalations
from deflect.escalation.start import execution_name_for
from deflect.pii import redact
from deflect.ports import AttachmentReader, EvidenceStore, Item, Put, SupportStore, WorkQueue
from deflect.repositories import Accounts, Customers, Outbox, TenantConfigs, Tickets
from deflect.services import outbox as outbox_service
from deflect.triage import detectors, diagnostics
from deflect.triage import policy as triage_policy
from deflect.triage.engine import Assessment, TriageEngine
from deflect.triage.history import ContactHistory, ContactRecord
from deflect.triage.profile import TriageProfile, TriageProfiles

log = logging.getLogger(__name__)
MARKER_PREFIX = "TRIAGED#"
# Text attachments read per message for diagnostics (each is one HTTP call to the helpdesk).
MAX_ATTACHMENTS_READ = 3
DIAG_PREFIX = "DIAG#"
EVENT = "decision.made"
FOLLOW_UP_EVENT = "escalation.follow_up_attached"
OPEN_REASON = "escalation_open"
# Set on the escalating message's marker once its workflow start returned: a follow-up need not start it again.
STARTED = "started"


class TriageResult(BaseModel):
    """What one triaged message came to. `reply` is set only when the customer receives it now (auto mode)."""

    ticket_id: str
    message_id: str
    decision_id: str | None = None
    outcome: DecisionOutcome | Literal["skipped"]
    reasons: list[str] = Field(default_factory=list)
    rollout_mode: RolloutMode | None = None
    reply: str | None = None
    citations: list[Citation] = Field(default_factory=list)
    confidence: float | None = None
    classification: Classification | None = None
    missing_diagnostics: list[str] = Field(default_factory=list)
    escalated: bool = False
    execution_name: str | None = None
    outbox_ids: list[str] = Field(default_factory=list)
    replayed: bool = False
    # The open escalation (its execution) this follow-up joined; `decision_id` is then that escalation's decision.
    attached_to: str | None = None


@dataclass
class Handoffs:
    """What happens after the commit: the writeback queue and the escalation starter (both idempotent)."""

    writeback_queue: WorkQueue | None
    start_escalation: Callable[[Decision, Ticket, list[EvidenceRef]], str] | None
    observe: Callable[[TenantContext, Any], None] | None = None


def escalation_starter(workflow_owner: Any) -> Callable[[Decision, Ticket, list[EvidenceRef]], str]:
    """Start the escalation workflow (deflect.escalation) and return its execution name, unique per decision."""

    def start(decision: Decision, ticket: Ticket, refs: list[EvidenceRef]) -> str:
        from deflect.escalation import EscalationRequest, execution_name, start_escalation

        start_escalation(workflow_owner, decision, ticket, evidence=refs)
        return execution_name(EscalationRequest.from_decision(decision, ticket, evidence=refs))

    return start


class TriageService:
    def __init__(
        self,
        store: SupportStore,
        evidence: EvidenceStore,
        audit: Any,
        engine: TriageEngine,
        handoffs: Handoffs,
        *,
        tools: diagnostics.DiagnosticToolRegistry | None = None,
        seal_for_customer: Callable[[TenantContext, str, str, bytes, str], EvidenceRef] | None = None,
        attachments: AttachmentReader | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.evidence = evidence
        self.audit = audit
        self.engine = engine
        self.handoffs = handoffs
        self.tools = tools or diagnostics.DiagnosticToolRegistry()
        # (ctx, ticket_id, customer_id, body, kind) -> ref: tool output about a known customer is sealed with
        # their key so erasure shreds it; without it (unit harnesses without KMS) evidence is kept plain.
        self.seal_for_customer = seal_for_customer
        self.attachments = attachments
        self.clock = clock
        self.tickets = Tickets(store)
        self.tenants = TenantConfigs(store)
        self.customers = Customers(store)
        self.accounts = Accounts(store)
        self.profiles = TriageProfiles(store)
        self.history = ContactHistory(store)
        self.outbox = Outbox(store)

    # ------------------------------------------------------------------ entry point

    def triage(self, ctx: TenantContext, ticket_id: str, message_id: str) -> TriageResult:
        marker = self.store.get(ctx, keys.ticket_pk(ctx.tenant_id, ticket_id), MARKER_PREFIX + message_id)
        if marker is not None:
            return self._resume(ctx, ticket_id, message_id, marker.data)
        config = self.tenants.get(ctx)
        ticket = self.tickets.require(ctx, ticket_id)
        messages = self.tickets.messages(ctx, ticket_id)
        message = next((m for m in messages if m.message_id == message_id), None)
        if message is None:
            raise NotFound("message not found")
        if message.author != "customer":
            return TriageResult(
                ticket_id=ticket_id, message_id=message_id, outcome="skipped", reasons=["not_customer"]
            )
        now = self.clock()
        decisions = self.tickets.decisions(ctx, ticket_id)
        known = self._known_diagnostics(ctx, ticket_id)
        open_item = OpenEscalations(self.store).latest(ctx, ticket_id)
        escalation = self._open_escalation(ctx, ticket_id, open_item, decisions)
        if escalation is not None:
            self._start_if_never_started(ctx, ticket, escalation, decisions)
            return self._attach(ctx, config, ticket, message, escalation, open_item, decisions, known, now)

        profile = self.profiles.get(ctx)
        customer = self.customers.get(ctx, ticket.customer_id) if ticket.customer_id else None
        account_id = ticket.account_id or (customer.account_id if customer else None)
        account = self.accounts.get(ctx, account_id) if account_id else None
        history = self.history.recent(
            ctx,
            customer_id=ticket.customer_id,
            ticket_decisions=decisions,
            now=now,
            window_days=profile.repeat_window_days,
        )
        first = message is messages[0] if messages else True
        text = message_text(ticket.subject_redacted, message.body_redacted, first=first)
        assessment = self.engine.assess(
            ctx,
            text,
            config=config,
            attachments=self._with_text(ctx, config, ticket, message.attachments),
            history=history,
            ticket_id=ticket_id,
            known_diagnostics=known,
            requested_diagnostics=requested_diagnostics(decisions),
            **customer_options(profile, account, ticket),
        )
        tool_refs = self._run_tools(ctx, profile, assessment, ticket, account_id)
        return self._commit(ctx, ticket, message, assessment, tool_refs, now, known, open_item)

    # ------------------------------------------------------------------ context

    def _known_diagnostics(self, ctx: TenantContext, ticket_id: str) -> dict[str, str]:
        items = self.store.query(ctx, keys.ticket_pk(ctx.tenant_id, ticket_id), DIAG_PREFIX)
        return {i.data["name"]: str(i.data.get("value", "")) for i in items if "name" in i.data}

    def _open_escalation(
        self, ctx: TenantContext, ticket_id: str, item: Item | None, decisions: Sequence[Decision]
    ) -> OpenEscalation | None:
        """The ticket's escalation while it is open. Escalations started before the `ESCALATION#OPEN` record existed
        are found from the ticket's latest escalating decision."""
        escalations = OpenEscalations(self.store)
        if item is not None:
            return escalations.current(ctx, ticket_id, item)
        started = [d for d in decisions if d.outcome == "escalate" and d.rollout_mode != "shadow"]
        if not started:
            return None
        latest = max(started, key=lambda d: d.decided_at)
        asked = latest.classification.requested_action if latest.classification else RequestedAction()
        execution = execution_name_for(ctx.tenant_id, ticket_id, latest.decision_id)
        if escalations.is_closed(ctx, ticket_id, execution):
            return None
        found = OpenEscalation(
            execution=execution,
            decision_id=latest.decision_id,
            message_id=latest.message_id,
            proposed_action=asked,
            opened_at=latest.decided_at,
        )
        # The same age limit as a recorded one: an old escalation with no closing marker takes no follow-ups.
        return None if escalations.outlived(ctx, found) else found

    def _with_text(
        self, ctx: TenantContext, config: TenantConfig, ticket: Ticket, attachments: Sequence[AttachmentRef]
    ) -> list[AttachmentRef]:
        """The message's attachments, the first few text files and archives with what they say (for diagnostics
        only), each with how reading it went (`read`): the decision records it, and a log that failed to download
        is not asked for again as if none had been attached."""
        if self.attachments is None or not diagnostics.wants_attached_text(config):
            return list(attachments)
        out: list[AttachmentRef] = []
        reads = 0
        for attachment in attachments:
            if not diagnostics.is_readable_attachment(attachment):
                read = AttachmentRead(outcome="skipped", reason="type")
            elif reads >= MAX_ATTACHMENTS_READ:
                read = AttachmentRead(outcome="skipped", reason="read_limit")
            else:
                reads += 1
                read = _read_attachment(self.attachments, ctx, ticket, attachment)
            out.append(attachment.model_copy(update={"text": read.text, "read": read}))
        return out

    def _run_tools(
        self,
        ctx: TenantContext,
        profile: TriageProfile,
        assessment: Assessment,
        ticket: Ticket,
        account_id: str | None,
    ) -> list[EvidenceRef]:
        if assessment.outcome not in profile.run_tools_for:
            return []
        grants = profile.grants()
        area = assessment.classification.product_area
        worker = ctx if "service" in ctx.roles else TenantContext.system(ctx.tenant_id, ctx.actor)
        seal = diagnostics.sealed_for(self.seal_for_customer, ticket.customer_id)

        results = []
        for name in self.tools.allowed(grants, worker.roles, area):
            subject = {"ticket_id": ticket.ticket_id, "account_id": account_id, "product_area": area}
            results.append(
                self.tools.run(
                    worker,
                    name,
                    subject,
                    grants=grants,
                    product_area=area,
                    evidence=self.evidence,
                    seal=seal,
                )
            )
        refs = [r.evidence for r in results if r.evidence is not None]
        if refs:
            # Collected is a fact of its own, true even if the decision's transaction then loses a race.
            payload = {"names": [r.tool for r in results], "ok": [r.tool for r in results if r.ok]}
            self.audit.append(
                ctx, ticket.ticket_id, "diagnostics.collected", payload, actor="triage", evidence=refs
            )
        return refs

    # ------------------------------------------------------------------ the transaction

    def _commit(
        self,
        ctx: TenantContext,
        ticket: Ticket,
        message: Message,
        assessment: Assessment,
        tool_refs: list[EvidenceRef],
        now: datetime,
        known: dict[str, str],
        open_item: Item | None = None,
    ) -> TriageResult:
        """`open_item`: the ticket's `ESCALATION#OPEN` record as read (closed), which an escalation replaces."""
        a = assessment
        decision = Decision(
            tenant_id=ctx.tenant_id,
            ticket_id=ticket.ticket_id,
            outcome=a.decision.outcome,
            reasons=a.decision.reasons,
            classification=a.classification,
            retrieved=[_ref(h) for h in a.hits],
            draft=a.draft,
            missing_diagnostics=a.missing_diagnostics,
            customer_reply=self._reply(a),
            model_id=a.model_id,
            prompt_sha256=a.prompt_sha256,
            policy_version=a.policy.version,
            rollout_mode=a.mode,
            decided_at=now,
            message_id=message.message_id,
        )
        # The Decision itself plus every input that produced it (labels, ids, scores, hashes; no customer text).
        body = canonical_json(
            {
                "message_id": message.message_id,
                "decision": decision.model_dump(mode="json", exclude={"evidence"}),
                **a.evidence(),
            }
        )
        inputs_ref = self.evidence.put_evidence(ctx, ticket.ticket_id, body, "decision")
        decision = decision.model_copy(update={"evidence": inputs_ref})

        items = self._outbox_items(ticket, decision, a)
        escalate = a.outcome == "escalate" and a.mode != "shadow"
        status = _status(a.outcome, a.mode, ticket.status)
        writes: list[Put] = [Tickets.decision_write(decision)]
        if status != ticket.status:
            writes.append(
                self.tickets.save_write(ticket.model_copy(update={"status": status, "updated_at": now}))
            )
        writes += outbox_service.writes(items)
        writes += _diagnostic_writes(ctx, ticket, message, a.provided_diagnostics, known, now)
        if escalate:
            # Guarded on the record read: a second escalation of the ticket cannot open beside this one.
            opened = OpenEscalation(
                execution=execution_name_for(ctx.tenant_id, ticket.ticket_id, decision.decision_id),
                decision_id=decision.decision_id,
                message_id=message.message_id,
                proposed_action=a.classification.requested_action,
                opened_at=now,
            )
            writes.append(OpenEscalations.write(ctx.tenant_id, ticket.ticket_id, opened, open_item))
        sent = a.mode != "shadow"
        if ticket.customer_id:
            record = ContactRecord.from_decision(decision, message.message_id, sent=sent)
            writes.append(ContactHistory.write(ctx.tenant_id, ticket.customer_id, record))
        marker = {
            "decision_id": decision.decision_id,
            "decision_sk": Tickets.decision_write(decision).sk,
            "outbox_ids": [i.outbox_id for i in items],
            "escalate": escalate,
            # A crash before the hand-off resumes from this marker: the escalation still gets the tool results.
            "tool_refs": [r.model_dump(mode="json") for r in tool_refs],
            "at": now.isoformat(),
        }
        writes.append(
            Put(
                pk=keys.ticket_pk(ctx.tenant_id, ticket.ticket_id),
                sk=MARKER_PREFIX + message.message_id,
                data=marker,
                expect="new",
            )
        )
        payload = {
            "decision_id": decision.decision_id,
            "message_id": message.message_id,
            "outcome": decision.outcome,
            "reasons": decision.reasons,
            "classification": a.classification.model_dump(mode="json"),
            "retrieved": [
                {"article_id": h.article_id, "version": h.version, "score": round(h.score, 4)} for h in a.hits
            ],
            "confidence": a.draft.confidence if a.draft else None,
            "grounded": bool(a.draft and a.draft.grounded),
            "model_id": decision.model_id,
            "prompt_sha256": decision.prompt_sha256,
            "policy_version": decision.policy_version,
            "rollout_mode": decision.rollout_mode,
            "outbox_ids": marker["outbox_ids"],
            "escalate": escalate,
            "tools": len(tool_refs),
        }
        try:
            event = self.audit.append(
                ctx,
                ticket.ticket_id,
                EVENT,
                payload,
                actor="triage",
                evidence=[inputs_ref, *tool_refs],
                writes=writes,
            )
        except Conflict:
            again = self.store.get(
                ctx, keys.ticket_pk(ctx.tenant_id, ticket.ticket_id), MARKER_PREFIX + message.message_id
            )
            if again is not None:  # another delivery of the same message won the race
                return self._resume(ctx, ticket.ticket_id, message.message_id, again.data)
            raise
        if self.handoffs.observe is not None:
            try:
                self.handoffs.observe(ctx, event)
            except Exception:  # analytics must never fail triage
                log.warning("observing the decision failed", exc_info=True)
        updated = ticket.model_copy(
            update={"status": status, "version": ticket.version + (status != ticket.status)}
        )
        execution = self._handoff(ctx, decision, updated, items, tool_refs, escalate)
        if escalate and execution is not None:
            self._mark_started(ctx, ticket.ticket_id, message.message_id, marker)
        return _result(
            decision, message.message_id, a.mode, items, escalate, execution, reply=decision.customer_reply
        )

    # ------------------------------------------------------------------ a follow-up on an open escalation

    def _attach(
        self,
        ctx: TenantContext,
        config: TenantConfig,
        ticket: Ticket,
        message: Message,
        escalation: OpenEscalation,
        open_item: Item | None,
        decisions: Sequence[Decision],
        known: dict[str, str],
        now: datetime,
    ) -> TriageResult:
        """The customer wrote again while a person reviews the ticket: deciding the message on its own would answer
        beside the review (an AI reply, the ticket no longer escalated) or open a second review of the same request
        (a second refund proposal). It joins the open escalation instead, in ONE audited transaction: its
        diagnostics, its marker, and the event naming what it asks for (labels, no text), which the open task
        shows with the message (deflect.escalation.approval). Nothing is sent and no workflow starts."""
        text = message_text(ticket.subject_redacted, message.body_redacted, first=False)
        help_center = detectors.locale_language(config.default_locale) or config.default_locale
        classified = self.engine.classifier.classify(
            ctx,
            text,
            sla_tier=ticket.sla_tier,
            default_language=help_center,
            priority_tiers=config.priority_tiers(),
        ).classification
        escalating = next((d for d in decisions if d.decision_id == escalation.decision_id), None)
        area = escalating.classification.product_area if escalating and escalating.classification else None
        # Read for every diagnostic Deflect knows besides what was asked: the agent may need any of them.
        names = [
            *(escalating.missing_diagnostics if escalating else []),
            *(diagnostics.checklist(config, area) if area else []),
            *diagnostics.checklist(config, classified.product_area),
            *requested_diagnostics(decisions),
            *diagnostics.EXTRACTORS,
        ]
        attachments = self._with_text(ctx, config, ticket, message.attachments)
        given = diagnostics.extract(dict.fromkeys(names), text, attachments)
        asked = classified.requested_action
        # An action the open proposal does not cover needs its own decision: approving the task does not make it.
        new_action = asked.kind != "none" and not _restates(asked, escalation.proposed_action)
        follow_up = {
            "intent": classified.intent,
            "sensitive_flags": list(classified.sensitive_flags),
            "requested_action": asked.model_dump(mode="json"),
            "new_action": new_action,
            "diagnostics": sorted(given),
        }
        pk = keys.ticket_pk(ctx.tenant_id, ticket.ticket_id)
        marker = {
            "attached_to": escalation.execution,
            "decision_id": escalation.decision_id,
            "follow_up": follow_up,
            "at": now.isoformat(),
        }
        joined = escalation.model_copy(update={"follow_ups": escalation.follow_ups + 1})
        writes = [
            *_diagnostic_writes(ctx, ticket, message, given, known, now),
            # Guarded on the record read: an escalation replacing it meanwhile makes this triage run again.
            OpenEscalations.write(ctx.tenant_id, ticket.ticket_id, joined, open_item),
            Put(pk=pk, sk=MARKER_PREFIX + message.message_id, data=marker, expect="new"),
        ]
        payload = {
            "execution": escalation.execution,
            "decision_id": escalation.decision_id,
            "message_id": message.message_id,
            **follow_up,
        }
        try:
            self.audit.append(ctx, ticket.ticket_id, FOLLOW_UP_EVENT, payload, actor="triage", writes=writes)
        except Conflict:
            again = self.store.get(ctx, pk, MARKER_PREFIX + message.message_id)
            if again is not None:  # another delivery of the same message won the race
                return self._resume(ctx, ticket.ticket_id, message.message_id, again.data)
            raise
        if new_action:
            log.info("a follow-up asks for an action the open escalation does not propose")
        return _attached(ticket.ticket_id, message.message_id, marker, escalating, classified)

    @staticmethod
    def _reply(a: Assessment) -> str | None:
        return (
            a.customer_reply() if a.mode == "auto" and a.outcome in ("deflect", "ask_diagnostics") else None
        )

    def _outbox_items(self, ticket: Ticket, decision: Decision, a: Assessment) -> list[OutboxItem]:
        """Only what the rollout mode allows: shadow sends nothing; assist notes agents; auto answers customers."""
        if a.mode == "shadow":
            return []
        tags = ["deflect-ai", f"deflect-{a.outcome.replace('_', '-')}"]
        # Writeback holds each item to the tenant's policy again right before it goes out (a switch to shadow
        # stops what is queued), so the item names what it was decided under.
        decided = {
            "caused_by": decision.decision_id,
            "tags": tags,
            "intent": a.classification.intent,
            "rollout_mode": a.mode,
            "intent_uncertain": triage_policy.intent_uncertain(a.policy, a.classification),
        }
        reply = a.customer_reply()
        if a.mode == "auto" and reply and a.outcome in ("deflect", "ask_diagnostics"):
            # The passages the reply quotes: writeback checks their articles again right before sending.
            cited = a.draft.citations if a.draft and a.draft.text in reply else []
            return [outbox_service.reply(ticket, reply, public=True, citations=cited, **decided)]
        if a.mode == "assist" and a.outcome in ("deflect", "ask_diagnostics"):
            return [outbox_service.reply(ticket, a.agent_note(), public=False, **decided)]
        return []

    # ------------------------------------------------------------------ after the commit

    def _handoff(
        self,
        ctx: TenantContext,
        decision: Decision,
        ticket: Ticket,
        items: list[OutboxItem],
        tool_refs: list[EvidenceRef],
        escalate: bool,
    ) -> str | None:
        if items and self.handoffs.writeback_queue is not None:
            outbox_service.enqueue(self.handoffs.writeback_queue, ctx, items)
        if escalate and self.handoffs.start_escalation is not None:
            return self.handoffs.start_escalation(decision, ticket, tool_refs)
        return None

    def _mark_started(self, ctx: TenantContext, ticket_id: str, message_id: str, marker: dict[str, Any]) -> None:
        """Record on the escalating message's marker that its workflow start returned. Best effort: without it a
        follow-up only starts the escalation once more, a no-op by execution name."""
        pk = keys.ticket_pk(ctx.tenant_id, ticket_id)
        try:
            self.store.put(ctx, Put(pk=pk, sk=MARKER_PREFIX + message_id, data={**marker, STARTED: True}))
        except Exception:
            log.warning("recording that the escalation started failed", exc_info=True)

    def _start_if_never_started(
        self, ctx: TenantContext, ticket: Ticket, escalation: OpenEscalation, decisions: Sequence[Decision]
    ) -> None:
        """An escalation whose start failed on every delivery of its message (which then went to the DLQ) is open
        with no workflow: a follow-up attached to it would reach no one until the age limit. Start it again from
        its stored decision as a retried delivery does (`_resume`: the same execution name, a no-op if it runs
        after all). A start that fails again fails this message too, so the queue retries it: never attached to
        nothing."""
        if self.handoffs.start_escalation is None:
            return
        if OpenEscalations(self.store).has_run(ctx, ticket.ticket_id, escalation.execution):
            return
        pk = keys.ticket_pk(ctx.tenant_id, ticket.ticket_id)
        marker = self.store.get(ctx, pk, MARKER_PREFIX + escalation.message_id) if escalation.message_id else None
        if marker is not None and marker.data.get("decision_id") == escalation.decision_id:
            if marker.data.get(STARTED):
                return  # started, its first step not recorded yet
            log.warning("escalation %s never started: starting it for a follow-up", escalation.execution)
            self._resume(ctx, ticket.ticket_id, escalation.message_id, marker.data)
            return
        # Escalated before the marker named its decision: start from the decision itself, without tool results.
        decision = next((d for d in decisions if d.decision_id == escalation.decision_id), None)
        if decision is None:
            log.warning("escalation %s has no stored decision to start it from", escalation.execution)
            return
        self.handoffs.start_escalation(decision, ticket, [])

    def _resume(
        self, ctx: TenantContext, ticket_id: str, message_id: str, marker: dict[str, Any]
    ) -> TriageResult:
        """The message was triaged already: finish the hand-offs (idempotent) and answer with that decision."""
        if marker.get("attached_to"):
            return _attached(ticket_id, message_id, marker).model_copy(update={"replayed": True})
        item = self.store.get(ctx, keys.ticket_pk(ctx.tenant_id, ticket_id), marker["decision_sk"])
        if item is None:
            raise NotFound("decision not found")
        decision = Decision.model_validate(item.data)
        ticket = self.tickets.require(ctx, ticket_id)
        items = [
            i for i in (self.outbox.get(ctx, oid) for oid in marker.get("outbox_ids", [])) if i is not None
        ]
        pending = [i for i in items if i.status == "pending"]
        tool_refs = [EvidenceRef.model_validate(r) for r in marker.get("tool_refs", [])]
        execution = self._handoff(ctx, decision, ticket, pending, tool_refs, bool(marker.get("escalate")))
        if marker.get("escalate") and execution is not None and not marker.get(STARTED):
            self._mark_started(ctx, ticket_id, message_id, marker)
        reply = None
        if decision.rollout_mode == "auto" and decision.outcome in ("deflect", "ask_diagnostics") and items:
            reply = items[0].body
        result = _result(
            decision,
            message_id,
            decision.rollout_mode,
            items,
            bool(marker.get("escalate")),
            execution,
            reply=reply,
        )
        return result.model_copy(update={"replayed": True})


# The assess() inputs triage derives from the ticket, shared with `deflect replay` so that it decides as production.


def message_text(subject: str, body: str, *, first: bool) -> str:
    """What is classified: the subject is the customer's own summary on the first message; later messages stand
    on their own."""
    body, subject = body.strip(), subject.strip()
    if first and subject and subject.lower() not in body.lower():
        return f"{subject}\n{body}"
    return body


# The policy's reason on a deflection that also asked for diagnostics (deflect.triage.policy.decide).
REQUESTED_REASON = "diagnostics_requested:"


def requested_diagnostics(decisions: Sequence[Decision]) -> list[str]:
    """The diagnostics earlier decisions on the ticket asked the customer for (a diagnostics request, alone or
    after an answer), oldest first: a follow-up is read for them whatever its own product area is. Taken from
    the ticket's decisions triage loads anyway; values given since are the ticket's stored diagnostics."""
    names: dict[str, None] = {}
    for decision in sorted(decisions, key=lambda d: d.decided_at):
        asked = decision.outcome == "ask_diagnostics" or any(
            r.startswith(REQUESTED_REASON) for r in decision.reasons
        )
        if asked:
            names.update(dict.fromkeys(diagnostics.canonical_name(n) for n in decision.missing_diagnostics))
    return list(names)


def customer_options(
    profile: TriageProfile, account: Account | None, ticket: Ticket | None = None
) -> dict[str, Any]:
    """The assess() arguments set by the tenant's triage profile and the customer's account (or, without one, the
    ticket): SLA tier, the audience the help center answers for, the low-confidence risk tolerance, and the
    language the customer's client or helpdesk states (the ticket's locale, as intake stored it)."""
    from deflect.knowledge.models import Audience

    segments: set[str] = set()
    if ticket is not None:
        segments.update(s.lower() for s in [*(ticket.entitlements or []), ticket.plan or ""] if s)
    if account is not None:
        segments.update(s.lower() for s in [account.plan, *account.entitlements] if s)
        # Support tiers are named like plans ("standard", "premium", "enterprise"), and every account has one: as a
        # bare segment, a Free plan's default tier read the Standard plan's articles. An article for a tier says so.
        if account.sla_tier:
            segments.add(f"tier-{account.sla_tier.lower()}")
    return {
        "sla_tier": account.sla_tier if account else ticket.sla_tier if ticket else "standard",
        "audience": Audience(kind="customer", segments=frozenset(segments)),
        "risk_tolerance": profile.low_confidence_risk_tolerance,
        "locale": ticket.locale if ticket is not None else None,
        # Recorded with the decision: which profile version (model, guardrail, tolerance) it was made under.
        "profile": profile,
    }


def _diagnostic_writes(
    ctx: TenantContext,
    ticket: Ticket,
    message: Message,
    provided: dict[str, str],
    known: dict[str, str],
    now: datetime,
) -> list[Put]:
    """The diagnostics the message gave that the ticket does not hold with that value yet."""
    writes: list[Put] = []
    for name, found in provided.items():
        # Stored as the rest of the ticket is: a value read from an attached log was never redacted by intake.
        value = redact(found)
        if known.get(name) != value:
            writes.append(
                Put(
                    pk=keys.ticket_pk(ctx.tenant_id, ticket.ticket_id),
                    sk=f"{DIAG_PREFIX}{name}",
                    data={
                        "name": name,
                        "value": value,
                        "message_id": message.message_id,
                        "at": now.isoformat(),
                    },
                )
            )
    return writes


def _restates(asked: RequestedAction, proposed: RequestedAction) -> bool:
    """Whether a follow-up's action is the proposal's ("still waiting for my refund" names no amount)."""
    return asked.kind == proposed.kind and all(
        mine is None or mine == theirs
        for mine, theirs in (
            (asked.amount, proposed.amount),
            (asked.currency, proposed.currency),
            (asked.target, proposed.target),
        )
    )


def _attached(
    ticket_id: str,
    message_id: str,
    marker: dict[str, Any],
    escalating: Decision | None = None,
    classification: Classification | None = None,
) -> TriageResult:
    """A follow-up that joined the open escalation: with a person, as that escalation's decision is."""
    return TriageResult(
        ticket_id=ticket_id,
        message_id=message_id,
        decision_id=marker["decision_id"],
        outcome="escalate",
        reasons=[OPEN_REASON],
        rollout_mode=escalating.rollout_mode if escalating else None,
        classification=classification,
        escalated=True,
        execution_name=marker["attached_to"],
        attached_to=marker["attached_to"],
    )


def _read_attachment(
    reader: AttachmentReader, ctx: TenantContext, ticket: Ticket, attachment: AttachmentRef
) -> AttachmentRead:
    read = getattr(reader, "read_attachment", None)
    if callable(read):
        return read(ctx, ticket, attachment)
    # A reader with only `read_text` answers None for every failure: no reason class, but not "no log".
    text = reader.read_text(ctx, ticket, attachment)  # type: ignore[attr-defined]
    return AttachmentRead(outcome="read", text=text) if text else AttachmentRead(outcome="failed", reason="no_text")


def _ref(hit: Any) -> ArticleRef:
    return (
        hit.ref()
        if hasattr(hit, "ref")
        else ArticleRef(article_id=hit.article_id, version=hit.version, score=hit.score)
    )


def _status(outcome: str, mode: RolloutMode, current: TicketStatus) -> TicketStatus:
    if mode == "shadow":
        return current
    if outcome == "escalate":
        return "escalated"
    if mode == "auto":
        return "deflected" if outcome == "deflect" else "awaiting_customer"
    return "triaging"  # assist: an agent takes it from the internal note


def _result(
    decision: Decision,
    message_id: str,
    mode: RolloutMode,
    items: list[OutboxItem],
    escalated: bool,
    execution: str | None,
    *,
    reply: str | None,
) -> TriageResult:
    return TriageResult(
        ticket_id=decision.ticket_id,
        message_id=message_id,
        decision_id=decision.decision_id,
        outcome=decision.outcome,
        reasons=decision.reasons,
        rollout_mode=mode,
        reply=reply,
        citations=decision.draft.citations if decision.draft and reply else [],
        confidence=decision.draft.confidence if decision.draft else None,
        classification=decision.classification,
        missing_diagnostics=decision.missing_diagnostics,
        escalated=escalated,
        execution_name=execution,
        outbox_ids=[i.outbox_id for i in items],
    )
