"""What `sam deploy` gives an operator, read from template.yaml and samconfig.toml under AWS's documented semantics
(no AWS call): request bodies the API promises get past WAF, a stack that could triage nothing is refused at deploy
and reported by GET /v1/health, and deploys work on a new account."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from infra.local import template as tpl

ROOT = Path(__file__).resolve().parents[2]
# AWS WAF inspects at most the first 16 KB of a body behind API Gateway unless the web ACL's AssociationConfig
# raises it (to 64 KB at most); OversizeHandling says what a longer body gets.
WAF_INSPECTION = {"KB_16": 16 * 1024, "KB_32": 32 * 1024, "KB_48": 48 * 1024, "KB_64": 64 * 1024}


def _parameters(**overrides: str) -> dict[str, str]:
    params = {name: str(p.get("Default", "")) for name, p in tpl.load_template()["Parameters"].items()}
    return {**params, **overrides}


def _samconfig(env: str) -> dict[str, str]:
    conf = tomllib.loads((ROOT / "samconfig.toml").read_text())
    pairs = [p.split("=", 1) for p in conf[env]["deploy"]["parameters"]["parameter_overrides"].split()]
    return {k: v.strip('"') for k, v in pairs}


def _value(node: Any, params: dict[str, str]) -> Any:
    """CloudFormation's condition functions and Ref over parameter values (enough for Conditions and Rules)."""
    conditions = tpl.load_template().get("Conditions", {})
    if isinstance(node, dict) and len(node) == 1:
        [(name, arg)] = node.items()
        if name == "Ref":
            return params.get(arg, arg)
        if name == "Condition":
            return _value(conditions[arg], params)
        if name == "Fn::Equals":
            return str(_value(arg[0], params)) == str(_value(arg[1], params))
        if name == "Fn::Not":
            return not _value(arg[0], params)
        if name == "Fn::Or":
            return any(_value(a, params) for a in arg)
        if name == "Fn::And":
            return all(_value(a, params) for a in arg)
        if name == "Fn::If":
            return _value(arg[1] if _value(conditions[arg[0]], params) else arg[2], params)
    return node


def _refused_by_rules(params: dict[str, str]) -> list[str]:
    """The AssertDescription of every template rule the parameters break (CloudFormation refuses the deploy)."""
    refused = []
    for rule in tpl.load_template().get("Rules", {}).values():
        if "RuleCondition" in rule and not _value(rule["RuleCondition"], params):
            continue
        refused += [a["AssertDescription"] for a in rule["Assertions"] if not _value(a["Assert"], params)]
    return refused


# --------------------------------------------------------------------------- request bodies at the edge


def _aws_waf_blocks(size: int) -> bool:
    """The template's WAF rules as AWS WAF applies them to a body of `size` bytes behind API Gateway."""
    acl = tpl.resources("AWS::WAFv2::WebACL")["ApiWebAcl"]["Properties"]
    limit_name = acl.get("AssociationConfig", {}).get("RequestBody", {}).get("API_GATEWAY", {})
    inspected = WAF_INSPECTION[limit_name.get("DefaultSizeInspectionLimit", "KB_16")]
    for rule in acl["Rules"]:
        statement = rule["Statement"].get("SizeConstraintStatement")
        if not statement or "Body" not in statement["FieldToMatch"] or "Block" not in rule["Action"]:
            continue
        oversize = statement["FieldToMatch"]["Body"].get("OversizeHandling", "CONTINUE")
        limit = int(_value(statement["Size"], _parameters()))
        assert statement["ComparisonOperator"] == "GT"
        if size > inspected and oversize == "MATCH":
            return True
        if size > inspected and oversize == "NO_MATCH":
            continue
        if min(size, inspected) > limit:
            return True
    return False


@pytest.mark.parametrize("size", [100_000, 16 * 1024 + 1, 64 * 1024 + 1, 256 * 1024])
def test_bodies_up_to_the_documented_limit_get_past_waf(size):
    """OversizeHandling MATCH blocked every body over the 16 KB WAF inspects: a 100 KB webhook got a 413."""
    assert size <= int(_parameters()["MaxRequestBodyBytes"])
    assert not _aws_waf_blocks(size)


