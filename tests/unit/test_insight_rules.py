"""Pure rules of the insight package: metric cardinality, event names, facts, prices, erasure scrubbing, report."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from deflect.domain.models import AuditEvent
from deflect.insight import events, metrics
from deflect.insight.domain_events import from_audit, schemas
from deflect.insight.facts import edit_distance, project
from deflect.insight.privacy import ERASED, scrub
from deflect.insight.usage import PriceTable, request_counts, tenant_of_request

ROOT = Path(__file__).resolve().parents[2]


def emitted(capsys) -> list[dict]:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return [line for line in lines if "_aws" in line]  # EMF lines, not log lines


def test_metric_dimensions_stay_bounded(capsys):
    metrics.count("Escalated", tenant_id="acme", reason="sensitive")
    metrics.count("Escalated", tenant_id="acme", reason="customer said: refund me now!!")
    metrics.count("Writeback", tenant_id="acme", result="success", ticket_id="tkt_1")
    lines = emitted(capsys)
    assert [line["reason"] for line in lines[:2]] == ["sensitive", "other"]
    assert "ticket_id" not in lines[2] and lines[2]["result"] == "success"
    for line in lines:
        spec = line["_aws"]["CloudWatchMetrics"][0]
        assert spec["Namespace"] == "Deflect"
        assert "tenant_id" not in spec["Dimensions"][0]  # tenant is metadata, never a dimension
        assert line["tenant_id"] == "acme"


def test_timed_block_records_latency_and_errors(capsys):
    with pytest.raises(ValueError), metrics.timed("triage"):
        raise ValueError("x")
    names = [line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] for line in emitted(capsys)]
    assert names == ["StageErrors", "StageLatency"]


def test_escalation_reason_prefers_the_most_specific():
    assert metrics.escalation_reason([], ["refund"], "refund", True) == "sensitive"
    assert metrics.escalation_reason([], [], "change_plan", False) == "account_action"
    assert (
        metrics.escalation_reason(["confidence below threshold: low confidence"], [], "none", False)
        == "low_confidence"
    )
    assert metrics.escalation_reason(["something new"], [], "none", False) == "policy"


def test_event_names_and_stages():
    assert events.stage_of("message.received") == "received"
    assert events.stage_of("decision") == "triaged"  # alias
    assert events.stage_of("task.decided") == "decided"
    assert events.stage_of("writeback.delivered") == "written_back"
    assert events.stage_of("escalation.something_new") == "escalated"  # prefix fallback
    assert "| `customer.erased` |" in events.markdown_table()


def test_edit_distance_and_the_measure_taken_from_a_recorded_diff():
    assert edit_distance("Hello there", "Hello there, friend") == 8
    assert edit_distance("abc", "abc") == 0
    decided = AuditEvent(
        tenant_id="acme", ticket_id="t", seq=3, type="task.decided", actor="agent:a", at=datetime.now(UTC),
        payload_sha256="0" * 64, prev_hash="0" * 64,
        payload={"outcome": "edit", "action": {"kind": "refund"}, "diff": {"reply": ["--- a", "+++ b", "-Hi", "+Hi there"]}},
    )  # fmt: skip
    fact = project(decided)
    assert (fact.edit_distance, fact.action_kind, fact.stage) == (6, "refund", "decided")


def test_generated_event_schemas_match_the_documented_ones():
    for detail_type, schema in schemas().items():
        documented = json.loads((ROOT / "docs" / "events" / f"{detail_type}.json").read_text())
        assert documented == schema, f"docs/events/{detail_type}.json is stale: regenerate it"


def test_only_business_steps_are_published():
    def event(type_: str, payload: dict) -> AuditEvent:
        return AuditEvent(
            tenant_id="acme", ticket_id="t", seq=1, type=type_, actor="triage", at=datetime.now(UTC),
            payload_sha256="0" * 64, prev_hash="0" * 64, payload=payload, hash="h",
        )  # fmt: skip

    assert from_audit(event("task.claimed", {"task_id": "k"})) == []
    assert [e.detail_type for e in from_audit(event("decision.made", {"outcome": "deflect"}))] == [
        "TicketTriaged.v1"
    ]
    assert [e.detail_type for e in from_audit(event("decision.made", {"outcome": "escalate"}))] == [
        "TicketTriaged.v1",
        "TicketEscalated.v1",
    ]


def test_cost_from_the_price_table():
    prices = PriceTable.load()
    cost = prices.cost(
        {
            "model_input_tokens": 2_000_000,
            "model_output_tokens": 500_000,
            "ddb_write_units": 1_000_000,
            "ddb_read_units": 2_000_000,
            "s3_put": 1000,
            "s3_get": 10_000,
            "sfn_transitions": 1000,
            "lambda_mb_ms": 1024 * 1000 * 100,  # 100 GB-s
            "lambda_invocations": 1_000_000,
        }
    )
    assert cost.parts["model"] == pytest.approx(2 * 1.10 + 0.5 * 5.50)  # Haiku 4.5, US profile
    assert cost.parts["dynamodb"] == pytest.approx(0.625 + 0.25)
    assert cost.parts["s3"] == pytest.approx(0.005 + 0.004)
    assert cost.parts["stepfunctions"] == pytest.approx(0.025)
    assert cost.parts["lambda"] == pytest.approx(100 * 0.0000133334 + 0.20)
    assert cost.total == pytest.approx(sum(cost.parts.values()))


def test_requests_are_counted_and_attributed_to_the_tenant_they_name():
    prices = PriceTable.load()
    transact = {
        "TransactItems": [
            {"Put": {"Item": {"PK": {"S": "T#acme#TICKET#1"}}}},
            {"Put": {"Item": {"PK": {"S": "T#acme#AUDIT#1"}}}},
        ]
    }
    assert request_counts("dynamodb", "TransactWriteItems", transact, prices) == {"ddb_write_units": 4}
    assert tenant_of_request("dynamodb", transact) == "acme"
    assert (
        tenant_of_request("dynamodb", {"ExpressionAttributeValues": {":pk": {"S": "T#acme-corp#DAY#x"}}})
        == "acme-corp"
    )
    assert tenant_of_request("s3", {"Key": "tenant=globex/tickets/t/evidence/x.json"}) == "globex"
    assert tenant_of_request("s3", {"Key": "not-a-tenant/x"}) is None
    assert tenant_of_request("kms", {"EncryptionContext": {"tenant": "acme"}}) == "acme"
    assert request_counts("sfn", "StartExecution", {}, prices)["sfn_transitions"] == 9
    assert request_counts("s3", "GetObject", {}, prices) == {"s3_get": 1}
    # The writeback queue is FIFO, which SQS prices higher than a standard queue.
    fifo = request_counts("sqs", "SendMessage", {"QueueUrl": "https://sqs/1/WritebackQueue.fifo"}, prices)
    standard = request_counts("sqs", "SendMessage", {"QueueUrl": "https://sqs/1/TriageQueue"}, prices)
    assert (fifo, standard) == ({"sqs_fifo_requests": 1}, {"sqs_requests": 1})
    assert prices.cost(fifo).total == pytest.approx(0.50 / 1e6)
    assert prices.cost(standard).total == pytest.approx(0.40 / 1e6)


def test_scrub_blanks_personal_fields_and_keeps_types():
    record = {
        "subject_redacted": "Refund for Ana",
        "custom_fields": {"phone": "1"},
        "attachments": [{"name": "passport.png"}],
        "draft": {"text": "Hello Ana", "citations": [{"article_id": "kb", "quote": "policy"}]},
        "status": "resolved",
    }
    scrubbed, changed = scrub(record)
    assert changed == 4
    assert scrubbed == {
        "subject_redacted": ERASED,
        "custom_fields": {},
        "attachments": [],
        "draft": {"text": ERASED, "citations": [{"article_id": "kb", "quote": "policy"}]},
        "status": "resolved",
    }
    assert scrub(scrubbed)[1] == 0  # erasing twice changes nothing


def test_report_is_one_self_contained_page():
    from deflect.cli.report import render_report
    from deflect.insight.analytics import AnalyticsSummary, DailyPoint, KnowledgeGap, summarize_views
    from deflect.insight.usage import DailyUsage

    summary = AnalyticsSummary(
        tenant_id="acme",
        date_from=date(2025, 1, 1),
        date_to=date(2025, 1, 2),
        generated_at=datetime(2025, 1, 3, tzinfo=UTC),
        knowledge_gaps=[KnowledgeGap(product_area="<billing>", question="refund", count=3)],
        **summarize_views([], 7),
    )
    series = [
        DailyPoint(day=date(2025, 1, d), received=4, deflected=2, verified=1, escalated=1, wrong_deflections=0,
                   unneeded_escalations=1, first_response_median_minutes=3.0, sla_breaches=0, agreement_rate=None)
        for d in (1, 2)
    ]  # fmt: skip
    usage = [
        DailyUsage(
            tenant_id="acme",
            day=date(2025, 1, 1),
            counters={"tickets": 4},
            cost=PriceTable.load().cost({"tickets": 4}),
        )
    ]
    page = render_report(summary, series, usage)
    assert page.startswith("<!doctype html>") and page.count("data:image/png;base64,") == 6
    assert "&lt;billing&gt;" in page and "<billing>" not in page
    assert "http://" not in page and "https://" not in page  # nothing fetched when opened


def test_quarantine_holding_keys_are_monthly_and_expire_after_the_month_ends():
    from datetime import UTC, datetime

    from deflect.services.intake import quarantine_holder

    holder, expires = quarantine_holder(datetime(2026, 12, 31, 23, 59, tzinfo=UTC), 30)
    assert holder == "hold_quarantine_2026-12"
    assert datetime.fromtimestamp(expires, UTC) == datetime(2027, 1, 31, tzinfo=UTC)
    early, _ = quarantine_holder(datetime(2026, 12, 1, tzinfo=UTC), 30)
    assert early == holder  # one key per month, however many bodies
    _, february = quarantine_holder(datetime(2027, 2, 14, tzinfo=UTC), 7)
    assert datetime.fromtimestamp(february, UTC) == datetime(2027, 3, 8, tzinfo=UTC)
