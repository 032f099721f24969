"""Cheap read-only calls that tell whether each AWS service this deployment uses answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from deflect.adapters.aws_errors import error_code, translated
from deflect.domain.errors import Forbidden, NotFound
from deflect.settings import Settings

DENIED_CODES = {"AccessDenied", "AccessDeniedException", "403", "UnauthorizedOperation"}
MISSING_CODES = {"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "StateMachineDoesNotExist"}


def _probe(operation: str, call: Callable[[], Any]) -> Callable[[], None]:
    def run() -> None:
        try:
            with translated(operation):
                call()
        except ClientError as error:
            if error_code(error) in DENIED_CODES:
                raise Forbidden(f"{operation}: denied") from error
            if error_code(error) in MISSING_CODES:
                raise NotFound(f"{operation}: missing") from error
            raise

    return run


def aws_probes(client: Callable[[str], Any], settings: Settings) -> dict[str, Callable[[], None]]:
    """One probe per configured dependency; `client(service)` is the Container's cached client factory."""
    probes = {
        "dynamodb": _probe(
            "DescribeTable", lambda: client("dynamodb").describe_table(TableName=settings.support_table)
        ),
        "s3": _probe("HeadBucket", lambda: client("s3").head_bucket(Bucket=settings.evidence_bucket)),
    }
    if settings.triage_queue_url:
        probes["sqs"] = _probe(
            "GetQueueAttributes",
            lambda: client("sqs").get_queue_attributes(
                QueueUrl=settings.triage_queue_url, AttributeNames=["QueueArn"]
            ),
        )
    if settings.escalation_state_machine_arn:
        probes["stepfunctions"] = _probe(
            "DescribeStateMachine",
            lambda: client("stepfunctions").describe_state_machine(
                stateMachineArn=settings.escalation_state_machine_arn
            ),
        )
    return probes
