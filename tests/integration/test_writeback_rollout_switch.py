"""A rollout-mode switch reaches what is already queued: an AI reply decided under `auto` that is still waiting
(a backlog, a helpdesk outage) goes out as the tenant's policy says when it is sent. Shadow (the kill switch)
sends nothing, assist turns the reply into a note for agents; what a person approved still goes out."""

from __future__ import annotations

from decimal import Decimal

import pytest

from deflect.domain.models import (
    Classification,
    Decision,
    DecisionPolicy,
    OutboxItem,
    RequestedAction,
    Ticket,
)
from deflect.domain.tenancy import TenantContext
from deflect.embedded.search import EmbeddedKnowledgeIndex
from deflect.escalation.models import EscalationState
from deflect.escalation.steps import EscalationSteps
from deflect.helpdesk.models import HelpdeskReceipt
from deflect.knowledge.ingestion import KnowledgeIngestion
from deflect.knowledge.models import ArticleInput
from deflect.repositories import Outbox, TenantConfigs, Tickets
from deflect.services import outbox
from deflect.services.outbox import OutboxRef
from deflect.services.writeback import Writeback
from deflect.triage.policy import change_policy
from infra.local.helpdesks import BOT
from infra.local.helpdesks.harness import ListQueue, fast_http, helpdesk_ticket, service
from tests.integration.writeback_support import auto_mode_world, commit_account_action, escalation_ports
from tests.knowledge_cases.fakes import HashingEmbedder
from tests.unit.triage_fakes import SSO_ARTICLE, make_world

TENANT = "switchco"
REPLY = "To set up SSO, open Settings, then Security."


@pytest.fixture(scope="module")
def world():
    with auto_mode_world(TENANT) as (aws, helpdesks):
        yield aws, helpdesks


@pytest.fixture
def set_policy(world):
    """An operator changes the tenant's rollout policy (audited, versioned); put back to auto afterwards."""
    aws, _ = world
    ctx = TenantContext.system(TENANT, "operator:ops")

    def change(**fields):
        change_policy(aws.container.store, aws.container.audit, ctx, DecisionPolicy(**fields))

    yield change
    change(rollout_default="auto")


def stored_ticket(aws, helpdesks, provider: str = "zendesk") -> tuple[Ticket, object]:
    ticket = helpdesk_ticket(helpdesks, TENANT, provider)
    aws.container.store.put(TenantContext.system(TENANT), Tickets(aws.container.store).save_write(ticket))
    return ticket, helpdesks.state.ticket(provider, TENANT, ticket.external_id)


def decided_reply(
    aws, ticket: Ticket, intent: str = "sso_setup", *, on_item: bool = False, confidence: float = 0.93
) -> OutboxItem:
    """Triage's auto-mode answer, committed with its decision. `on_item`: the item also names its intent and
    mode itself; otherwise writeback finds them on the decision."""
    decision = Decision(
        tenant_id=TENANT,
        ticket_id=ticket.ticket_id,
        outcome="deflect",
        classification=Classification(intent=intent, intent_confidence=confidence),
        rollout_mode="auto",
    )
    fields = {"intent": intent, "rollout_mode": "auto"} if on_item else {}
    item = outbox.reply(
        ticket, REPLY, caused_by=decision.decision_id, tags=["deflect-ai", "deflect-deflect"], **fields
    )
    aws.container.store.transact(
        TenantContext.system(TENANT), [Tickets.decision_write(decision), *outbox.writes([item])]
    )
    return item


def from_deflect(desk) -> list:
    return [e for e in desk.events if e.author in BOT.values() and e.kind in ("comment", "note")]


def dispatch(aws, item: OutboxItem, **kw):
    return service(aws, fast_http(), **kw).dispatch(OutboxRef(tenant_id=TENANT, outbox_id=item.outbox_id))


