"""An AI reply quoting a help article that was withdrawn or rewritten after the draft is not sent to the customer.

Triage drafts an answer quoting "Export a report" v1 and queues it. Before writeback sends it (a retry, a dead
letter replayed days later, an escalation approved hours later), the article is deleted, expires, is made
internal or restricted to other plans, is superseded, or is rewritten without the quoted steps: customer search
no longer answers with that passage, so the reply goes to agents as a held note saying which article changed
and how, audited. A newer version still holding the quoted passage changes nothing, and a reply an agent edited
in an escalation is theirs: both go out. In memory: no sockets.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from deflect.domain.errors import TransientFailure
from deflect.domain.models import Account, Classification
from deflect.domain.tenancy import TenantContext
from deflect.embedded.search import EmbeddedKnowledgeIndex
from deflect.escalation.models import AppliedDecision, EscalationState, TaskDecision
from deflect.escalation.records import TaskDecisions
from deflect.helpdesk.models import HelpdeskReceipt
from deflect.knowledge.ingestion import KnowledgeIngestion
from deflect.knowledge.models import ArticleInput
from deflect.repositories import Accounts, Outbox, Tickets, save
from deflect.services.outbox import ref
from deflect.services.writeback import Writeback
from tests.knowledge_cases.fakes import HashingEmbedder
from tests.unit.triage_fakes import EXPORT_ARTICLE, make_world

ADMIN = TenantContext(tenant_id="acme", actor="admin:kb", roles=frozenset({"admin"}), via="cli")
EXPORT = ArticleInput(title=EXPORT_ARTICLE.title, body=EXPORT_ARTICLE.text)
# The step the draft quotes, and the article once that step was replaced.
QUOTED_STEP = "Open Reports and click Export CSV"
REWRITTEN = EXPORT.model_copy(
    update={
        "body": EXPORT.body.replace(
            QUOTED_STEP, "Open Data > Downloads and click Download (Export CSV was removed)"
        )
    }
)
A_MINUTE_AGO = datetime.now(UTC) - timedelta(minutes=1)


class Helpdesk:
    """Accepts everything and remembers what it was sent; `failures` sends fail first (a timeout)."""

    def __init__(self, failures: int = 0) -> None:
        self.sent: list = []
        self.failures = failures

    def connector(self, tenant_id: str, item):
        return self

    def send(self, item, **_):
        if self.failures:
            self.failures -= 1
            raise TransientFailure("helpdesk timed out")
        self.sent.append(item)
        return HelpdeskReceipt(
            outbox_id=item.outbox_id,
            provider="zendesk",
            external_ticket_id=item.external_ticket_id,
            effects=[f"comment:{len(self.sent)}"],
            delivered_at=datetime.now(UTC),
        )

    def public(self) -> list[str]:
        return [i.body for i in self.sent if i.kind == "public_reply"]

    def notes(self) -> list[str]:
        return [i.body for i in self.sent if i.kind == "internal_note"]


@pytest.fixture
def world():
    w = make_world()
    w.kb = KnowledgeIngestion(w.store, w.evidence, EmbeddedKnowledgeIndex(None, HashingEmbedder()))
    assert w.kb.put(ADMIN, "gs-export", EXPORT).version == 1  # what the keyword search answers from
    return w


def drafted(world, ticket_id: str = "tkt-1", **ticket):
    result = world.triage(ticket_id, "How do I export a report as CSV?", **ticket)
    assert result.outcome == "deflect", result.reasons
    assert QUOTED_STEP in result.reply
    [outbox_id] = result.outbox_ids
    return Outbox(world.store).get(world.ctx, outbox_id)


def writeback(world, helpdesk: Helpdesk, **kw) -> Writeback:
    return Writeback(world.store, helpdesk, audit=world.audit, **kw)


def audited(world, ticket_id: str, event: str) -> list[dict]:
    entries = [e for e in world.audit.entries(world.ctx, ticket_id) if e.type == event]
    return [e.payload for e in world.audit.intact_events(world.ctx, entries) if e is not None]


CHANGES = {
    "deleted": lambda w: w.kb.delete(ADMIN, "gs-export"),
    "expired": lambda w: w.kb.put(ADMIN, "gs-export", EXPORT.model_copy(update={"expires_at": A_MINUTE_AGO})),
    "made internal": lambda w: w.kb.put(
        ADMIN, "gs-export", EXPORT.model_copy(update={"visibility": "internal"})
    ),
    "superseded": lambda w: w.kb.put(
        ADMIN, "gs-export", EXPORT.model_copy(update={"superseded_by": "gs-export-2"})
    ),
    "rewritten": lambda w: w.kb.put(ADMIN, "gs-export", REWRITTEN),
    "only for another plan": lambda w: w.kb.put(
        ADMIN, "gs-export", EXPORT.model_copy(update={"visibility": "segments", "segments": ["pro"]})
    ),
}
SAYS = {
    "deleted": "gs-export v1 deleted",
    "expired": "gs-export v1 expired at",
    "made internal": "gs-export v1 now internal",
    "superseded": "gs-export v1 superseded by gs-export-2",
    "rewritten": "gs-export v1 rewritten: v2 no longer contains the quoted passage",
    "only for another plan": "gs-export v1 now only for segments the customer is not in: pro",
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_reply_quoting_an_article_changed_since_the_draft_goes_to_agents_not_the_customer(world, change):
    item = drafted(world)
    CHANGES[change](world)
    helpdesk = Helpdesk()

    result = writeback(world, helpdesk).dispatch(ref(item))

    assert helpdesk.public() == [], f"{change}: the customer received text from a withdrawn article"
    assert result.outcome == "conflict" and SAYS[change] in result.detail
    # The agents get the reply as a held note that says which article changed and how.
    note = Outbox(world.store).get(world.ctx, f"{item.outbox_id}-held")
    assert note is not None and note.kind == "internal_note"
    writeback(world, helpdesk).dispatch(ref(note))
    [sent] = helpdesk.notes()
    assert "a help article it quotes changed" in sent and SAYS[change] in sent
    assert "the reply below (not sent to the customer)" in sent and QUOTED_STEP in sent
    [payload] = audited(world, item.ticket_id, "writeback.conflict")
    [article] = payload["conflict"]["cited_articles"]
    assert (article["article_id"], article["version"]) == ("gs-export", 1)


def test_an_article_that_expires_after_the_draft_without_a_new_version_is_not_sent(world):
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert world.kb.put(ADMIN, "gs-export", EXPORT.model_copy(update={"expires_at": tomorrow})).version == 2
    world.search.articles = [replace(a, version=2) for a in world.search.articles]  # the draft quotes v2
    item = drafted(world)
    assert "[gs-export v2]" in item.body
    helpdesk = Helpdesk()

    result = writeback(world, helpdesk, clock=lambda: tomorrow + timedelta(days=1)).dispatch(ref(item))

    assert helpdesk.public() == []
    assert result.outcome == "conflict" and "gs-export v2 expired" in result.detail


def test_a_newer_version_still_holding_the_quoted_passage_is_sent(world):
    item = drafted(world)
    world.kb.put(
        ADMIN,
        "gs-export",
        EXPORT.model_copy(update={"body": EXPORT.body + "\nLarge exports arrive by email.\n"}),
    )
    helpdesk = Helpdesk()

    assert writeback(world, helpdesk).dispatch(ref(item)).outcome == "delivered"
    [reply] = helpdesk.public()
    assert QUOTED_STEP in reply


def test_an_article_restricted_to_the_customers_own_plan_is_still_sent(world):
    save(
        world.store,
        world.ctx,
        [Accounts(world.store).save_write(Account(tenant_id="acme", account_id="a-1", plan="pro"))],
    )
    item = drafted(world, account_id="a-1")
    CHANGES["only for another plan"](world)
    helpdesk = Helpdesk()

    assert writeback(world, helpdesk).dispatch(ref(item)).outcome == "delivered"
    assert len(helpdesk.public()) == 1


def test_a_retry_after_the_article_was_deleted_is_held_and_says_an_earlier_attempt_may_have_gone_out(world):
    item = drafted(world)
    helpdesk = Helpdesk(failures=1)
    with pytest.raises(TransientFailure):
        writeback(world, helpdesk).dispatch(ref(item))
    CHANGES["deleted"](world)

    retried = Outbox(world.store).get(world.ctx, item.outbox_id)
    assert writeback(world, helpdesk).dispatch(ref(retried)).outcome == "conflict"
    assert helpdesk.public() == []
    note = Outbox(world.store).get(world.ctx, f"{item.outbox_id}-held")
    assert "an earlier attempt may have reached the customer: check" in note.body


def test_a_reply_queued_before_items_carried_citations_is_checked_against_its_decisions_draft(world):
    item = drafted(world)
    old = Outbox(world.store).save_write(item)
    old.data.pop("citations")  # as an item stored before this field existed
    world.store.put(world.ctx, old)
    assert Outbox(world.store).get(world.ctx, item.outbox_id).citations is None
    CHANGES["deleted"](world)
    helpdesk = Helpdesk()

    assert writeback(world, helpdesk).dispatch(ref(item)).outcome == "conflict"
    assert helpdesk.public() == []


# ------------------------------------------------------------------------------ escalation approvals
def escalated(world, edit: str | None = None):
    """A drafted answer's escalation decided by an agent (approving the AI's draft as is, or sending `edit`
    instead), then escalation's own writeback step: returns the public reply it queued."""
    drafted(world, "tkt-esc")
    [decision] = Tickets(world.store).decisions(world.ctx, "tkt-esc")
    outcome = "approve" if edit is None else "edit"
    record = TaskDecision(
        tenant_id="acme",
        task_id="task_1",
        ticket_id="tkt-esc",
        decision_id="d-1",
        outcome=outcome,
        actor="agent:ann",
        actor_roles=["agent"],
        reply=decision.draft.text if edit is None else edit,
        approvals=["agent:ann"],
    )
    world.audit.append(
        world.ctx, "tkt-esc", "task.decided", {"task_id": "task_1"}, writes=TaskDecisions.writes(record)
    )
    state = EscalationState(
        tenant_id="acme",
        ticket_id="tkt-esc",
        decision_id=decision.decision_id,
        classification=Classification(intent="how_to", intent_confidence=0.9),
        proposed_reply=decision.draft.text,
        citations=decision.draft.citations,
        applied=AppliedDecision(next="writeback", task_id="task_1", decision_id="d-1", outcome=outcome),
    )
    result = world.escalation_steps().enqueue_writeback(world.ctx, state, "esc-1")
    found = [Outbox(world.store).get(world.ctx, i) for i in result["outbox_ids"]]
    [reply] = [i for i in found if i.kind == "public_reply"]
    return reply


def test_an_escalation_approving_the_ai_reply_unchanged_is_checked_too(world):
    queued = escalated(world)
    CHANGES["rewritten"](world)
    helpdesk = Helpdesk()

    result = writeback(world, helpdesk).dispatch(ref(queued))

    assert helpdesk.public() == [], "the approved AI reply quoted steps the article no longer has"
    assert result.outcome == "conflict" and SAYS["rewritten"] in result.detail


def test_an_escalation_reply_the_agent_edited_is_sent_as_written(world):
    edited = "Open Data > Downloads and click Download. - Ann"
    queued = escalated(world, edit=edited)
    CHANGES["rewritten"](world)
    helpdesk = Helpdesk()

    assert writeback(world, helpdesk).dispatch(ref(queued)).outcome == "delivered"
    assert helpdesk.public() == [edited]
