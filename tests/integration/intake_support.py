"""Shared harness for the intake integration tests: one moto world per test module, the real intake handler.

Requests go through the same path API Gateway would take: a REST proxy event built by the local stack's
`rest_event` for the template's route, handed to `functions/intake/app.py`'s handler with a Lambda context.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
PROVIDERS = ("zendesk", "intercom", "freshdesk", "jira", "generic")


def sample(provider: str, name: str) -> bytes:
    return (EVENTS / provider / f"{name}.json").read_bytes()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Tenant:
    tenant_id: str
    secrets: dict[str, str]
    api_key: str


class DynamoAtomicity:
    """moto's in-process backend is not thread-safe; DynamoDB guarantees each conditional write is atomic.

    Serialising moto's request dispatch reproduces that guarantee (and only that): our code still runs with real
    concurrency between requests, which is what the duplicate-delivery tests exercise.
    """

    def __init__(self) -> None:
        from moto.core.botocore_stubber import BotocoreStubber

        self._cls = BotocoreStubber
        self._original = BotocoreStubber.__call__
        lock = threading.Lock()
        original = self._original

        def serialised(stub: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
            with lock:
                return original(stub, event_name, request, **kwargs)

        BotocoreStubber.__call__ = serialised  # type: ignore[method-assign]

    def undo(self) -> None:
        self._cls.__call__ = self._original  # type: ignore[method-assign]


class IntakeHarness:
    def __init__(self, session: Any, resources: Any) -> None:
        self.session = session
        self.resources = resources
        self.env = resources.environment("IntakeFunction")
        self._shared: Any = None
        self._module = self._load_handler()
        from infra.local import api as local_api
        from infra.local import template as tpl

        self._routes = local_api.compile_routes([r for r in tpl.routes() if r.function == "IntakeFunction"])
        self._local_api = local_api

    @staticmethod
    def _load_handler() -> Any:
        spec = importlib.util.spec_from_file_location(
            "intake_app_under_test", ROOT / "functions/intake/app.py"
        )
        module = importlib.util.module_from_spec(spec)
        assert spec.loader is not None
        spec.loader.exec_module(module)
        return module

    def container(self, *, fresh: bool = False, **overrides: Any) -> Any:
        """A container of its own (like another warm Lambda); without overrides, one shared instance.

        Each container builds a boto3 session, which loads service models from disk: reuse where possible.
        """
        from deflect.bootstrap import Container
        from deflect.settings import Settings

        if not overrides and not fresh and self._shared is not None:
            return self._shared
        built = Container(Settings.from_env({**os.environ, **self.env}), **overrides)
        if not overrides and not fresh:
            self._shared = built
        return built

    # -- tenants
    def create_tenant(self, tenant_id: str, **kwargs: Any) -> Tenant:
        given = {"zendesk": f"zd-{tenant_id}-secret", "intercom": f"ic-{tenant_id}-secret"}
        created = self.container().tenant_admin.create(
            tenant_id,
            tenant_id.title(),
            providers=list(PROVIDERS),
            actor="test",
            provided_secrets=given,
            **kwargs,
        )
        return Tenant(tenant_id, {**given, **created["webhook_secrets"]}, created["api_key"])

    # -- HTTP through the handler
    def call(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        claims: dict[str, str] | None = None,
    ) -> Answer:
        from infra.local.functions import LambdaContext

        found = self._local_api.match(self._routes, method, path)
        assert found, f"no template route for {method} {path}"
        route, params = found
        event = self._local_api.rest_event(
            route,
            method=method,
            path=path,
            query="",
            headers=list((headers or {}).items()),
            body=body,
            path_parameters=params,
            claims=claims,
            stage="local",
        )
        result = self._module.handler(event, LambdaContext("IntakeFunction", timeout_s=30))
        text = result.get("body") or ""
        headers = {k: v[-1] for k, v in (result.get("multiValueHeaders") or {}).items()} | (
            result.get("headers") or {}
        )
        return Answer(result["statusCode"], headers, json.loads(text) if text else None)

    def webhook(self, provider: str, tenant: str, body: bytes, headers: dict[str, str]) -> Answer:
        return self.call(
            "POST",
            f"/v1/webhooks/{provider}/{tenant}",
            body=body,
            headers={"Content-Type": "application/json", **headers},
        )

    # -- what was stored
    def items(self, tenant_id: str, pk_suffix: str, sk_prefix: str = "") -> list[dict[str, Any]]:
        from deflect.domain.tenancy import TenantContext

        ctx = TenantContext.system(tenant_id)
        return [i.data for i in self.container().store.query(ctx, f"T#{tenant_id}#{pk_suffix}", sk_prefix)]

    def tickets(self, tenant_id: str, ticket_id: str) -> list[dict[str, Any]]:
        return self.items(tenant_id, f"TICKET#{ticket_id}", "META")

    def messages(self, tenant_id: str, ticket_id: str) -> list[dict[str, Any]]:
        return self.items(tenant_id, f"TICKET#{ticket_id}", "MSG#")

    def drain_triage_jobs(self) -> list[dict[str, Any]]:
        sqs = self.session.client("sqs")
        url = self.env["TRIAGE_QUEUE_URL"]
        jobs: list[dict[str, Any]] = []
        while True:
            got = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0
            ).get("Messages", [])
            if not got:
                return jobs
            for message in got:
                jobs.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def objects(self, prefix: str) -> list[str]:
        s3 = self.session.client("s3")
        bucket = self.env["EVIDENCE_BUCKET"]
        return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def admin_claims(tenant_id: str, groups: str = "admin") -> dict[str, str]:
    return {"sub": f"{tenant_id}-admin", "custom:tenant_id": tenant_id, "cognito:groups": groups}


def queued_triage_only() -> Iterator[None]:
    """For an autouse fixture: the handler's own intake answers from the queue path (no synchronous triage) for the
    test, and gets its triage back after it."""
    from deflect.bootstrap import container

    intake = container().intake
    saved, intake.triage = intake.triage, None
    yield
    intake.triage = saved


def moto_harness() -> Iterator[IntakeHarness]:
    """A moto world shaped by template.yaml; each test module wraps it in a module-scoped fixture
    (creating it costs seconds, so tests of one module share it and use distinct ids)."""
    import boto3
    from moto import mock_aws

    from deflect import bootstrap
    from infra.local.resources import create_all

    saved = dict(os.environ)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    atomic = DynamoAtomicity()
    try:
        with mock_aws(
            config={"stepfunctions": {"execute_state_machine": False}, "lambda": {"use_docker": False}}
        ):
            session = boto3.session.Session(region_name="us-east-1")
            resources = create_all(session, execute_state_machines=False)
            harness = IntakeHarness(session, resources)
            os.environ.update(harness.env)
            bootstrap.reset()
            yield harness
    finally:
        atomic.undo()
        os.environ.clear()
        os.environ.update(saved)
        bootstrap.reset()
