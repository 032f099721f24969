"""A writeback harness for tests and benchmarks: in-process moto with the template's SupportTable, evidence
bucket and writeback queues (only what writeback touches, so it starts fast), a controllable clock, a list
queue, and a Writeback service wired to the local helpdesks through the real SecretStore."""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from deflect.domain.models import OutboxItem, Ticket, utcnow
from deflect.domain.tenancy import TenantContext
from deflect.helpdesk.directory import HelpdeskDirectory
from deflect.helpdesk.http import HelpdeskHttp, TokenBuckets
from deflect.services import outbox as outbox_items
from deflect.services.outbox import OutboxRef, ref_from_message
from deflect.services.writeback import Writeback
from infra.local import template as tpl
from infra.local.resources import LocalResources, create_queue

WRITEBACK_APP = Path(__file__).resolve().parents[3] / "functions" / "writeback" / "app.py"


def writeback_app(name: str = "writeback_app") -> ModuleType:
    """The writeback function's handler module (`process` is its testable seam), loaded from its file."""
    spec = importlib.util.spec_from_file_location(name, WRITEBACK_APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class WritebackAws:
    session: Any
    resources: LocalResources
    container: Any

    def queue_messages(self, name: str) -> list[dict[str, Any]]:
        sqs = self.session.client("sqs")
        found = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.resources.queues[name], MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not batch:
                return found
            for message in batch:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(
                    QueueUrl=self.resources.queues[name], ReceiptHandle=message["ReceiptHandle"]
                )


@contextmanager
def writeback_aws(*, stream: bool = True) -> Iterator[WritebackAws]:
    """`stream=False` leaves the table's stream off: moto copies every table, stream records included, on each
    transaction, so a long run without it stays fast."""
    import boto3
    from moto import mock_aws

    from deflect.bootstrap import Container
    from deflect.settings import Settings

    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        found = LocalResources()
        ddb = session.client("dynamodb")
        for name, args in tpl.table_definitions().items():
            if not stream:
                args.pop("StreamSpecification", None)
            ddb.create_table(**args)
            found.tables[name] = name
        s3 = session.client("s3")
        for name, props in tpl.bucket_definitions().items():
            if name == "EvidenceBucket":  # the audit log's locked objects
                s3.create_bucket(
                    Bucket=name.lower(), ObjectLockEnabledForBucket=bool(props.get("ObjectLockEnabled"))
                )
                found.buckets[name] = name.lower()
        sqs = session.client("sqs")
        for name, props in tpl.queue_definitions().items():
            if name.startswith("Writeback"):
                found.queues[name] = create_queue(sqs, name, props)
        env = {**os.environ, **found.environment()}
        env.pop("AWS_ENDPOINT_URL", None)
        container = Container(Settings.from_env(env))
        yield WritebackAws(session, found, container)


@dataclass
class Clock:
    """Real time plus whatever a test has skipped (a lease running out without waiting for it)."""

    skipped: timedelta = timedelta()

    def __call__(self) -> datetime:
        return utcnow() + self.skipped

    def skip(self, seconds: float) -> None:
        self.skipped += timedelta(seconds=seconds)


@dataclass
class ListQueue:
    """A WorkQueue that keeps what was sent, for tests that drive dispatch themselves."""

    sent: list[dict[str, Any]] = field(default_factory=list)

    def send(
        self, ctx: TenantContext, body: Any, *, dedupe_id: str | None = None, group_id: str | None = None
    ) -> str:
        self.sent.append({"tenant_id": ctx.tenant_id, **body})
        return str(len(self.sent))

    def take(self) -> list[OutboxRef]:
        refs, self.sent = [ref_from_message(m) for m in self.sent], []
        return refs


def fast_http(**kw: Any) -> HelpdeskHttp:
    """No real sleeping and a frozen bucket clock: tests check waits by what was asked, not by the wall."""
    sleeps: list[float] = kw.pop("sleeps", [])
    bucket_clock = kw.pop("bucket_clock", lambda: 0.0)
    return HelpdeskHttp(sleep=sleeps.append, limits=TokenBuckets(clock=bucket_clock), timeout_s=2.0, **kw)


def service(aws: WritebackAws, http: HelpdeskHttp, *, audit: bool = True, **kw: Any) -> Writeback:
    c = aws.container
    return Writeback(
        c.store,
        HelpdeskDirectory(c.secrets, http),
        audit=c.audit if audit else None,
        **kw,
    )


def helpdesk_ticket(helpdesks: Any, tenant: str, provider: str, ticket_id: str | None = None) -> Ticket:
    """A new ticket on a local helpdesk, as Deflect's intake would have recorded it (with the helpdesk's
    version at that moment, which is what writeback compares a newer edit against)."""
    desk = helpdesks.state.create_ticket(provider, tenant)
    return Ticket(
        tenant_id=tenant,
        ticket_id=ticket_id or f"t-{provider}-{desk.id}",
        provider=provider,
        external_id=desk.id,
        external_updated_at=desk.updated_at,
    )


def commit_reply(
    aws: WritebackAws, helpdesks: Any, tenant: str, provider: str, text: str, **fields: Any
) -> OutboxItem:
    """A reply decided for a new helpdesk ticket, committed to the outbox (not yet enqueued)."""
    item = outbox_items.reply(helpdesk_ticket(helpdesks, tenant, provider), text, **fields)
    aws.container.store.transact(TenantContext.system(tenant), outbox_items.writes([item]))
    return item
