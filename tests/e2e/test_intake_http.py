"""Intake over HTTP on the local stack: a signed helpdesk webhook for the demo tenant, as a helpdesk sends it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deflect.webhooks import sign

pytestmark = pytest.mark.e2e

EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_signed_webhook_is_accepted_once_and_a_forged_one_refused(api, local_stack):
    body = (EVENTS / "jira" / "issue_created.json").read_bytes().replace(b'"10042"', b'"e2e-10042"')
    headers = {
        "Content-Type": "application/json",
        **sign("jira", local_stack.webhook_secrets["jira"], body, delivery_id="e2e-1"),
    }

    first = api.post("/v1/webhooks/jira/demo", body=body, headers=headers)
    again = api.post("/v1/webhooks/jira/demo", body=body, headers=headers)
    forged = api.post("/v1/webhooks/jira/demo", body=body, headers={**headers, **sign("jira", "guess", body)})

    assert first.status == again.status == 200 and first.json() == again.json()
    assert forged.status == 401
    ticket_id = first.json()["ticket_id"]
    items = api.aws("dynamodb").query(
        TableName=local_stack.resources.tables["SupportTable"],
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": f"T#demo#TICKET#{ticket_id}"}},
    )["Items"]
    messages = [json.loads(i["data"]["S"]) for i in items if i["SK"]["S"].startswith("MSG#")]
    assert len(messages) == 1 and "sk_live_" not in messages[0]["body_redacted"]
