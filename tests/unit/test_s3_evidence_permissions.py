"""The evidence vault as deployed: IAM may hide whether a key exists (403 instead of 404 without s3:ListBucket),
and a new piece of evidence must still be locked away."""

from __future__ import annotations

import boto3
from botocore.stub import ANY, Stubber

from deflect.adapters.s3_evidence import S3EvidenceStore
from deflect.domain.canonical import sha256_hex
from deflect.domain.tenancy import TenantContext

KEY = "tenant=acme/ticket=t-1/evidence/abc.json"


def test_a_forbidden_existence_check_still_stores_the_evidence():
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    body = b'{"decision": "escalate"}'
    with Stubber(client) as stub:
        stub.add_client_error("head_object", service_error_code="403", http_status_code=403)
        stub.add_response(
            "put_object",
            {"VersionId": "v1"},
            {
                "Bucket": "evidence",
                "Key": KEY,
                "Body": body,
                "ContentType": "application/json",
                "Metadata": {"sha256": sha256_hex(body), "kind": "decision_inputs"},
                "ChecksumAlgorithm": "SHA256",
                "ServerSideEncryption": "aws:kms",
                "SSEKMSKeyId": ANY,
            },
        )
        ref = S3EvidenceStore(client, "evidence", kms_key_id="alias/deflect").put_locked(
            TenantContext.system("acme"), KEY, body, "decision_inputs"
        )
        stub.assert_no_pending_responses()
    assert ref.version_id == "v1" and ref.sha256 == sha256_hex(body)
