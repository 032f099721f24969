"""`deflect audit verify` accounts for every locked event in a ticket's audit folder, not only those the index names.

Threat model of test_foundation_audit.py: any function role may s3:PutObject under tenant=* and CRUD the table, but
cannot remove a locked object version. Append locks the event object first and commits its index item afterwards,
so a failed append honestly leaves an object the index does not name; verify reports it as a warning.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from deflect.cli import main as cli_main
from deflect.domain import keys
from deflect.domain.audit_chain import seal
from deflect.domain.canonical import canonical_json, sha256_hex
from deflect.domain.errors import Conflict, TransientFailure
from deflect.domain.models import AuditEvent
from deflect.domain.tenancy import TenantContext
from deflect.ports import Delete, Put

ACME = TenantContext.system("acme")
TICKET = "t-100"
KINDS = ["ticket.created", "ticket.triaged", "ticket.escalated", "task.decided"]


@pytest.fixture
def chain(moto_stack):
    """A ticket with four audited events; returns (container, s3 client)."""
    container = moto_stack.container()
    for n, kind in enumerate(KINDS):
        container.audit.append(ACME, TICKET, kind, {"step": n, "note": f"event {n}"})
    return container, moto_stack.session.client("s3")


def _index(container: Any, seq: int):
    return container.store.get(ACME, keys.audit_pk("acme", TICKET), f"SEQ#{seq:010d}")


def _drop_index(container: Any, *seqs: int) -> None:
    for seq in seqs:
        container.store.delete(ACME, Delete(keys.audit_pk("acme", TICKET), f"SEQ#{seq:010d}"))


def _replace_last(container: Any, s3: Any, change: Any, *, later: bool = False) -> None:
    """Re-seal the last event with a changed payload: the new hash gives a new key, so the locked original stays
    where it was, and the index item is pointed at the forgery."""
    bucket = container.settings.evidence_bucket
    index = _index(container, 3)
    original = AuditEvent.model_validate(
        json.loads(s3.get_object(Bucket=bucket, Key=index.data["key"])["Body"].read())
    )
    payload = change(original.payload)
    update: dict[str, Any] = {"payload": payload, "payload_sha256": sha256_hex(canonical_json(payload))}
    if later:
        update["at"] = original.at + timedelta(seconds=3)
    forged = seal(original.model_copy(update=update))
    key = keys.audit_object_key("acme", TICKET, 3, forged.hash)
    put = s3.put_object(Bucket=bucket, Key=key, Body=canonical_json(forged.model_dump(mode="json")))
    data = {**index.data, "key": key, "hash": forged.hash, "version_id": put["VersionId"]}
    container.store.put(
        ACME, Put(pk=index.pk, sk=index.sk, data=data, expect="version", expected_version=index.version)
    )


def _append_with_lost_connection(container: Any, type: str, payload: dict[str, Any]) -> None:
    """The append's object is locked, then its transaction never reaches DynamoDB (as after a crash)."""
    events = container.client("dynamodb").meta.events

    def unplugged(request: Any, **_: Any) -> None:
        raise EndpointConnectionError(endpoint_url=request.url)

    events.register_first("before-send.dynamodb.TransactWriteItems", unplugged)
    try:
        with pytest.raises(TransientFailure):
            container.audit.append(ACME, TICKET, type, payload)
    finally:
        events.unregister("before-send.dynamodb.TransactWriteItems", unplugged)


def _conflicting_write(container: Any) -> Put:
    """A caller's write whose guard fails, as when another delivery of the same message committed first."""
    return Put(
        pk=keys.ticket_pk("acme", TICKET), sk="GUARD", data={"x": 1}, expect="version", expected_version=7
    )


def test_an_untouched_chain_has_no_problems_or_warnings(chain):
    container, _ = chain

    report = container.audit.verify(ACME, TICKET).as_dict()

    assert (report["ok"], report["events"], report["problems"], report["warnings"]) == (True, 4, [], [])


def test_a_last_event_re_sealed_with_another_payload_at_a_new_key_fails(chain):
    container, s3 = chain
    _replace_last(container, s3, lambda p: {**p, "note": "approved after all"})

    report = container.audit.verify(ACME, TICKET)

    assert (report.ok, report.first_break.seq) == (False, 3)
    assert "re-sealed" in report.first_break.reason and "payload" in report.first_break.reason


def test_a_last_event_replaced_with_a_new_time_is_named_by_verify(chain):
    """Indistinguishable from a failed append followed by another one (see the report's anchor note): verify
    cannot fail it, but it names the locked original so nobody can miss it."""
    container, s3 = chain
    _replace_last(container, s3, lambda p: {**p, "note": "approved after all"}, later=True)

    report = container.audit.verify(ACME, TICKET)

    [warning] = report.warnings
    assert warning.seq == 3 and "task.decided" in warning.reason and "compare with seq 3" in warning.reason


