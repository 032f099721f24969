"""The IAM actions template.yaml grants each function, and the actions an AWS API call needs.

moto does not check IAM, so a grant the code needs but the template lacks only shows after `sam deploy`. The
local stack can record the calls each function makes (infra/local/aws_calls.py); `missing()` compares them with
what the template grants. Actions, plus which queue a message goes to, which table a DynamoDB call touches and
which bucket an S3 call reads or writes; keys and object prefixes are not compared.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from infra.local import template as tpl

# The SAM policy templates the template uses, as the actions they grant (SAM's policy_templates.json).
SAM_POLICY_ACTIONS: dict[str, list[str]] = {
    "DynamoDBCrudPolicy": [
        "dynamodb:GetItem",
        "dynamodb:DeleteItem",
        "dynamodb:PutItem",
        "dynamodb:Scan",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:BatchGetItem",
        "dynamodb:DescribeTable",
        "dynamodb:ConditionCheckItem",
    ],
    "SQSSendMessagePolicy": ["sqs:SendMessage*"],
    "EventBridgePutEventsPolicy": ["events:PutEvents"],
    "StepFunctionsExecutionPolicy": ["states:StartExecution"],
    "SNSPublishMessagePolicy": ["sns:Publish"],
    "S3ReadPolicy": [
        "s3:GetObject",
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "s3:GetObjectVersion",
        "s3:GetLifecycleConfiguration",
    ],
}

# API operations whose IAM action has another name, or that need more than one action.
_NEEDS: dict[tuple[str, str], list[str]] = {
    ("dynamodb", "TransactWriteItems"): [
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem",
    ],
    ("dynamodb", "TransactGetItems"): ["dynamodb:GetItem"],
    # Our vault tells "not there" by a 404, which S3 only answers to callers that may list the bucket.
    ("s3", "HeadObject"): ["s3:GetObject", "s3:ListBucket"],
    # One version of an object (the recorder marks calls that name a VersionId).
    ("s3", "GetObject+VersionId"): ["s3:GetObjectVersion"],
    ("s3", "HeadObject+VersionId"): ["s3:GetObjectVersion"],
    ("s3", "ListObjectVersions"): ["s3:ListBucketVersions"],
    ("s3", "HeadBucket"): ["s3:ListBucket"],
    ("bedrock", "Converse"): ["bedrock:InvokeModel"],
    ("bedrock", "ConverseStream"): ["bedrock:InvokeModelWithResponseStream"],
}


def needs(service: str, operation: str) -> list[str]:
    """The IAM actions one API call needs."""
    return _NEEDS.get((service, operation), [f"{service}:{operation}"])


def _statements(function: str) -> list[dict[str, Any]]:
    """The inline statements of the function's policies and of the template's managed policies it attaches."""
    props = tpl.resources("AWS::Serverless::Function")[function]["Properties"]
    managed = tpl.resources("AWS::IAM::ManagedPolicy")
    found: list[dict[str, Any]] = []
    for policy in props.get("Policies", []):
        if isinstance(policy, dict) and "Statement" in policy:
            found += policy["Statement"]
        elif isinstance(policy, dict) and policy.get("Ref") in managed:
            found += managed[policy["Ref"]]["Properties"]["PolicyDocument"]["Statement"]
    return found


def granted(function: str) -> list[str]:
    """Every action (patterns allowed, e.g. `sqs:SendMessage*`) the template allows the function."""
    props = tpl.resources("AWS::Serverless::Function")[function]["Properties"]
    actions = [a for s in _statements(function) if s.get("Effect") == "Allow" for a in _list(s.get("Action"))]
    for policy in props.get("Policies", []):
        if isinstance(policy, dict):
            actions += [a for name in policy for a in SAM_POLICY_ACTIONS.get(name, [])]
    return actions


def denied(function: str) -> list[str]:
    """Actions an explicit Deny takes back from the function, whatever else allows them."""
    return [a for s in _statements(function) if s.get("Effect") == "Deny" for a in _list(s.get("Action"))]


def allows(patterns: list[str], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in patterns)


def _named_by(function: str, policy_template: str, field: str) -> set[str]:
    """The resources (template ids) the function's SAM policy templates of one kind name."""
    props = tpl.resources("AWS::Serverless::Function")[function]["Properties"]
    named = set()
    for policy in props.get("Policies", []):
        if isinstance(policy, dict) and policy_template in policy:
            reference = policy[policy_template][field]  # {"Ref": id} or {"Fn::GetAtt": [id, attribute]}
            named.add(reference["Ref"] if "Ref" in reference else reference["Fn::GetAtt"][0])
    return named