def test_the_local_gateway_refuses_exactly_what_aws_waf_would(tmp_path):
    from infra.local.api import LocalApi
    from infra.local.dev_issuer import DevIssuer

    issuer = DevIssuer.in_dir(tmp_path)
    template_limit = int(_parameters()["MaxRequestBodyBytes"])
    for limit in (64, 20_000, template_limit):
        rule = LocalApi(None, issuer, stage="local", max_body_bytes=limit).body_rule  # type: ignore[arg-type]
        for size in (0, 64, 65, 16 * 1024, 16 * 1024 + 1, 100_000, 262_144, 262_145, 5_000_000):
            local = rule.blocks(size) or size > rule.largest_passed()
            # The rule (OversizeHandling CONTINUE) compares the 16 KB WAF inspects: only a limit below it binds.
            assert local == (min(size, 16 * 1024) > limit), (limit, size)
            if limit == template_limit:
                assert local == _aws_waf_blocks(size), size


def test_a_100_kb_webhook_reaches_the_function_on_the_local_stack(tmp_path):
    from infra.local.api import LocalApi
    from infra.local.dev_issuer import DevIssuer

    class Recording:
        def __init__(self) -> None:
            self.events: list[dict[str, Any]] = []

        def invoke(self, function: str, event: dict[str, Any]) -> dict[str, Any]:
            self.events.append(event)
            return {"statusCode": 200, "body": "{}"}

    functions = Recording()
    limit = int(_parameters()["MaxRequestBodyBytes"])
    api = LocalApi(functions, DevIssuer.in_dir(tmp_path), stage="local", max_body_bytes=limit)  # type: ignore[arg-type]
    body = json.dumps({"text": "x" * 100_000}).encode()

    status, _, _ = api.handle(
        "POST", "/v1/webhooks/jira/acme", [("Content-Type", "application/json")], body, "1.2.3.4"
    )

    assert status == 200 and len(functions.events[0]["body"]) == len(body)


# --------------------------------------------------------------------------- a stack that could triage nothing


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_deploying_opensearch_without_an_endpoint_is_refused_with_a_clear_message(env):
    """samconfig.toml's parameters left OPENSEARCH_ENDPOINT empty: every triage job failed into TriageDLQ."""
    params = _parameters(**_samconfig(env))
    assert params["KnowledgeBackend"] == "opensearch" and params["OpenSearchEndpoint"] == ""

    [message] = _refused_by_rules(params)

    assert "OpenSearchEndpoint" in message and "samconfig.toml" in message
    assert _refused_by_rules({**params, "OpenSearchEndpoint": "search-kb.us-east-1.es.amazonaws.com"}) == []


def test_no_backend_the_lambda_layer_cannot_load_is_offered():
    """`embedded` needs tantivy, ONNX Runtime and numpy, which the layer does not ship."""
    shipped = (ROOT / "layers/core/requirements.txt").read_text().lower()
    assert not any(name in shipped for name in ("tantivy", "onnxruntime", "numpy"))
    params = tpl.load_template()["Parameters"]
    assert params["KnowledgeBackend"]["AllowedValues"] == ["opensearch"]
    assert params["ModelBackend"]["AllowedValues"] == ["bedrock"]


def _health(settings_env: dict[str, str], monkeypatch, answer=None):
    from deflect.adapters import opensearch_index
    from deflect.adapters.aws_probes import aws_probes
    from deflect.services.health import check_health
    from deflect.settings import Settings

    asked: list[tuple[str, str]] = []

    def client(endpoint, *, service, region, session=None, timeout=10.0):
        from opensearchpy import Connection, OpenSearch

        class Domain(Connection):
            def perform_request(
                self, method, url, params=None, body=None, timeout=None, ignore=(), headers=None
            ):
                asked.append((method, url))
                return answer(self)

        return OpenSearch(hosts=[{"host": endpoint, "port": 443}], connection_class=Domain, max_retries=0)

    monkeypatch.setattr(opensearch_index, "opensearch_client", client)
    settings = Settings.from_env(
        {"AWS_REGION": "us-east-1", "KNOWLEDGE_BACKEND": "opensearch", **settings_env}
    )
    probes = aws_probes(lambda service: None, settings)
    report = check_health({"knowledge": probes["knowledge"]}, version="1")
    return report, asked


