"""What the template must grant and wire so the writeback function can do on AWS what it does locally (moto does
not check IAM): relay stream records to its queue, and re-queue held notes and revived items."""

from __future__ import annotations

from infra.local import template as tpl


def _writeback() -> dict:
    return tpl.resources("AWS::Serverless::Function")["WritebackFunction"]["Properties"]


def test_the_writeback_function_may_send_to_its_own_queue():
    sends = [
        policy["SQSSendMessagePolicy"]["QueueName"]
        for policy in _writeback()["Policies"]
        if isinstance(policy, dict) and "SQSSendMessagePolicy" in policy
    ]
    assert {"Fn::GetAtt": ["WritebackQueue", "QueueName"]} in sends


def test_the_table_stream_feeds_the_writeback_function_and_is_on():
    stream = _writeback()["Events"]["OutboxStream"]["Properties"]
    assert stream["Enabled"] is True
    assert stream["Stream"] == {"Fn::GetAtt": ["SupportTable", "StreamArn"]}
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
