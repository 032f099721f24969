"""`make demo`: a scripted walk through a running `make run` stack, over HTTP like a helpdesk and an agent would.

1. a how-to question arrives as a signed generic webhook → triage answers it with citations (or asks/escalates);
2. a refund request arrives → policy escalates it → a human task appears for approvers;
3. the approver approves → the decision is applied and written back through the outbox;
4. the ticket's timeline shows every step and whether the audit chain verifies.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

DATA_DIR = Path(".deflect-data")


def call(
    base: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})  # noqa: S310
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback only)
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def webhook(base: str, secret: str, subject: str, body: str) -> tuple[int, Any]:
    ticket = f"DEMO-{uuid.uuid4().hex[:6]}"
    payload = json.dumps(
        {
            "event": "ticket.created",
            "ticket": {
                "id": ticket,
                "subject": subject,
                "channel": "portal",
                "updated_at": "2026-11-27T10:00:00Z",
            },
            "requester": {
                "email": f"casey.{ticket.lower()}@customer.example",
                "external_id": f"cust-{ticket}",
                "name": "Casey",
            },
            "message": {"id": f"m-{ticket}", "body": body, "created_at": "2026-11-27T10:00:00Z"},
        }
    ).encode()
    stamp = str(int(time.time()))
    signature = hmac.new(secret.encode(), stamp.encode() + b"." + payload, hashlib.sha256).hexdigest()
    headers = {"X-Deflect-Signature": f"t={stamp},v1={signature}", "X-Deflect-Delivery": uuid.uuid4().hex}
    return call(base, "POST", "/v1/webhooks/generic/demo", payload, headers)


def wait_for(what: str, probe: Any, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.5)
    sys.exit(f"gave up waiting for {what}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-url", default="http://127.0.0.1:3000")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    args = parser.parse_args()
    base = args.base_url.rstrip("/")
    try:
        secrets = json.loads((args.data_dir / "demo-secrets.json").read_text())
        tokens = json.loads((args.data_dir / "tokens.json").read_text())["tokens"]
    except FileNotFoundError:
        sys.exit("no local stack data found: start `make run` first (in another terminal)")
    agent = {"Authorization": f"Bearer {tokens['approver']}"}
    try:
        call(base, "GET", "/v1/health")
    except urllib.error.URLError:
        sys.exit(f"no local stack answers on {base}: start `make run` first (in another terminal)")

    print("1. how-to question →", end=" ")
    status, answer = webhook(base, secrets["generic"], "CLI question", "How do I install the Syncbeam CLI?")
    print(status, answer)
    ticket_id = answer["ticket_id"]
    timeline = wait_for(
        "triage",
        lambda: next(
            (t for t in [call(base, "GET", f"/v1/tickets/{ticket_id}/timeline", headers=agent)[1]]
             if any(e.get("type") == "decision.made" for e in (t or {}).get("events", []))),
            None,
        ),
    )  # fmt: skip
    decision = next(e for e in timeline["events"] if e["type"] == "decision.made")
    outputs, inputs = decision.get("outputs", {}), decision.get("inputs", {})
    cited = [f"{r['article_id']} v{r['version']} ({r['score']:.2f})" for r in inputs.get("retrieved", [])[:2]]
    print(f"   triage: escalate={outputs.get('escalate')} confidence={outputs.get('confidence')} "
          f"mode={inputs.get('rollout_mode')} retrieved={cited}")  # fmt: skip

    print("2. refund request →", end=" ")
    status, answer = webhook(
        base, secrets["generic"], "Refund please", "Please refund the 49 EUR we were charged twice."
    )
    print(status, answer)
    refund_ticket = answer["ticket_id"]
    task = wait_for(
        "a human task",
        lambda: next((t for t in call(base, "GET", "/v1/tasks", headers=agent)[1].get("tasks", [])
                      if t["ticket_id"] == refund_ticket), None),
    )  # fmt: skip
    print(f"   task {task['task_id']} in queue {task['queue']} needs role {task['required_role']}")

    print("3. approver approves →", end=" ")
    status, decided = call(
        base,
        "POST",
        f"/v1/tasks/{task['task_id']}/decision",
        {"decision_id": uuid.uuid4().hex, "outcome": "approve", "note": "duplicate charge confirmed"},
        agent,
    )
    print(status, decided)

    print("4. timeline of the refund ticket:")
    # The approval answers before the workflow has queued and delivered the writeback: wait for its last step.
    refund_timeline = wait_for(
        "the escalation to complete",
        lambda: next(
            (t for t in [call(base, "GET", f"/v1/tickets/{refund_ticket}/timeline", headers=agent)[1]]
             if any(e.get("type") == "escalation.completed" for e in (t or {}).get("events", []))),
            None,
        ),
    )  # fmt: skip
    for event in refund_timeline.get("events", []):
        print(f"   {event.get('seq'):>3} {event.get('type'):<32} by {event.get('actor')}")
    print("   audit chain verifies:", refund_timeline.get("chain", {}).get("ok"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
