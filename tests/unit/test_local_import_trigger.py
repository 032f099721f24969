"""The local stack's stand-in for S3's trigger on the knowledge import bucket: each created object reaches the
function once, in the event shape S3 sends, an overwrite counts as new, and a failing import is retried, then
dropped with a message instead of blocking the bucket."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from deflect.knowledge.bulk_import import is_s3_event, objects_in
from infra.local.import_trigger import ATTEMPTS, ObjectCreatedPoller


@pytest.fixture()
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="knowledgeimportbucket")
        yield client


def test_each_created_object_reaches_the_function_once_as_an_s3_event(s3):
    received = []
    poller = ObjectCreatedPoller(
        s3, "knowledgeimportbucket", "RetrievalFunction", lambda f, e: received.append(e)
    )
    s3.put_object(Bucket="knowledgeimportbucket", Key="tenant=acme/help center/a.md", Body=b"# A\n\ntext")

    assert poller.poll_once() == 1
    assert poller.poll_once() == 0
    assert is_s3_event(received[0])
    (created,) = objects_in(received[0])  # the handler's own parser reads it
    assert (created.bucket, created.key, created.size) == (
        "knowledgeimportbucket",
        "tenant=acme/help center/a.md",
        9,
    )

    s3.put_object(Bucket="knowledgeimportbucket", Key="tenant=acme/help center/a.md", Body=b"# A\n\nnew text")
    assert poller.poll_once() == 1


def test_a_failing_import_is_retried_then_dropped_without_blocking_the_others(s3, capsys):
    calls = []

    def invoke(function, event):
        key = objects_in(event)[0].key
        calls.append(key)
        if key.endswith("bad.md"):
            raise RuntimeError("import failed")

    poller = ObjectCreatedPoller(s3, "knowledgeimportbucket", "RetrievalFunction", invoke)
    s3.put_object(Bucket="knowledgeimportbucket", Key="tenant=acme/bad.md", Body=b"x")
    s3.put_object(Bucket="knowledgeimportbucket", Key="tenant=acme/good.md", Body=b"# Good\n\ntext")

    delivered = [poller.poll_once() for _ in range(ATTEMPTS + 1)]

    assert delivered == [1, 0, 0, 0]
    assert calls.count("tenant=acme/bad.md") == ATTEMPTS
    assert calls.count("tenant=acme/good.md") == 1
    assert "giving up" in capsys.readouterr().err
