"""A reassignment (or, after the supervisor's turn, an expiry) is committed and audited before its SNS alert goes out.
When that publish is throttled, Step Functions retries the step (CheckSla, Reassign), and the retry must still alert
the next queue or the supervisor, although the task has moved already. In memory: no sockets."""

from __future__ import annotations

from deflect.domain.errors import Throttled
from tests.unit.escalation_desk import escalation_desk

EXECUTION = "esc-1"


class ThrottledOnce:
    """SNS refusing the first publish, as a throttled topic does."""

    def __init__(self) -> None:
        self.calls, self.sent = 0, []

    def notify(self, ctx, event, detail):
        self.calls += 1
        if self.calls == 1:
            raise Throttled("Publish: rate exceeded")
        self.sent.append((event, dict(detail)))


def _desk():
    sns = ThrottledOnce()
    desk = escalation_desk(notifier=sns)
    return desk.ctx, desk.tasks, sns, desk.audit, desk.state


def _events(audit, ctx, type):
    return [e for e in audit.entries(ctx, "t-1") if e.type == type]


def _move_with_a_throttled_alert(ctx, tasks, state, step):
    """The step as Step Functions runs it: the first attempt's publish is throttled (Throttled -> Retry)."""
    tasks.open(ctx, state, EXECUTION, "token-1")
    try:
        step()
        raise AssertionError("the first publish should have been throttled")
    except Throttled:
        pass
    return step()  # the retry


def test_the_retry_of_a_reassignment_whose_alert_was_throttled_alerts_the_next_queue():
    ctx, tasks, sns, audit, state = _desk()
    first_queue = state.route.queue

    after = _move_with_a_throttled_alert(
        ctx, tasks, state, lambda: tasks.reassign(ctx, state, EXECUTION, reason="timeout")
    )

    assert not after.exhausted and after.queue != first_queue
    assert sns.sent == [
        (
            "reassigned",
            {
                "ticket_id": "t-1",
                "task_id": tasks.current_task_id(state, EXECUTION),
                "from": first_queue,
                "to": after.queue,
                "hops": after.hops,
                "reason": "timeout",
            },
        )
    ]
    assert (
        len(_events(audit, ctx, "task.reassigned")) == 1
    )  # moved and audited once; only the alert is repeated


def test_the_retry_of_an_expiry_whose_alert_was_throttled_alerts_the_supervisor():
    ctx, tasks, sns, audit, state = _desk()
    last = len(state.route.plan) - 1
    state = state.model_copy(update={"route": state.route.model_copy(update={"hops": last, "warned": True})})

    # The supervisor's window passed too: CheckSla expires the review.
    after = _move_with_a_throttled_alert(ctx, tasks, state, lambda: tasks.check_sla(ctx, state, EXECUTION))

    assert after.exhausted
    assert [(event, detail["ticket_id"], detail["to"]) for event, detail in sns.sent] == [
        ("review_expired", "t-1", None)
    ]
    assert len(_events(audit, ctx, "escalation.review_expired")) == 1
