"""Shared fixtures. Integration tests get moto shaped from template.yaml (never retyped here)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Deflect")
os.environ.setdefault("POWERTOOLS_DEV", "0")
# Two xdist workers share two cores: OpenBLAS threads in each (set before numpy loads) oversubscribe them, and
# training an intent head took ~10x longer while the other worker trained one too.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """What a test leaves in os.environ goes with it: the CLI's `main` sets POWERTOOLS_METRICS_DISABLED (and a stack's
    settings), and a later test on the same worker would otherwise see no metrics at all."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


class MotoStack:
    """moto in-process with every resource of template.yaml, plus a Container wired to it."""

    def __init__(self, resources: Any, session: Any) -> None:
        self.resources = resources
        self.session = session
        self.env = resources.environment()

    def container(self, **overrides: Any) -> Any:
        from deflect.bootstrap import Container
        from deflect.settings import Settings

        env = {**os.environ, **self.env}
        env.pop("AWS_ENDPOINT_URL", None)
        return Container(Settings.from_env(env), **overrides)


@pytest.fixture
def moto_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoStack]:
    import boto3
    from moto import mock_aws

    from infra.local.resources import create_all

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        session = boto3.session.Session(region_name="us-east-1")
        resources = create_all(session)
        stack = MotoStack(resources, session)
        for key, value in stack.env.items():
            monkeypatch.setenv(key, value)
        from deflect import bootstrap

        bootstrap.reset()
        yield stack
        bootstrap.reset()
