"""Analytics on a seeded history match numbers computed by hand (see the comments next to each ticket)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from deflect.domain.models import AuditEvent
from deflect.insight.analytics import Analytics
from tests.integration.insight_story import seed_tenant

# Recent dates: facts expire after FACT_RETENTION_DAYS, so a history long ago would already be gone.
BASE = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=30)
NOW = BASE + timedelta(days=19, hours=12)
FIRST, LAST = BASE.date(), (BASE + timedelta(days=2)).date()


class Clock:
    def now(self) -> datetime:
        return NOW


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """Day 1 is the first day of the range."""
    return BASE + timedelta(days=day - 1, hours=hour, minutes=minute)


def decision(
    outcome: str, mode: str = "auto", confidence: float = 0.9, **classification: Any
) -> dict[str, Any]:
    labels = {"intent": "how_to_export", "intent_confidence": 0.9, "product_area": "data", **classification}
    return {
        "decision_id": "dec",
        "outcome": outcome,
        "rollout_mode": mode,
        "confidence": confidence,
        "grounded": classification.pop("grounded", True) if "grounded" in classification else True,
        "classification": labels,
        "reasons": [],
    }


class History:
    def __init__(self, container: Any, ctx: Any) -> None:
        self.container, self.ctx = container, ctx

    def ticket(
        self, ticket_id: str, *events: tuple[datetime, str, dict[str, Any]], actor: str = "system"
    ) -> None:
        for seq, (when, type_, payload) in enumerate(events):
            event = AuditEvent(
                tenant_id="acme",
                ticket_id=ticket_id,
                seq=seq,
                type=type_,
                actor=payload.pop("_actor", actor),
                at=when,
                payload_sha256="0" * 64,
                payload=payload,
                prev_hash="0" * 64,
                hash=f"{ticket_id}-{seq}",
            )
            self.container.facts.record(self.ctx, event)


def received(tier: str = "standard") -> dict[str, Any]:
    return {"provider": "zendesk", "new_ticket": True, "sla_tier": tier, "customer_id": "c"}


def delivered(outbox_id: str) -> dict[str, Any]:
    return {"outbox_id": outbox_id, "kind": "public_reply", "provider": "zendesk"}


@pytest.fixture(scope="module")
def seeded():
    """Module-scoped: one moto stack for every assertion on the same history."""
    import os

    import boto3
    from moto import mock_aws

    from deflect import bootstrap
    from infra.local.resources import create_all
    from tests.conftest import MotoStack

    saved = dict(os.environ)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with mock_aws():
        stack = MotoStack(create_all(boto3.session.Session(region_name="us-east-1")), None)
        os.environ.update(stack.env)
        bootstrap.reset()
        container = stack.container()
        ctx = seed_tenant(container, "acme")
        h = History(container, ctx)
        # T1: deflected, answer written back 2 min later, nothing for 7 days → assumed. FRT 2, resolution 2.
        h.ticket(
            "t1",
            (at(1, 9), "message.received", received()),
            (at(1, 9, 1), "decision.made", decision("deflect")),
            (at(1, 9, 2), "writeback.delivered", delivered("o1")),
        )
        # T2: chat answer delivered in the response, customer confirms → confirmed. FRT 1, resolution 30.
        h.ticket(
            "t2",
            (at(1, 10), "message.received", received()),
            (at(1, 10, 1), "decision.made", decision("deflect")),
            (at(1, 10, 1), "answer.delivered", {"decision_id": "dec"}),
            (at(1, 10, 30), "deflection.confirmed", {}),
        )
        # T3: premium, deflected (FRT 5); the customer writes again next day → reopened (wrong deflection).
        h.ticket(
            "t3",
            (at(1, 11), "message.received", received("premium")),
            (at(1, 11, 1), "decision.made", decision("deflect")),
            (at(1, 11, 5), "writeback.delivered", delivered("o3")),
            (at(2, 9), "message.received", {"new_ticket": False}),
        )
        # T4: deflected (FRT 3), then a human agent replied → corrected (wrong deflection).
        h.ticket(
            "t4",
            (at(2, 8), "message.received", received()),
            (at(2, 8, 1), "decision.made", decision("deflect")),
            (at(2, 8, 3), "writeback.delivered", delivered("o4")),
            (at(2, 12), "agent.replied", {"action": "answered", "public": True, "_actor": "agent:a1"}),
        )
        # T5: enterprise (60 min), refund → escalated; acknowledgement is not a response; agent approves unchanged
        # (mandatory: not unneeded); agent reply at +125 min → SLA breach. Resolution 125.
        h.ticket(
            "t5",
            (at(2, 9), "message.received", received("enterprise")),
            (
                at(2, 9, 0),
                "decision.made",
                decision(
                    "escalate",
                    confidence=0.74,
                    intent="refund_request",
                    product_area="billing",
                    sensitive_flags=["refund"],
                    requested_action={"kind": "refund"},
                ),
            ),
            (at(2, 9, 1), "escalation.summarized", {"decision_id": "dec"}),
            (at(2, 9, 1), "escalation.acknowledged", {"outbox_id": "ack5"}),
            (at(2, 9, 2), "writeback.delivered", delivered("ack5")),
            (at(2, 9, 3), "task.opened", {"task_id": "k5", "queue": "billing"}),
            (
                at(2, 11),
                "task.decided",
                {"task_id": "k5", "outcome": "approve", "diff": {}, "action": {"kind": "refund"}},
            ),
            (at(2, 11, 1), "escalation.writeback_enqueued", {"outbox_ids": ["o5"], "outcome": "approve"}),
            (at(2, 11, 5), "writeback.delivered", delivered("o5")),
        )
        # T6: low confidence → escalated, approved unchanged with nothing mandatory → unneeded. FRT 40.
        h.ticket(
            "t6",
            (at(2, 10), "message.received", received()),
            (
                at(2, 10, 0),
                "decision.made",
                decision("escalate", confidence=0.3, intent="invoice_question", product_area="billing"),
            ),
            (at(2, 10, 1), "escalation.summarized", {}),
            (at(2, 10, 2), "task.opened", {"task_id": "k6"}),
            (at(2, 10, 30), "task.decided", {"task_id": "k6", "outcome": "approve", "diff": {}}),
            (at(2, 10, 31), "escalation.writeback_enqueued", {"outbox_ids": ["o6"]}),
            (at(2, 10, 40), "writeback.delivered", delivered("o6")),
        )
        # T7: out of scope, ungrounded → escalated; a timeout reassigns it; the agent edits the draft
        # ("Hello there" → "Hello there, friend": 8 characters). FRT 370; resolved next day with intent and
        # product area corrected.
        h.ticket(
            "t7",
            (at(3, 9), "message.received", received()),
            (
                at(3, 9, 0),
                "decision.made",
                decision(
                    "escalate",
                    confidence=0.2,
                    intent="oos",
                    product_area="general",
                    out_of_scope=True,
                    grounded=False,
                ),
            ),
            (at(3, 9, 1), "task.opened", {"task_id": "k7"}),
            (at(3, 13), "task.reassigned", {"task_id": "k7", "reason": "timeout", "to": "tier2"}),
            (
                at(3, 15),
                "task.decided",
                {
                    "task_id": "k7",
                    "outcome": "edit",
                    "diff": {
                        "reply": [
                            "--- proposed",
                            "+++ edited",
                            "@@ -1 +1 @@",
                            "-Hello there",
                            "+Hello there, friend",
                        ]
                    },
                },
            ),
            (at(3, 15, 1), "escalation.writeback_enqueued", {"outbox_ids": ["o7"]}),
            (at(3, 15, 10), "writeback.delivered", delivered("o7")),
            (at(4, 9), "ticket.resolved", {"by": "agent", "corrected_fields": ["intent", "product_area"]}),
        )
        # T8: shadow mode would deflect; the agent answered → agreement. FRT 60; closed uncorrected at +120.
        h.ticket(
            "t8",
            (at(3, 10), "message.received", received()),
            (at(3, 10, 1), "decision.made", decision("deflect", "shadow", 0.8)),
            (at(3, 11), "agent.replied", {"action": "answered", "public": True}),
            (at(3, 12), "ticket.closed", {"by": "agent", "corrected_fields": []}),
        )
        # T9: assist mode would escalate (customer asked for a person); the agent just answered → disagreement.
        h.ticket(
            "t9",
            (at(3, 11), "message.received", received()),
            (at(3, 11, 1), "decision.made", decision("escalate", "assist", 0.6, wants_human=True)),
            (at(3, 13), "agent.replied", {"action": "answered", "public": True}),
            (at(3, 14), "ticket.resolved", {"by": "agent", "corrected_fields": ["severity"]}),
        )
        # T10: assist, asked for diagnostics, nobody answered for weeks → SLA breach, not compared.
        h.ticket(
            "t10",
            (at(3, 12), "message.received", received()),
            (at(3, 12, 1), "decision.made", decision("ask_diagnostics", "assist", 0.7)),
        )
        # T11: received before the range (its receipt is not read) but decided inside it: only a knowledge gap.
        h.ticket(
            "t11",
            (
                at(1, 8),
                "decision.made",
                decision("escalate", confidence=0.4, intent="invoice_question", product_area="billing"),
            ),
        )
        # T12: received after the range: not counted.
        h.ticket(
            "t12",
            (at(4, 10), "message.received", received()),
            (at(4, 10, 1), "decision.made", decision("deflect")),
            (at(4, 10, 2), "writeback.delivered", delivered("o12")),
        )
        analytics = Analytics(container.facts, container.tenants, clock=Clock())
        yield analytics.summary(ctx, FIRST, LAST, 7), analytics.series(ctx, FIRST, LAST, 7)
    os.environ.clear()
    os.environ.update(saved)
    bootstrap.reset()


def test_deflection_split_into_confirmed_and_assumed(seeded):
    d = seeded[0].deflection
    assert (d.received, d.deflected, d.confirmed, d.assumed, d.pending, d.reopened, d.corrected) == (
        10,
        4,
        1,
        1,
        0,
        1,
        1,
    )
    assert (d.deflection_rate, d.confirmed_rate, d.assumed_rate, d.verified_rate) == (0.4, 0.1, 0.1, 0.2)


def test_escalation_quality(seeded):
    e = seeded[0].escalation
    assert (e.escalated, e.decided, e.sent_unchanged, e.unneeded, e.edited, e.rejected) == (3, 3, 2, 1, 1, 0)
    assert (e.escalation_rate, e.unneeded_rate) == (0.3, 0.3333)
    assert (e.wrong_deflections, e.wrong_deflection_rate) == (2, 0.5)


def test_agent_edit_distance(seeded):
    edits = seeded[0].edits
    assert (edits.n, edits.mean_distance, edits.median_distance) == (3, 2.67, 0)


def test_response_and_resolution_times(seeded):
    first, resolution = seeded[0].first_response, seeded[0].resolution
    # FRT minutes: 2, 1, 5, 3, 125, 40, 370, 60, 120
    assert (first.n, first.mean_minutes, first.median_minutes, first.p90_minutes) == (9, 80.67, 40, 370)
    # resolution minutes: 2, 30, 125, 40, 370, 120, 180
    assert (resolution.n, resolution.mean_minutes, resolution.median_minutes, resolution.p90_minutes) == (
        7,
        123.86,
        120,
        370,
    )


def test_sla_breaches(seeded):
    sla = seeded[0].sla
    assert (sla.first_response_breaches, sla.task_timeouts, sla.breach_rate) == (2, 1, 0.2)


def test_classification_accuracy_at_close(seeded):
    c = seeded[0].classification
    assert (c.closed, c.fully_correct, c.accuracy) == (3, 1, 0.3333)
    assert (
        c.by_field["intent"] == 0.6667 and c.by_field["severity"] == 0.6667 and c.by_field["language"] == 1.0
    )


def test_agreement_in_shadow_and_assist(seeded):
    a = seeded[0].agreement
    assert (a.compared, a.agreed, a.rate) == (2, 1, 0.5)
    assert a.by_mode == {
        "assist": {"compared": 1, "agreed": 0, "rate": 0.0},
        "shadow": {"compared": 1, "agreed": 1, "rate": 1.0},
    }
    assert a.confusion == {"deflect": {"deflect": 1}, "escalate": {"deflect": 1}}


def test_knowledge_gaps_by_product_area(seeded):
    gaps = [
        (g.product_area, g.question, g.count, g.unanswered, g.low_confidence)
        for g in seeded[0].knowledge_gaps
    ]
    assert gaps == [("billing", "invoice_question", 2, 0, 2), ("general", "out_of_scope", 1, 1, 1)]


def test_daily_series(seeded):
    series = seeded[1]
    days = [(p.day - FIRST).days + 1 for p in series]
    assert [(d, p.received, p.deflected, p.escalated) for d, p in zip(days, series)] == [
        (1, 3, 3, 0),
        (2, 3, 1, 2),
        (3, 4, 0, 1),
    ]
    assert [p.wrong_deflections for p in series] == [1, 1, 0]


def test_range_is_validated():
    from deflect.domain.errors import MalformedPayload
    from deflect.insight.analytics import parse_range

    with pytest.raises(MalformedPayload):
        parse_range("2025-03-02", "2025-03-01")
    with pytest.raises(MalformedPayload):
        parse_range("2024-01-01", "2025-03-01")
    with pytest.raises(MalformedPayload):
        parse_range("yesterday", "2025-03-01")
    assert parse_range("2025-03-01", "2025-03-01T23:00:00Z")[1].isoformat() == "2025-03-01"
