"""GET /v1/health says which backing services answered, without ever failing itself."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from deflect.adapters.aws_probes import aws_probes
from deflect.domain.errors import Forbidden, NotFound, TransientFailure
from deflect.services.health import check_health
from deflect.settings import Settings


def _raise(error: Exception):
    def probe() -> None:
        raise error

    return probe


def test_all_dependencies_answering_is_ok():
    report = check_health({"dynamodb": lambda: None, "s3": lambda: None}, version="1", emulator="moto 5.2.5")

    assert report.status == "ok"
    assert report.dependencies == {"dynamodb": "ok", "s3": "ok"}
    assert report.emulator == "moto 5.2.5"


def test_a_denied_probe_still_counts_as_reached():
    report = check_health({"s3": _raise(Forbidden("no ListBucket"))}, version="1")

    assert report.status == "ok" and report.dependencies == {"s3": "denied"}


@pytest.mark.parametrize(
    ("error", "state"),
    [(NotFound("x"), "missing"), (TransientFailure("x"), "unreachable"), (RuntimeError("x"), "unreachable")],
)
def test_missing_or_unreachable_dependencies_degrade(error, state):
    report = check_health({"dynamodb": lambda: None, "sqs": _raise(error)}, version="1")

    assert report.status == "degraded"
    assert report.dependencies["sqs"] == state


def test_aws_probes_map_service_answers(monkeypatch):
    import boto3

    settings = Settings.from_env(
        {
            "SUPPORT_TABLE": "SupportTable",
            "EVIDENCE_BUCKET": "evidence",
            "TRIAGE_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/q",
            "AWS_REGION": "us-east-1",
        }
    )
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
    clients = {name: session.client(name) for name in ("dynamodb", "s3", "sqs")}
    stubs = {name: Stubber(client) for name, client in clients.items()}
    stubs["dynamodb"].add_response(
        "describe_table", {"Table": {"TableName": "SupportTable"}}, {"TableName": "SupportTable"}
    )
    stubs["s3"].add_client_error("head_bucket", "403", http_status_code=403)
    stubs["sqs"].add_client_error("get_queue_attributes", "QueueDoesNotExist", http_status_code=400)
    for stub in stubs.values():
        stub.activate()

    probes = aws_probes(clients.__getitem__, settings)
    report = check_health(probes, version="1")

    assert set(probes) == {"dynamodb", "s3", "sqs"}  # no state machine configured, no probe for it
    assert report.dependencies == {"dynamodb": "ok", "s3": "denied", "sqs": "missing"}
