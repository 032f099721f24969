"""Diagnostic tools an agent runs from a task (e.g. the account's recent errors while reviewing an escalation).

The same registry and grants as triage: a tool runs only if the tenant granted it to one of the caller's roles
for the ticket's product area, and only on a task those roles may work (as claiming it) while it is open (decided →
409, expired → 410, as deciding it). Its output is kept as evidence (sealed with the ticket's customer's key when
known, so erasure reaches it) and the run is audited on the ticket with the agent's name.
"""

from __future__ import annotations

from typing import Any

from deflect.domain.errors import Conflict, Gone
from deflect.domain.models import HumanTask
from deflect.domain.tenancy import TenantContext
from deflect.escalation import policy
from deflect.escalation.approval import closed_problem, find_task
from deflect.escalation.records import EscalationPorts
from deflect.http import require_role
from deflect.repositories import Customers
from deflect.triage.diagnostics import DiagnosticToolRegistry, sealed_for
from deflect.triage.profile import TriageProfiles


class AgentDiagnostics:
    def __init__(
        self, ports: EscalationPorts, tools: DiagnosticToolRegistry, profiles: TriageProfiles
    ) -> None:
        self.p = ports
        self.tools = tools
        self.profiles = profiles

    def available(self, ctx: TenantContext, task_id: str) -> dict[str, Any]:
        """The tools this caller may run on this task's ticket: none once the task is decided or expired."""
        require_role(ctx, *sorted(policy.WORKING_ROLES))
        task, area, _, _ = self._subject(ctx, task_id)
        grants = self.profiles.get(ctx).grants()
        return {
            "task_id": task.task_id,
            "product_area": area,
            "tools": self.tools.allowed(grants, ctx.roles, area) if self._closed(task) is None else [],
        }

    def run(self, ctx: TenantContext, task_id: str, tool: str) -> dict[str, Any]:
        require_role(ctx, *sorted(policy.WORKING_ROLES))
        task, area, subject, customer_id = self._subject(ctx, task_id)
        closed = self._closed(task)
        if closed is not None:
            raise closed  # nothing is run, kept or audited on work that is over
        result = self.tools.run(
            ctx,
            tool,
            subject,
            grants=self.profiles.get(ctx).grants(),
            product_area=area,
            evidence=self.p.evidence,
            seal=sealed_for(self.p.seal_for_customer, customer_id),
        )
        refs = [result.evidence] if result.evidence is not None else []
        self.p.audit.append(
            ctx,
            task.ticket_id,
            "diagnostics.collected",
            {"names": [result.tool], "ok": [result.tool] if result.ok else [], "task_id": task.task_id},
            evidence=refs,
        )
        return {
            "task_id": task.task_id,
            "tool": result.tool,
            "ok": result.ok,
            "output": dict(result.output),
            "evidence": [{"sha256": r.sha256, "kind": r.kind} for r in refs],
        }

    def _subject(self, ctx: TenantContext, task_id: str) -> tuple[Any, str, dict[str, Any], str | None]:
        """The task, its ticket's product area, the tool's subject and the ticket's customer.

        Only for a caller whose roles may work the task: the task view withholds tool output from anyone else, so
        neither listing nor running may hand it out (Forbidden, the same refusal as claiming the task)."""
        task = find_task(self.p, ctx, task_id)
        policy.authorize_work(ctx.roles, task)
        ticket = self.p.tickets.require(ctx, task.ticket_id)
        decisions = self.p.tickets.decisions(ctx, task.ticket_id)
        latest = decisions[-1].classification if decisions else None
        area = latest.product_area if latest is not None else "general"
        account_id = ticket.account_id
        if account_id is None and ticket.customer_id:
            customer = Customers(self.p.store).get(ctx, ticket.customer_id)
            account_id = customer.account_id if customer else None
        subject = {"ticket_id": ticket.ticket_id, "account_id": account_id, "product_area": area}
        return task, area, subject, ticket.customer_id

    def _closed(self, task: HumanTask) -> Conflict | Gone | None:
        """Why no tool may run on this task now, in the deciding routes' terms; None while it is open."""
        return closed_problem(task, self.p.now())
