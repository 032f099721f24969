"""What the SQS work queue sends: on a FIFO queue, a message group per tenant and ticket and a deduplication id,
both in SQS's alphabet and length whatever our ids contain; on a standard queue, neither (SQS would refuse them)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from deflect.adapters.sqs_queue import SqsWorkQueue
from deflect.domain.canonical import sha256_hex
from deflect.domain.tenancy import TenantContext

FIFO = "https://sqs.us-east-1.amazonaws.com/123456789012/deflect-WritebackQueue-abc.fifo"
STANDARD = "https://sqs.us-east-1.amazonaws.com/123456789012/deflect-TriageQueue-abc"


def sqs():
    return boto3.client("sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def expected(url: str, body: dict, dedupe: str) -> dict:
    return {
        "QueueUrl": url,
        "MessageBody": json.dumps(body),
        "MessageAttributes": {
            "tenant_id": {"DataType": "String", "StringValue": "acme"},
            "dedupe_id": {"DataType": "String", "StringValue": dedupe},
        },
    }


def test_a_fifo_message_is_grouped_by_tenant_and_ticket_and_deduplicated_on_its_delivery_id():
    client = sqs()
    dedupe = "obx_1@2026-11-28T06:00:00.000000+00:00"  # ':' and '+' are outside SQS's id alphabet
    body = {"tenant_id": "acme", "outbox_id": "obx_1", "ticket_id": "t 1/ü"}
    with Stubber(client) as stub:
        stub.add_response(
            "send_message",
            {"MessageId": "m-1"},
            expected(FIFO, body, dedupe)
            | {
                "MessageGroupId": sha256_hex("acme\x1ft 1/ü".encode()),
                "MessageDeduplicationId": sha256_hex(f"acme\x1f{dedupe}".encode()),
            },
        )
        sent = SqsWorkQueue(client, FIFO).send(
            TenantContext.system("acme"),
            {"outbox_id": "obx_1", "ticket_id": "t 1/ü"},
            dedupe_id=dedupe,
            group_id="t 1/ü",
        )
        stub.assert_no_pending_responses()
    assert sent == "m-1"


def test_the_same_ticket_of_two_tenants_is_two_groups():
    seen = []
    client = sqs()
    client.meta.events.register(
        "provide-client-params.sqs.SendMessage", lambda params, **_: seen.append(params)
    )
    with Stubber(client) as stub:
        for _ in range(2):
            stub.add_response("send_message", {"MessageId": "m"})
        for tenant in ("acme", "globex"):
            SqsWorkQueue(client, FIFO).send(TenantContext.system(tenant), {}, dedupe_id="d", group_id="t-1")
    assert seen[0]["MessageGroupId"] != seen[1]["MessageGroupId"]
    assert seen[0]["MessageDeduplicationId"] != seen[1]["MessageDeduplicationId"]


def test_a_standard_queue_gets_no_group_or_deduplication_id():
    client = sqs()
    body = {"tenant_id": "acme", "delivery": "d-1"}
    with Stubber(client) as stub:
        stub.add_response("send_message", {"MessageId": "m-2"}, expected(STANDARD, body, "d-1"))
        SqsWorkQueue(client, STANDARD).send(
            TenantContext.system("acme"), {"delivery": "d-1"}, dedupe_id="d-1", group_id="t-1"
        )
        stub.assert_no_pending_responses()


def test_an_unconfigured_queue_says_so():
    with pytest.raises(RuntimeError, match="not configured"):
        SqsWorkQueue(sqs(), None).send(TenantContext.system("acme"), {})
