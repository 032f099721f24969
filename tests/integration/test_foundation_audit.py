"""The audit verifier finds tampering with a ticket's chain and names the first broken link."""

from __future__ import annotations

import json

import pytest

from deflect.cli import main as cli_main
from deflect.domain import keys
from deflect.domain.audit_chain import seal
from deflect.domain.canonical import canonical_json, sha256_hex
from deflect.domain.models import AuditEvent
from deflect.domain.tenancy import TenantContext
from deflect.ports import Delete, Put

ACME = TenantContext.system("acme")
TICKET = "t-100"


@pytest.fixture
def chain(moto_stack):
    """A ticket with four audited events; returns (audit log, store, s3 client, bucket)."""
    container = moto_stack.container()
    log = container.audit
    for n, kind in enumerate(["ticket.created", "ticket.triaged", "ticket.escalated", "task.decided"]):
        log.append(ACME, TICKET, kind, {"step": n, "note": f"event {n}"})
    return log, container.store, moto_stack.session.client("s3"), container.settings.evidence_bucket


def _index(store, seq: int):
    return store.get(ACME, keys.audit_pk("acme", TICKET), f"SEQ#{seq:010d}")


def _rewrite(s3, bucket: str, key: str, change) -> None:
    """Upload a new version of an audit object (the locked original stays, as Object Lock allows)."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=change(body))


def test_an_untouched_chain_verifies(chain):
    log, *_ = chain

    report = log.verify(ACME, TICKET)

    assert report.ok and report.events == 4
    assert [r.ticket_id for r in log.verify_tenant(ACME)] == [TICKET]


def test_a_flipped_byte_is_the_first_broken_link(chain):
    log, store, s3, bucket = chain
    key = _index(store, 1).data["key"]

    _rewrite(s3, bucket, key, lambda body: body.replace(b"event 1", b"event 7", 1))

    report = log.verify(ACME, TICKET)
    assert not report.ok
    assert report.first_break.seq == 1


def test_a_flipped_byte_that_breaks_the_json_is_reported_not_raised(chain):
    log, store, s3, bucket = chain
    key = _index(store, 2).data["key"]

    _rewrite(s3, bucket, key, lambda body: bytes([body[0] ^ 0x01]) + body[1:])  # "{" becomes "z"

    report = log.verify(ACME, TICKET)
    assert (report.ok, report.first_break.seq) == (False, 2)


def test_a_deleted_index_entry_is_found(chain):
    log, store, *_ = chain

    store.delete(ACME, Delete(keys.audit_pk("acme", TICKET), f"SEQ#{2:010d}"))

    report = log.verify(ACME, TICKET)
    assert (report.ok, report.first_break.seq) == (False, 2)


def test_a_deleted_event_object_is_found(chain):
    log, store, s3, bucket = chain

    # A delete marker over the locked version (allowed; the version itself stays).
    s3.delete_object(Bucket=bucket, Key=_index(store, 1).data["key"])

    report = log.verify(ACME, TICKET)
    assert (report.ok, report.first_break.seq) == (False, 1)
    assert "missing" in report.first_break.reason


def _reseal_last(store, s3, bucket: str, change) -> None:
    """What any function role may do (s3:PutObject on tenant=*, CRUD on the table): put a re-sealed event over the
    last one's key and point its index item at it."""
    index = _index(store, 3)
    key = index.data["key"]
    original = AuditEvent.model_validate(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    payload = change(original.payload)
    forged = seal(
        original.model_copy(
            update={"payload": payload, "payload_sha256": sha256_hex(canonical_json(payload))}
        )
    )
    put = s3.put_object(Bucket=bucket, Key=key, Body=canonical_json(forged.model_dump(mode="json")))
    data = {**index.data, "hash": forged.hash, "version_id": put["VersionId"]}
    store.put(
        ACME, Put(pk=index.pk, sk=index.sk, data=data, expect="version", expected_version=index.version)
    )


def test_a_resealed_last_event_with_a_matching_index_is_found_and_the_original_still_read(chain):
    """The forged version is self-consistent and the index agrees with it: only the key's history tells."""
    log, store, s3, bucket = chain

    _reseal_last(store, s3, bucket, lambda payload: {**payload, "note": "approved after all"})

    report = log.verify(ACME, TICKET)
    assert (report.ok, report.first_break.seq) == (False, 3)
    assert "rewritten" in report.first_break.reason
    _, events = log.load(ACME, TICKET)
    assert events[3].payload["note"] == "event 3"  # the version Object Lock kept, not the forgery


def test_the_same_event_put_twice_by_a_retried_request_is_not_tampering(chain):
    """botocore retries a PutObject whose answer was lost inside the call: the key then has two identical
    versions, and the index names the second."""
    log, store, s3, bucket = chain
    index = _index(store, 3)
    same = s3.get_object(Bucket=bucket, Key=index.data["key"])["Body"].read()
    again = s3.put_object(Bucket=bucket, Key=index.data["key"], Body=same)["VersionId"]
    data = {**index.data, "version_id": again}
    store.put(ACME, Put(pk=index.pk, sk=index.sk, data=data, expect="version", expected_version=index.version))

    assert log.verify(ACME, TICKET).ok
    assert log.intact_events(ACME, log.entries(ACME, TICKET))[3] is not None


def test_an_index_entry_naming_another_version_is_found(chain):
    log, store, *_ = chain
    index = _index(store, 2)

    data = {**index.data, "version_id": "not-the-first-version"}
    store.put(
        ACME, Put(pk=index.pk, sk=index.sk, data=data, expect="version", expected_version=index.version)
    )

    report = log.verify(ACME, TICKET)
    assert (report.ok, report.first_break.seq) == (False, 2)
    assert "version" in report.first_break.reason


def test_a_reordered_pair_is_found(chain):
    log, store, *_ = chain
    pk = keys.audit_pk("acme", TICKET)
    one, two = _index(store, 1), _index(store, 2)

    # Swap what the index says sits at seq 1 and seq 2.
    store.transact(
        ACME,
        [
            Put(pk=pk, sk=one.sk, data=two.data, expect="version", expected_version=one.version),
            Put(pk=pk, sk=two.sk, data=one.data, expect="version", expected_version=two.version),
        ],
    )

    report = log.verify(ACME, TICKET)
    assert (report.ok, report.first_break.seq) == (False, 1)


def test_the_cli_names_the_first_broken_link(chain, capsys):
    _, store, s3, bucket = chain
    _rewrite(s3, bucket, _index(store, 3).data["key"], lambda body: body.replace(b"event 3", b"event 9"))

    code = cli_main(["audit", "verify", "--tenant", "acme", "--ticket", TICKET])

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1
    assert lines[0]["first_broken_seq"] == 3 and lines[-1]["broken"] == 1
