"""Typed settings, read once from the environment. Each function composes the mixins it needs.

The same code runs locally and on AWS; only these values differ (the local stack sets them from template.yaml).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Env(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class AwsSettings(_Env):
    region: str = Field(default="us-east-1", alias="AWS_REGION")
    # Set only by the local stack (moto server); on AWS botocore's default endpoints are used.
    endpoint_url: str | None = Field(default=None, alias="AWS_ENDPOINT_URL")


class StorageSettings(_Env):
    support_table: str = Field(default="SupportTable", alias="SUPPORT_TABLE")
    idempotency_table: str = Field(default="IdempotencyTable", alias="IDEMPOTENCY_TABLE")
    evidence_bucket: str = Field(default="deflect-evidence", alias="EVIDENCE_BUCKET")
    evidence_kms_key_id: str | None = Field(default=None, alias="EVIDENCE_KMS_KEY_ID")
    # How long a warm function reuses an unwrapped customer key (the wrapped key is re-read every time, so an
    # erasure still takes effect at once); 0 unwraps with KMS on every use.
    customer_key_cache_s: float = Field(default=300.0, ge=0, alias="CUSTOMER_KEY_CACHE_S")
    secrets_prefix: str = Field(default="/deflect", alias="SECRETS_PREFIX")
    # How long a warm function reuses a tenant's secrets read from SSM (rotation keeps the previous one valid).
    secrets_cache_s: int = Field(default=60, ge=0, alias="SECRETS_CACHE_S")


class QueueSettings(_Env):
    triage_queue_url: str | None = Field(default=None, alias="TRIAGE_QUEUE_URL")
    writeback_queue_url: str | None = Field(default=None, alias="WRITEBACK_QUEUE_URL")
    # Where a bulk import that runs out of time queues its next part (the retrieval function reads it back).
    knowledge_import_queue_url: str | None = Field(default=None, alias="KNOWLEDGE_IMPORT_QUEUE_URL")
    writeback_dlq_url: str | None = Field(default=None, alias="WRITEBACK_DLQ_URL")
    escalation_state_machine_arn: str | None = Field(default=None, alias="ESCALATION_STATE_MACHINE_ARN")
    events_bus_name: str | None = Field(default=None, alias="EVENTS_BUS_NAME")
    sla_topic_arn: str | None = Field(default=None, alias="SLA_TOPIC_ARN")


class KnowledgeSettings(_Env):
    knowledge_backend: Literal["embedded", "opensearch"] = Field(default="embedded", alias="KNOWLEDGE_BACKEND")
    knowledge_data_dir: str = Field(default=".deflect-data/knowledge", alias="KNOWLEDGE_DATA_DIR")
    opensearch_endpoint: str | None = Field(default=None, alias="OPENSEARCH_ENDPOINT")
    opensearch_service: Literal["es", "aoss"] = Field(default="es", alias="OPENSEARCH_SERVICE")
    embedding_model_id: str = Field(default="amazon.titan-embed-text-v2:0", alias="EMBEDDING_MODEL_ID")
    embedding_dimensions: int = Field(default=1024, alias="EMBEDDING_DIMENSIONS")
    opensearch_index: str = Field(default="deflect-knowledge", alias="OPENSEARCH_INDEX")
    # The seconds a bulk import part keeps in hand before the function's timeout (queueing the rest, logging).
    knowledge_import_reserve_s: float = Field(default=15.0, ge=0, alias="KNOWLEDGE_IMPORT_RESERVE_S")


class ModelSettings(_Env):
    model_backend: Literal["embedded", "bedrock"] = Field(default="embedded", alias="MODEL_BACKEND")
    bedrock_model_id: str = Field(default="us.anthropic.claude-haiku-4-5-20251001-v1:0", alias="BEDROCK_MODEL_ID")
    bedrock_guardrail_id: str | None = Field(default=None, alias="BEDROCK_GUARDRAIL_ID")
    model_data_dir: str = Field(default=".deflect-data/models", alias="MODEL_DATA_DIR")
    bedrock_guardrail_version: str = Field(default="DRAFT", alias="BEDROCK_GUARDRAIL_VERSION")
    # Per Converse call (read timeout) and our own bounded retries on throttling/timeouts.
    bedrock_timeout_s: float = Field(default=20.0, alias="BEDROCK_TIMEOUT_S")
    bedrock_max_attempts: int = Field(default=4, alias="BEDROCK_MAX_ATTEMPTS")
    # Seconds ONE answer (draft + self-check, retries included) may take; no attempt starts that could outlast
    # it. Keep it ~20 s under the triage function's Timeout (60 s) for classification, retrieval and the writes:
    # a Lambda timeout retries the SQS batch instead of escalating the ticket.
    bedrock_budget_s: float = Field(default=40.0, gt=0, alias="BEDROCK_BUDGET_S")
    # Seconds a triage message needs besides the model (classification, retrieval, the decision's writes, the
    # hand-off). The triage worker starts a message only with triage_message_s left and ends the model this much
    # before the function's timeout; the messages it cannot start go back to the queue.
    triage_margin_s: float = Field(default=15.0, ge=0, alias="TRIAGE_MARGIN_S")

    @property
    def triage_message_s(self) -> float:
        """The longest one triage message may take: the Bedrock budget (the embedded model has none) + the margin."""
        return self.triage_margin_s + (self.bedrock_budget_s if self.model_backend == "bedrock" else 0.0)


class IntakeSettings(_Env):
    webhook_max_body_bytes: int = Field(default=256 * 1024, alias="WEBHOOK_MAX_BODY_BYTES")
    webhook_tolerance_s: int = Field(default=300, alias="WEBHOOK_TOLERANCE_S")
    # Unparseable webhook bodies stay replayable (and readable) until this many days after their month ends.
    quarantine_days: int = Field(default=30, ge=1, le=365, alias="QUARANTINE_DAYS")
    conversation_budget_ms: int = Field(default=2500, alias="CONVERSATION_BUDGET_MS")


class ObservabilitySettings(_Env):
    service_name: str = Field(default="deflect", alias="POWERTOOLS_SERVICE_NAME")
    metrics_namespace: str = Field(default="Deflect", alias="POWERTOOLS_METRICS_NAMESPACE")
    log_level: str = Field(default="INFO", alias="POWERTOOLS_LOG_LEVEL")
    stage: str = Field(default="dev", alias="DEFLECT_STAGE")


class Settings(
    AwsSettings, StorageSettings, QueueSettings, KnowledgeSettings, ModelSettings, IntakeSettings, ObservabilitySettings
):
    """Everything a Deflect process may need; unset values fall back to local defaults."""

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        return cls.model_validate({k: v for k, v in env.items() if v != ""})


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()
