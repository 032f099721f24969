"""1,000 random crash points across dispatch steps: no effect is lost and none happens twice.

A crash is a process dying (a BaseException the service cannot catch) at one of the points where writeback
can lose track: after loading, after claiming, after any helpdesk answer arrived (the change is made, the
answer is lost), after the connector returned, after the receipt was recorded, and after dispatch returned but
before the queue message was deleted. Each crashed delivery is redelivered after the lease runs out, as SQS
would. The local helpdesks count effects per outbox id; every item must end with exactly one.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import pytest

from deflect.domain.errors import Throttled, TransientFailure
from deflect.domain.models import RequestedAction, Ticket
from deflect.domain.tenancy import TenantContext
from deflect.helpdesk.http import RequestEvent
from deflect.services import outbox
from deflect.services.outbox import OutboxRef
from infra.local import template as tpl
from infra.local.helpdesks import connect_tenant, start_helpdesks
from infra.local.helpdesks.harness import Clock, fast_http, helpdesk_ticket, service, writeback_aws
from tests.integration.writeback_support import commit_account_action

TENANT = "crashco"
CRASHES = 1000
LEASE_S = 60.0
STEPS = ("loaded", "claimed", "sent", "recorded", "returned", "http0", "http1", "http2")
FINAL_STATUS = {"zendesk": "solved", "intercom": "closed", "freshdesk": "4", "jira": "Resolved"}


class Crash(BaseException):
    """The process dies here."""


@dataclass
class CrashPlan:
    rng: random.Random
    target: str | None = None
    responses: int = 0

    def arm(self) -> None:
        self.target, self.responses = self.rng.choice(STEPS), 0

    def disarm(self) -> None:
        self.target = None

    def at(self, step: str) -> None:
        if step == self.target:
            self.target = None
            raise Crash(step)

    def on_response(self, event: RequestEvent) -> None:
        if event.status is not None:
            self.responses += 1
            self.at(f"http{self.responses - 1}")


@pytest.fixture(scope="module")
def world():
    with writeback_aws(stream=False) as aws, start_helpdesks() as helpdesks:
        connect_tenant(aws.container.secrets, helpdesks, TENANT)
        yield aws, helpdesks


def test_a_thousand_random_crashes_lose_nothing_and_repeat_nothing(world):
    aws, helpdesks = world
    rng = random.Random(20241127)
    plan = CrashPlan(rng)
    clock = Clock()
    http = fast_http()
    http.hooks.append(plan.on_response)
    svc = service(aws, http, clock=clock, lease_s=LEASE_S, max_attempts=50, checkpoint=plan.at)
    ctx = TenantContext.system(TENANT)
    store = aws.container.store
    crashes = 0

    def deliver(ref: OutboxRef, budget: int) -> None:
        nonlocal crashes
        used = 0
        while True:
            plan.arm() if used < budget and crashes < CRASHES else plan.disarm()
            try:
                svc.dispatch(ref)
                plan.at("returned")  # dispatch finished, but the queue never heard back
                return
            except Crash:
                crashes += 1
                used += 1
            except (TransientFailure, Throttled):
                pass  # released or still leased: the queue redelivers
            clock.skip(LEASE_S + 1)  # SQS redelivers after the visibility timeout

    effects: Counter[str] = helpdesks.state.effects
    seen: set[str] = set()
    cases = conflicts = delivered = 0
    while crashes < CRASHES:
        cases += 1
        provider = rng.choice(("zendesk", "intercom", "freshdesk", "jira", "crm"))
        if provider == "crm":
            ticket = Ticket(
                tenant_id=TENANT, ticket_id=f"t{cases}", provider="zendesk", external_id=str(cases)
            )
            # Committed as escalation commits it, with the approval writeback checks before calling the CRM.
            refund = RequestedAction(kind="refund", amount="10", currency="EUR")
            case = [commit_account_action(aws, ticket, refund)]
        else:
            ticket = helpdesk_ticket(helpdesks, TENANT, provider, f"t{cases}")
            # One decision, two effects on the same ticket: a note, then the reply that closes it. The reply's
            # snapshot predates the note, so it only passes because Deflect recognises its own note.
            case = [
                outbox.reply(ticket, f"Note {cases}: checked the logs.", public=False),
                outbox.reply(
                    ticket, f"Answer {cases}: restart the sync.", tags=["deflected"], status_value="solved"
                ),
            ]
            store.transact(ctx, outbox.writes(case))
        human_edit = provider != "crm" and rng.random() < 0.1
        for n, item in enumerate(case):
            conflicted = human_edit and n == 1
            if conflicted:
                helpdesks.state.human_edit(provider, TENANT, ticket.external_id, "comment")
            deliver(OutboxRef(tenant_id=TENANT, outbox_id=item.outbox_id), budget=rng.randint(3, 8))
            stored = svc.outbox.get(ctx, item.outbox_id)
            seen.add(item.outbox_id)
            if conflicted:
                assert stored.status == "conflict", (item.outbox_id, stored.status, stored.last_error)
                assert effects[item.outbox_id] == 0, "a held reply reached the customer"
                # The held note for a human is inserted pending (and queued; the stream would relay it too).
                held = OutboxRef(tenant_id=TENANT, outbox_id=f"{item.outbox_id}-held")
                deliver(held, budget=rng.randint(0, 2))
                assert svc.outbox.get(ctx, held.outbox_id).status == "done"
                assert effects[held.outbox_id] == 1
                seen.add(held.outbox_id)
                conflicts += 1
                continue
            assert stored.status == "done", (item.outbox_id, stored.status, stored.last_error)  # nothing lost
            assert effects[item.outbox_id] == 1, (item.outbox_id, effects[item.outbox_id])  # nothing twice
            delivered += 1
            if item.status_value:
                assert (
                    helpdesks.state.ticket(provider, TENANT, ticket.external_id).status
                    == FINAL_STATUS[provider]
                )
        if cases % 8 == 0:
            fresh_table(aws)

    assert crashes == CRASHES
    assert set(effects) == seen - {i for i in seen if effects[i] == 0}  # no effect from anywhere else
    assert delivered + conflicts > CRASHES / 4 and conflicts > 0


def fresh_table(aws) -> None:
    """Start over with an empty SupportTable: moto deep-copies the whole table (deleted partitions included) for
    every transaction, so a long run would slow down quadratically. Verified cases are no longer needed."""
    client = aws.session.client("dynamodb")
    client.delete_table(TableName="SupportTable")
    args = tpl.table_definitions()["SupportTable"]
    args.pop("StreamSpecification", None)
    client.create_table(**args)
