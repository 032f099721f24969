"""Operators' commands that read a file they are given: a missing, unreadable or malformed file ends the command
with one clear line on stderr and a non-zero exit code, never a traceback. And `policy set` with an unchanged
policy reports who set the current version, and when.

The file errors need no AWS: each command reads its file before it touches a table (the unit tests have no
network, so a command that tried would fail loudly here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

# Imported while sockets are still allowed: on first import, urllib3 (under botocore) opens a socket to probe for
# IPv6, which the unit tests' socket ban would report as a warning in the moto-backed tests below.
import urllib3  # noqa: F401

from tests.cli_shell import deflect
from tests.cli_shell import one_line as _one_line

ROOT = Path(__file__).resolve().parents[2]


def _json_error(err: str) -> dict[str, str]:
    return json.loads(_one_line(err))


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    made = {
        "missing": tmp_path / "nonexist.json",
        "folder": tmp_path / "a-folder",
        "garbage": tmp_path / "garbage.json",
        "latin1": tmp_path / "latin1.json",
        "list": tmp_path / "list.json",
        "empty": tmp_path / "empty.json",
    }
    made["folder"].mkdir()
    made["garbage"].write_text("this is not json {")
    made["latin1"].write_bytes(b'{"name": "caf\xe9"}')
    made["list"].write_text("[1, 2, 3]")
    made["empty"].write_text("")
    return made


PROBLEMS = {
    "missing": "no such file",
    "folder": "is a folder",
    "garbage": "not JSON",
    "latin1": "not UTF-8",
    "empty": "not JSON",
}


# --------------------------------------------------------------------------- policy set


@pytest.mark.parametrize("kind", list(PROBLEMS))
def test_policy_set_with_an_unusable_file_is_one_json_error_line(capsys, files, kind):
    code, out, err = deflect(capsys, "policy", "set", "--tenant", "demo", str(files[kind]))

    assert code == 1 and out == ""
    error = _json_error(err)  # policy commands report errors as JSON, this one too
    assert error["error"] == (
        "unreadable_file" if kind in ("missing", "folder", "latin1") else "malformed_payload"
    )
    assert error["message"].startswith(f"{files[kind]}: ") and PROBLEMS[kind] in error["message"]


def test_policy_set_with_a_json_list_says_it_wants_an_object(capsys, files):
    code, _, err = deflect(capsys, "policy", "set", "--tenant", "demo", str(files["list"]))

    assert code == 1 and "expected a JSON object" in _json_error(err)["message"]


def test_policy_set_from_standard_input_that_is_not_json(capsys, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("{oops"))

    code, _, err = deflect(capsys, "policy", "set", "--tenant", "demo", "-")

    assert code == 1 and _json_error(err)["message"].startswith("standard input: not JSON")


# --------------------------------------------------------------------------- tenant set-connection, profile


@pytest.mark.parametrize("kind", ["missing", "folder", "latin1"])
def test_set_connection_with_an_unreadable_file_is_one_json_error_line(capsys, files, kind):
    code, out, err = deflect(
        capsys, "tenant", "set-connection", "--tenant", "demo", "--name", "zendesk-writeback", "--file",
        str(files[kind]),
    )  # fmt: skip

    assert code == 1 and out == ""
    error = _json_error(err)
    assert error["error"] == "unreadable_file" and PROBLEMS[kind] in error["message"]
    assert "caf" not in err  # the file may hold a secret: its content is never echoed


@pytest.mark.parametrize("kind", ["missing", "garbage", "list"])
def test_profile_set_with_an_unusable_file_is_one_json_error_line(capsys, files, kind):
    code, _, err = deflect(capsys, "tenant", "profile", "--tenant", "demo", "--set", str(files[kind]))

    assert code == 1
    message = _json_error(err)["message"]
    assert message.startswith(str(files[kind]))
    assert {"missing": "no such file", "garbage": "not JSON", "list": "expected a JSON object"}[
        kind
    ] in message


# --------------------------------------------------------------------------- replay


@pytest.mark.parametrize("kind", ["missing", "folder", "garbage", "latin1"])
def test_replay_with_an_unusable_export_is_one_line(capsys, files, kind):
    code, out, err = deflect(capsys, "replay", "--tenant", "demo", "--export", str(files[kind]))

    assert code == 1 and out == ""
    assert _one_line(err).startswith(str(files[kind])) and PROBLEMS[kind] in err


@pytest.mark.parametrize(
    "content",
    ['{"tickets": 5}', '{"tickets": [1]}\n{"tickets": [2]}\nnot json', "5"],
    ids=["tickets not a list", "bad NDJSON line", "a number"],
)
def test_replay_with_something_that_is_not_an_export_is_one_line(capsys, tmp_path, content):
    export = tmp_path / "export.json"
    export.write_text(content)

    code, _, err = deflect(capsys, "replay", "--tenant", "demo", "--export", str(export))

    assert code == 1 and _one_line(err).startswith(str(export))


# --------------------------------------------------------------------------- intents, evaluations, --local


@pytest.mark.parametrize("kind", ["missing", "garbage", "latin1", "list"])
def test_intents_train_with_an_unusable_taxonomy_is_one_line(capsys, files, kind):
    code, _, err = deflect(capsys, "intents", "train", "--tenant", "demo", str(files[kind]))

    assert code == 1 and _one_line(err).startswith(str(files[kind]))


def test_eval_classify_names_the_missing_file_and_the_bad_line(capsys, files, tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text('{"text": "a", "label": "x"}\n\n{"text": "b"}\n')

    code, _, err = deflect(capsys, "eval", "classify", "--train", str(files["missing"]), "--test", str(train))
    assert code == 1 and _one_line(err) == f"{files['missing']}: no such file"

    code, _, err = deflect(capsys, "eval", "classify", "--train", str(train), "--test", str(train))
    assert code == 1 and _one_line(err) == f"{train} line 3: missing label"


def test_eval_triage_refuses_unusable_cases_taxonomy_and_help_center(capsys, files, tmp_path):
    cases = tmp_path / "cases.jsonl"
    cases.write_text('{"id": "c1", "text": "hi", "should_escalate": false}\n')

    code, _, err = deflect(capsys, "eval", "triage", "--cases", str(files["garbage"]))
    assert code == 1 and _one_line(err).startswith(f"{files['garbage']} line 1: not JSON")

    code, _, err = deflect(
        capsys, "eval", "triage", "--cases", str(cases), "--intents", str(files["garbage"])
    )
    assert code == 1 and _one_line(err).startswith(str(files["garbage"]))

    code, _, err = deflect(capsys, "eval", "triage", "--cases", str(cases), "--kb", str(files["missing"]))
    assert code == 1 and _one_line(err) == f"{files['missing']}: no such file or folder"

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("{not json\n")
    code, _, err = deflect(capsys, "eval", "triage", "--cases", str(cases), "--kb", str(corpus))
    assert code == 1 and _one_line(err).startswith(f"{corpus} line 1: not JSON")


def test_eval_retrieval_refuses_unusable_judgments_and_queries_before_indexing(capsys, files, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": "d1", "title": "T", "text": "body"}\n')
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"id": "q1", "text": "question"}\n')
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\tvery\n")
    run = ["eval", "retrieval", "--corpus", str(corpus), "--queries", str(queries)]

    code, _, err = deflect(capsys, *run, "--qrels", str(qrels))
    assert code == 1 and _one_line(err).startswith(f"{qrels} line 2: expected")

    code, _, err = deflect(capsys, *run, "--qrels", str(files["missing"]))
    assert code == 1 and _one_line(err) == f"{files['missing']}: no such file"

    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    code, _, err = deflect(
        capsys, "eval", "retrieval", "--corpus", str(files["latin1"]), "--queries", str(queries), "--qrels",
        str(qrels),
    )  # fmt: skip
    assert code == 1 and _one_line(err) == f"{files['latin1']}: not UTF-8 text"


@pytest.mark.parametrize("kind", ["garbage", "list", "folder"])
def test_a_broken_local_stack_file_is_one_line(capsys, files, kind):
    code, _, err = deflect(
        capsys, "--local", "--stack-file", str(files[kind]), "tasks", "list", "--tenant", "demo"
    )

    assert code == 1 and _one_line(err).startswith(str(files[kind]))


# --------------------------------------------------------------------------- as an operator runs them


def _shell(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`deflect ARGV` in a process of its own, as the console script runs it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers/core"), str(ROOT)])}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from deflect.cli import main; sys.exit(main())", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "command",
    [
        ["policy", "set", "--tenant", "demo", "{file}"],
        ["tenant", "set-connection", "--tenant", "demo", "--name", "zendesk-writeback", "--file", "{file}"],
        ["replay", "--tenant", "demo", "--export", "{file}"],
    ],
    ids=["policy set", "tenant set-connection", "replay"],
)
@pytest.mark.parametrize("kind", ["missing", "garbage"])
def test_the_reported_commands_print_one_line_and_fail(tmp_path, files, command, kind):
    stack = tmp_path / "stack.json"
    # What `make run` writes; nothing listens on the endpoint: the file error comes before any AWS call.
    stack.write_text(json.dumps({"environment": {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}}))
    if command[0] == "tenant" and kind == "garbage":
        kind = "folder"  # set-connection stores the file as it is: not being JSON is for the service to judge

    done = _shell(
        "--local", "--stack-file", str(stack), *[str(files[kind]) if a == "{file}" else a for a in command],
        cwd=tmp_path,
    )  # fmt: skip

    assert done.returncode != 0 and done.stdout == ""
    line = _one_line(done.stderr)
    assert str(files[kind]) in line and PROBLEMS[kind] in line


# --------------------------------------------------------------------------- policy set, nothing changed


def test_an_unchanged_policy_set_reports_who_set_the_current_version(moto_stack, capsys, tmp_path):
    moto_stack.container().tenant_admin.create("pol-same", "Pol", providers=["generic"], actor="test")
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps({"answer_threshold": 0.77}))

    code, out, _ = deflect(
        capsys, "policy", "set", "--tenant", "pol-same", str(policy_file), "--actor", "ops:kim"
    )
    first = json.loads(out)
    assert code == 0 and first["changed"] and first["version"] == 2 and first["changed_by"] == "ops:kim"

    code, out, _ = deflect(
        capsys, "policy", "set", "--tenant", "pol-same", str(policy_file), "--actor", "ops:lee"
    )
    again = json.loads(out)
    assert code == 0 and not again["changed"] and again["version"] == 2
    # Not null: the version still current was set by ops:kim, at that time (not by ops:lee, who changed nothing).
    assert (again["changed_by"], again["changed_at"]) == ("ops:kim", first["changed_at"])

    code, out, _ = deflect(capsys, "policy", "show", "--tenant", "pol-same")
    shown = json.loads(out)
    assert (shown["changed_by"], shown["changed_at"]) == (again["changed_by"], again["changed_at"])


def test_an_unchanged_first_policy_names_the_tenants_creator(moto_stack, capsys, tmp_path):
    created = moto_stack.container().tenant_admin.create(
        "pol-v1", "Pol", providers=["generic"], actor="admin:ann"
    )
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps({"answer_threshold": created["config"]["policy"]["answer_threshold"]}))

    code, out, _ = deflect(capsys, "policy", "set", "--tenant", "pol-v1", str(policy_file))

    result = json.loads(out)
    assert code == 0 and not result["changed"] and result["version"] == 1
    assert result["changed_by"] == "admin:ann"
    assert datetime.fromisoformat(result["changed_at"]) == datetime.fromisoformat(
        created["config"]["updated_at"]
    )
