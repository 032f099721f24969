"""A chat customer gets the reply a person decided after their conversation escalated, on the stack: triage on the
stack's table and evidence escalates a conversation (provider `api`) of a tenant without a `generic-writeback`
connection, the real escalation state machine runs on moto, an approver edits the reply through the approval API,
and writeback delivers the escalation's items through the tenant's real helpdesk directory. The reply ends `done`
through the conversation API (not `dead` in the alarmed DLQ), and the conversation's GET shows it; the acknowledgement
is delivered the same way, the internal note ends not shown, the refund (no CRM) dead, and another requester still gets
404."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from deflect.domain.errors import NotFound
from deflect.domain.models import Message, Ticket
from deflect.domain.tenancy import TenantContext
from deflect.helpdesk.directory import HelpdeskDirectory
from deflect.repositories import Tickets
from deflect.services.intake import Intake
from deflect.services.outbox import OutboxRef
from deflect.services.writeback import Writeback
from deflect.webhooks import Requester
from tests.integration.conftest_escalation import WAIT_S, escalation_fixture  # noqa: F401

APPROVER = ("agent", "approver")
EDITED = "We refunded the 120 EUR to your card today; it shows within 5 days. - Ann"


def _triage(h: Any, tenant: str) -> Any:
    """The production TriageService on the stack's ports in auto mode, with the unit suite's rule models."""
    from deflect.embedded.model import ExtractiveComposer
    from deflect.triage.classification import Classifier
    from deflect.triage.engine import TriageEngine
    from deflect.triage.service import Handoffs, TriageService, escalation_starter
    from tests.unit.triage_fakes import REFUND_ARTICLE, BagOfWords, KeywordSearch, RuleIntents

    c = h.container
    ctx = TenantContext.system(tenant)
    config = c.tenants.get(ctx)
    config.policy.rollout_default = "auto"
    c.store.put(ctx, c.tenants.save_write(config))
    engine = TriageEngine(
        Classifier(RuleIntents()),
        KeywordSearch([REFUND_ARTICLE]),
        ExtractiveComposer(BagOfWords(), full_support=0.5, min_unit_similarity=0.1),
    )
    return TriageService(c.store, c.evidence, c.audit, engine, Handoffs(None, escalation_starter(c)))


def _conversation(h: Any, tenant: str, text: str) -> str:
    """A conversation started without a requester (read without one), as the conversation API stores it."""
    conversation_id = f"cnv_{uuid.uuid4().hex}"
    ticket = Ticket(tenant_id=tenant, ticket_id=conversation_id, provider="api", external_id=conversation_id)
    message = Message(tenant_id=tenant, ticket_id=conversation_id, message_id="m1", body_redacted=text)
    h.container.store.transact(
        TenantContext.system(tenant),
        [Tickets(h.container.store).save_write(ticket), Tickets.message_write(message)],
    )
    return conversation_id


def _wait_decided(h: Any, execution_name: str) -> None:
    arn = h.state_machine_arn.replace(":stateMachine:", ":execution:") + ":" + execution_name
    assert h.wait_execution(arn, WAIT_S)["status"] == "SUCCEEDED"


def test_an_edited_reply_after_an_escalation_reaches_the_chat_customer_without_a_connection(escalation):
    h = escalation
    tenant = h.tenant("chat-agent")
    ctx = TenantContext.system(tenant)
    conversation = _conversation(h, tenant, "Please refund my last invoice of 120 EUR.")
    first = _triage(h, tenant).triage(ctx, conversation, "m1")
    assert first.escalated and first.execution_name
    intake = Intake(h.container.store, h.container.evidence, None, None, h.container.audit, None)
    assert intake.conversation(ctx, conversation)["status"] == "escalated"

    task = h.wait_task(tenant, conversation)
    assert "Billing support handles" in task["proposed_reply"]  # the AI's proposal, which the agent replaces
    status, _ = h.decide(tenant, task["task_id"], "edit", roles=APPROVER, sub="ann", reply=EDITED)
    assert status == 200
    _wait_decided(h, first.execution_name)
    items = {i.outbox_id: i for i in h.outbox_items(tenant) if i.ticket_id == conversation}
    assert intake.conversation(ctx, conversation)["decision"]["reply"] is None  # queued, not delivered yet

    writeback = Writeback(h.container.store, HelpdeskDirectory(h.container.secrets), audit=h.container.audit)
    results = {i: writeback.dispatch(OutboxRef(tenant_id=tenant, outbox_id=i)) for i in items}

    [reply] = [i for i in items.values() if i.kind == "public_reply" and i.body == EDITED]
    assert (results[reply.outbox_id].outcome, results[reply.outbox_id].detail) == (
        "delivered",
        f"conversation_api:{reply.outbox_id}",
    )
    # The note has no reader here by design (not shown, not dead); the refund nobody can carry out (no CRM) is dead.
    outcomes = {i.kind: results[i.outbox_id].outcome for i in items.values() if i.kind != "public_reply"}
    assert outcomes == {"account_action": "dead", "internal_note": "not_shown"}
    assert [r.outcome for r in results.values()].count("delivered") == 2  # the reply and the acknowledgement

    shown = intake.conversation(ctx, conversation)
    assert shown["status"] == "resolved"
    assert (shown["decision"]["reply"], shown["decision"]["answered_by"]) == (EDITED, "agent")
    text = json.dumps(shown)
    assert "agent:ann" not in text and "Billing support handles" not in text  # the note, the AI's proposal
    with pytest.raises(NotFound):
        intake.conversation(ctx, conversation, Requester(email="someone@example.com"))
    with pytest.raises(NotFound):
        intake.conversation(TenantContext.system(h.tenant("chat-other")), conversation)
    assert h.container.audit.verify(ctx, conversation).ok
