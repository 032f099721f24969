"""What an operator is told when a command cannot go on: one line on stderr and exit code 1, never a traceback.

A DeflectError (the domain refusing something, or a dependency failing) and a problem of the operator's AWS
environment (no credentials, credentials AWS refuses, no permission, a table that is not there, an endpoint that
does not answer) are not bugs of the program: `main` prints `explain(error)` instead of a traceback. Any other
exception is a bug and keeps its traceback; `deflect --debug ...` (or DEFLECT_DEBUG=1) keeps it for these too.

Where a command's AWS calls go decides what to do about them, so `main` records it with `use_target` first:
  - neither --local nor --stack: AWS itself, with the operator's credentials and region and the settings in the
    shell's environment (table SUPPORT_TABLE, default "SupportTable", and so on);
  - --local: the moto server of the stack `make run` started, named in its stack file;
  - --stack NAME: AWS, with the settings the deployed stack's functions use.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from deflect.domain.errors import DeflectError, TenantNotFound, Throttled, TransientFailure

DEBUG_VARIABLE = "DEFLECT_DEBUG"

# Credentials AWS does not accept (expired session, wrong key, bad signature from a wrong secret).
_REFUSED_CREDENTIALS = {
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "AuthFailure",
}
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
# A table, bucket or queue the settings name that this account and region do not have.
_MISSING_RESOURCE = {
    "ResourceNotFoundException",
    "NoSuchBucket",
    "QueueDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue",
}

LOCAL_HINT = "add --local to use the stack `make run` started"


@dataclass(frozen=True)
class Target:
    kind: Literal["aws", "local", "stack"] = "aws"
    name: str = ""  # the stack file (local) or the stack's name (stack)


_target = Target()


def use_target(target: Target) -> None:
    global _target
    _target = target


def debugging() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _aws_settings() -> str:
    from deflect.settings import settings

    found = settings()
    return f"region {found.region}, table {found.support_table}"


def environment_problem(error: BaseException) -> str | None:
    """One line about a problem of the operator's AWS environment behind `error` (a DeflectError translated from
    botocore, or botocore's own), saying what to do; None when `error` is not one."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        CredentialRetrievalError,
        NoCredentialsError,
        PartialCredentialsError,
        ProfileNotFound,
        SSOError,
        TokenRetrievalError,
    )

    for cause in _chain(error):
        if isinstance(cause, NoCredentialsError | PartialCredentialsError):
            return _no_credentials()
        if isinstance(cause, CredentialRetrievalError | ProfileNotFound | SSOError | TokenRetrievalError):
            return f"your AWS credentials could not be loaded ({cause}): {_fix_credentials()}"
        if isinstance(cause, ConnectionError):
            return _unreachable(cause)
        if isinstance(cause, ClientError):
            code = str(cause.response.get("Error", {}).get("Code", ""))
            message = str(cause.response.get("Error", {}).get("Message", "")) or code
            operation = cause.operation_name
            if code in _REFUSED_CREDENTIALS:
                return f"AWS refused your credentials ({code}: {message}): {_fix_credentials()}"
            if code in _DENIED:
                return f"AWS denied {operation}: {message}"
            if code in _MISSING_RESOURCE and _target.kind == "aws":
                return (
                    f"{operation}: {message} (without --local or --stack, deflect uses AWS with the settings of "
                    f"this shell: {_aws_settings()}): {LOCAL_HINT}, or add --stack NAME for a deployed stack"
                )
            return None
    return None


def _no_credentials() -> str:
    if _target.kind == "local":
        return f"no AWS credentials for the local stack: {_target.name} does not set them; restart `make run`"
    if _target.kind == "stack":
        return (
            f"no AWS credentials found: --stack {_target.name} uses your own; configure them "
            "(aws configure, aws sso login, or AWS_PROFILE)"
        )
    return (
        f"no AWS credentials found (without --local or --stack, deflect acts on AWS): {LOCAL_HINT}, or configure "
        "AWS credentials (aws configure, aws sso login, or AWS_PROFILE) and add --stack NAME for a deployed stack"
    )


def _fix_credentials() -> str:
    if _target.kind == "local":
        return f"{_target.name} should set the local stack's; restart `make run`"
    fix = "refresh or configure them (aws sso login, aws configure, or AWS_PROFILE)"
    return fix if _target.kind == "stack" else f"{fix}, or {LOCAL_HINT}"


def _unreachable(cause: BaseException) -> str:
    if _target.kind == "local":
        endpoint = os.environ.get("AWS_ENDPOINT_URL", "its endpoint")
        return (
            f"cannot reach the local stack at {endpoint}: is `make run` still running? "
            f"(start it again; {_target.name} may be left from a stack that did not stop cleanly)"
        )
    return f"cannot reach AWS ({cause}): check your network, region and any proxy settings"


def explain(error: BaseException, *, tenant: str | None = None) -> str | None:
    """The line an operator sees for `error`, or None for a bug (which keeps its traceback)."""
    problem = environment_problem(error)
    if problem is not None:
        return problem
    if not isinstance(error, DeflectError):
        return None
    if isinstance(error, TenantNotFound):
        # also a suspended one: services act only for active tenants
        named = f"no active tenant {tenant!r}" if tenant else "no active tenant"
        if _target.kind == "aws":
            return (
                f"{named} on AWS ({_aws_settings()}, as this shell's settings say without --local or --stack): "
                f"create it (deflect tenant create), {LOCAL_HINT}, or add --stack NAME for a deployed stack"
            )
        return f"{named}: create it first (deflect tenant create), or check its status (deflect tenant show)"
    if isinstance(error, TransientFailure | Throttled):
        return f"{error.detail}: {error.public_message}, try again"
    if error.detail == error.public_message:
        return f"{error.code}: {error.detail}"
    return error.detail
