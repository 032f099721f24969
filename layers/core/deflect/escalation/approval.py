"""The agents' side of human tasks: list, read, claim and decide.

Rules: the tenant comes from the caller's token only (another tenant's task is simply not found); roles are
`agent`, `approver`, `supervisor`; sensitive actions need `approver`; amounts above the tenant's threshold (and
edits that change the currency, unless into the tenant's limit currency) need a second, different approver;
approving never changes the proposal (editing does, and the diff is stored); a decision is idempotent by its
`decision_id`; decided → 409, expired → 410; sent while a retried step is storing the task's new token → 409
"the task is being reopened; retry".

A decision counts once the workflow has it. It is stored first, then sent; refused (expired, throttled) → taken back;
not known (5xx, a crash) → a retry of the same `decision_id` sends it again, and if none comes before the SLA the
SLA check takes it back (`task.decision_undelivered` in the audit log).
"""

from __future__ import annotations

import difflib
import json
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from deflect.domain import keys
from deflect.domain.canonical import sha256_hex
from deflect.domain.errors import (
    Conflict,
    DeflectError,
    Forbidden,
    Gone,
    MalformedPayload,
    NotFound,
    Throttled,
    TransientFailure,
)
from deflect.domain.models import (
    ActionInput,
    DecisionPolicy,
    EvidenceRef,
    HumanTask,
    RequestedAction,
    TaskStatus,
)
from deflect.domain.tenancy import TenantContext
from deflect.escalation import policy
from deflect.escalation.models import DecisionRequest, Delivery, TaskDecision
from deflect.escalation.records import EscalationPorts, count
from deflect.escalation.summary import (
    MAX_TOOL_RESULTS,
    EscalationSummary,
    SinceSummary,
    ToolResultView,
    collected_diagnostics,
    render_markdown,
    since_summary,
    tool_result_view,
)
from deflect.http import require_role
from deflect.insight.privacy import is_sealed, plain_kind
from deflect.observability import logger
from deflect.pii import redact

LINK_SECONDS = 300
DECIDE_ATTEMPTS = 3
UNDO_ATTEMPTS = 5
UNDO_BACKOFF_S = 0.2
# The deciding request may be sending the decision for this long (the API function's 29 s timeout); a retry
# waits for it up to SETTLE_POLLS × SETTLE_POLL_S, then answers 503 rather than send it a second time.
IN_FLIGHT = timedelta(seconds=30)
SETTLE_POLLS = 15
SETTLE_POLL_S = 0.2
CLOSED: frozenset[TaskStatus] = frozenset({"expired", "reassigned", "failed"})
TOOL_KIND = "diagnostic_tool"