@pytest.mark.parametrize("on_item", [False, True], ids=["named_by_decision", "named_on_item"])
def test_switching_the_tenant_to_shadow_stops_a_queued_ai_reply(world, set_policy, on_item):
    aws, helpdesks = world
    ticket, desk = stored_ticket(aws, helpdesks)
    item = decided_reply(aws, ticket, on_item=on_item)

    set_policy(rollout_default="shadow")
    result = dispatch(aws, item)

    assert result.outcome == "suppressed"
    assert from_deflect(desk) == []  # the customer got nothing, nor did the agents
    ctx = TenantContext.system(TENANT)
    stored = Outbox(aws.container.store).get(ctx, item.outbox_id)
    assert stored.status == "done" and stored.receipt == {"suppressed": "rollout mode is now shadow"}
    assert [e.type for e in aws.container.audit.entries(ctx, ticket.ticket_id)] == ["writeback.suppressed"]
    set_policy(rollout_default="auto")
    assert dispatch(aws, item).outcome == "already_handled"  # switching back does not send it after all
    assert from_deflect(desk) == []


def test_shadow_for_one_intent_stops_only_that_intents_replies(world, set_policy):
    aws, helpdesks = world
    sso_ticket, sso_desk = stored_ticket(aws, helpdesks, "freshdesk")
    export_ticket, export_desk = stored_ticket(aws, helpdesks, "freshdesk")
    sso = decided_reply(aws, sso_ticket, "sso_setup")
    export = decided_reply(aws, export_ticket, "export_report")

    set_policy(rollout_default="auto", rollout_by_intent={"sso_setup": "shadow"})

    assert dispatch(aws, sso).outcome == "suppressed" and from_deflect(sso_desk) == []
    assert dispatch(aws, export).outcome == "delivered"
    [reply] = from_deflect(export_desk)
    assert reply.public and REPLY in reply.body


def test_shadow_by_default_stops_a_guessed_intent_even_where_that_intent_is_trusted(world, set_policy):
    aws, helpdesks = world
    set_policy(rollout_default="auto", rollout_by_intent={"sso_setup": "auto"})
    sure_ticket, sure_desk = stored_ticket(aws, helpdesks)
    guess_ticket, guess_desk = stored_ticket(aws, helpdesks)
    sure = decided_reply(aws, sure_ticket, confidence=0.93)
    # Below the classification threshold (0.5): triage gives a guess the stricter of the default and its intent's.
    guess = decided_reply(aws, guess_ticket, confidence=0.3)

    set_policy(rollout_default="shadow", rollout_by_intent={"sso_setup": "auto"})

    assert dispatch(aws, guess).outcome == "suppressed" and from_deflect(guess_desk) == []
    assert dispatch(aws, sure).outcome == "delivered" and len(from_deflect(sure_desk)) == 1


@pytest.mark.parametrize("provider", ["zendesk", "intercom", "freshdesk", "jira"])
def test_switching_to_assist_sends_a_queued_reply_to_agents_only(world, set_policy, provider):
    aws, helpdesks = world
    ticket, desk = stored_ticket(aws, helpdesks, provider)
    item = decided_reply(aws, ticket)

    set_policy(rollout_default="assist")
    assert dispatch(aws, item).outcome == "delivered"

    [note] = from_deflect(desk)
    assert note.kind == "note" and not note.public and REPLY in note.body


def test_an_assist_note_stays_a_note_when_the_tenant_moves_to_auto(world, set_policy):
    aws, helpdesks = world
    ticket, desk = stored_ticket(aws, helpdesks)
    item = outbox.reply(
        ticket, "Suggested reply:\n" + REPLY, public=False, intent="sso_setup", rollout_mode="assist"
    )
    aws.container.store.transact(TenantContext.system(TENANT), outbox.writes([item]))

    set_policy(rollout_default="auto")
    assert dispatch(aws, item).outcome == "delivered"
    [note] = from_deflect(desk)
    assert not note.public


def acknowledgement_steps(aws, queue: ListQueue) -> EscalationSteps:
    return EscalationSteps(escalation_ports(aws.container, queue))


def escalation(ticket: Ticket) -> EscalationState:
    return EscalationState(
        tenant_id=TENANT,
        ticket_id=ticket.ticket_id,
        decision_id="dec_ack",
        classification=Classification(intent="sso_setup", intent_confidence=0.4),
        rollout_mode="auto",
    )


