"""Other systems subscribe to the bus and get every step of a ticket, in the documented schema, without
personal data."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from botocore.stub import Stubber

from deflect.adapters.eventbridge_publisher import EventBridgePublisher
from deflect.domain.errors import TransientFailure
from deflect.insight.domain_events import from_audit
from tests.integration.insight_story import EMAIL, NAME, escalated_ticket, seed_tenant

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "events"


def subscribe(session, bus: str) -> str:
    sqs = session.client("sqs")
    url = sqs.create_queue(QueueName="billing-subscriber")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = session.client("events")
    events.put_rule(Name="all-deflect", EventBusName=bus, EventPattern=json.dumps({"source": ["deflect"]}))
    events.put_targets(Rule="all-deflect", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    return url


def drain(session, url: str) -> list[dict]:
    sqs = session.client("sqs")
    found = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return found
        found += [json.loads(m["Body"]) for m in batch]
        for m in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def test_each_step_of_a_ticket_reaches_subscribers_in_its_versioned_schema(moto_stack):
    container = moto_stack.container()
    url = subscribe(moto_stack.session, container.settings.events_bus_name)
    escalated_ticket(container, seed_tenant(container, "acme"))

    delivered = drain(moto_stack.session, url)

    assert [e["detail-type"] for e in delivered] == [
        "MessageReceived.v1",
        "TicketTriaged.v1",
        "TicketEscalated.v1",
        "TaskDecided.v1",
        "TicketWrittenBack.v1",
    ]
    for event in delivered:
        schema = json.loads((SCHEMAS / f"{event['detail-type']}.json").read_text())
        jsonschema.validate(event["detail"], schema)
        assert event["source"] == "deflect" and event["detail"]["tenant_id"] == "acme"
        assert EMAIL not in json.dumps(event) and NAME not in json.dumps(event)
    triaged, escalated = delivered[1]["detail"], delivered[2]["detail"]
    assert (triaged["outcome"], triaged["intent"], triaged["policy_version"]) == (
        "escalate",
        "refund_request",
        3,
    )
    assert escalated["reason"] == "sensitive"
    assert delivered[4]["detail"]["result"] == "success"
    assert len({e["detail"]["event_id"] for e in delivered}) == 5


def test_partial_failures_are_retried_once_then_raised(moto_stack):
    container = moto_stack.container()
    story = escalated_ticket(container, seed_tenant(container, "acme"))
    events = [e for a in story.events for e in from_audit(a)][:2]
    client = container.client("events")
    publisher = EventBridgePublisher(client, "bus")
    ok = {"EventId": "1"}
    failed = {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}
    with Stubber(client) as stub:
        stub.add_response("put_events", {"FailedEntryCount": 1, "Entries": [ok, failed]})
        stub.add_response(
            "put_events", {"FailedEntryCount": 0, "Entries": [ok]}, {"Entries": [publisher.entry(events[1])]}
        )
        publisher.publish(story.ctx, events)
        stub.assert_no_pending_responses()
    with Stubber(client) as stub, pytest.raises(TransientFailure):
        stub.add_response("put_events", {"FailedEntryCount": 1, "Entries": [failed]})
        stub.add_response("put_events", {"FailedEntryCount": 1, "Entries": [failed]})
        publisher.publish(story.ctx, events[:1])


def test_an_observed_audit_log_feeds_facts_and_the_bus_without_extra_calls(moto_stack):
    from datetime import UTC, datetime

    from deflect.insight.service import ObservedAuditLog

    container = moto_stack.container()
    url = subscribe(moto_stack.session, container.settings.events_bus_name)
    ctx = seed_tenant(container, "acme")
    audit = ObservedAuditLog(container.store, container.evidence, lambda: container.insight)
    audit.append(
        ctx, "tkt_o", "message.received", {"provider": "api", "new_ticket": True, "customer_id": "cus_9"}
    )
    today = datetime.now(UTC).date()
    assert [f.type for f in container.facts.between(ctx, today, today)] == ["message.received"]
    assert [e["detail-type"] for e in drain(moto_stack.session, url)] == ["MessageReceived.v1"]
    assert container.erasure.tickets_of(ctx, "cus_9") == ["tkt_o"]  # the customer → ticket link for erasure
