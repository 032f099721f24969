"""Typed, tenant-scoped repositories over the SupportStore port. No storage technology leaks in here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from deflect.domain import keys
from deflect.domain.errors import NotFound, TenantNotFound
from deflect.domain.models import (
    Account,
    Customer,
    Decision,
    HumanTask,
    Message,
    OutboxItem,
    Record,
    TenantConfig,
    Ticket,
    Versioned,
)
from deflect.domain.tenancy import TenantContext
from deflect.ports import Delete, Put, SupportStore

R = TypeVar("R", bound=Record)
V = TypeVar("V", bound=Versioned)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _dump(record: Record) -> dict:
    return record.model_dump(mode="json")


def put_new(pk: str, sk: str, record: Record, **indexes: str) -> Put:
    return Put(pk=pk, sk=sk, data=_dump(record), expect="new", indexes=indexes)


def put_versioned(pk: str, sk: str, record: Versioned, **indexes: str) -> Put:
    """Guarded on the version the caller read; stored with version + 1."""
    if record.version == 0:
        return put_new(pk, sk, record, **indexes)
    return Put(pk=pk, sk=sk, data=_dump(record), expect="version", expected_version=record.version, indexes=indexes)


def bumped(record: V) -> V:
    return record.model_copy(update={"version": record.version + 1})


class _Repo(Generic[R]):
    model: type[R]

    def __init__(self, store: SupportStore) -> None:
        self.store = store

    def _load(self, ctx: TenantContext, pk: str, sk: str) -> R | None:
        item = self.store.get(ctx, pk, sk)
        if item is None:
            return None
        return self.model.model_validate(item.data)


class TenantConfigs(_Repo[TenantConfig]):
    model = TenantConfig

    def get(self, ctx: TenantContext) -> TenantConfig:
        config = self._load(ctx, keys.tenant_pk(ctx.tenant_id), "CONFIG")
        if config is None or config.status != "active":
            raise TenantNotFound()
        return config

    def find(self, ctx: TenantContext) -> TenantConfig | None:
        return self._load(ctx, keys.tenant_pk(ctx.tenant_id), "CONFIG")

    def save_write(self, config: TenantConfig) -> Put:
        return put_versioned(keys.tenant_pk(config.tenant_id), "CONFIG", config)


class Customers(_Repo[Customer]):
    model = Customer

    @staticmethod
    def identity_value(kind: str, value: str) -> str:
        """How an identity is compared: an email without ASCII case; an external id exactly as its system issued it,
        since helpdesk and CRM ids may differ only in case (Salesforce's 15-character ids do).

        Only A-Z fold: str.lower() also folds look-alikes into ASCII (the Kelvin sign U+212A into "k"), and a
        mailbox someone else can register must never name another customer. Other characters compare exactly: at
        worst one person who writes a non-ASCII address in two cases gets a second, unverified customer."""
        value = value.strip()
        return value.translate(_ASCII_LOWER) if kind == "email" else value

    @classmethod
    def requester_key(cls, tenant_id: str, kind: str, value: str) -> str:
        return f"{keys.tenant_pk(tenant_id)}#REQ#{kind}#{cls.identity_value(kind, value)}"

    @classmethod
    def _legacy_value(cls, kind: str, value: str) -> str | None:
        """Where an identity was keyed by earlier releases (str.lower(): external ids before they kept their case,
        emails before only ASCII folded), if elsewhere. What it finds counts only if the profile names `value`."""
        exact = cls.identity_value(kind, value)
        return exact.lower() if exact != exact.lower() else None

    @classmethod
    def names(cls, customer: Customer, kind: str, value: str) -> bool:
        """Whether the customer's profile carries this identity (exactly, for an external id)."""
        wanted = cls.identity_value(kind, value)
        return any(k == kind and cls.identity_value(k, v) == wanted for k, v in cls.identities(customer))

    def get(self, ctx: TenantContext, customer_id: str) -> Customer | None:
        return self._load(ctx, keys.customer_pk(ctx.tenant_id, customer_id), "PROFILE")

    @staticmethod
    def identities(customer: Customer) -> list[tuple[str, str]]:
        """What a requester is recognised by: email and one external id per helpdesk."""
        found = [("email", customer.email)] if customer.email else []
        return found + [(f"ext:{provider}", ext) for provider, ext in customer.external_ids.items()]

    @classmethod
    def claim_pk(cls, tenant_id: str, kind: str, value: str) -> str:
        return f"{keys.tenant_pk(tenant_id)}#IDENTITY#{kind}#{cls.identity_value(kind, value)}"

    def claimant(self, ctx: TenantContext, kind: str, value: str) -> str | None:
        """The verified customer that claimed an identity (a consistent read, where the index lags). A claim
        keyed by a lower-cased id (before ids kept their case) counts only for the customer whose id it really is."""
        item = self.store.get(ctx, self.claim_pk(ctx.tenant_id, kind, value), "OWNER")
        legacy = self._legacy_value(kind, value)
        if item is None and legacy is not None:
            item = self.store.get(ctx, self.claim_pk(ctx.tenant_id, kind, legacy), "OWNER")
        if item is None:
            return None
        owner = self.get(ctx, item.data["customer_id"])
        return item.data["customer_id"] if owner is None or self.names(owner, kind, value) else None

    def claim_write(self, tenant_id: str, kind: str, value: str, customer_id: str) -> Put:
        """Create-once: of two customers claiming one identity at the same moment, one transaction fails."""
        pk = self.claim_pk(tenant_id, kind, value)
        return Put(pk=pk, sk="OWNER", data={"customer_id": customer_id, "kind": kind}, expect="new")

    def holders(self, ctx: TenantContext, kind: str, value: str) -> list[Customer]:
        """The customers an identity names: a CRM-verified one and perhaps the unverified one intake made from an
        earlier message of the same person (more verified ones only in data saved before that was refused)."""
        hits = self.store.query_index(ctx, "GSI2", self.requester_key(ctx.tenant_id, kind, value), limit=5)
        legacy = self._legacy_value(kind, value)
        if legacy is not None:
            hits += self.store.query_index(
                ctx, "GSI2", self.requester_key(ctx.tenant_id, kind, legacy), limit=5
            )
        ids = dict.fromkeys(hit.data["customer_id"] for hit in hits)
        found = (self.get(ctx, customer_id) for customer_id in ids)
        # Lower-cased keys of earlier releases may name a customer whose id differs in case: not this requester.
        return [customer for customer in found if customer is not None and self.names(customer, kind, value)]

    def find_by_requester(
        self, ctx: TenantContext, kind: str, value: str, *, unverified_only: bool = False
    ) -> Customer | None:
        """`unverified_only`: the identity is only claimed (an email the channel did not verify), so it may name the
        unverified customer intake made for it, never a CRM-verified one and its plan, entitlements and segments."""
        holders = self.holders(ctx, kind, value)
        if unverified_only:
            return next((c for c in holders if not c.verified), None)
        verified = [c for c in holders if c.verified]
        if len(verified) > 1:
            # Names two CRM customers: taking either would put one's plan, SLA and entitlements on the other's
            # ticket. Neither is taken; the ticket goes on as the unverified requester's.
            return next((c for c in holders if not c.verified), None)
        return verified[0] if verified else next(iter(holders), None)

    def save_writes(self, customer: Customer) -> list[Put]:
        """Profile plus one lookup item per requester identity (email, external ids)."""
        t = customer.tenant_id
        writes: list[Put] = [put_versioned(keys.customer_pk(t, customer.customer_id), "PROFILE", customer)]
        for kind, value in self.identities(customer):
            writes.append(
                Put(
                    pk=keys.customer_pk(t, customer.customer_id),
                    sk=f"REQ#{kind}",
                    data={"customer_id": customer.customer_id, "kind": kind},
                    indexes={"GSI2PK": self.requester_key(t, kind, value), "GSI2SK": customer.customer_id},
                )
            )
        return writes


class Accounts(_Repo[Account]):
    model = Account

    def get(self, ctx: TenantContext, account_id: str) -> Account | None:
        return self._load(ctx, keys.account_pk(ctx.tenant_id, account_id), "PROFILE")

    def save_write(self, account: Account) -> Put:
        return put_versioned(keys.account_pk(account.tenant_id, account.account_id), "PROFILE", account)


class Tickets(_Repo[Ticket]):
    model = Ticket

    @staticmethod
    def status_index(ticket: Ticket) -> dict[str, str]:
        return {
            "GSI3PK": f"{keys.tenant_pk(ticket.tenant_id)}#STATUS#{ticket.status}",
            "GSI3SK": f"{ticket.updated_at.isoformat()}#{ticket.ticket_id}",
        }

    def get(self, ctx: TenantContext, ticket_id: str) -> Ticket | None:
        return self._load(ctx, keys.ticket_pk(ctx.tenant_id, ticket_id), "META")

    def require(self, ctx: TenantContext, ticket_id: str) -> Ticket:
        ticket = self.get(ctx, ticket_id)
        if ticket is None:
            raise NotFound("ticket not found")
        return ticket

    def save_write(self, ticket: Ticket) -> Put:
        return put_versioned(keys.ticket_pk(ticket.tenant_id, ticket.ticket_id), "META", ticket, **self.status_index(ticket))

    def by_status(self, ctx: TenantContext, status: str, limit: int | None = None) -> list[Ticket]:
        pk = f"{keys.tenant_pk(ctx.tenant_id)}#STATUS#{status}"
        return [Ticket.model_validate(i.data) for i in self.store.query_index(ctx, "GSI3", pk, limit=limit)]

    # messages, diagnostics and decisions live under the ticket's partition
    @staticmethod
    def message_write(message: Message) -> Put:
        sk = f"MSG#{message.received_at.isoformat()}#{message.message_id}"
        return put_new(keys.ticket_pk(message.tenant_id, message.ticket_id), sk, message)

    def messages(self, ctx: TenantContext, ticket_id: str) -> list[Message]:
        items = self.store.query(ctx, keys.ticket_pk(ctx.tenant_id, ticket_id), "MSG#")
        return [Message.model_validate(i.data) for i in items]

    @staticmethod
    def decision_write(decision: Decision) -> Put:
        sk = f"DECISION#{decision.decided_at.isoformat()}#{decision.decision_id}"
        return put_new(keys.ticket_pk(decision.tenant_id, decision.ticket_id), sk, decision)

    def decisions(self, ctx: TenantContext, ticket_id: str) -> list[Decision]:
        items = self.store.query(ctx, keys.ticket_pk(ctx.tenant_id, ticket_id), "DECISION#")
        return [Decision.model_validate(i.data) for i in items]


class Tasks(_Repo[HumanTask]):
    model = HumanTask

    @staticmethod
    def queue_index(task: HumanTask) -> dict[str, str]:
        return {
            "GSI1PK": f"{keys.tenant_pk(task.tenant_id)}#QUEUE#{task.queue}#{task.status}",
            "GSI1SK": f"{task.due_at.isoformat()}#{task.task_id}",
        }

    def get(self, ctx: TenantContext, task_id: str) -> HumanTask | None:
        return self._load(ctx, keys.task_pk(ctx.tenant_id, task_id), "META")

    def save_write(self, task: HumanTask) -> Put:
        return put_versioned(keys.task_pk(task.tenant_id, task.task_id), "META", task, **self.queue_index(task))

    def in_queue(self, ctx: TenantContext, queue: str, status: str = "open", limit: int | None = None) -> list[HumanTask]:
        """Ordered by due time: the tasks nearest their SLA come first."""
        pk = f"{keys.tenant_pk(ctx.tenant_id)}#QUEUE#{queue}#{status}"
        return [HumanTask.model_validate(i.data) for i in self.store.query_index(ctx, "GSI1", pk, limit=limit)]


class Outbox(_Repo[OutboxItem]):
    model = OutboxItem

    @staticmethod
    def status_index(item: OutboxItem) -> dict[str, str]:
        return {
            "GSI3PK": f"{keys.tenant_pk(item.tenant_id)}#OUTBOX#{item.status}",
            "GSI3SK": f"{item.created_at.isoformat()}#{item.outbox_id}",
        }

    def get(self, ctx: TenantContext, outbox_id: str) -> OutboxItem | None:
        return self._load(ctx, keys.outbox_pk(ctx.tenant_id, outbox_id), "META")

    def save_write(self, item: OutboxItem) -> Put:
        return put_versioned(keys.outbox_pk(item.tenant_id, item.outbox_id), "META", item, **self.status_index(item))

    def by_status(self, ctx: TenantContext, status: str, limit: int | None = None) -> list[OutboxItem]:
        pk = f"{keys.tenant_pk(ctx.tenant_id)}#OUTBOX#{status}"
        return [OutboxItem.model_validate(i.data) for i in self.store.query_index(ctx, "GSI3", pk, limit=limit)]


def save(store: SupportStore, ctx: TenantContext, writes: Iterable[Put | Delete]) -> None:
    """Write one or more items all-or-nothing."""
    writes = list(writes)
    if len(writes) == 1 and isinstance(writes[0], Put):
        store.put(ctx, writes[0])
    else:
        store.transact(ctx, writes)

