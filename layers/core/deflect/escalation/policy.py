"""Pure escalation rules: which queue, which role, how long, who may decide what. No I/O here."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, get_args

from deflect.domain.errors import Forbidden
from deflect.domain.models import (
    AccountAction,
    AgentOutcome,
    DecisionPolicy,
    HumanTask,
    RequestedAction,
    SlaTier,
    TenantConfig,
)
from deflect.escalation.models import EscalationRequest, ReviewRoute, TaskDecision, TaskRole

# Always approver-only, whatever the tenant's list says: money, plans, entitlements, deletion, security.
APPROVER_FLOOR: frozenset[str] = frozenset(get_args(AccountAction))
WORKING_ROLES: frozenset[str] = frozenset({"agent", "approver", "supervisor"})
# How long before its due time a task counts as near due: a quarter of the window, at most an hour.
MAX_WARN_WINDOW_S = 3600

_SKILL_BY_ACTION = {
    "refund": "billing",
    "cancel_subscription": "billing",
    "change_plan": "billing",
    "change_entitlement": "billing",
    "delete_account": "security",
    "reset_mfa": "security",
    "change_email": "security",
}
_SKILL_BY_FLAG = {"security": "security", "privacy": "security", "legal": "legal", "billing": "billing"}
# Queues named after a skill take only matching work; every other queue is a generic tier, in ladder order.
SKILL_QUEUES = frozenset(_SKILL_BY_ACTION.values()) | frozenset(_SKILL_BY_FLAG.values())


def sla_tier(config: TenantConfig, name: str) -> SlaTier:
    return (
        config.sla_tiers.get(name)
        or config.sla_tiers.get("standard")
        or next(iter(config.sla_tiers.values()))
    )


def supervisor_queue(config: TenantConfig) -> str:
    return config.escalation_queues[-1] if config.escalation_queues else "supervisor"


def needs_approver(action: RequestedAction, policy: DecisionPolicy) -> bool:
    return action.kind != "none" and (
        action.kind in APPROVER_FLOOR or action.kind in policy.approver_required_actions
    )


# Account actions that move money: without an amount they are open-ended (a "full refund"), never small.
AMOUNT_ACTIONS = frozenset({"refund"})


def needs_two_people(
    action: RequestedAction, policy: DecisionPolicy, proposed: RequestedAction | None = None
) -> bool:
    """Does committing `action` need a second, different approver? `proposed`: what the task proposed, when
    `action` is a person's edit of it."""
    if action.amount is None:
        return action.kind in AMOUNT_ACTIONS
    line_currency = policy.two_person_currency
    if line_currency and (action.currency or line_currency) != line_currency:
        # no exchange rates here: an amount in another currency cannot be shown to be under the line
        return True
    if currency_edited(action, proposed) and not (line_currency and action.currency == line_currency):
        # Without a limit currency the line is a bare number in the proposal's currency: one person changing the
        # currency (or dropping it) would move the line (900 EUR → 499 KWD, about 1,500 EUR), and there are no
        # rates here to show the new amount is under it. An edit to the tenant's limit currency is compared.
        return True
    return action.amount > policy.two_person_amount_threshold


def currency_edited(action: RequestedAction, proposed: RequestedAction | None) -> bool:
    """Did an edit replace, add or remove the proposal's currency?"""
    return proposed is not None and action.currency != proposed.currency


def as_proposed(action: RequestedAction, diff: dict[str, Any]) -> RequestedAction:
    """The action a task proposed, from the action a decision committed and that decision's stored edit diff
    (`{"action": {field: {"from": ..., "to": ...}}}`): a stored decision is checked without its task."""
    before = {field: change["from"] for field, change in (diff.get("action") or {}).items()}
    return RequestedAction.model_validate({**action.model_dump(mode="json"), **before}) if before else action


def approvals_needed(decision: TaskDecision, policy: DecisionPolicy) -> int:
    """How many different approvers a stored approval needs before its action is carried out: what was recorded
    when it was decided, and never fewer than these rules ask for now, its edit measured against the proposal (a
    decision stored before a rule existed is still held to it)."""
    proposed = as_proposed(decision.action, decision.diff)
    return max(decision.approvals_required, 2 if needs_two_people(decision.action, policy, proposed) else 1)


def skill_for(request: EscalationRequest) -> str:
    if request.proposed_action.kind in _SKILL_BY_ACTION:
        return _SKILL_BY_ACTION[request.proposed_action.kind]
    for flag in request.classification.sensitive_flags:
        if flag in _SKILL_BY_FLAG:
            return _SKILL_BY_FLAG[flag]
    return request.product_area


