"""Bulk import from the knowledge import bucket: an object at `tenant={t}/...(.jsonl|.md|.json)` is imported
into tenant t. Only administrators can write to that bucket, so the key prefix is the tenant's authority."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

from pydantic import BaseModel

from deflect.domain.errors import InvalidTenant, MalformedPayload
from deflect.domain.tenancy import TenantContext, validate_tenant_id
from deflect.knowledge.importers import read_object
from deflect.knowledge.ingestion import KnowledgeIngestion
from deflect.knowledge.models import ImportSummary, Rejection
from deflect.repositories import TenantConfigs

MAX_OBJECT_BYTES = 50 * 1024 * 1024
_TENANT_KEY = re.compile(r"^tenant=([^/]+)/(.+)$")


class ImportObject(BaseModel):
    bucket: str
    key: str
    size: int = 0


class ImportReport(BaseModel):
    tenant_id: str
    key: str
    summary: ImportSummary


def objects_in(event: dict[str, Any]) -> list[ImportObject]:
    """The created objects named by an S3 event notification (keys arrive URL-encoded)."""
    from aws_lambda_powertools.utilities.parser.models import S3Model

    parsed = S3Model.model_validate(event)
    return [
        ImportObject(bucket=r.s3.bucket.name, key=unquote_plus(r.s3.object.key), size=r.s3.object.size or 0)
        for r in parsed.Records
        if r.eventName.startswith("ObjectCreated")
    ]


def is_s3_event(event: dict[str, Any]) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return bool(records) and all(isinstance(r, dict) and r.get("eventSource") == "aws:s3" for r in records)


def tenant_of(key: str) -> str:
    match = _TENANT_KEY.match(key)
    if not match:
        raise MalformedPayload("import objects must live under tenant={tenant_id}/")
    return validate_tenant_id(match.group(1))


def import_object(
    ingestion: KnowledgeIngestion, read: Callable[[str, str], bytes], item: ImportObject
) -> ImportReport:
    """Import one object. Objects that cannot be imported are reported as rejected, never raised: S3 would retry a
    failed invoke with the same object, and the operator reads the reason in the function's log."""

    def rejected(tenant_id: str, reason: str) -> ImportReport:
        summary = ImportSummary(rejected=[Rejection(source=item.key, reason=reason)])
        return ImportReport(tenant_id=tenant_id, key=item.key, summary=summary)

    try:
        tenant_id = tenant_of(item.key)
    except (MalformedPayload, InvalidTenant) as error:
        return rejected("", error.detail)
    ctx = TenantContext(
        tenant_id=tenant_id, actor=f"s3-import:{item.bucket}", roles=frozenset({"service"}), via="system"
    )
    if TenantConfigs(ingestion.store).find(ctx) is None:
        # A mistyped prefix would otherwise build a help center no tenant ever reads.
        return rejected(tenant_id, f"unknown tenant {tenant_id!r}: create it first (deflect tenant create)")
    if item.size > MAX_OBJECT_BYTES:
        return rejected(tenant_id, f"object larger than {MAX_OBJECT_BYTES} bytes")
    summary = ingestion.import_rows(ctx, read_object(item.key, read(item.bucket, item.key)))
    return ImportReport(tenant_id=tenant_id, key=item.key, summary=summary)
