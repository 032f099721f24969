"""Reads template.yaml so the local stack and the tests create exactly what the template declares."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


@lru_cache(maxsize=1)
def load_template(path: str = str(TEMPLATE)) -> dict[str, Any]:
    # Short intrinsics (!Ref, !Sub, !GetAtt ...) load as their long forms, as cfn-lint's decoder gives them.
    # Not cfn-lint itself: importing it takes ~3-4 s, paid by every stack start and test process.
    import yaml

    class _CfnLoader(yaml.SafeLoader):
        pass

    def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        if suffix == "Ref":
            return {"Ref": value}
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {f"Fn::{suffix}": value}

    _CfnLoader.add_multi_constructor("!", _intrinsic)
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader plus intrinsic tags only


def resources(kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in load_template()["Resources"].items() if r.get("Type") == kind}


@dataclass
class Route:
    function: str
    method: str
    path: str
    authorizer: str | None
    code_uri: str


@dataclass
class FunctionSpec:
    name: str
    code_uri: str
    handler: str
    timeout: int
    environment: dict[str, Any] = field(default_factory=dict)
    sqs_queues: list[str] = field(default_factory=list)
    stream: bool = False
    # The stream mapping's FilterCriteria patterns (JSON text): Lambda invokes only for records one matches.
    stream_filters: list[str] = field(default_factory=list)
    s3_buckets: list[str] = field(default_factory=list)


def globals_environment() -> dict[str, Any]:
    return load_template().get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})


def functions() -> dict[str, FunctionSpec]:
    glob = load_template().get("Globals", {}).get("Function", {})
    specs = {}
    for name, resource in resources("AWS::Serverless::Function").items():
        props = resource["Properties"]
        env = dict(globals_environment())
        env.update(props.get("Environment", {}).get("Variables", {}))
        spec = FunctionSpec(
            name=name,
            code_uri=props["CodeUri"].rstrip("/"),
            handler=props.get("Handler", "app.handler"),
            timeout=int(props.get("Timeout", glob.get("Timeout", 30))),
            environment=env,
        )
        for event in props.get("Events", {}).values():
            ep = event.get("Properties", {})
            if event["Type"] == "SQS":
                spec.sqs_queues.append(ep["Queue"]["Fn::GetAtt"][0])
            elif event["Type"] == "DynamoDB":
                spec.stream = True
                filters = (ep.get("FilterCriteria") or {}).get("Filters") or []
                # A Pattern is JSON text in the template, or a YAML mapping SAM also accepts.
                spec.stream_filters.extend(
                    f["Pattern"] if isinstance(f["Pattern"], str) else json.dumps(f["Pattern"])
                    for f in filters
                )
            elif event["Type"] == "S3":
                spec.s3_buckets.append(ep["Bucket"]["Ref"])
        specs[name] = spec
    return specs


def routes() -> list[Route]:
    found = []
    for name, resource in resources("AWS::Serverless::Function").items():
        props = resource["Properties"]
        for event in props.get("Events", {}).values():
            if event["Type"] != "Api":
                continue
            ep = event["Properties"]
            auth = (ep.get("Auth") or {}).get("Authorizer")
            found.append(Route(name, ep["Method"].upper(), ep["Path"], auth, props["CodeUri"].rstrip("/")))
    return found


def table_definitions() -> dict[str, dict[str, Any]]:
    """CreateTable arguments per table, straight from the template's properties."""
    definitions = {}
    for name, resource in resources("AWS::DynamoDB::Table").items():
        props = resource["Properties"]
        args: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        if props.get("StreamSpecification"):
            args["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        definitions[name] = args
    return definitions


def bucket_definitions() -> dict[str, dict[str, Any]]:
    return {name: r.get("Properties", {}) for name, r in resources("AWS::S3::Bucket").items()}


def queue_definitions() -> dict[str, dict[str, Any]]:
    return {name: r.get("Properties", {}) for name, r in resources("AWS::SQS::Queue").items()}


def state_machines() -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in resources("AWS::Serverless::StateMachine").items()}
