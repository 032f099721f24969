"""Runs last in the session (by name): after the other end-to-end tests, it grants the demo tenant diagnostic tools
(through the operators' CLI, against a telemetry endpoint on 127.0.0.1), walks the demo (a how-to answer, a refund
escalated with tool results, approved and written back, a timeline) and a knowledge search, then checks that every
AWS call each function made on the way is one the template's IAM grants it. moto does not check IAM; AWS would."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import ThreadingHTTPServer
from pathlib import Path

from infra.checks import permissions
from infra.local import aws_calls
from infra.local import template as tpl
from infra.local.demo.__main__ import webhook
from tests.e2e.conftest import AWS_CALLS
from tests.json_server import JsonHandler


class _Telemetry(JsonHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/status"):
            self.reply({"status": {"indicator": "none", "description": "All Systems Operational"}})
        else:
            self.reply({"errors": [{"code": "SB-1042", "user": "ana@example.com"}]})


# Two articles: the e2e stack keeps all of the import's 120 s in reserve, so each part imports one and queues
# the rest, and the second arrives through the knowledge import queue.
IMPORTED_ARTICLES = [
    {
        "id": "ts-sb-5150",
        "title": "Error SB-5150: destination quota reached",
        "body": "A run stops with SB-5150 when the destination app refuses more records this month. Raise the "
        "quota in the destination app, then start the run again.",
    },
    {
        "id": "ts-sb-5160",
        "title": "Error SB-5160: source token revoked",
        "body": "A run stops with SB-5160 when the source app revoked Syncbeam's token. Reconnect the source.",
    },
]


def _until(check, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


def _operator(local_stack, *argv: str) -> str:
    """`deflect --local ...` against the child stack, as an operator would run it; returns what it printed."""
    cli = Path(sys.executable).with_name("deflect")
    stack_file = str(local_stack.data_dir / "stack.json")
    done = subprocess.run(
        [str(cli), "--local", "--stack-file", stack_file, *argv], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_every_aws_call_a_function_makes_is_granted_by_the_template(api, local_stack, tmp_path):
    telemetry = ThreadingHTTPServer(("127.0.0.1", 0), _Telemetry)
    threading.Thread(target=telemetry.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{telemetry.server_port}"
    profile = tmp_path / "profile.json"
    grants = [
        {"tool": "recent_errors", "roles": ["service"]},
        {"tool": "service_status", "roles": ["service", "agent"]},
    ]
    profile.write_text(
        json.dumps(
            {
                "tool_grants": grants,
                "telemetry_errors_url": f"{base}/errors",
                "telemetry_status_url": f"{base}/status",
            }
        )
    )
    _operator(local_stack, "tenant", "profile", "--tenant", "demo", "--set", str(profile))
    _operator(
        local_stack, "tenant", "set-connection", "--tenant", "demo", "--name", "telemetry", "--value", "t0k"
    )
    try:
        demo = subprocess.run(
            [
                sys.executable,
                "-m",
                "infra.local.demo",
                "--base-url",
                local_stack.base_url,
                "--data-dir",
                str(local_stack.data_dir),
            ],
            cwd=tpl.ROOT,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        # An agent runs a granted tool on an open task it may work, with the approval function's rights (tools
        # run only while a task is open, for a role that may work it: the demo's refund task is decided).
        secret = json.loads((local_stack.data_dir / "demo-secrets.json").read_text())["generic"]
        _, asked = webhook(
            local_stack.base_url, secret, "Dashboard", "Can I talk to a person? Our dashboard is blank."
        )

        def open_task() -> dict | None:
            listed = api.call("GET", "/v1/tasks?status=open", role="agent").json()["tasks"]
            return next((t for t in listed if t["ticket_id"] == asked["ticket_id"]), None)

        assert _until(lambda: open_task() is not None), asked
        task = open_task()
        assert task["required_role"] == "agent", task
        ran = api.call("POST", f"/v1/tasks/{task['task_id']}/tools/service_status", role="agent")
        assert ran.status == 200, ran.body
        assert ran.json()["ok"] and ran.json()["evidence"], ran.body
        refused = api.call("POST", f"/v1/tasks/{task['task_id']}/tools/recent_errors", role="agent")
        assert refused.status == 403, refused.body  # granted to triage only
    finally:
        telemetry.shutdown()
    # The conversation API triages synchronously inside the intake function, with its permissions.
    api_key = json.loads(
        _operator(local_stack, "tenant", "rotate-secret", "--tenant", "demo", "--provider", "api")
    )
    conversation = api.call(
        "POST",
        "/v1/conversations",
        json_body={
            "message": "How do I install the Syncbeam CLI?",
            "requester": {"email": "sam@customer.example"},
        },
        headers={"X-Api-Key": api_key["secret"]},
    )
    assert conversation.status in (200, 202), conversation.body
    query = urllib.parse.urlencode({"q": "How do I install the CLI?"})
    assert api.call("GET", f"/v1/knowledge/search?{query}", role="agent").status == 200
    # A help-center file dropped in the import bucket: S3's trigger runs the retrieval function's bulk import,
    # which goes on in parts through the knowledge import queue.
    api.aws("s3").put_object(
        Bucket=local_stack.resources.buckets["KnowledgeImportBucket"],
        Key="tenant=demo/imports/errors.jsonl",
        Body="\n".join(json.dumps(article) for article in IMPORTED_ARTICLES).encode(),
    )
    for code, article_id in (("SB-5150", "ts-sb-5150"), ("SB-5160", "ts-sb-5160")):
        query = urllib.parse.urlencode({"q": code})
        assert _until(
            lambda query=query, article_id=article_id: any(
                hit["article_id"] == article_id
                for hit in api.call("GET", f"/v1/knowledge/search?{query}", role="agent").json()["hits"]
            )
        ), f"the dropped article {article_id} never became searchable"

    calls = aws_calls.read(local_stack.data_dir / AWS_CALLS)
    functions = {function for function, _, _ in calls}
    assert {"IntakeFunction", "TriageFunction", "EscalationFunction", "ApprovalFunction"} <= functions
    assert {"WritebackFunction", "RetrievalFunction"} <= functions
    import_bucket = local_stack.resources.buckets["KnowledgeImportBucket"]
    assert ("RetrievalFunction", "s3", f"GetObject@{import_bucket}") in calls  # the import trigger ran
    assert ("RetrievalFunction", "sqs", "SendMessage@KnowledgeImportQueue") in calls  # ... in parts
    assert ("TriageFunction", "ssm", "GetParametersByPath") in calls  # the tools ran and read their token
    assert ("ApprovalFunction", "ssm", "GetParametersByPath") in calls  # ... and the agent's run of one
    assert (
        "TriageFunction",
        "kms",
        "Decrypt",
    ) in calls  # ... and their output was sealed with the customer's key
    assert permissions.missing(calls) == []