@pytest.mark.parametrize(
    "by_intent", [{}, {"sso_setup": "auto"}], ids=["default", "guess_of_a_trusted_intent"]
)
def test_no_acknowledgement_once_the_tenant_is_in_shadow(world, set_policy, by_intent):
    aws, helpdesks = world
    ticket, _ = stored_ticket(aws, helpdesks)
    queue = ListQueue()

    # The escalation's intent is a guess (confidence 0.4): its intent's auto mode does not outweigh the default.
    set_policy(rollout_default="shadow", rollout_by_intent=by_intent)
    result = acknowledgement_steps(aws, queue).acknowledge(
        TenantContext.system(TENANT), escalation(ticket), "esc-shadow-now"
    )

    assert result["outbox_ids"] == [] and queue.sent == []


@pytest.mark.parametrize(("now", "seen"), [("shadow", "nothing"), ("assist", "public")])
def test_a_queued_acknowledgement_follows_the_current_mode(world, set_policy, now, seen):
    aws, helpdesks = world
    ticket, desk = stored_ticket(aws, helpdesks)
    queue = ListQueue()
    acknowledgement_steps(aws, queue).acknowledge(
        TenantContext.system(TENANT), escalation(ticket), f"esc-{now}"
    )
    [ref] = queue.take()

    set_policy(rollout_default=now)
    service(aws, fast_http()).dispatch(ref)

    sent = from_deflect(desk)
    if seen == "nothing":
        assert sent == []
    else:
        # Assist still tells the customer a person will follow up (as when the escalation starts in assist).
        [ack] = sent
        assert ack.public and "follow up" in ack.body


def test_an_approved_account_action_goes_out_in_shadow(world, set_policy):
    aws, helpdesks = world
    ticket, _ = stored_ticket(aws, helpdesks)
    set_policy(rollout_default="shadow")
    item = commit_account_action(
        aws, ticket, RequestedAction(kind="refund", amount=Decimal("20"), currency="EUR")
    )

    assert dispatch(aws, item).outcome == "delivered"
    assert [c for c in helpdesks.state.calls if c.provider == "crm" and c.outbox_id == item.outbox_id]


class Recorder:
    """A connector that only records what it would have sent."""

    def __init__(self):
        self.sent: list[tuple[str, str]] = []

    def connector(self, tenant_id, item):
        return self

    def send(self, item):
        self.sent.append((item.kind, item.body or ""))
        return HelpdeskReceipt(
            outbox_id=item.outbox_id,
            provider="zendesk",
            external_ticket_id=item.external_ticket_id,
            effects=[item.kind],
            delivered_at=item.updated_at,
        )


@pytest.mark.parametrize(
    ("now", "sent_kinds"), [("shadow", []), ("assist", ["internal_note"]), ("auto", ["public_reply"])]
)
def test_what_triage_queued_under_auto_follows_the_switch(now, sent_kinds):
    sso = "How do I set up SSO for my team?"
    world = make_world(policy=DecisionPolicy(rollout_default="auto"))
    # The answer quotes this article: writeback sends it only while the knowledge base still has it.
    KnowledgeIngestion(world.store, world.evidence, EmbeddedKnowledgeIndex(None, HashingEmbedder())).put(
        world.ctx, SSO_ARTICLE.article_id, ArticleInput(title=SSO_ARTICLE.title, body=SSO_ARTICLE.text)
    )
    result = world.triage("tkt-1", sso)
    assert result.rollout_mode == "auto" and result.outbox_ids

    config = TenantConfigs(world.store).get(world.ctx)
    change_policy(
        world.store, world.audit, world.ctx, config.policy.model_copy(update={"rollout_default": now})
    )
    recorder = Recorder()
    writeback = Writeback(world.store, recorder, audit=world.audit)
    for outbox_id in result.outbox_ids:
        writeback.dispatch(OutboxRef(tenant_id=world.ctx.tenant_id, outbox_id=outbox_id))

    assert [kind for kind, _ in recorder.sent] == sent_kinds
