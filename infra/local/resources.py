"""Creates the template's tables, buckets, queues, topics, bus, key and state machines in moto.

Used by `make run` (moto server) and by integration tests (moto in-process). Names are the logical ids,
so a local stack is one account with one stage.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.local import template as tpl

ACCOUNT = "123456789012"
REGION = "us-east-1"
QUEUE_ATTRIBUTES = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
)


@dataclass
class LocalResources:
    tables: dict[str, str] = field(default_factory=dict)
    buckets: dict[str, str] = field(default_factory=dict)
    queues: dict[str, str] = field(default_factory=dict)
    queue_arns: dict[str, str] = field(default_factory=dict)
    topics: dict[str, str] = field(default_factory=dict)
    state_machines: dict[str, str] = field(default_factory=dict)
    functions: dict[str, str] = field(default_factory=dict)
    kms_key_arn: str = ""
    event_bus: str = ""

    def environment(self, function: str | None = None) -> dict[str, str]:
        """Function environment from the template, with every !Ref / !GetAtt resolved to the local resource."""
        env = tpl.functions()[function].environment if function else tpl.globals_environment()
        return {k: str(v) for k, v in ((k, self.resolve(v)) for k, v in env.items()) if v is not None}

    def resolve(self, value: Any) -> Any:
        if isinstance(value, (str, int, float)):
            return value
        if "Ref" in value:
            return self._ref(value["Ref"])
        if "Fn::GetAtt" in value:
            name, attr = value["Fn::GetAtt"]
            return self._getatt(name, attr)
        if "Fn::Sub" in value:
            text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(self._ref(m.group(1))), text)
        return None

    def _ref(self, name: str) -> Any:
        params = tpl.load_template().get("Parameters", {})
        local_overrides = {"Stage": "local", "KnowledgeBackend": "embedded", "ModelBackend": "embedded"}
        if name in local_overrides:
            return local_overrides[name]
        if name in params:
            return params[name].get("Default", "")
        if name.endswith(".Alias"):
            return self.functions.get(name.split(".")[0], "")
        for mapping in (self.tables, self.buckets, self.queues, self.topics, self.state_machines, self.functions):
            if name in mapping:
                return mapping[name]
        if name == "EventBus":
            return self.event_bus
        if name == "DataKey":
            return self.kms_key_arn
        return {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"}.get(name, name)

    def _getatt(self, name: str, attr: str) -> Any:
        if name == "DataKey" and attr == "Arn":
            return self.kms_key_arn
        if name in self.queues:
            return self.queue_arns[name] if attr == "Arn" else name
        if name in self.functions and attr == "Arn":
            return self.functions[name]
        return f"{name}.{attr}"


def create_queue(sqs: Any, name: str, props: dict[str, Any]) -> str:
    """One of the template's queues, with its timing and FIFO attributes (the KMS key is left to moto's default).
    CloudFormation gives a FIFO queue the `.fifo` suffix SQS requires; so does this."""
    attributes = {k: _attribute(props[k]) for k in QUEUE_ATTRIBUTES if k in props}
    queue_name = f"{name}.fifo" if props.get("FifoQueue") else name
    return sqs.create_queue(QueueName=queue_name, Attributes=attributes)["QueueUrl"]


def _attribute(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def create_all(session: Any, *, execute_state_machines: bool = True) -> LocalResources:
    """Create everything from the template in whatever moto `session` points at."""
    found = LocalResources()
    kms = session.client("kms")
    found.kms_key_arn = kms.create_key(Description="deflect local data key")["KeyMetadata"]["Arn"]

    ddb = session.client("dynamodb")
    for name, args in tpl.table_definitions().items():
        ddb.create_table(**args)
        found.tables[name] = name

    s3 = session.client("s3")
    for name, props in tpl.bucket_definitions().items():
        bucket = name.lower()
        locked = bool(props.get("ObjectLockEnabled"))
        s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=locked)
        if locked:
            rule = props["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
            days = found.resolve(rule["Days"])
            s3.put_object_lock_configuration(
                Bucket=bucket,
                ObjectLockConfiguration={
                    "ObjectLockEnabled": "Enabled",
                    "Rule": {"DefaultRetention": {"Mode": rule["Mode"], "Days": int(days)}},
                },
            )
        elif props.get("VersioningConfiguration"):
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        found.buckets[name] = bucket

    sqs = session.client("sqs")
    for name, props in tpl.queue_definitions().items():
        url = create_queue(sqs, name, props)
        found.queues[name] = url
        found.queue_arns[name] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
    for name, props in tpl.queue_definitions().items():
        redrive = props.get("RedrivePolicy")
        if redrive:
            target = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
            policy = {"deadLetterTargetArn": found.queue_arns[target], "maxReceiveCount": redrive["maxReceiveCount"]}
            sqs.set_queue_attributes(QueueUrl=found.queues[name], Attributes={"RedrivePolicy": json.dumps(policy)})

    sns = session.client("sns")
    for name in tpl.resources("AWS::SNS::Topic"):
        found.topics[name] = sns.create_topic(Name=name)["TopicArn"]
    events = session.client("events")
    for name in tpl.resources("AWS::Events::EventBus"):
        events.create_event_bus(Name=name)
        found.event_bus = name

    lam = session.client("lambda")
    iam = session.client("iam")
    role = iam.create_role(RoleName="deflect-local", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    for name, spec in tpl.functions().items():
        arn = lam.create_function(
            FunctionName=name,
            Runtime="python3.13",
            Role=role,
            Handler=spec.handler,
            Code={"ZipFile": _dummy_zip()},
        )["FunctionArn"]
        found.functions[name] = arn

    sfn = session.client("stepfunctions")
    for name, props in tpl.state_machines().items():
        definition = Path(tpl.ROOT, props["DefinitionUri"]).read_text()
        for key, value in props.get("DefinitionSubstitutions", {}).items():
            definition = definition.replace("${" + key + "}", str(found.resolve(value)))
        arn = sfn.create_state_machine(name=name, definition=definition, roleArn=role)["stateMachineArn"]
        found.state_machines[name] = arn
    return found


def _dummy_zip() -> bytes:
    # moto needs a code package to register a function; the local stack routes invokes in-process instead.
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()
