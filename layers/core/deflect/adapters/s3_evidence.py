"""Evidence vault on S3 with Object Lock. Write-once: this module never deletes, never bypasses
governance and never shortens retention (tests/unit/test_no_unsafe_calls.py scans for such calls)."""

from __future__ import annotations

from typing import Any

from deflect.adapters.aws_errors import error_code, translated
from deflect.domain import keys
from deflect.domain.canonical import sha256_hex
from deflect.domain.errors import EvidenceTampered, Forbidden, NotFound
from deflect.domain.models import EvidenceRef
from deflect.domain.tenancy import TenantContext
from deflect.ports import KeyVersions


def _owned(ctx: TenantContext, key: str) -> None:
    if not key.startswith(keys.s3_prefix(ctx.tenant_id)):
        raise Forbidden("evidence outside the caller's tenant")


class S3EvidenceStore:
    def __init__(self, client: Any, bucket: str, kms_key_id: str | None = None) -> None:
        self._client = client
        self._bucket = bucket
        self._kms_key_id = kms_key_id

    def put_evidence(self, ctx: TenantContext, ticket_id: str, body: bytes, kind: str) -> EvidenceRef:
        key = keys.evidence_key(ctx.tenant_id, ticket_id, sha256_hex(body))
        return self.put_locked(ctx, key, body, kind)

    def put_locked(self, ctx: TenantContext, key: str, body: bytes, kind: str) -> EvidenceRef:
        _owned(ctx, key)
        digest = sha256_hex(body)
        existing = self._head(key)
        if existing is not None and existing.get("Metadata", {}).get("sha256") == digest:
            # Content-addressed: the same bytes are already locked; writing again would only add a version.
            return EvidenceRef(key=key, sha256=digest, version_id=existing.get("VersionId"), kind=kind)
        params: dict[str, Any] = {
            "Bucket": self._bucket,
            "Key": key,
            "Body": body,
            "ContentType": "application/json",
            "Metadata": {"sha256": digest, "kind": kind},
            "ChecksumAlgorithm": "SHA256",
        }
        if self._kms_key_id:
            params.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=self._kms_key_id)
        with translated("PutObject"):
            response = self._client.put_object(**params)
        return EvidenceRef(key=key, sha256=digest, version_id=response.get("VersionId"), kind=kind)

    def read(self, ctx: TenantContext, ref: EvidenceRef) -> bytes:
        """Read the exact version recorded; fail loudly if its bytes no longer match the recorded hash."""
        _owned(ctx, ref.key)
        params: dict[str, Any] = {"Bucket": self._bucket, "Key": ref.key}
        if ref.version_id:
            params["VersionId"] = ref.version_id
        with translated("GetObject"):
            body = self._client.get_object(**params)["Body"].read()
        if sha256_hex(body) != ref.sha256:
            raise EvidenceTampered(ref.key)
        return body

    def read_latest(self, ctx: TenantContext, key: str) -> bytes | None:
        _owned(ctx, key)
        try:
            with translated("GetObject"):
                return self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except NotFound:
            return None

    def versions(self, ctx: TenantContext, prefix: str) -> dict[str, KeyVersions]:
        _owned(ctx, prefix)
        found: dict[str, tuple[list[str | None], int]] = {}
        pages = self._client.get_paginator("list_object_versions").paginate(
            Bucket=self._bucket, Prefix=prefix
        )
        with translated("ListObjectVersions"):
            for page in pages:
                # S3 lists the versions of each key newest first.
                for version in page.get("Versions", []):
                    found.setdefault(version["Key"], ([], 0))[0].append(version.get("VersionId"))
                for marker in page.get("DeleteMarkers", []):
                    ids, markers = found.get(marker["Key"], ([], 0))
                    found[marker["Key"]] = (ids, markers + 1)
        return {key: KeyVersions(tuple(reversed(ids)), markers) for key, (ids, markers) in found.items()}

    def read_version(self, ctx: TenantContext, key: str, version_id: str) -> bytes | None:
        _owned(ctx, key)
        try:
            with translated("GetObject"):
                response = self._client.get_object(Bucket=self._bucket, Key=key, VersionId=version_id)
                return response["Body"].read()
        except NotFound:
            return None

    def presign(self, ctx: TenantContext, ref: EvidenceRef, expires_s: int = 300) -> str:
        _owned(ctx, ref.key)
        params: dict[str, Any] = {"Bucket": self._bucket, "Key": ref.key}
        if ref.version_id:
            params["VersionId"] = ref.version_id
        return self._client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s)

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return self._client.head_object(Bucket=self._bucket, Key=key)
        except self._client.exceptions.ClientError as error:
            # Without s3:ListBucket S3 answers 403 for a key that does not exist. The check only saves writing
            # the same bytes twice, so "cannot tell" is treated as "not there" and the put goes ahead.
            if error_code(error) in {"404", "NoSuchKey", "NotFound", "403", "Forbidden", "AccessDenied"}:
                return None
            raise