def queues_sent_to(function: str) -> set[str]:
    return _named_by(function, "SQSSendMessagePolicy", "QueueName")


def tables_of(function: str) -> set[str]:
    return _named_by(function, "DynamoDBCrudPolicy", "TableName")


def _buckets() -> dict[str, Any]:
    return {name: r["Properties"].get("BucketName") for name, r in tpl.resources("AWS::S3::Bucket").items()}


def bucket_id(name: str) -> str:
    """The template id of a bucket by its name: the local stack names a bucket by its lower-cased id; on AWS it
    has its BucketName, whose substitutions (`${AWS::AccountId}`) match anything."""
    for bucket, configured in _buckets().items():
        pattern = (
            re.sub(r"\$\{[^}]+\}", "*", configured.get("Fn::Sub", ""))
            if isinstance(configured, dict)
            else None
        )
        if name == bucket.lower() or name == configured or (pattern and fnmatch.fnmatchcase(name, pattern)):
            return bucket
    return name


def _bucket_of(resource: Any) -> str | None:
    """The bucket id an S3 resource names (`*` for every bucket), None for a resource that is not a bucket."""
    buckets = _buckets()
    if resource == "*":
        return "*"
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        return resource["Fn::GetAtt"][0] if resource["Fn::GetAtt"][0] in buckets else None
    text = resource.get("Fn::Sub", "") if isinstance(resource, dict) else str(resource)
    if reference := re.match(r"\$\{(\w+)\.Arn\}", text):
        return reference.group(1) if reference.group(1) in buckets else None
    return None


def s3_grants(function: str) -> list[tuple[str, str]]:
    """(action pattern, bucket id or `*`) for every S3 action the template grants the function."""
    props = tpl.resources("AWS::Serverless::Function")[function]["Properties"]
    by_name = {repr(configured): bucket for bucket, configured in _buckets().items()}
    pairs: list[tuple[str, str]] = []
    for policy in props.get("Policies", []):
        if not isinstance(policy, dict):
            continue
        for name, body in policy.items():
            if name == "Statement":
                for statement in body:
                    if statement.get("Effect") != "Allow":
                        continue
                    buckets = [_bucket_of(r) for r in _list_of(statement.get("Resource"))]
                    pairs += [(a, b) for a in _list(statement.get("Action")) for b in buckets if b]
            elif (
                isinstance(body, dict)
                and "BucketName" in body
                and (bucket := by_name.get(repr(body["BucketName"])))
            ):
                # SAM's S3 policy templates name the bucket as the bucket's own BucketName does.
                pairs += [(a, bucket) for a in SAM_POLICY_ACTIONS.get(name, [])]
    return pairs


def missing(calls: list[tuple[str, str, str]]) -> list[str]:
    """`function: action (operation)` for every recorded call the template does not grant."""
    functions = tpl.resources("AWS::Serverless::Function")
    grants = {name: granted(name) for name in functions}
    denials = {name: denied(name) for name in functions}
    out = []
    for function, service, recorded in calls:
        operation, _, target = recorded.partition("@")
        for action in needs(service, operation):
            if not allows(grants.get(function, []), action):
                out.append(f"{function}: {action} ({service}.{operation})")
            elif allows(denials.get(function, []), action):
                out.append(f"{function}: {action} ({service}.{operation}) is denied")
        if not target or function not in functions:
            continue
        if service == "sqs" and target not in queues_sent_to(function):
            out.append(f"{function}: sqs:{operation} to {target}")
        if service == "dynamodb" and target not in tables_of(function):
            out.append(f"{function}: dynamodb:{operation} on {target}")
        if service == "s3":
            pairs, bucket = s3_grants(function), bucket_id(target)
            for action in needs(service, operation):
                if not any(allows([a], action) and b in ("*", bucket) for a, b in pairs):
                    out.append(f"{function}: {action} on bucket {bucket}")
    return sorted(set(out))


def _list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _list_of(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]
