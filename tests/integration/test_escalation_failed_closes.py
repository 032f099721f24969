"""An escalation whose workflow fails (the real state machine on moto, triage on the stack's table) closes the
ticket's escalation on its way to the human failure queue: the customer's next message is triaged again instead of
being attached to a task nobody will decide. Closing it never holds the failure notification back, and an escalation
that could not be closed counts as closed once it is older than the tenant's longest possible review."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from deflect.domain.tenancy import TenantContext
from deflect.escalation.records import OpenEscalations, longest_review
from tests.integration.conftest_escalation import escalation_fixture  # noqa: F401
from tests.integration.test_followup_open_escalation import _executions, _triage, _write

# What the close step raises when it cannot write its marker (a Lambda error name Step Functions matches on).
MarkerStoreDown = type("MarkerStoreDown", (Exception,), {})


class _KeyDisabled:
    """KMS refusing to encrypt for one tenant: the human task's token cannot be stored, the workflow fails."""

    def __init__(self, tenant_id: str, inner: Any) -> None:
        self.tenant_id, self.inner = tenant_id, inner

    def encrypt(self, tenant_id: str, plaintext: bytes) -> Any:
        if tenant_id == self.tenant_id:
            raise RuntimeError("key disabled")
        return self.inner.encrypt(tenant_id, plaintext)

    def decrypt(self, tenant_id: str, ciphertext: Any) -> Any:
        return self.inner.decrypt(tenant_id, ciphertext)


def _escalate_and_fail(h: Any, tenant: str) -> tuple[Any, Any, dict[str, Any]]:
    """A refund request escalated by triage whose workflow fails at the human task: (triage, ticket, failure
    message from the human failure queue)."""
    triage = _triage(h, tenant)
    ticket = h.ticket(tenant, text="Please refund my last invoice of 120 EUR.")
    ports = h.container.escalation_ports
    original = ports.cipher
    ports.cipher = _KeyDisabled(tenant, original)
    try:
        assert triage.triage(TenantContext.system(tenant), ticket.ticket_id, "m1").escalated
        [execution] = _executions(h, ticket.ticket_id)
        assert h.wait_execution(execution["executionArn"])["status"] == "FAILED"
    finally:
        ports.cipher = original
    failures = [m for m in h.drain("HumanFailureQueue") if m["escalation"]["ticket_id"] == ticket.ticket_id]
    assert len(failures) == 1
    return triage, ticket, failures[0]


def test_a_failed_escalation_lets_the_customers_next_message_be_triaged(escalation):
    h = escalation
    tenant = h.tenant("failclose")
    ctx = TenantContext.system(tenant)
    triage, ticket, failure = _escalate_and_fail(h, tenant)

    # The failure queue still gets the original error and the whole state.
    assert failure["escalation"]["error"]["Error"] == "RuntimeError"
    assert failure["escalation"]["route"]["queue"] == "billing"

    _write(h, tenant, ticket.ticket_id, "m2", "How do I export a report?")
    after = triage.triage(ctx, ticket.ticket_id, "m2")

    assert after.attached_to is None, "the follow-up joined an escalation whose workflow had failed"
    assert after.outcome == "deflect" and after.reply
    types = h.audit_types(tenant, ticket.ticket_id)
    assert "escalation.failed" in types and "escalation.follow_up_attached" not in types


def test_closing_that_fails_still_notifies_and_the_age_bound_closes_the_escalation(escalation, monkeypatch):
    h = escalation
    tenant = h.tenant("failclose2")
    ctx = TenantContext.system(tenant)

    def marker_store_down(*_: Any, **__: Any) -> Any:
        raise MarkerStoreDown("marker not written")

    monkeypatch.setattr(h.container.escalation_steps, "note_failed", marker_store_down)
    _, ticket, failure = _escalate_and_fail(h, tenant)

    # The notification went out regardless, with the original error; the close step's own error rides along.
    assert failure["escalation"]["error"]["Error"] == "RuntimeError"
    assert failure["escalation"]["close_error"]["Error"] == "MarkerStoreDown"

    # Without its marker the escalation reads as open now, and as closed once older than any review can take.
    escalations = OpenEscalations(h.container.store)
    opened = escalations.current(ctx, ticket.ticket_id)
    assert opened is not None
    later = opened.opened_at + longest_review(h.container.tenants.get(ctx)) + timedelta(minutes=1)
    assert OpenEscalations(h.container.store, now=lambda: later).current(ctx, ticket.ticket_id) is None
