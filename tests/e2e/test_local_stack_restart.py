"""What a user sees on a fresh `make run` and on the next one: the starter intent head is trained once at start-up
(in the background, said in the banner and `GET /v1/health`), and a restart takes out of the kept knowledge index
the articles the restarted stack no longer stores."""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse
import uuid
from typing import Any

import pytest

from infra.local.stack import ChildStack, start_stack
from tests.e2e.conftest import AWS_CALLS, Api

pytestmark = pytest.mark.e2e

FIRST_RUN_LINE = "first run: training the starter intent head"
# Training takes 10-30 s on an idle laptop; a busy CI runner may take several times that.
WARMUP_S = 300.0


def _until(check: Any, what: str, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def _banner(stack: ChildStack) -> str:
    """The stack's output up to the end of its banner (printed just after it reports ready)."""
    return _until(lambda: stack.log() if "Ctrl-C stops everything" in stack.log() else None, "the banner")


def _warmed(api: Api) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        state = api.get("/v1/health").json()["warmup"]["starter_intent_head"]
        assert state["state"] in ("training", "loading", "ready"), state
        return state if state["state"] == "ready" else None

    return _until(ready, "the starter intent head", WARMUP_S)


def _hits(api: Api, query: str) -> list[str]:
    answer = api.get(f"/v1/knowledge/search?q={urllib.parse.quote(query)}&k=5", role="agent")
    assert answer.status == 200, answer.body
    return [hit["article_id"] for hit in answer.json()["hits"]]


def test_a_fresh_stack_trains_the_starter_intent_head_at_start_up_and_says_so(api, local_stack):
    banner = _banner(local_stack)
    assert FIRST_RUN_LINE in banner

    state = _warmed(api)

    assert state["trained"] is True
    assert list((local_stack.data_dir / "models" / "starter").glob("*.json"))
    assert "starter intent head trained in" in local_stack.log()


def test_a_restarted_stack_forgets_articles_only_its_kept_index_had(api, local_stack, tmp_path):
    _warmed(api)  # its cache is what the restarted stack should find
    article = f"e2e-stale-{uuid.uuid4().hex[:8]}"
    put = api.put(
        f"/v1/knowledge/articles/{article}",
        role="admin",
        json_body={
            "title": "Resetting a ZQX-4471 sync relay",
            "body": "Hold the ZQX-4471 button for ten seconds.",
        },
    )
    assert put.status == 201, put.body
    assert article in _hits(api, "ZQX-4471 sync relay")

    # The same data dir after a restart: moto starts empty, the index and the model cache are kept.
    data_dir = tmp_path / "restarted"
    shutil.copytree(
        local_stack.data_dir,
        data_dir,
        ignore=shutil.ignore_patterns("stack.json", "stack.log", AWS_CALLS),
    )
    restarted = start_stack(port=0, data_dir=data_dir, separate_process=True)
    assert isinstance(restarted, ChildStack)
    try:
        again = Api(restarted)
        banner = _banner(restarted)

        assert article not in _hits(again, "ZQX-4471 sync relay")
        assert f"removed demo/{article}" in restarted.log()
        assert "ts-sb-1042" in _hits(again, "SB-1042")  # the demo help center is still there
        # The starter head is loaded from the first run's cache: no training, no first-run line.
        assert FIRST_RUN_LINE not in banner
        assert _warmed(again)["trained"] is False
        assert "approver2" in restarted.tokens  # two approvers, for two-person approvals
    finally:
        assert restarted.stop(), restarted.log()[-2000:]


# Log lines of the local stack and the one function whose handler writes each.
WRITTEN_BY = {
    "triaged": {"TriageFunction"},
    "webhook handled": {"IntakeFunction"},
    "outbox item not found": {"WritebackFunction"},
}


def _labelled(stack: ChildStack) -> list[tuple[str, str | None]]:
    """(message, function_name) of the stack's log lines whose writers are known."""
    lines = [json.loads(line) for line in stack.log().splitlines() if line.startswith('{"level"')]
    return [
        (line["message"], line.get("function_name")) for line in lines if line.get("message") in WRITTEN_BY
    ]


def test_each_log_line_names_the_function_that_wrote_it(api, local_stack):
    key = json.loads((local_stack.data_dir / "demo-api-key.json").read_text())["api_key"]
    message = {"message": "How do I install the CLI?", "requester": {"email": "e2e-logs@example.com"}}
    sent = api.post("/v1/conversations", json_body=message, headers={"X-Api-Key": key})
    assert sent.status in (200, 202), sent.body

    # The triage worker logs "triaged" for the queued job (after a synchronous answer too).
    labelled = _until(
        lambda: (found := _labelled(local_stack)) and any(m == "triaged" for m, _ in found) and found,
        "a triage to be logged",
        WARMUP_S,
    )
    wrong = [(message, function) for message, function in labelled if function not in WRITTEN_BY[message]]
    assert not wrong, wrong
