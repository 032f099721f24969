"""Cross-tenant isolation of every repository method, with tenant ids that share a prefix (acme / acme-corp).

Records of one tenant are written with the same entity ids another tenant might use; every read through the
other tenant's context must come back empty, and every raw key of the first tenant is refused outright.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deflect import repositories as repos
from deflect.domain.errors import Forbidden, NotFound, TenantNotFound
from deflect.domain.models import (
    Account,
    Customer,
    Decision,
    HumanTask,
    Message,
    OutboxItem,
    TenantConfig,
    Ticket,
    utcnow,
)
from deflect.domain.tenancy import TENANT_ID_PATTERN, TenantContext
from deflect.ports import Delete, Put

# The public methods each foundation repository has today, all exercised below. A new method fails this
# file until its isolation is checked here too.
COVERED = {
    repos.TenantConfigs: {"get", "find", "save_write"},
    repos.Customers: {
        "identity_value",  # pure: how an identity is compared, reads nothing
        "requester_key",
        "identities",
        "get",
        "holders",
        "find_by_requester",
        "save_writes",
        "claim_pk",
        "claimant",
        "claim_write",
    },
    repos.Accounts: {"get", "save_write"},
    repos.Tickets: {
        "status_index",
        "get",
        "require",
        "save_write",
        "by_status",
        "message_write",
        "messages",
        "decision_write",
        "decisions",
    },
    repos.Tasks: {"queue_index", "get", "save_write", "in_queue"},
    repos.Outbox: {"status_index", "get", "save_write", "by_status"},
}


@dataclass
class Repos:
    store: Any
    audit: Any
    tenants: repos.TenantConfigs
    customers: repos.Customers
    accounts: repos.Accounts
    tickets: repos.Tickets
    tasks: repos.Tasks
    outbox: repos.Outbox


@pytest.fixture(scope="module")
def fresh_repositories() -> Iterator[Callable[[], Repos]]:
    """Repositories over a new copy of SupportTable per example.

    moto copies the whole table for every transaction, so one table shared by all examples gets slower
    with each; a table per example keeps every example as cheap as the first.
    """
    import boto3
    from moto import mock_aws

    from deflect.adapters.dynamo_store import DynamoSupportStore
    from deflect.bootstrap import Container
    from deflect.services.audit import AuditLog
    from deflect.settings import Settings
    from infra.local import template as tpl
    from infra.local.resources import create_all

    with mock_aws():
        resources = create_all(boto3.session.Session(region_name="us-east-1"))
        c = Container(Settings.from_env({**resources.environment(), "AWS_REGION": "us-east-1"}))
        ddb = c.client("dynamodb")

        def make() -> Repos:
            name = f"SupportTable-{uuid.uuid4().hex[:12]}"
            ddb.create_table(**{**tpl.table_definitions()["SupportTable"], "TableName": name})
            store = DynamoSupportStore(ddb, name)
            return Repos(
                store,
                AuditLog(store, c.evidence),
                repos.TenantConfigs(store),
                repos.Customers(store),
                repos.Accounts(store),
                repos.Tickets(store),
                repos.Tasks(store),
                repos.Outbox(store),
            )

        yield make


@st.composite
def colliding_tenants(draw: st.DrawFn) -> tuple[str, str]:
    """(owner, other): one id is a prefix of the other, in either order."""
    if draw(st.booleans()):
        pair = ("acme", "acme-corp")
    else:
        base = draw(st.from_regex(r"[a-z0-9][a-z0-9-]{2,20}", fullmatch=True))
        suffix = draw(st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True))
        pair = (base, base + suffix)
    assert all(TENANT_ID_PATTERN.fullmatch(t) for t in pair)
    return pair if draw(st.booleans()) else (pair[1], pair[0])


def _write_everything(r: Repos, owner: str, ids: dict[str, str], email: str) -> list[Put]:
    """Every kind of record the foundation stores, for `owner`. Returns the writes (to replay as the intruder)."""
    ctx = TenantContext.system(owner)
    now = utcnow()
    writes: list[Put] = [r.tenants.save_write(TenantConfig(tenant_id=owner, display_name=owner))]
    customer = Customer(
        tenant_id=owner, customer_id=ids["customer"], email=email, external_ids={"zendesk": ids["ext"]}
    )
    writes += r.customers.save_writes(customer)
    writes.append(r.customers.claim_write(owner, "email", email, ids["customer"]))
    writes.append(r.accounts.save_write(Account(tenant_id=owner, account_id=ids["account"])))
    ticket = Ticket(
        tenant_id=owner,
        ticket_id=ids["ticket"],
        provider="zendesk",
        external_id=ids["ext"],
        status="escalated",
    )
    writes.append(r.tickets.save_write(ticket))
    writes.append(
        r.tickets.message_write(
            Message(tenant_id=owner, ticket_id=ids["ticket"], message_id=ids["message"], body_redacted="hi")
        )
    )
    writes.append(
        r.tickets.decision_write(Decision(tenant_id=owner, ticket_id=ids["ticket"], outcome="escalate"))
    )
    task = HumanTask(
        tenant_id=owner,
        task_id=ids["task"],
        ticket_id=ids["ticket"],
        queue="tier1",
        due_at=now + timedelta(hours=1),
    )
    writes.append(r.tasks.save_write(task))
    item = OutboxItem(
        tenant_id=owner,
        outbox_id=ids["outbox"],
        ticket_id=ids["ticket"],
        provider="zendesk",
        external_ticket_id=ids["ext"],
        kind="tags",
    )
    writes.append(r.outbox.save_write(item))
    repos.save(r.store, ctx, writes)
    r.audit.append(ctx, ids["ticket"], "ticket.escalated", {"by": "test"})
    return writes


def _sees_only_its_own(r: Repos, me: str, ids: dict[str, str], email: str, *, neighbour_only: bool) -> None:
    """Every read through `me` returns only `me`'s records (none at all when only the neighbour wrote)."""
    ctx = TenantContext.system(me)

    def mine(record: Any) -> bool:
        return record is None if neighbour_only else record is not None and record.tenant_id == me

    def all_mine(records: list[Any]) -> bool:
        return all(x.tenant_id == me for x in records) and (len(records) == 0) == neighbour_only

    assert mine(r.tenants.find(ctx))
    if neighbour_only:
        with pytest.raises(TenantNotFound):
            r.tenants.get(ctx)
        with pytest.raises(NotFound):
            r.tickets.require(ctx, ids["ticket"])
    else:
        assert r.tenants.get(ctx).tenant_id == me
        assert r.tickets.require(ctx, ids["ticket"]).tenant_id == me
    assert mine(r.customers.get(ctx, ids["customer"]))
    assert mine(r.customers.find_by_requester(ctx, "email", email))
    assert mine(r.customers.find_by_requester(ctx, "ext:zendesk", ids["ext"]))
    assert all_mine(r.customers.holders(ctx, "email", email))
    assert (r.customers.claimant(ctx, "email", email) is None) == neighbour_only
    assert mine(r.accounts.get(ctx, ids["account"]))
    assert mine(r.tickets.get(ctx, ids["ticket"]))
    assert all_mine(r.tickets.by_status(ctx, "escalated"))
    assert all_mine(r.tickets.messages(ctx, ids["ticket"]))
    assert all_mine(r.tickets.decisions(ctx, ids["ticket"]))
    assert mine(r.tasks.get(ctx, ids["task"]))
    assert all_mine(r.tasks.in_queue(ctx, "tier1"))
    assert mine(r.outbox.get(ctx, ids["outbox"]))
    assert all_mine(r.outbox.by_status(ctx, "pending"))
    assert len(r.audit.entries(ctx, ids["ticket"])) == (0 if neighbour_only else 1)
    assert r.audit.audited_tickets(ctx) == ([] if neighbour_only else [ids["ticket"]])
    assert r.audit.verify(ctx, ids["ticket"]).ok


