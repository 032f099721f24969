"""`deflect --stack NAME`: operators' commands use the deployed functions' own settings (botocore Stubber, the
exact CloudFormation and Lambda calls)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from deflect.cli import main
from deflect.cli.stack import deployed_environment

STACK = "deflect-prod"


def _resource(logical: str, physical: str, kind: str = "AWS::Lambda::Function") -> dict:
    return {
        "LogicalResourceId": logical,
        "PhysicalResourceId": physical,
        "ResourceType": kind,
        "LastUpdatedTimestamp": "2026-11-01T00:00:00Z",
        "ResourceStatus": "UPDATE_COMPLETE",
    }


def _clients() -> tuple[object, object]:
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="eu-west-1")
    return session.client("cloudformation"), session.client("lambda")


def _function(name: str, variables: dict[str, str]) -> dict:
    return {"FunctionName": name, "Environment": {"Variables": variables}}


GLOBALS = {
    "DEFLECT_STAGE": "prod",
    "SUPPORT_TABLE": "deflect-prod-SupportTable-1AB",
    "EVIDENCE_BUCKET": "deflect-prod-evidence-123",
    "MODEL_BACKEND": "bedrock",
    "EMBEDDING_MODEL_ID": "amazon.titan-embed-text-v2:0",
    "POWERTOOLS_SERVICE_NAME": "deflect",
    "AWS_LAMBDA_EXEC_WRAPPER": "/opt/wrapper",
}


def test_the_deployed_functions_settings_are_merged_without_lambda_only_variables() -> None:
    cloudformation, lambda_client = _clients()
    with Stubber(cloudformation) as cfn, Stubber(lambda_client) as fn:
        cfn.add_response(
            "list_stack_resources",
            {
                "StackResourceSummaries": [
                    _resource("SupportTable", "deflect-prod-SupportTable-1AB", "AWS::DynamoDB::Table"),
                    _resource("TriageFunction", "deflect-prod-Triage-9Z"),
                    _resource("RetrievalFunction", "deflect-prod-Retrieval-7Y"),
                ]
            },
            {"StackName": STACK},
        )
        fn.add_response(
            "get_function_configuration",
            _function(
                "deflect-prod-Retrieval-7Y", {**GLOBALS, "KNOWLEDGE_IMPORT_QUEUE_URL": "https://q/import"}
            ),
            {"FunctionName": "deflect-prod-Retrieval-7Y"},
        )
        fn.add_response(
            "get_function_configuration",
            _function("deflect-prod-Triage-9Z", GLOBALS),
            {"FunctionName": "deflect-prod-Triage-9Z"},
        )
        environment = deployed_environment(cloudformation, lambda_client, STACK)
    assert environment["SUPPORT_TABLE"] == "deflect-prod-SupportTable-1AB"
    assert environment["MODEL_BACKEND"] == "bedrock"
    # One function's own queue is there too: the union of what the functions read.
    assert environment["KNOWLEDGE_IMPORT_QUEUE_URL"] == "https://q/import"
    assert not any(k.startswith(("AWS_", "POWERTOOLS_")) for k in environment)


def test_a_missing_stack_is_a_clear_error() -> None:
    cloudformation, lambda_client = _clients()
    with Stubber(cloudformation) as cfn:
        cfn.add_client_error(
            "list_stack_resources",
            service_error_code="ValidationError",
            service_message="Stack with id deflect-nope does not exist",
            http_status_code=400,
        )
        with pytest.raises(SystemExit, match="'deflect-nope': Stack with id deflect-nope does not exist"):
            deployed_environment(cloudformation, lambda_client, "deflect-nope")


def test_a_stack_that_is_not_deflect_is_refused_before_any_command_runs() -> None:
    cloudformation, lambda_client = _clients()
    with Stubber(cloudformation) as cfn, Stubber(lambda_client) as fn:
        cfn.add_response(
            "list_stack_resources",
            {"StackResourceSummaries": [_resource("Fn", "other-fn")]},
            {"StackName": "web"},
        )
        fn.add_response(
            "get_function_configuration",
            _function("other-fn", {"TABLE": "orders"}),
            {"FunctionName": "other-fn"},
        )
        with pytest.raises(SystemExit, match="no SUPPORT_TABLE"):
            deployed_environment(cloudformation, lambda_client, "web")


def test_local_and_stack_together_are_refused() -> None:
    with pytest.raises(SystemExit, match="--local or --stack"):
        main(["--local", "--stack", STACK, "tenant", "show", "--tenant", "acme"])
