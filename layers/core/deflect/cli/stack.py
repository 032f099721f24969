"""`deflect --stack NAME ...`: run an operator's command against a deployed stack with the settings its functions use.

Why: the CLI reads the same typed settings as the handlers (table, bucket, KMS key, queues, backends, model ids).
Copying them from the template by hand invites a command that writes to the wrong table or trains intents on
another embedding model than triage reads with; the deployed functions' own environment is the source of truth.
The operator's own credentials and region are used (the functions' roles are not assumed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

# Set by Lambda or meant for its log stream only; an operator's terminal keeps its own.
_NOT_COPIED_PREFIXES = ("AWS_", "POWERTOOLS_", "_")
NO_CREDENTIALS = (
    "no AWS credentials found: --stack uses your own, so configure them (aws configure, aws sso login, or "
    "AWS_PROFILE); for the stack `make run` started, use --local instead"
)


def deployed_environment(cloudformation: Any, lambda_client: Any, stack: str) -> dict[str, str]:
    """The union of the stack's functions' environment variables (they share the template's globals)."""
    functions: list[str] = []
    try:
        for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack):
            functions += [
                r["PhysicalResourceId"]
                for r in page["StackResourceSummaries"]
                if r["ResourceType"] == "AWS::Lambda::Function" and r.get("PhysicalResourceId")
            ]
    except ClientError as error:
        raise SystemExit(f"stack {stack!r}: {error.response['Error'].get('Message', error)}") from None
    except NoCredentialsError:
        raise SystemExit(f"stack {stack!r}: {NO_CREDENTIALS}") from None
    except BotoCoreError as error:
        raise SystemExit(f"stack {stack!r}: {error}") from None
    if not functions:
        raise SystemExit(f"stack {stack!r} has no Lambda functions: is it a Deflect stack?")
    merged: dict[str, str] = {}
    for name in sorted(functions):
        try:
            configuration = lambda_client.get_function_configuration(FunctionName=name)
        except ClientError as error:
            raise SystemExit(f"function {name}: {error.response['Error'].get('Message', error)}") from None
        variables: Mapping[str, str] = configuration.get("Environment", {}).get("Variables", {})
        for key, value in variables.items():
            if not key.startswith(_NOT_COPIED_PREFIXES):
                merged.setdefault(key, value)
    if "SUPPORT_TABLE" not in merged:
        raise SystemExit(f"stack {stack!r}: its functions name no SUPPORT_TABLE: is it a Deflect stack?")
    return merged


def use_deployed_stack(stack: str) -> dict[str, str]:
    """Point this process's settings at the deployed stack (the operator's credentials and region)."""
    import boto3

    from deflect import bootstrap

    # Deflect's settings read AWS_REGION (as Lambda sets it); boto3 reads AWS_DEFAULT_REGION or the profile's.
    session = boto3.session.Session(region_name=os.environ.get("AWS_REGION") or None)
    try:
        cloudformation, lambda_client = session.client("cloudformation"), session.client("lambda")
    except NoRegionError:
        raise SystemExit(
            f"stack {stack!r}: no AWS region configured: set AWS_REGION (or a region in `aws configure`) to "
            "the stack's region"
        ) from None
    environment = deployed_environment(cloudformation, lambda_client, stack)
    os.environ.update(environment)
    os.environ["AWS_REGION"] = session.region_name  # the commands then use the region the stack was found in
    bootstrap.reset()
    return environment