def _owner_keys_are_refused(r: Repos, other: str, writes: list[Put]) -> None:
    """The store itself refuses the owner's keys (and index keys) in the other tenant's context."""
    ctx = TenantContext.system(other)
    for write in writes:
        with pytest.raises(Forbidden):
            r.store.get(ctx, write.pk, write.sk)
        with pytest.raises(Forbidden):
            r.store.query(ctx, write.pk)
        with pytest.raises(Forbidden):
            r.store.put(ctx, write)
        with pytest.raises(Forbidden):
            r.store.delete(ctx, Delete(write.pk, write.sk))
        with pytest.raises(Forbidden):
            repos.save(r.store, ctx, [write, write])
        for attr, value in write.indexes.items():
            if attr.endswith("PK"):
                with pytest.raises(Forbidden):
                    r.store.query_index(ctx, attr[:-2], value)
        # An intruder's own key with the owner's index key is refused too.
        smuggled = Put(pk=f"T#{other}#X#1", sk="S", data={}, indexes=dict(write.indexes))
        if any(a.endswith("PK") for a in write.indexes):
            with pytest.raises(Forbidden):
                r.store.put(ctx, smuggled)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    tenants=colliding_tenants(),
    shared=st.sampled_from(["x1", "shared", "acme-corp", "T"]),
    both=st.booleans(),
)
def test_no_repository_method_finds_another_tenants_items(fresh_repositories, tenants, shared, both):
    owner, other = tenants
    r = fresh_repositories()
    # The very same entity ids in both tenants: only the tenant may tell them apart.
    ids = {k: f"{shared}-{k}" for k in ("customer", "ext", "account", "ticket", "message", "task", "outbox")}
    email = "same@example.com"

    writes = _write_everything(r, owner, ids, email)
    if both:
        _write_everything(r, other, ids, email)

    _sees_only_its_own(r, owner, ids, email, neighbour_only=False)
    _sees_only_its_own(r, other, ids, email, neighbour_only=not both)
    _owner_keys_are_refused(r, other, writes)


def test_every_foundation_repository_method_is_covered():
    for cls, covered in COVERED.items():
        public = {n for n, _ in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}
        assert public <= covered, f"{cls.__name__}: add isolation checks for {sorted(public - covered)}"