def warn_window(timeout_seconds: int) -> int:
    return max(1, min(timeout_seconds // 4, MAX_WARN_WINDOW_S))


def first_wait(timeout_seconds: int) -> int:
    """Wait until the task is near due (then warn), or the whole window when it is too short to split."""
    if timeout_seconds < 2:
        return timeout_seconds
    return timeout_seconds - warn_window(timeout_seconds)


def queue_plan(request: EscalationRequest, config: TenantConfig) -> list[str]:
    """The queues a task moves through on timeouts: the skill's (or product area's) queue first, then the
    generic tiers, then the supervisor.

    Urgent work (P1/P2, or a priority SLA tier, by default enterprise) skips the first generic tier. At most
    `max_reassign_hops` hops.
    """
    supervisor = supervisor_queue(config)
    ladder = [q for q in config.escalation_queues if q != supervisor]
    skill = skill_for(request)
    specialised = [q for q in dict.fromkeys([skill, request.product_area]) if q in ladder]
    generic = [q for q in ladder if q not in specialised and q not in SKILL_QUEUES]
    urgent = request.severity in ("P1", "P2") or request.sla_tier in config.priority_tiers()
    if urgent and len(generic) > 1:
        generic = generic[1:]
    before_supervisor = (specialised + generic)[: max(0, config.max_reassign_hops)]
    return [*before_supervisor, supervisor]


def required_role(queue: str, action: RequestedAction, config: TenantConfig) -> TaskRole:
    if queue == supervisor_queue(config):
        return "supervisor"
    return "approver" if needs_approver(action, config.policy) else "agent"


def first_route(request: EscalationRequest, config: TenantConfig) -> ReviewRoute:
    plan = queue_plan(request, config)
    timeout = sla_tier(config, request.sla_tier).review_timeout_seconds
    return ReviewRoute(
        queue=plan[0],
        plan=plan,
        hops=0,
        kind="review",
        required_role=required_role(plan[0], request.proposed_action, config),
        approvals_required=2 if needs_two_people(request.proposed_action, config.policy) else 1,
        skill=skill_for(request),
        timeout_seconds=timeout,
        wait_seconds=first_wait(timeout),
    )


def next_route(route: ReviewRoute, action: RequestedAction, config: TenantConfig) -> ReviewRoute:
    """One hop further along the plan; `exhausted` once the last (supervisor) queue has had its turn."""
    if route.hops >= len(route.plan) - 1:
        return route.model_copy(update={"exhausted": True})
    queue = route.plan[route.hops + 1]
    return route.model_copy(
        update={
            "queue": queue,
            "hops": route.hops + 1,
            "kind": "review",
            "required_role": required_role(queue, action, config),
            "wait_seconds": first_wait(route.timeout_seconds),
            "warned": False,
        }
    )


def second_approval_route(route: ReviewRoute) -> ReviewRoute:
    return route.model_copy(
        update={
            "kind": "second_approval",
            "required_role": "approver",
            "approvals_required": 2,
            "wait_seconds": first_wait(route.timeout_seconds),
            "warned": False,
        }
    )


def near_due(task: HumanTask, now: datetime) -> bool:
    window = warn_window(max(1, int((task.due_at - task.created_at).total_seconds())))
    return task.due_at - now <= timedelta(seconds=window)


def is_second_approval(task: HumanTask) -> bool:
    # Second-approval tasks are opened with the first approver already recorded.
    return task.approvals_required > 1 and bool(task.approvals) and task.decided_outcome is None


def _proposed(action: RequestedAction) -> str:
    """The action as the task shows it, for a refusal: kind and amount, never its target (an email, an account)."""
    what = "an amount" if action.kind == "none" else f"a {action.kind}"
    if action.amount is None:
        return f"{what} with no amount" if action.kind in AMOUNT_ACTIONS else what
    return f"{what} of {action.amount} {action.currency or ''}".rstrip()


def _two_people_reason(
    action: RequestedAction, policy: DecisionPolicy, proposed: RequestedAction | None = None
) -> str:
    """Why `needs_two_people(action, policy, proposed)` holds, in the tenant's own terms."""
    if action.amount is None:
        return f"{_proposed(action)} is open-ended"
    line_currency = policy.two_person_currency
    line = f"{policy.two_person_amount_threshold} {line_currency or action.currency or ''}".rstrip()
    if line_currency and (action.currency or line_currency) != line_currency:
        return f"{_proposed(action)} cannot be compared with this tenant's {line} line"
    if currency_edited(action, proposed) and not (line_currency and action.currency == line_currency):
        was = proposed.currency if proposed and proposed.currency else "none"
        return f"{_proposed(action)} changes the proposed currency ({was}), and the {line} line has no rates"
    return f"{_proposed(action)} is above this tenant's {line} line"


def authorize_work(roles: Iterable[str], task: HumanTask) -> None:
    """May this caller pick up (claim, read) work of this task's kind at all?"""
    held = set(roles) & WORKING_ROLES
    if not held:
        raise Forbidden("an agent, approver or supervisor role is required")
    if task.required_role == "supervisor" and "supervisor" not in held:
        raise Forbidden("this task waits in the supervisor queue: it needs the supervisor role")
    if task.required_role == "approver" and not held & {"approver", "supervisor"}:
        action = task.proposed_action
        if action.kind == "none" and action.amount is None:
            raise Forbidden("this task needs an approver")
        second = " and a second, different approver" if task.approvals_required > 1 else ""
        raise Forbidden(f"this task needs an approver: {_proposed(action)} needs the approver role{second}")


def authorize_decision(
    roles: Iterable[str],
    actor: str,
    task: HumanTask,
    outcome: AgentOutcome,
    final_action: RequestedAction,
    policy: DecisionPolicy,
) -> None:
    """Raise Forbidden unless this caller may apply `outcome` (with `final_action`) to `task`."""
    held = set(roles) & WORKING_ROLES
    authorize_work(held, task)
    approving = outcome in ("approve", "edit")
    if task.required_role == "approver" and "approver" not in held and approving:
        # A supervisor may move or turn down approver work, not approve it.
        raise Forbidden(
            "approving this task needs the approver role: a supervisor may reassign or reject it, not approve it"
        )
    if approving and needs_approver(final_action, policy) and "approver" not in held:
        raise Forbidden(f"{_proposed(final_action)} needs the approver role")
    proposed = task.proposed_action
    if approving and needs_two_people(final_action, policy, proposed) and "approver" not in held:
        raise Forbidden(
            f"{_two_people_reason(final_action, policy, proposed)}: it needs the approver role and a second, "
            "different approver"
        )
    if is_second_approval(task):
        if "approver" not in held:
            raise Forbidden("a second approval needs the approver role")
        if actor in task.approvals:
            raise Forbidden("the second approval must come from a different approver: you gave the first")
