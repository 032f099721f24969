"""Composition root: builds clients and adapters from typed settings, lazily, once per process.

Nothing here runs at import time. Handlers call `container()`; tests build `Container(settings, **overrides)`
with fakes or moto-backed adapters. Sections below are owned by capability.
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from typing import Any

from deflect.settings import Settings, settings


class Container:
    def __init__(self, config: Settings | None = None, **overrides: Any) -> None:
        self.settings = config or settings()
        for name, value in overrides.items():
            # cached_property stores in __dict__, so an override simply pre-fills the cache.
            self.__dict__[name] = value

    # ------------------------------------------------------------------ AWS clients
    @cached_property
    def boto_session(self) -> Any:
        import boto3

        return boto3.session.Session(region_name=self.settings.region)

    def client(self, service: str) -> Any:
        cache = self.__dict__.setdefault("_clients", {})
        if service not in cache:
            from botocore.config import Config

            cache[service] = self.boto_session.client(
                service,
                endpoint_url=self.settings.endpoint_url,
                config=Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10),
            )
        return cache[service]

    # ------------------------------------------------------------------ foundation
    @cached_property
    def store(self) -> Any:
        from deflect.adapters.dynamo_store import DynamoSupportStore

        return DynamoSupportStore(self.client("dynamodb"), self.settings.support_table)

    @cached_property
    def evidence(self) -> Any:
        from deflect.adapters.s3_evidence import S3EvidenceStore

        return S3EvidenceStore(self.client("s3"), self.settings.evidence_bucket, self.settings.evidence_kms_key_id)

    @cached_property
    def audit(self) -> Any:
        from deflect.services.audit import AuditLog

        return AuditLog(self.store, self.evidence)

    @cached_property
    def secrets(self) -> Any:
        from deflect.adapters.ssm_secrets import SsmSecretStore

        return SsmSecretStore(self.client("ssm"), self.settings.secrets_prefix)

    @cached_property
    def tenants(self) -> Any:
        from deflect.repositories import TenantConfigs

        return TenantConfigs(self.store)

    @cached_property
    def triage_queue(self) -> Any:
        from deflect.adapters.sqs_queue import SqsWorkQueue

        return SqsWorkQueue(self.client("sqs"), self.settings.triage_queue_url)

    @cached_property
    def writeback_queue(self) -> Any:
        from deflect.adapters.sqs_queue import SqsWorkQueue

        return SqsWorkQueue(self.client("sqs"), self.settings.writeback_queue_url)

    @cached_property
    def workflow(self) -> Any:
        from deflect.adapters.sfn_workflow import StepFunctionsWorkflow

        return StepFunctionsWorkflow(self.client("stepfunctions"), self.settings.escalation_state_machine_arn)

    @cached_property
    def token_cipher(self) -> Any:
        from deflect.adapters.kms_cipher import KmsTokenCipher

        return KmsTokenCipher(self.client("kms"), self.settings.evidence_kms_key_id)

    # ------------------------------------------------------------------ intake (issue 3)

    # ------------------------------------------------------------------ knowledge (issue 4)

    # ------------------------------------------------------------------ triage (issue 5)

    # ------------------------------------------------------------------ escalation and approval (issue 6)

    # ------------------------------------------------------------------ writeback (issue 7)

    # ------------------------------------------------------------------ accountability (issue 8)


@lru_cache(maxsize=1)
def container() -> Container:
    return Container()


def reset() -> None:
    """For tests and the local stack after settings change."""
    container.cache_clear()
    settings.cache_clear()
