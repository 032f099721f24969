"""End-to-end tests: one local stack per test session, started like `make run` and called over HTTP.

The stack runs in a child process (`start_stack(separate_process=True)`) so moto's process-wide state and the
stack's environment never mix with in-process moto tests that may share this pytest process.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from infra.local.stack import ChildStack, start_stack

AWS_CALLS = "aws-calls.jsonl"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """A tiny HTTP client for the local API (stdlib only)."""

    def __init__(self, stack: ChildStack) -> None:
        self.stack = stack
        self.base_url = stack.base_url

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        role: str | None = None,
        json_body: Any = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        sent = dict(headers or {})
        if role:
            token = self.stack.tokens[role]
        if token:
            sent["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(self.base_url + path, data=body, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return Answer(answer.status, dict(answer.headers), answer.read())
        except urllib.error.HTTPError as error:
            return Answer(error.code, dict(error.headers), error.read())

    def get(self, path: str, **kw: Any) -> Answer:
        return self.call("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Answer:
        return self.call("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Answer:
        return self.call("PUT", path, **kw)

    def aws(self, service: str) -> Any:
        """A boto3 client for the stack's moto server (dummy credentials), to look behind the API."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.stack.moto_url,
            region_name="us-east-1",
            aws_access_key_id="e2e",
            aws_secret_access_key="e2e",
        )


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChildStack]:
    data_dir = tmp_path_factory.mktemp("deflect-data")
    # The stack records each function's AWS calls, for test_permissions (the child inherits the environment).
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DEFLECT_RECORD_AWS_CALLS", str(data_dir / AWS_CALLS))
        # The local functions share one process: a customer key or a secret one of them read would hide the
        # others' KMS and SSM calls.
        env.setenv("CUSTOMER_KEY_CACHE_S", "0")
        env.setenv("SECRETS_CACHE_S", "0")
        # A bulk import keeps all of its 120 s in reserve, so every part imports one article and queues the
        # rest: the permission check then sees the import queue too.
        env.setenv("KNOWLEDGE_IMPORT_RESERVE_S", "120")
        stack = start_stack(port=0, data_dir=data_dir, separate_process=True)
    assert isinstance(stack, ChildStack)
    try:
        yield stack
    finally:
        stopped = stack.stop()
    assert stopped, "the local stack did not stop on SIGTERM:\n" + stack.log()[-2000:]
    assert "Stopped." in stack.log()


@pytest.fixture(scope="session")
def api(local_stack: ChildStack) -> Api:
    return Api(local_stack)