def test_the_last_event_removed_from_the_index_fails_as_an_unindexed_trailing_event(chain):
    container, _ = chain
    _drop_index(container, 3)

    report = container.audit.verify(ACME, TICKET)

    assert (report.ok, report.events, report.first_break.seq) == (False, 3, 3)
    assert report.first_break.reason.startswith("unindexed trailing event at seq 3 (task.decided")


def test_two_events_cut_off_the_end_fail_at_the_first_of_them(chain):
    container, _ = chain
    _drop_index(container, 2, 3)

    report = container.audit.verify(ACME, TICKET)

    assert (report.ok, report.events, report.first_break.seq) == (False, 2, 2)
    assert "removed from the index" in report.first_break.reason


def test_a_listed_ticket_whose_index_was_emptied_fails_as_chain_removed(chain):
    container, _ = chain
    _drop_index(container, 0, 1, 2, 3)

    [report] = container.audit.verify_tenant(ACME)

    assert (report.ok, report.events, report.first_break.seq) == (False, 0, 0)
    assert any(p.reason.startswith("chain removed") for p in report.problems)


def test_a_chain_removed_together_with_its_audited_listing_still_fails_when_the_ticket_is_named(chain):
    container, _ = chain
    _drop_index(container, 0, 1, 2, 3)
    container.store.delete(ACME, Delete(keys.audited_tickets_pk("acme"), f"TICKET#{TICKET}"))

    report = container.audit.verify(ACME, TICKET)

    assert (report.ok, report.first_break.seq) == (False, 0)
    assert "removed from the index" in report.first_break.reason


def test_a_ticket_taken_off_the_audited_list_fails(chain):
    container, _ = chain
    container.store.delete(ACME, Delete(keys.audited_tickets_pk("acme"), f"TICKET#{TICKET}"))

    report = container.audit.verify(ACME, TICKET)

    assert not report.ok and "audited-tickets list" in report.first_break.reason


def test_an_append_retried_after_a_lost_connection_verifies_with_a_warning(chain):
    container, _ = chain
    _append_with_lost_connection(container, "note.added", {"text": "customer called"})
    container.audit.append(ACME, TICKET, "note.added", {"text": "customer called"})

    report = container.audit.verify(ACME, TICKET)

    assert report.ok and report.events == 5
    [warning] = report.warnings
    assert warning.seq == 4 and "recorded again at seq 4" in warning.reason


def test_an_append_that_lost_its_own_write_race_verifies_with_a_warning_once_the_chain_moves_on(chain):
    """The leftover is a failure while it is the chain's last locked event (it cannot be told from a removed one),
    and a warning once the next append commits at its seq."""
    container, _ = chain
    with pytest.raises(Conflict):
        container.audit.append(
            ACME, TICKET, "task.claimed", {"by": "ana"}, writes=[_conflicting_write(container)]
        )

    trailing = container.audit.verify(ACME, TICKET)
    assert (trailing.ok, trailing.first_break.seq) == (False, 4)
    assert "unindexed trailing event" in trailing.first_break.reason
    assert "an append that never committed" in trailing.first_break.reason

    container.audit.append(ACME, TICKET, "task.claimed", {"by": "ben"})

    report = container.audit.verify(ACME, TICKET)
    assert report.ok and report.events == 5
    [warning] = report.warnings
    assert warning.seq == 4 and "did not commit" in warning.reason


def test_an_object_that_append_never_wrote_in_the_audit_folder_fails(chain):
    container, s3 = chain
    key = keys.audit_object_key("acme", TICKET, 9, "f" * 64)
    s3.put_object(Bucket=container.settings.evidence_bucket, Key=key, Body=b'{"note": "not an event"}')

    report = container.audit.verify(ACME, TICKET)

    assert (report.ok, report.first_break.seq) == (False, 9)
    assert "foreign object" in report.first_break.reason


def test_another_tickets_chain_copied_into_the_index_fails(chain):
    container, _ = chain
    container.audit.append(ACME, "t-200", "ticket.created", {"step": 0})
    other = container.store.get(ACME, keys.audit_pk("acme", "t-200"), f"SEQ#{0:010d}")
    container.store.put(
        ACME, Put(pk=keys.audit_pk("acme", "t-300"), sk=other.sk, data=other.data, expect="new")
    )
    container.store.put(
        ACME,
        Put(pk=keys.audited_tickets_pk("acme"), sk="TICKET#t-300", data={"ticket_id": "t-300"}, expect="new"),
    )

    report = container.audit.verify(ACME, "t-300")

    assert not report.ok and "another ticket" in report.first_break.reason


def test_the_cli_prints_problems_and_warnings(chain, capsys):
    container, _ = chain
    _append_with_lost_connection(container, "note.added", {"text": "customer called"})
    container.audit.append(ACME, TICKET, "note.added", {"text": "customer called"})

    code = cli_main(["audit", "verify", "--tenant", "acme", "--ticket", TICKET])

    ticket, summary = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and ticket["ok"] and ticket["problems"] == []
    assert [w["seq"] for w in ticket["warnings"]] == [4] and summary["warnings"] == 1