def test_health_reports_a_knowledge_backend_without_an_endpoint(monkeypatch):
    report, asked = _health({"OPENSEARCH_ENDPOINT": ""}, monkeypatch)

    assert report.status == "degraded" and report.dependencies == {"knowledge": "missing"}
    assert asked == []


def test_health_looks_at_the_knowledge_index_with_a_head(monkeypatch):
    from opensearchpy.exceptions import AuthorizationException, ConnectionError, NotFoundError

    def not_there_yet(connection):
        raise NotFoundError(404, "index_not_found_exception", {})

    def refused(connection):
        raise AuthorizationException(403, "security_exception", {})

    def down(connection):
        raise ConnectionError("N/A", "connection refused", OSError())

    env = {"OPENSEARCH_ENDPOINT": "search-kb.us-east-1.es.amazonaws.com"}
    report, asked = _health(env, monkeypatch, lambda connection: (200, {}, ""))
    assert report.dependencies == {"knowledge": "ok"} and asked == [("HEAD", "/deflect-knowledge")]
    # The first article write creates the index: a stack with none yet is healthy.
    assert _health(env, monkeypatch, not_there_yet)[0].dependencies == {"knowledge": "ok"}
    assert _health(env, monkeypatch, refused)[0].dependencies == {"knowledge": "denied"}
    down_report = _health(env, monkeypatch, down)[0]
    assert down_report.status == "degraded" and down_report.dependencies == {"knowledge": "unreachable"}


# --------------------------------------------------------------------------- deploys on any account


def test_the_writeback_function_reserves_no_concurrency_unless_asked():
    """A reservation of 20 failed the deploy on accounts whose concurrency quota is 10 (10 must stay unreserved)."""
    reserved = tpl.resources("AWS::Serverless::Function")["WritebackFunction"]["Properties"].get(
        "ReservedConcurrentExecutions"
    )
    for value, expected in (("", "AWS::NoValue"), ("0", "AWS::NoValue"), ("20", "20")):
        assert _value(reserved, _parameters(WritebackReservedConcurrency=value)) == expected
    assert all("WritebackReservedConcurrency" not in _samconfig(env) for env in ("dev", "prod"))


@pytest.mark.parametrize(("function", "limit"), [("WritebackFunction", "20"), ("TriageFunction", "20")])
def test_queue_consumers_are_capped_without_reserving_concurrency(function, limit):
    # Without a reservation nothing else bounded them: the helpdesk rate limiter keeps its buckets per container
    # (each tenant's limit multiplied by the containers) and a triage burst would throttle Bedrock into escalations.
    [event] = [
        e
        for e in tpl.resources("AWS::Serverless::Function")[function]["Properties"]["Events"].values()
        if e["Type"] == "SQS"
    ]
    assert _value(event["Properties"]["ScalingConfig"]["MaximumConcurrency"], _parameters()) == limit


def test_nobody_can_sign_up_to_the_agent_user_pool():
    pool = tpl.resources("AWS::Cognito::UserPool")["AgentUserPool"]["Properties"]
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True


def test_evidence_retention_changes_only_through_the_root_or_the_named_deploy_role():
    statement = next(
        s
        for s in tpl.resources("AWS::S3::BucketPolicy")["EvidenceBucketPolicy"]["Properties"][
            "PolicyDocument"
        ]["Statement"]
        if s["Sid"] == "NoRetentionChanges"
    )
    assert "s3:PutBucketObjectLockConfiguration" in statement["Action"] and statement["Principal"] == "*"

    def exempt(**params: str) -> list[Any]:
        values = [
            _value(v, _parameters(**params))
            for v in statement["Condition"]["StringNotLike"]["aws:PrincipalArn"]
        ]
        return [v for v in values if v != "AWS::NoValue"]

    root = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
    assert exempt() == [root]
    deployer = "arn:aws:iam::123456789012:role/deflect-cfn-deploy"
    assert exempt(EvidenceRetentionAdminArn=deployer) == [root, deployer]
