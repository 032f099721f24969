"""No decision in any queue: the escalation goes back to the helpdesk as an internal note through the outbox, and
the ticket's status says so (real ASL on moto's Step Functions, the real escalation handler)."""

from __future__ import annotations

from decimal import Decimal

from deflect.domain import keys
from deflect.domain.errors import Gone
from deflect.domain.models import RequestedAction
from deflect.domain.tenancy import TenantContext
from deflect.escalation.models import EscalationState
from deflect.ports import Put
from deflect.repositories import Tickets
from tests.integration.conftest_escalation import escalation_fixture  # noqa: F401

SUPERVISOR = ("agent", "supervisor")
REFUND = RequestedAction(kind="refund", amount=Decimal("120"), currency="EUR")
PROBLEM = "Please refund my last invoice, the app crashed during checkout."
REPLY = "We have reviewed your invoice and can refund 120 EUR."


def _expire(h, prefix, *, customer_id=None):
    tenant = h.tenant(prefix, review_timeout_s=1, queues=["tier1", "supervisor"], max_hops=1)
    ctx = TenantContext.system(tenant)
    ticket = h.ticket(tenant, text=PROBLEM, customer_id=customer_id)
    # A diagnostic triage collected before the escalation: the summary carries it with its value.
    h.container.store.put(
        ctx,
        Put(
            pk=keys.ticket_pk(tenant, ticket.ticket_id),
            sk="DIAG#app_version",
            data={"name": "app_version", "value": "4.12.3-beta7", "message_id": "m1"},
        ),
    )
    arn = h.escalate(ticket, h.decision(ticket, action=REFUND, reply=REPLY, product_area="general"))
    assert h.wait_execution(arn)["status"] == "FAILED"
    [failure] = [m for m in h.drain("HumanFailureQueue") if m["escalation"]["tenant_id"] == tenant]
    return tenant, ctx, ticket, arn, failure


def _notes(h, tenant, ticket_id):
    return [i for i in h.outbox_items(tenant) if i.ticket_id == ticket_id and i.kind == "internal_note"]


def test_an_expired_review_leaves_the_helpdesk_a_note_with_the_summary_and_a_visible_status(escalation):
    h = escalation
    tenant, ctx, ticket, arn, failure = _expire(h, "expirynote")

    # Still ends in the failure notification, with the same error as before.
    states = h.states_entered(arn)
    assert states.index("NoteReviewExpired") < states.index("NotifyHumanFailure")
    assert failure["escalation"]["error"]["Error"] == "Deflect.ReviewExpired"

    [note] = _notes(h, tenant, ticket.ticket_id)
    body = note.body or ""
    assert "review expired — no decision was made" in body
    assert "no account action was taken" in body
    assert "deflect_review_expired" in note.tags
    assert PROBLEM in body  # the problem
    assert "app_version: 4.12.3-beta7" in body  # the diagnostics collected, with their values
    assert REPLY in body and "refund, 120 EUR" in body  # the proposed reply and action
    assert "tier1" in body and "supervisor" in body  # the queues it waited in
    assert "follow up by" in body  # what the customer was told
    # Nothing else reached the customer: the acknowledgement is the only public item, and no account action.
    kinds = sorted(i.kind for i in h.outbox_items(tenant) if i.ticket_id == ticket.ticket_id)
    assert kinds == ["internal_note", "public_reply"]

    # The ticket's stored status, and the status index reports and lists read.
    assert Tickets(h.container.store).get(ctx, ticket.ticket_id).status == "review_expired"
    listed = Tickets(h.container.store).by_status(ctx, "review_expired")
    assert [t.ticket_id for t in listed] == [ticket.ticket_id]
    assert "escalation.expiry_noted" in h.audit_types(tenant, ticket.ticket_id)
    code, timeline = h.api(
        "GET", f"/v1/tickets/{ticket.ticket_id}/timeline", tenant_id=tenant, roles=SUPERVISOR
    )
    assert code == 200
    [noted] = [e for e in timeline["events"] if e["type"] == "escalation.expiry_noted"]
    assert noted["outputs"]["status"] == "review_expired" and noted["outputs"]["queues"] == [
        "tier1",
        "supervisor",
    ]
    assert h.container.timeline.rebuild_from_audit(ctx, ticket.ticket_id).status == "review_expired"
    # The expired tasks stay listed for the supervisor, and a late decision is still refused.
    _, listed_tasks = h.api("GET", "/v1/tasks", tenant_id=tenant, roles=SUPERVISOR, query="status=expired")
    [task] = listed_tasks["tasks"]
    assert h.decide(tenant, task["task_id"], "approve", roles=SUPERVISOR, sub="sam")[0] == 410

    # A retried step (a Lambda retry after the commit) queues no second note.
    state = EscalationState.model_validate(failure["escalation"])
    again = h.container.escalation_steps.note_review_expired(ctx, state, failure["execution"])
    assert again["outbox_ids"] == [note.outbox_id]
    assert len(_notes(h, tenant, ticket.ticket_id)) == 1
    assert h.audit_types(tenant, ticket.ticket_id).count("escalation.expiry_noted") == 1


class _SummaryErased:
    """The evidence port after the customer's erasure: their sealed summary reads as Gone."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def read(self, ctx, ref):
        if ref.kind.endswith("escalation_summary"):
            raise Gone("erased")
        return self.inner.read(ctx, ref)


def test_an_erased_summary_leaves_a_note_without_the_customers_text(escalation):
    h = escalation
    ports = h.container.escalation_ports
    original = ports.evidence
    ports.evidence = _SummaryErased(original)
    try:
        tenant, ctx, ticket, _, failure = _expire(h, "expiryerased")
    finally:
        ports.evidence = original

    assert failure["escalation"]["error"]["Error"] == "Deflect.ReviewExpired"
    [note] = _notes(h, tenant, ticket.ticket_id)
    body = note.body or ""
    assert "review expired — no decision was made" in body and "summary is not available" in body
    assert "Proposed action: refund" in body
    assert PROBLEM not in body and "4.12.3-beta7" not in body
    assert Tickets(h.container.store).get(ctx, ticket.ticket_id).status == "review_expired"
