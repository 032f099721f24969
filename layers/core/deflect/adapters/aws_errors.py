"""One translation of botocore errors into domain errors, shared by every AWS adapter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

from deflect.domain.errors import Conflict, NotFound, PayloadTooLarge, Throttled, TransientFailure

THROTTLING_CODES = {
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
}
CONFLICT_CODES = {"ConditionalCheckFailedException", "TransactionConflictException", "PreconditionFailed"}
NOT_FOUND_CODES = {
    "ResourceNotFoundException",
    "NoSuchKey",
    "NoSuchVersion",
    "NotFound",
    "404",
    "ParameterNotFound",
}
# Bedrock's "try again" errors that are not 5xx: the model is still loading (429) or took too long (408).
TRANSIENT_CODES = {"ModelNotReadyException", "ModelTimeoutException"}


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _item_too_large(message: object) -> bool:
    # DynamoDB has no code of its own for an item over 400 KB, only a ValidationException (or, in a transaction,
    # a ValidationError cancellation reason) with this message. Retrying cannot help: the caller must send less.
    text = str(message).lower()
    return "item size" in text and "exceeded the maximum allowed size" in text


@contextmanager
def translated(operation: str) -> Iterator[None]:
    """Run an AWS call; re-raise its failure as a domain error without leaking botocore to services."""
    try:
        yield
    except ClientError as error:
        code = error_code(error)
        if code in THROTTLING_CODES:
            raise Throttled(f"{operation}: throttled") from error
        if code in CONFLICT_CODES:
            raise Conflict(f"{operation}: condition failed") from error
        if code in NOT_FOUND_CODES:
            raise NotFound(f"{operation}: not found") from error
        if code in TRANSIENT_CODES:
            raise TransientFailure(f"{operation}: {code}") from error
        if code == "ValidationException" and _item_too_large(error.response.get("Error", {}).get("Message")):
            raise PayloadTooLarge(f"{operation}: item too large") from error
        if code == "TransactionCanceledException":
            cancelled = error.response.get("CancellationReasons", [])
            if any(
                r.get("Code") == "ValidationError" and _item_too_large(r.get("Message")) for r in cancelled
            ):
                raise PayloadTooLarge(f"{operation}: item too large") from error
            reasons = [r.get("Code", "None") for r in cancelled]
            if any(r in {"ThrottlingError", "ProvisionedThroughputExceeded"} for r in reasons):
                raise Throttled(f"{operation}: throttled", reasons=reasons) from error
            raise Conflict(f"{operation}: transaction cancelled", reasons=reasons) from error
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if status >= 500:
            raise TransientFailure(f"{operation}: {code}") from error
        raise
    except BotoCoreError as error:
        raise TransientFailure(f"{operation}: {type(error).__name__}") from error
