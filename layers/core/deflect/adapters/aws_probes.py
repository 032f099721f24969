"""Cheap read-only calls that tell whether each AWS service this deployment uses (knowledge index too) answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from deflect.adapters.aws_errors import error_code, translated
from deflect.domain.errors import Forbidden, NotFound, TransientFailure
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
    if settings.knowledge_backend == "opensearch":
        # Every triage job searches it: a stack that cannot must not answer "ok".
        probes["knowledge"] = _opensearch_probe(settings)
    return probes


def _opensearch_probe(settings: Settings) -> Callable[[], None]:
    def run() -> None:
        if not settings.opensearch_endpoint:
            raise NotFound("KNOWLEDGE_BACKEND=opensearch needs OPENSEARCH_ENDPOINT")
        from opensearchpy.exceptions import AuthorizationException, ConnectionError, TransportError

        from deflect.adapters.opensearch_index import opensearch_client

        opensearch = opensearch_client(
            settings.opensearch_endpoint,
            service=settings.opensearch_service,
            region=settings.region,
            timeout=3,
        )
        try:
            # HEAD on the index: answered (found or not: the first article write creates it) means reachable.
            opensearch.indices.exists(index=settings.opensearch_index)
        except AuthorizationException as error:
            raise Forbidden("HEAD index: denied") from error
        except ConnectionError as error:  # includes timeouts
            raise TransientFailure(f"HEAD index: {type(error).__name__}") from error
        except TransportError as error:
            raise TransientFailure(f"HEAD index: status {error.status_code}") from error

    return run
