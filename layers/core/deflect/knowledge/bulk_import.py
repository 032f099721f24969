"""Bulk import from the knowledge import bucket: an object at `tenant={t}/...(.jsonl|.md|.json)` is imported
into tenant t. Only administrators can write to that bucket, so the key prefix is the tenant's authority.

An object that takes longer than one invocation is imported in parts: each part stops before the function's
time runs out and queues the rest (the ETag it read, the row to go on from) on the knowledge import queue, which
feeds the same function. A part re-reads only that version of the object; a newer upload starts over on its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, ValidationError

from deflect.domain.errors import Conflict, InvalidTenant, MalformedPayload, NotFound
from deflect.domain.tenancy import TenantContext, validate_tenant_id
from deflect.knowledge.importers import read_object
from deflect.knowledge.ingestion import KnowledgeIngestion
from deflect.knowledge.models import ImportSummary, Rejection
from deflect.ports import WorkQueue
from deflect.repositories import TenantConfigs

MAX_OBJECT_BYTES = 50 * 1024 * 1024
_TENANT_KEY = re.compile(r"^tenant=([^/]+)/(.+)$")


class ImportObject(BaseModel):
    """An object to import, or to go on importing: a continuation names the version it read and where it stopped."""

    model_config = ConfigDict(extra="ignore")

    bucket: str
    key: str
    size: int = 0
    etag: str | None = None
    start_row: int = 0
    part: int = 1


class ImportReport(BaseModel):
    tenant_id: str
    key: str
    part: int = 1
    start_row: int = 0
    summary: ImportSummary
    # The rest of the object was queued as the next part (the time limit came first).
    continued: bool = False


# (bucket, key, the ETag the object must still have or None) -> (body, its ETag)
ObjectReader = Callable[[str, str, str | None], tuple[bytes, str]]


def objects_in(event: dict[str, Any]) -> list[ImportObject]:
    """The created objects named by an S3 event notification (keys arrive URL-encoded)."""
    from aws_lambda_powertools.utilities.parser.models import S3Model

    parsed = S3Model.model_validate(event)
    return [
        ImportObject(bucket=r.s3.bucket.name, key=unquote_plus(r.s3.object.key), size=r.s3.object.size or 0)
        for r in parsed.Records
        if r.eventName.startswith("ObjectCreated")
    ]


def continuation_of(body: str) -> ImportObject:
    """A knowledge import queue message → the part it asks for. The tenant it was queued for must be the tenant
    its key names."""
    try:
        data = json.loads(body)
        item = ImportObject.model_validate(data)
    except (ValueError, ValidationError) as error:
        raise MalformedPayload("not a knowledge import continuation") from error
    if data.get("tenant_id") != tenant_of(item.key):
        raise MalformedPayload("a continuation's tenant must be the tenant its key names")
    return item


def _from(event: dict[str, Any], source: str) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return bool(records) and all(isinstance(r, dict) and r.get("eventSource") == source for r in records)


def is_s3_event(event: dict[str, Any]) -> bool:
    return _from(event, "aws:s3")


def is_sqs_event(event: dict[str, Any]) -> bool:
    return _from(event, "aws:sqs")


def tenant_of(key: str) -> str:
    match = _TENANT_KEY.match(key)
    if not match:
        raise MalformedPayload("import objects must live under tenant={tenant_id}/")
    return validate_tenant_id(match.group(1))


class BulkImports:
    """Imports objects from the knowledge import bucket, each in as many parts as the function's time limit needs:
    a part that runs out of time hands the rest to the continuation queue (and the function reads it back from
    there), so a large help center is not bounded by one invocation or by S3's two retries."""

    def __init__(
        self,
        ingestion: KnowledgeIngestion,
        read: ObjectReader,
        continuations: WorkQueue | None = None,
        *,
        reserve_s: float = 15.0,
    ) -> None:
        self.ingestion = ingestion
        self.read = read
        self.continuations = continuations
        self.reserve_s = reserve_s

    def run(self, item: ImportObject, time_left: Callable[[], float] | None = None) -> ImportReport:
        """Import one object (or its next part). Objects that cannot be imported are reported as rejected, never
        raised: S3 or the queue would retry the same object, and the operator reads the reason in the log."""

        def rejected(tenant_id: str, reason: str) -> ImportReport:
            summary = ImportSummary(rejected=[Rejection(source=item.key, reason=reason)])
            return ImportReport(
                tenant_id=tenant_id, key=item.key, part=item.part, start_row=item.start_row, summary=summary
            )

        try:
            tenant_id = tenant_of(item.key)
        except (MalformedPayload, InvalidTenant) as error:
            return rejected("", error.detail)
        ctx = TenantContext(
            tenant_id=tenant_id, actor=f"s3-import:{item.bucket}", roles=frozenset({"service"}), via="system"
        )
        if TenantConfigs(self.ingestion.store).find(ctx) is None:
            # A mistyped prefix would otherwise build a help center no tenant ever reads.
            return rejected(
                tenant_id, f"unknown tenant {tenant_id!r}: create it first (deflect tenant create)"
            )
        if item.size > MAX_OBJECT_BYTES:
            return rejected(tenant_id, f"object larger than {MAX_OBJECT_BYTES} bytes")
        try:
            body, etag = self.read(item.bucket, item.key, item.etag)
        except Conflict:
            # Its replacement has an S3 event of its own and is imported from the start.
            return rejected(tenant_id, "replaced by a newer upload before this import finished")
        except NotFound:
            return rejected(tenant_id, "deleted before this import finished")
        summary = self.ingestion.import_rows(
            ctx,
            read_object(item.key, body),
            start_row=item.start_row,
            time_left=time_left if self.continuations is not None else None,
            reserve_s=self.reserve_s,
        )
        report = ImportReport(
            tenant_id=tenant_id, key=item.key, part=item.part, start_row=item.start_row, summary=summary
        )
        if summary.next_row is not None and self.continuations is not None:
            rest = item.model_copy(
                update={"etag": etag, "start_row": summary.next_row, "part": item.part + 1}
            )
            self.continuations.send(
                ctx, rest.model_dump(mode="json"), dedupe_id=f"{item.key}@{etag}#{summary.next_row}"
            )
            report.continued = True
        return report
