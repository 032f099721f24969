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
        # Every appended event is also observed (facts, metrics, usage, EventBridge) so producers need no hook.
        from deflect.insight.service import ObservedAuditLog

        return ObservedAuditLog(self.store, self.evidence, lambda: self.insight)

    @cached_property
    def secrets(self) -> Any:
        from deflect.adapters.ssm_secrets import SsmSecretStore

        return SsmSecretStore(
            self.client("ssm"), self.settings.secrets_prefix, cache_s=self.settings.secrets_cache_s
        )

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
        from botocore.config import Config

        from deflect.adapters.sfn_workflow import StepFunctionsWorkflow

        callbacks = self.boto_session.client(
            "stepfunctions",
            endpoint_url=self.settings.endpoint_url,
            config=Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=3, read_timeout=10),
        )
        return StepFunctionsWorkflow(
            self.client("stepfunctions"), self.settings.escalation_state_machine_arn, callback_client=callbacks
        )

    @cached_property
    def token_cipher(self) -> Any:
        from deflect.adapters.kms_cipher import KmsTokenCipher

        return KmsTokenCipher(self.client("kms"), self.settings.evidence_kms_key_id)

    # ------------------------------------------------------------------ intake (issue 3)
    @cached_property
    def idempotency_layer(self) -> Any:
        # Built here, not at import: the persistence layer creates a boto3 client when constructed.
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

        return DynamoDBPersistenceLayer(table_name=self.settings.idempotency_table, boto3_client=self.client("dynamodb"))

    @cached_property
    def delivery_guard(self) -> Any:
        from deflect.services.intake import PowertoolsDeliveryGuard

        return PowertoolsDeliveryGuard(self.idempotency_layer)

    @cached_property
    def intake(self) -> Any:
        from deflect.services.intake import Intake, load_sync_triage

        def count(name: str, value: float) -> None:
            from aws_lambda_powertools.metrics import MetricUnit

            from deflect.observability import metrics

            metrics().add_metric(name=name, unit=MetricUnit.Count, value=value)

        return Intake(
            self.store,
            self.evidence,
            self.secrets,
            self.triage_queue,
            self.audit,
            self.delivery_guard,
            max_body_bytes=self.settings.webhook_max_body_bytes,
            tolerance_s=self.settings.webhook_tolerance_s,
            conversation_budget_ms=self.settings.conversation_budget_ms,
            triage=load_sync_triage(self),
            metric=count,
            usage_guard=lambda ctx: self.guard(ctx),
            seal_for_customer=lambda *args: self.sealed_evidence.put_for_customer(*args),
            quarantine_vault=self.sealed_evidence,
            quarantine_days=self.settings.quarantine_days,
        )

    @cached_property
    def tenant_admin(self) -> Any:
        from deflect.services.tenant_admin import TenantAdmin

        return TenantAdmin(self.store, self.secrets, self.audit)

    # ------------------------------------------------------------------ knowledge (issue 4)
    @cached_property
    def knowledge_index(self) -> Any:
        """OpenSearch + Bedrock embeddings on AWS; tantivy + local MiniLM under KNOWLEDGE_DATA_DIR otherwise."""
        s = self.settings
        if s.knowledge_backend == "opensearch":
            from deflect.adapters.bedrock_embeddings import BedrockEmbeddings
            from deflect.adapters.opensearch_index import OpenSearchKnowledgeIndex, opensearch_client

            if not s.opensearch_endpoint:
                raise RuntimeError("KNOWLEDGE_BACKEND=opensearch needs OPENSEARCH_ENDPOINT")
            client = opensearch_client(
                s.opensearch_endpoint, service=s.opensearch_service, region=s.region, session=self.boto_session
            )
            embeddings = BedrockEmbeddings(
                self.client("bedrock-runtime"), s.embedding_model_id, dimensions=s.embedding_dimensions
            )
            return OpenSearchKnowledgeIndex(
                client, embeddings, index_name=s.opensearch_index, service=s.opensearch_service
            )
        from deflect.embedded.search import EmbeddedKnowledgeIndex

        return EmbeddedKnowledgeIndex(s.knowledge_data_dir)

    @cached_property
    def knowledge_ingestion(self) -> Any:
        from deflect.knowledge.ingestion import KnowledgeIngestion

        return KnowledgeIngestion(self.store, self.evidence, self.knowledge_index, audit=self.audit)

    @cached_property
    def bulk_imports(self) -> Any:
        from deflect.adapters.s3_objects import S3ObjectReader
        from deflect.adapters.sqs_queue import SqsWorkQueue
        from deflect.knowledge.bulk_import import BulkImports

        url = self.settings.knowledge_import_queue_url
        # Without the continuation queue (an older stack), an import runs in one part, as before.
        continuations = SqsWorkQueue(self.client("sqs"), url) if url else None
        return BulkImports(
            self.knowledge_ingestion,
            S3ObjectReader(self.client("s3")),
            continuations,
            reserve_s=self.settings.knowledge_import_reserve_s,
        )

    @cached_property
    def knowledge_search(self) -> Any:
        from deflect.knowledge.search import KnowledgeSearch

        return KnowledgeSearch(self.knowledge_index, self.store)

    @cached_property
    def knowledge_articles(self) -> Any:
        """Versioned article reads: resolve a citation to the exact text it quoted."""
        from deflect.knowledge.articles import ArticleRepository

        return ArticleRepository(self.store, self.evidence)

    # ------------------------------------------------------------------ triage (issue 5)
    @cached_property
    def embedded_models(self) -> Any:
        """MiniLM intent heads + extractive composer under MODEL_DATA_DIR (dev/local only: numpy, onnxruntime)."""
        from deflect.embedded.model import EmbeddedModels

        return EmbeddedModels(self.settings.model_data_dir)

    @cached_property
    def bedrock_converse_client(self) -> Any:
        # botocore retries off: BedrockLanguageModel owns a bounded retry budget with backoff.
        from botocore.config import Config

        from deflect.adapters.bedrock_model import CONNECT_TIMEOUT_S

        return self.boto_session.client(
            "bedrock-runtime",
            endpoint_url=self.settings.endpoint_url,
            config=Config(
                retries={"mode": "standard", "total_max_attempts": 1},
                connect_timeout=CONNECT_TIMEOUT_S,
                read_timeout=self.settings.bedrock_timeout_s,
            ),
        )

    @cached_property
    def intent_embeddings(self) -> Any:
        """What intent heads are trained on and applied to: Titan v2 on Bedrock, local MiniLM otherwise."""
        s = self.settings
        if s.model_backend == "bedrock":
            from deflect.adapters.bedrock_embeddings import BedrockEmbeddings

            return BedrockEmbeddings(self.client("bedrock-runtime"), s.embedding_model_id, dimensions=s.embedding_dimensions)
        return self.embedded_models.embeddings

    @cached_property
    def intent_models(self) -> Any:
        """Versioned intent heads per tenant: locked objects in the evidence bucket on AWS, MODEL_DATA_DIR locally."""
        if self.settings.model_backend == "bedrock":
            from deflect.triage.intents import EvidenceModelStore

            return EvidenceModelStore(self.evidence)
        return self.embedded_models.store

    @cached_property
    def intent_classifier(self) -> Any:
        from deflect.triage.intents import LinearIntentClassifier

        # The starter taxonomy is trained on first use only where numpy is available (the embedded default).
        starter = self.embedded_models.starter if self.settings.model_backend != "bedrock" else None
        return LinearIntentClassifier(self.intent_embeddings, self.intent_models, fallback=starter)

    @cached_property
    def answer_composer(self) -> Any:
        s = self.settings
        if s.model_backend == "bedrock":
            from deflect.adapters.bedrock_model import (
                CONNECT_TIMEOUT_S,
                BedrockAnswerComposer,
                BedrockLanguageModel,
            )
            from deflect.triage.profile import TriageProfiles

            model = BedrockLanguageModel(
                self.bedrock_converse_client,
                s.bedrock_model_id,
                guardrail_id=s.bedrock_guardrail_id,
                guardrail_version=s.bedrock_guardrail_version,
                max_attempts=s.bedrock_max_attempts,
                budget_s=s.bedrock_budget_s,
                # The longest one call can take with bedrock_converse_client's timeouts.
                call_timeout_s=CONNECT_TIMEOUT_S + s.bedrock_timeout_s,
            )
            profiles = TriageProfiles(self.store)

            def model_for(ctx: Any) -> tuple[str | None, str | None, str | None]:
                # No guardrail of its own → (None, None): the deployment's guardrail id and version apply.
                profile = profiles.get(ctx)
                return profile.bedrock_model_id, profile.guardrail_id, profile.guardrail_version

            return BedrockAnswerComposer(model, model_for=model_for)
        return self.embedded_models.composer()

    @cached_property
    def diagnostic_tools(self) -> Any:
        from deflect.triage.diagnostics import DiagnosticToolRegistry, RecentErrorsTool, ServiceStatusTool
        from deflect.triage.profile import ProfileTelemetry, TriageProfiles

        # Tools exist for every tenant; which run, for whom, is the tenant's grants (TriageProfile.tool_grants).
        telemetry = ProfileTelemetry(TriageProfiles(self.store), self.secrets)
        return DiagnosticToolRegistry([RecentErrorsTool(telemetry), ServiceStatusTool(telemetry)])

    @cached_property
    def triage_engine(self) -> Any:
        from deflect.triage.classification import Classifier
        from deflect.triage.engine import TriageEngine

        return TriageEngine(Classifier(self.intent_classifier), self.knowledge_search, self.answer_composer)

    @cached_property
    def triage(self) -> Any:
        """`container.triage.triage(ctx, ticket_id, message_id)`; see deflect.triage.triage_message."""
        from deflect.triage.service import Handoffs, TriageService, escalation_starter

        return TriageService(
            self.store,
            self.evidence,
            self.audit,
            self.triage_engine,
            Handoffs(self.writeback_queue, escalation_starter(self), None),  # container.audit observes
            tools=self.diagnostic_tools,
            seal_for_customer=lambda *args: self.sealed_evidence.put_for_customer(*args),
            attachments=self.attachment_reader,
        )

    @cached_property
    def attachment_reader(self) -> Any:
        from deflect.helpdesk.attachments import HelpdeskAttachmentReader

        return HelpdeskAttachmentReader(self.helpdesks)

    # ------------------------------------------------------------------ escalation and approval (issue 6)
    @cached_property
    def notifier(self) -> Any:
        from deflect.adapters.sns_notifier import SnsNotifier

        return SnsNotifier(self.client("sns"), self.settings.sla_topic_arn)

    @cached_property
    def escalation_ports(self) -> Any:
        from deflect.escalation.records import EscalationPorts

        return EscalationPorts(
            store=self.store,
            # Reads open sealed evidence (summaries, raw requests) for the agent; erased data reads as Gone.
            evidence=self.sealed_evidence,
            seal_for_customer=lambda *args: self.sealed_evidence.put_for_customer(*args),
            audit=self.audit,
            workflow=self.workflow,
            cipher=self.token_cipher,
            notifier=self.notifier,
            writeback=self.writeback_queue,
        )

    @cached_property
    def escalation_steps(self) -> Any:
        from deflect.escalation.steps import EscalationSteps

        return EscalationSteps(self.escalation_ports)

    @cached_property
    def human_tasks(self) -> Any:
        from deflect.escalation.tasks import HumanTasks

        return HumanTasks(self.escalation_ports)

    @cached_property
    def approvals(self) -> Any:
        from deflect.escalation.approval import ApprovalService

        return ApprovalService(self.escalation_ports)

    @cached_property
    def agent_diagnostics(self) -> Any:
        from deflect.escalation.agent_tools import AgentDiagnostics
        from deflect.triage.profile import TriageProfiles

        return AgentDiagnostics(self.escalation_ports, self.diagnostic_tools, TriageProfiles(self.store))

    # ------------------------------------------------------------------ writeback (issue 7)
    @cached_property
    def writeback_settings(self) -> Any:
        from deflect.helpdesk.settings import WritebackSettings

        return WritebackSettings.from_env()

    @cached_property
    def helpdesks(self) -> Any:
        from deflect.helpdesk.directory import HelpdeskDirectory
        from deflect.helpdesk.http import HelpdeskHttp

        ws = self.writeback_settings
        http = HelpdeskHttp(
            timeout_s=ws.helpdesk_timeout_s, max_attempts=ws.helpdesk_max_attempts, max_inline_wait_s=ws.helpdesk_max_inline_wait_s
        )
        return HelpdeskDirectory(self.secrets, http)

    @cached_property
    def writeback_dead_letters(self) -> Any:
        from deflect.adapters.sqs_dead_letters import SqsDeadLetters

        return SqsDeadLetters(self.client("sqs"), self.settings.writeback_dlq_url)

    @cached_property
    def writeback(self) -> Any:
        from deflect.services.writeback import Writeback

        ws = self.writeback_settings
        return Writeback(
            self.store,
            self.helpdesks,
            queue=self.writeback_queue,
            dead_letters=self.writeback_dead_letters,
            audit=self.audit,
            max_attempts=ws.max_attempts,
            lease_s=ws.lease_s,
        )

    # ------------------------------------------------------------------ accountability (issue 8)
    @cached_property
    def customer_keys(self) -> Any:
        from deflect.insight.privacy import CustomerKeys

        return CustomerKeys(
            self.store,
            self.client("kms"),
            self.settings.evidence_kms_key_id,
            cache_s=self.settings.customer_key_cache_s,
        )

    @cached_property
    def sealed_evidence(self) -> Any:
        """EvidenceStore that also seals personal data: `put_for_customer(ctx, ticket, customer, body, kind)`."""
        from deflect.insight.privacy import SealedEvidence

        return SealedEvidence(self.evidence, self.customer_keys)

    @cached_property
    def usage(self) -> Any:
        from deflect.insight.usage import UsageMeter

        meter = UsageMeter(self.store)
        # Count every AWS request: clients made from now on inherit the session's hooks; earlier ones get them too.
        meter.instrument(self.boto_session.events)
        for existing in self.__dict__.get("_clients", {}).values():
            meter.instrument(existing.meta.events)
        return meter

    @cached_property
    def guard(self) -> Any:
        """Call `container.guard(ctx)` first in routes that start work: budget and rate limit → 429."""
        from deflect.insight.usage import Guard

        return Guard(self.tenants, self.store, self.usage)

    @cached_property
    def domain_events(self) -> Any:
        from deflect.adapters.eventbridge_publisher import EventBridgePublisher, NoEventBus

        bus = self.settings.events_bus_name
        return EventBridgePublisher(self.client("events"), bus) if bus else NoEventBus()

    @cached_property
    def facts(self) -> Any:
        from deflect.insight.facts import FactStore

        return FactStore(self.store)

    @cached_property
    def insight(self) -> Any:
        """`container.insight.observe(ctx, audit_event)` after each audit append: facts, metrics, usage, bus."""
        from deflect.insight.service import Insight

        return Insight(self.store, self.facts, self.domain_events, self.usage)

    @cached_property
    def timeline(self) -> Any:
        from deflect.insight.timeline import TimelineService

        return TimelineService(self.audit, self.sealed_evidence)

    @cached_property
    def analytics(self) -> Any:
        from deflect.insight.analytics import Analytics, knowledge_gap_source

        return Analytics(self.facts, self.tenants, gap_source=knowledge_gap_source(self.store))

    @cached_property
    def erasure(self) -> Any:
        from deflect.insight.privacy import Erasure

        return Erasure(self.store, self.audit, self.customer_keys)


@lru_cache(maxsize=1)
def container() -> Container:
    return Container()


def reset() -> None:
    """For tests and the local stack after settings change."""
    container.cache_clear()
    settings.cache_clear()
