"""Runs last in the session (by name): after the other end-to-end tests, it walks the demo (a how-to answer, a refund
escalated, approved and written back, a timeline) and a knowledge search, then checks that every AWS call each
function made on the way is one the template's IAM grants it. moto does not check IAM; AWS would refuse."""

from __future__ import annotations

import subprocess
import sys
import urllib.parse

from infra.checks import permissions
from infra.local import aws_calls
from infra.local import template as tpl
from tests.e2e.conftest import AWS_CALLS


def test_every_aws_call_a_function_makes_is_granted_by_the_template(api, local_stack):
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
    query = urllib.parse.urlencode({"q": "How do I install the CLI?"})
    assert api.call("GET", f"/v1/knowledge/search?{query}", role="agent").status == 200

    calls = aws_calls.read(local_stack.data_dir / AWS_CALLS)
    functions = {function for function, _, _ in calls}
    assert {"IntakeFunction", "TriageFunction", "EscalationFunction", "ApprovalFunction"} <= functions
    assert {"WritebackFunction", "RetrievalFunction"} <= functions
    assert permissions.missing(calls) == []
