"""A chat of a tenant that answers through the conversation API alone, escalated and decided by a person: the real
triage, escalation steps, approval service, writeback and helpdesk directory on the in-memory store. Shared by the
tests of what the chat's customer is shown and of what writeback does with each of the escalation's items."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from deflect.domain.errors import NotFound
from deflect.domain.models import OutboxItem, utcnow
from deflect.domain.tenancy import TenantContext
from deflect.embedded.search import EmbeddedKnowledgeIndex
from deflect.escalation.approval import ApprovalService
from deflect.escalation.models import DecisionRequest, EscalationRequest, EscalationState
from deflect.escalation.records import EscalationPorts
from deflect.escalation.start import execution_name_for
from deflect.escalation.steps import EscalationSteps
from deflect.escalation.tasks import HumanTasks
from deflect.helpdesk.directory import HelpdeskDirectory
from deflect.knowledge.ingestion import KnowledgeIngestion
from deflect.knowledge.models import ArticleInput
from deflect.repositories import Outbox, TenantConfigs
from deflect.services.intake import Intake
from deflect.services.outbox import ref
from deflect.services.writeback import Writeback
from deflect.triage.service import TriageResult
from deflect.webhooks import Requester
from tests.knowledge_cases.fakes import HashingEmbedder
from tests.unit.escalation_desk import Cipher, Notifier
from tests.unit.intake_fakes import ForgetfulGuard, NoSecrets
from tests.unit.triage_fakes import REFUND_ARTICLE, RecordingQueue, make_world

X = Requester(email="x@example.com")
Y = Requester(email="y@example.com")
REFUND = "Please refund my last invoice of 120 EUR"
PROPOSAL_QUOTE = "Billing support handles every refund request."
APPROVER = TenantContext(
    tenant_id="acme", actor="agent:ann", roles=frozenset({"agent", "approver"}), via="jwt"
)
ADMIN = TenantContext(tenant_id="acme", actor="admin:kb", roles=frozenset({"admin"}), via="cli")


class Workflow:
    """Step Functions' callbacks: the decision reaches the waiting task."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def send_task_success(self, token: str, output: Any) -> None:
        self.calls.append("success")

    def send_task_failure(self, token: str, error: str, cause: str) -> None:
        self.calls.append("failure")


class Crash(Exception):
    pass


def crash_once_sent(step: str) -> None:
    """A writeback checkpoint: the worker dies between the channel's answer and the stored outcome."""
    if step == "sent":
        raise Crash(step)


class Clock:
    """Writeback's clock, moved on by the test (a claim's lease runs out)."""

    def __init__(self) -> None:
        self.at = utcnow()

    def __call__(self) -> datetime:
        return self.at

    def later(self, by: timedelta) -> None:
        self.at += by


