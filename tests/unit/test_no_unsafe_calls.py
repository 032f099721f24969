"""Application code never scans a table, deletes evidence versions, bypasses governance or shortens retention.

moto cannot prove the retention rules (it is lenient), so this review check does; `make lint` runs it too.
"""

from __future__ import annotations

from infra.checks import no_unsafe_calls


def test_application_code_has_no_unsafe_calls():
    assert no_unsafe_calls.violations() == []


def test_the_check_finds_each_kind_of_unsafe_call(tmp_path, monkeypatch):
    (tmp_path / "bad.py").write_text(
        "client.scan(TableName='t')\n"
        "client.get_paginator('scan')\n"
        "s3.delete_object(Bucket='b', Key='k', VersionId='v')\n"
        "s3.put_object_retention(Bucket='b', Key='k', Retention={})\n"
        "s3.put_object_lock_configuration(Bucket='b')\n"
        "s3.put_bucket_versioning(Bucket='b')\n"
        "params = {'BypassGovernanceRetention': True}\n"
    )
    monkeypatch.setattr(no_unsafe_calls, "APPLICATION", [tmp_path])
    monkeypatch.setattr(no_unsafe_calls, "ROOT", tmp_path)

    found = "\n".join(no_unsafe_calls.violations())

    for what in (
        "table Scan",
        "object deletion",
        "retention change",
        "lock configuration change",
        "versioning change",
        "governance bypass",
    ):
        assert what in found
    assert found.count("table Scan") == 2