class ApprovalService:
    def __init__(self, ports: EscalationPorts) -> None:
        self.p = ports

    # ------------------------------------------------------------------ reading
    def list_tasks(
        self, ctx: TenantContext, queue: str | None = None, status: TaskStatus | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """The caller's tenant only; near-due tasks first, then by due time."""
        _working(ctx)
        config = self.p.tenants.get(ctx)
        queues = [queue] if queue else list(dict.fromkeys(config.escalation_queues))
        statuses: list[TaskStatus] = [status] if status else ["open", "claimed"]
        found = [t for q in queues for s in statuses for t in self.p.tasks.in_queue(ctx, q, s, limit=limit)]
        now = self.p.now()
        views = [self._view(t, now) for t in found]
        views.sort(key=lambda v: (not v["near_due"], v["due_at"]))
        return views[:limit]

    def task_detail(self, ctx: TenantContext, task_id: str) -> dict[str, Any]:
        """The task, its summary as Markdown, and short-lived links to the evidence.

        The summary lists each diagnostic with its value; `summary.tool_results` holds the diagnostic tools'
        output, opened here (sealed evidence has no link) for a caller whose roles may work this task.
        `summary.since_summary`: the customer messages after the one that escalated and the diagnostics the summary
        does not list (a follow-up joins the open escalation), read now; not shown once the summary is erased."""
        _working(ctx)
        task = self._task(ctx, task_id)
        detail: dict[str, Any] = {"task": self._view(task, self.p.now()), "summary": None, "evidence": []}
        if task.summary is not None:
            try:
                document = json.loads(self.p.evidence.read(ctx, task.summary))
            except Gone:
                # The customer's personal data was erased: the task stays, its summary cannot be read again.
                detail["summary"] = {"erased": True}
                document = None
            if document is not None:
                summary = EscalationSummary.model_validate(document["summary"])
                if summary.diagnostics_collected and not summary.diagnostics:
                    summary = self._with_values(ctx, task, summary)  # stored before values were kept
                refs = [task.summary, *summary.evidence]
                # A presigned URL would hand out ciphertext: sealed evidence is shown through this view instead.
                links = {
                    ref.key: self.p.evidence.presign(ctx, ref, expires_s=LINK_SECONDS)
                    for ref in refs
                    if not is_sealed(ref)
                }
                tools = self._tool_results(ctx, task, summary.evidence)
                since = self._since_summary(ctx, task, summary)
                detail["summary"] = {
                    "markdown": render_markdown(summary, links, tools, since),
                    **summary.model_dump(mode="json"),
                    "tool_results": [t.model_dump(mode="json") for t in tools],
                    "since_summary": since.model_dump(mode="json"),
                }
                detail["evidence"] = [
                    {
                        "kind": plain_kind(ref),
                        "sha256": ref.sha256,
                        "sealed": is_sealed(ref),
                        "url": links.get(ref.key),
                        "expires_in_s": LINK_SECONDS if ref.key in links else None,
                    }
                    for ref in refs
                ]
        decision = self.p.decisions.for_task(ctx, task_id)
        if decision is not None:
            detail["decision"] = decision.model_dump(mode="json", exclude={"tenant_id"})
        return detail

    def _since_summary(self, ctx: TenantContext, task: HumanTask, summary: EscalationSummary) -> SinceSummary:
        """The ticket's messages and diagnostics now (redacted records; erasure scrubs or deletes them), with what
        triage recorded of each follow-up that joined this escalation (its `TRIAGED#` marker)."""
        pk = keys.ticket_pk(ctx.tenant_id, task.ticket_id)
        messages = self.p.tickets.messages(ctx, task.ticket_id)
        records = [
            {**i.data, "name": i.data.get("name") or i.sk.removeprefix("DIAG#")}
            for i in self.p.store.query(ctx, pk, "DIAG#")
        ]

        def follow_up(message_id: str) -> dict[str, Any] | None:
            marker = self.p.store.get(ctx, pk, f"TRIAGED#{message_id}")
            return marker.data.get("follow_up") if marker is not None else None

        escalated_at = summary.sla.follow_up_by - timedelta(minutes=summary.sla.first_response_minutes)
        return since_summary(summary, messages, records, follow_up, escalated_at=escalated_at)

    def _tool_results(
        self, ctx: TenantContext, task: HumanTask, evidence: list[EvidenceRef]
    ) -> list[ToolResultView]:
        """The diagnostic tools' output the escalation carries, opened for a caller who may work this task.

        Only `diagnostic_tool` evidence is opened (raw inbound requests stay sealed: they are not redacted), only
        under this tenant's prefix for this task's ticket, through the same port as the summary (sealed evidence
        opens with the customer's key; once erased it reads as Gone). At most MAX_TOOL_RESULTS are opened.
        """
        refs = list({r.key: r for r in evidence if plain_kind(r) == TOOL_KIND}.values())
        try:
            policy.authorize_work(ctx.roles, task)
            refused = None
        except Forbidden as error:
            refused = f"withheld: {error}"
        prefix = keys.evidence_key(ctx.tenant_id, task.ticket_id, "").rsplit("/", 1)[0] + "/"
        views: list[ToolResultView] = []
        for ref in refs[:MAX_TOOL_RESULTS]:
            reason = refused or (None if ref.key.startswith(prefix) else "not this ticket's")
            if reason is None:
                try:
                    views.append(tool_result_view(ref.sha256, self.p.evidence.read(ctx, ref), task.ticket_id))
                    continue
                except Gone:
                    reason = "erased"
                except DeflectError:
                    reason = "unreadable"
            views.append(ToolResultView(tool=TOOL_KIND, sha256=ref.sha256, unavailable=reason))
        if len(refs) > MAX_TOOL_RESULTS:
            more = len(refs) - MAX_TOOL_RESULTS
            views.append(
                ToolResultView(
                    tool=TOOL_KIND,
                    sha256="",
                    unavailable=f"truncated: {more} more tool results are kept as evidence and not shown here",
                )
            )
        return views

    def _with_values(
        self, ctx: TenantContext, task: HumanTask, summary: EscalationSummary
    ) -> EscalationSummary:
        """A summary stored with diagnostic names only: their values from this ticket's stored diagnostics."""
        items = self.p.store.query(ctx, keys.ticket_pk(ctx.tenant_id, task.ticket_id), "DIAG#")
        records = [{**i.data, "name": i.data.get("name") or i.sk.removeprefix("DIAG#")} for i in items]
        named = set(summary.diagnostics_collected)
        found = collected_diagnostics([r for r in records if r["name"] in named])
        return summary.model_copy(update={"diagnostics": found})

    # ------------------------------------------------------------------ claiming
    def claim(self, ctx: TenantContext, task_id: str) -> dict[str, Any]:
        task = self._task(ctx, task_id)
        policy.authorize_work(ctx.roles, task)
        now = self.p.now()
        self._ensure_open(task, now)
        if task.assignee == ctx.actor:
            return self._view(task, now)
        if task.assignee is not None:
            raise Conflict("claimed by another agent")
        claimed = task.model_copy(update={"status": "claimed", "assignee": ctx.actor, "updated_at": now})
        self.p.audit.append(
            ctx,
            task.ticket_id,
            "task.claimed",
            {"task_id": task_id},
            writes=[self.p.tasks.save_write(claimed)],
        )
        return self._view(claimed, now)

    # ------------------------------------------------------------------ deciding
    def decide(self, ctx: TenantContext, task_id: str, body: DecisionRequest) -> dict[str, Any]:
        _working(ctx)
        for _ in range(DECIDE_ATTEMPTS):
            task = self._task(ctx, task_id)
            prior = self.p.decisions.by_id(ctx, body.decision_id)
            if prior is None:
                answer = self._decide(ctx, task, body)
            elif (prior.task_id, prior.actor, prior.outcome) == (task_id, ctx.actor, body.outcome):
                answer = self._replay(ctx, prior)
            else:
                raise Conflict("decision_id already used")
            if answer is not None:
                return answer
            # A concurrent request stored this very decision, or it was taken back meanwhile: look again.
        raise Conflict("the task changed while deciding; read it again")

    def _decide(self, ctx: TenantContext, task: HumanTask, body: DecisionRequest) -> dict[str, Any] | None:
        """Store the decision, then hand it to the workflow; None when the same decision was stored meanwhile."""
        now = self.p.now()
        self._ensure_open(task, now)
        if task.assignee not in (None, ctx.actor) and not ctx.has_role("supervisor"):
            raise Conflict("claimed by another agent")
        policy.authorize_work(
            ctx.roles, task
        )  # the cheap refusal first; the full rules need the tenant's policy
        config = self.p.tenants.get(ctx)
        action, reply, diff = _final_content(task, body)
        policy.authorize_decision(ctx.roles, ctx.actor, task, body.outcome, action, config.policy)
        if body.outcome == "reassign" and task.queue == policy.supervisor_queue(config):
            raise Conflict("there is no queue after the supervisor queue")
        token = self._token(ctx, task)  # before anything changes: a bad token leaves everything as it was
        approving = body.outcome in ("approve", "edit")
        approvals = (
            [*task.approvals, ctx.actor] if approving and ctx.actor not in task.approvals else task.approvals
        )
        record = TaskDecision(
            tenant_id=ctx.tenant_id,
            task_id=task.task_id,
            ticket_id=task.ticket_id,
            decision_id=body.decision_id,
            outcome=body.outcome,
            actor=ctx.actor,
            actor_roles=sorted(ctx.roles),
            reply=reply,
            action=action,
            note=body.note,
            diff=diff,
            approvals=list(approvals),
            approvals_required=2 if approving and _needs_two(task, action, config.policy) else 1,
            decided_at=now,
            delivery="sending",
        )
        decided = task.model_copy(
            update={
                "status": "decided",
                "decided_outcome": body.outcome,
                "decided_by": [*task.decided_by, ctx.actor],
                "approvals": list(approvals),
                "assignee": ctx.actor,
                "updated_at": now,
            }
        )
        try:
            self.p.audit.append(
                ctx,
                task.ticket_id,
                "task.decided",
                _audit_payload(record, task.proposed_reply, config.policy.version),
                writes=[self.p.tasks.save_write(decided), *self.p.decisions.writes(record)],
            )
        except Conflict:
            if self.p.decisions.by_id(ctx, body.decision_id) is None:
                raise
            return None  # a double click: the other request stored it; this one is answered as its retry
        try:
            self._deliver(token, record)
        except (Gone, Conflict, Throttled) as refused:
            # The workflow did not take it (it stopped waiting, or said slow down): take the decision back, so the
            # task is as before and a retry decides afresh.
            self._undo(ctx, task, record)
            if isinstance(refused, Throttled):
                raise
            if isinstance(refused, Gone) and self._reopening(ctx, task):
                # A retry of the step that opens the task gives it a new token; this decision used the failed
                # attempt's (dead) one. The task is still the agent's to decide once the retry has stored it.
                raise Conflict("the task is being reopened; retry") from refused
            if isinstance(refused, Gone) or task.due_at <= self.p.now():
                raise Gone("the task expired before the decision arrived") from refused
            raise Conflict("the task changed while deciding; read it again") from refused
        except Exception:
            # Not known whether it got there (a 5xx, a timeout): a retry of this request sends it again.
            self._mark(ctx, record, "unconfirmed")
            raise
        self._mark(ctx, record, "delivered")
        count(f"HumanTask{body.outcome.capitalize()}")
        logger().info("task decided", extra={"task_id": task.task_id, "outcome": body.outcome})
        return record.response()

    def _replay(self, ctx: TenantContext, record: TaskDecision) -> dict[str, Any] | None:
        """The same request again. Once the workflow has the decision: the same answer, nothing new happens.
        Until then this request sends it again, unless the first request may still be sending it. None when the
        decision was taken back meanwhile."""
        sent_with: str | None = None
        for attempt in range(SETTLE_POLLS):
            if attempt:
                self.p.sleep(SETTLE_POLL_S)
                current = self.p.decisions.for_task(ctx, record.task_id)
                if current is None or current.decision_id != record.decision_id:
                    return None
                record = current
            if record.delivery == "delivered":
                return record.response()
            first_sending = record.delivery == "sending" and self.p.now() < record.decided_at + IN_FLIGHT
            task = self.p.tasks.get(ctx, record.task_id)
            if first_sending or task is None or task.status != "decided" or task.token_sha256 == sent_with:
                continue
            sent_with = task.token_sha256
            try:
                self._deliver(self._token(ctx, task), record)
            except (Gone, Conflict):
                # Refused: an earlier attempt got there after all (the workflow's next step marks the decision
                # delivered), or the wait timed out (its SLA check takes the decision back). Wait for which.
                continue
            self._mark(ctx, record, "delivered")
            return record.response()
        raise TransientFailure("the workflow has not confirmed this decision yet; retry")

    def _deliver(self, token: str, record: TaskDecision) -> None:
        reference = {"task_id": record.task_id, "decision_id": record.decision_id, "outcome": record.outcome}
        if record.outcome == "reject":
            self.p.workflow.send_task_failure(token, "Deflect.Rejected", json.dumps(reference))
        else:
            self.p.workflow.send_task_success(token, reference)

    def _mark(self, ctx: TenantContext, record: TaskDecision, delivery: Delivery) -> None:
        try:
            self.p.decisions.mark(ctx, record.task_id, delivery)
        except (Conflict, Throttled, TransientFailure):
            # Best effort: the workflow's next step marks a delivered decision too; until then a retry of the
            # request waits for it or sends the decision again.
            logger().warning("decision delivery not recorded", extra={"task_id": record.task_id})

    def _reopening(self, ctx: TenantContext, read: HumanTask) -> bool:
        """After the workflow refused `read`'s token as timed out: is the task still waiting, only for a newer token
        (its token changed, or it is open and not yet due)? A task past due or closed really expired."""
        current = self.p.tasks.get(ctx, read.task_id)
        if current is None or current.status not in ("open", "claimed"):
            return False
        return current.token_sha256 != read.token_sha256 or current.due_at > self.p.now()

    def _undo(self, ctx: TenantContext, before: HumanTask, record: TaskDecision) -> None:
        """Take back a decision the workflow never received; the audit log keeps both events."""
        for attempt in range(UNDO_ATTEMPTS):
            stored = self.p.decisions.for_task(ctx, record.task_id)
            if stored is None or stored.decision_id != record.decision_id:
                return  # the SLA check took it back already
            current = self.p.tasks.get(ctx, record.task_id)
            writes: list[Any] = list(self.p.decisions.delete_writes(record))
            if (
                current is not None
                and current.status == "decided"
                and current.decided_by[-1:] == [record.actor]
            ):
                # Open again even when past due: the late retry is told 410 all the same (closed_problem), and the
                # workflow's SLA check is what moves or expires the review, audited (task.reassigned) only there.
                restored = current.model_copy(
                    update={
                        "status": before.status,
                        "decided_outcome": None,
                        "decided_by": before.decided_by,
                        "approvals": before.approvals,
                        "assignee": before.assignee,
                        "updated_at": self.p.now(),
                    }
                )
                writes.insert(0, self.p.tasks.save_write(restored))
            payload = {"task_id": record.task_id, "decision_id": record.decision_id}
            try:
                self.p.audit.append(
                    ctx, record.ticket_id, "task.decision_undelivered", payload, writes=writes
                )
                return
            except Conflict:
                continue
            except (Throttled, TransientFailure):
                self.p.sleep(UNDO_BACKOFF_S * (attempt + 1))
        # Left decided: a retry of the request sends it again, and the SLA check takes it back if none comes.
        logger().error("could not undo an undelivered decision", extra={"task_id": record.task_id})
        self._mark(ctx, record, "unconfirmed")

    # ------------------------------------------------------------------ helpers
    def _task(self, ctx: TenantContext, task_id: str) -> HumanTask:
        return find_task(self.p, ctx, task_id)

    @staticmethod
    def _ensure_open(task: HumanTask, now: datetime) -> None:
        problem = closed_problem(task, now)
        if problem is not None:
            raise problem

    def _token(self, ctx: TenantContext, task: HumanTask) -> str:
        if not task.token_ciphertext or not task.token_sha256:
            raise Conflict("the task is not ready for a decision")
        try:
            token = self.p.cipher.decrypt(ctx.tenant_id, task.token_ciphertext)
        except Exception as error:  # any failure to recover the token: nothing may change
            raise Conflict("the task's token cannot be recovered") from error
        if sha256_hex(token.encode()) != task.token_sha256:
            raise Conflict("the task's token failed its integrity check")
        return token

    def _view(self, task: HumanTask, now: datetime) -> dict[str, Any]:
        view = task.public_view()
        for internal in ("execution_name", "summary", "schema_version"):
            view.pop(internal, None)
        view["near_due"] = task.status in ("open", "claimed") and policy.near_due(task, now)
        view["overdue"] = task.status in ("open", "claimed") and task.due_at <= now
        view["seconds_to_due"] = int((task.due_at - now).total_seconds())
        view["second_approval"] = policy.is_second_approval(task)
        return view


def _working(ctx: TenantContext) -> None:
    require_role(ctx, *sorted(policy.WORKING_ROLES))


def _needs_two(task: HumanTask, action: RequestedAction, rules: DecisionPolicy) -> bool:
    """Does approving `action` on this task take two people? A second approval always counts as one of two; an
    edit is measured against what the task proposed (a changed currency moves a bare-number line)."""
    return policy.is_second_approval(task) or policy.needs_two_people(action, rules, task.proposed_action)


def _final_content(
    task: HumanTask, body: DecisionRequest
) -> tuple[RequestedAction, str | None, dict[str, Any]]:
    """The action and reply this outcome commits to, and the diff when an agent edited the proposal."""
    proposed_action, proposed_reply = task.proposed_action, task.proposed_reply
    if body.outcome == "approve":
        if body.action is not None and body.action != proposed_action:
            raise MalformedPayload("approve cannot change the proposed action; use outcome=edit")
        if body.reply is not None and body.reply != proposed_reply:
            raise MalformedPayload("approve cannot change the proposed reply; use outcome=edit")
        return _within_bounds(proposed_action), proposed_reply, {}
    if body.outcome == "edit":
        if policy.is_second_approval(task):
            raise MalformedPayload("a second approval approves or rejects what the first approver decided")
        action = body.action if body.action is not None else proposed_action
        reply = body.reply if body.reply is not None else proposed_reply
        diff = edit_diff(proposed_action, action, proposed_reply, reply)
        if not diff:
            raise MalformedPayload("edit changes nothing; use outcome=approve")
        return _within_bounds(action), reply, diff
    # reject may carry a reply for the customer; reassign carries none. Neither performs an action.
    return RequestedAction(), body.reply if body.outcome == "reject" else None, {}


def _within_bounds(action: RequestedAction) -> RequestedAction:
    """A task stored before actions had bounds may propose an impossible amount: it is never committed as is."""
    try:
        ActionInput.model_validate(action, from_attributes=True)
    except ValidationError as error:
        fields = ", ".join(sorted({str(e["loc"][0]) for e in error.errors() if e["loc"]}))
        raise MalformedPayload(
            f"the proposed action is out of bounds ({fields}); use outcome=edit with a corrected action, or reject"
        ) from error
    return action


def edit_diff(
    before_action: RequestedAction,
    after_action: RequestedAction,
    before_reply: str | None,
    after_reply: str | None,
) -> dict[str, Any]:
    diff: dict[str, Any] = {}
    old, new = before_action.model_dump(mode="json"), after_action.model_dump(mode="json")
    changed = {k: {"from": old[k], "to": new[k]} for k in old if old[k] != new.get(k)}
    if changed:
        diff["action"] = changed
    if (before_reply or "") != (after_reply or ""):
        diff["reply"] = list(
            difflib.unified_diff(
                (before_reply or "").splitlines(),
                (after_reply or "").splitlines(),
                "proposed",
                "edited",
                lineterm="",
            )
        )
    return diff


def _audit_payload(
    record: TaskDecision, proposed_reply: str | None = None, policy_version: int | None = None
) -> dict[str, Any]:
    # Audit what was decided and by whom; free text is redacted and the reply kept as a hash. With the approvals
    # the rules asked for and the policy version they come from (`deflect policy show --version`), so a refund
    # approved by one person can be judged from the audit log alone.
    return {
        **_edit_measures(record, proposed_reply),
        "task_id": record.task_id,
        "decision_id": record.decision_id,
        "outcome": record.outcome,
        "roles": record.actor_roles,
        "action": record.action.model_dump(mode="json"),
        "reply_sha256": sha256_hex(record.reply.encode()) if record.reply else None,
        "note": redact(record.note) if record.note else None,
        "diff": {**record.diff, "reply": [redact(line) for line in record.diff["reply"]]}
        if "reply" in record.diff
        else record.diff,
        "approvals": record.approvals,
        "approvals_required": record.approvals_required,
        "policy_version": policy_version,
    }


def _edit_measures(record: TaskDecision, proposed_reply: str | None) -> dict[str, Any]:
    """How much the agent changed the AI's reply (analytics: edit distance and share of characters changed, 0 for
    an approval as proposed, 1 for a complete rewrite). Nothing when there was no proposed reply to compare."""
    from deflect.insight.facts import edit_distance

    if record.outcome not in ("approve", "edit") or not proposed_reply or record.reply is None:
        return {}
    distance = edit_distance(proposed_reply, record.reply)
    return {
        "edit_distance": distance,
        "edit_ratio": round(distance / (len(proposed_reply) + len(record.reply)), 4),
    }


def find_task(p: EscalationPorts, ctx: TenantContext, task_id: str) -> HumanTask:
    """The tenant's task by id, for every task route; an id is never a partial key."""
    if not task_id.startswith("task_") or "#" in task_id:
        raise NotFound("task not found")
    task = p.tasks.get(ctx, task_id)
    if task is None:
        raise NotFound("task not found")
    return task


def closed_problem(task: HumanTask, now: datetime) -> Conflict | Gone | None:
    """Why no one may act on this task now (decided → Conflict, expired → Gone); None while it is open."""
    if task.status == "decided":
        return Conflict("task already decided")
    if task.status in CLOSED or task.due_at <= now:
        return Gone("task expired")
    return None