class Chat:
    """One API-only tenant's chat, from the customer's first message to the escalation's writeback."""

    def __init__(self, *, sync_triage: bool = False) -> None:
        self.world = world = make_world()
        self.ctx, self.store, self.audit = world.ctx, world.store, world.audit
        # The refund article the proposal quotes, in the knowledge base writeback checks quotes against.
        self.kb = KnowledgeIngestion(
            world.store, world.evidence, EmbeddedKnowledgeIndex(None, HashingEmbedder())
        )
        refund = ArticleInput(title=REFUND_ARTICLE.title, body=REFUND_ARTICLE.text)
        self.kb.put(ADMIN, REFUND_ARTICLE.article_id, refund)

        # With `sync_triage`, a conversation's POST answers with triage's decision (200), else it is queued (202).
        def triage(ctx: TenantContext, ticket_id: str, message_id: str) -> dict[str, Any]:
            return world.service.triage(ctx, ticket_id, message_id).model_dump(mode="json")

        self.intake = Intake(
            world.store,
            world.evidence,
            NoSecrets(),
            RecordingQueue(),
            world.audit,
            ForgetfulGuard(),
            triage=triage if sync_triage else None,
        )
        self.config = TenantConfigs(world.store).get(self.ctx)
        self.ports = EscalationPorts(
            store=world.store,
            evidence=world.evidence,
            audit=world.audit,
            workflow=Workflow(),
            cipher=Cipher(),
            notifier=Notifier(),
            writeback=RecordingQueue(),
        )
        self.steps = EscalationSteps(self.ports)

    def start(self, text: str = REFUND, requester: Requester = X) -> str:
        """The customer writes; triage (the queued job) escalates the conversation; the workflow acknowledges it and
        opens the agents' task."""
        started = self.intake.converse(self.ctx, self.config, text=text, requester=requester)
        conversation, message = started.body["conversation_id"], started.body["message_id"]
        assert self.world.service.triage(self.ctx, conversation, message).escalated
        self.run_escalation(conversation)
        return conversation

    def write(self, conversation: str, text: str, requester: Requester = X) -> TriageResult:
        """The customer writes again; triage (the queued job) decides it, or joins it to the open escalation."""
        body = self.intake.converse(
            self.ctx, self.config, text=text, requester=requester, conversation_id=conversation
        ).body
        return self.world.service.triage(self.ctx, conversation, body["message_id"])

    def run_escalation(self, conversation: str) -> None:
        """The workflow of the latest escalation: acknowledge it and open the agents' task (`decide` decides it)."""
        decision, ticket, refs = self.world.started[-1]
        assert decision.ticket_id == conversation
        self.execution = execution_name_for(self.ctx.tenant_id, conversation, decision.decision_id)
        request = EscalationRequest.from_decision(decision, ticket, evidence=refs)
        state = EscalationState.model_validate(request.model_dump(mode="json"))
        state = state.model_copy(update={"summary": self.steps.summarize(self.ctx, state, self.execution)})
        state = state.model_copy(update={"route": self.steps.route(self.ctx, state)})
        self.acknowledged = self.steps.acknowledge(self.ctx, state, self.execution)["outbox_ids"]
        self.task_id = HumanTasks(self.ports).open(self.ctx, state, self.execution, "token-1")["task_id"]
        self.state, self.proposal = state, state.proposed_reply

    def decide(self, outcome: str, reply: str | None = None) -> dict[str, OutboxItem]:
        """An agent decides through the approval service; the workflow applies it and queues its effects."""
        body = DecisionRequest(decision_id=f"d-{outcome}", outcome=outcome, reply=reply)
        ApprovalService(self.ports).decide(APPROVER, self.task_id, body)
        applied = self.steps.apply_decision(self.ctx, self.state, self.execution)
        state = self.state.model_copy(update={"applied": applied})
        queued = self.steps.enqueue_writeback(self.ctx, state, self.execution)["outbox_ids"]
        items = [Outbox(self.store).get(self.ctx, i) for i in queued]
        return {i.kind: i for i in items}

    def writeback(self, **kw: Any) -> Writeback:
        return Writeback(self.store, HelpdeskDirectory(NoSecrets()), audit=self.audit, **kw)

    def dispatch(self, item: OutboxItem, **kw: Any):
        return self.writeback(**kw).dispatch(ref(item))

    def item(self, outbox_id: str) -> OutboxItem:
        return Outbox(self.store).get(self.ctx, outbox_id)

    def shown(self, conversation: str, requester: Requester = X) -> dict[str, Any]:
        return self.intake.conversation(self.ctx, conversation, requester)

    def unreadable_by_others(self, conversation: str) -> bool:
        """Another requester (by email, none, or only an external id), and the same requester under another tenant,
        all get NotFound for this conversation."""
        readers = [(self.ctx, r) for r in (Y, Requester(), Requester(external_id="x@example.com"))]
        readers.append((TenantContext.system("acme-corp"), X))
        for ctx, reader in readers:
            try:
                self.intake.conversation(ctx, conversation, reader)
            except NotFound:
                continue
            return False
        return True

    def audited(self, conversation: str, event: str) -> list[dict[str, Any]]:
        entries = [e for e in self.audit.entries(self.ctx, conversation) if e.type == event]
        return [e.payload for e in self.audit.intact_events(self.ctx, entries)]
