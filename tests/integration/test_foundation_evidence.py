"""The evidence vault keeps what it stored: locked versions cannot be deleted, and overwrites change nothing
that Deflect reads back through the reference it recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from deflect.domain.errors import EvidenceTampered, Forbidden
from deflect.domain.models import EvidenceRef
from deflect.domain.tenancy import TenantContext
from infra.local import template as tpl

ACME = TenantContext.system("acme")
BODY = b'{"raw": "the customer wrote this"}'


@pytest.fixture
def vault(moto_stack):
    container = moto_stack.container()
    return container.evidence, moto_stack.session.client("s3"), container.settings.evidence_bucket


def test_evidence_is_content_addressed_and_locked_in_compliance_mode(vault):
    evidence, s3, bucket = vault

    ref = evidence.put_evidence(ACME, "t1", BODY, "webhook")

    assert ref.key.startswith("tenant=acme/tickets/t1/evidence/") and ref.key.endswith(f"{ref.sha256}.json")
    head = s3.head_object(Bucket=bucket, Key=ref.key, VersionId=ref.version_id)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    days = int(tpl.load_template()["Parameters"]["EvidenceRetentionDays"]["Default"])
    expected = datetime.now(UTC) + timedelta(days=days)
    assert abs(head["ObjectLockRetainUntilDate"] - expected) < timedelta(days=1)
    # The same bytes again add no version: evidence is stored once.
    assert evidence.put_evidence(ACME, "t1", BODY, "webhook") == ref


def test_a_locked_version_cannot_be_deleted(vault):
    evidence, s3, bucket = vault
    ref = evidence.put_evidence(ACME, "t1", BODY, "webhook")

    for extra in ({}, {"BypassGovernanceRetention": True}):
        with pytest.raises(ClientError) as refused:
            s3.delete_object(Bucket=bucket, Key=ref.key, VersionId=ref.version_id, **extra)
        assert refused.value.response["Error"]["Code"] == "AccessDenied"

    assert evidence.read(ACME, ref) == BODY


def test_an_overwrite_adds_a_version_and_reads_still_return_the_original(vault):
    evidence, s3, bucket = vault
    ref = evidence.put_evidence(ACME, "t1", BODY, "webhook")

    s3.put_object(Bucket=bucket, Key=ref.key, Body=b'{"raw": "rewritten later"}')

    assert evidence.read(ACME, ref) == BODY
    assert evidence.read_latest(ACME, ref.key) == b'{"raw": "rewritten later"}'
    versions = s3.list_object_versions(Bucket=bucket, Prefix=ref.key)["Versions"]
    assert len(versions) == 2
    # A reference that does not pin the version notices the bytes no longer match.
    with pytest.raises(EvidenceTampered):
        evidence.read(ACME, EvidenceRef(key=ref.key, sha256=ref.sha256))


def test_a_delete_marker_hides_nothing_from_a_pinned_reference(vault):
    evidence, s3, bucket = vault
    ref = evidence.put_evidence(ACME, "t1", BODY, "webhook")

    s3.delete_object(Bucket=bucket, Key=ref.key)  # allowed: it only adds a delete marker

    assert evidence.read(ACME, ref) == BODY
    assert evidence.read_latest(ACME, ref.key) is None


def test_evidence_of_another_tenant_is_refused(vault):
    evidence, _, _ = vault
    ref = evidence.put_evidence(TenantContext.system("acme-corp"), "t1", BODY, "webhook")

    with pytest.raises(Forbidden):
        evidence.read(ACME, ref)
    with pytest.raises(Forbidden):
        evidence.put_locked(ACME, ref.key, BODY, "webhook")
