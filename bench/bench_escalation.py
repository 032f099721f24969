"""Escalation benchmark (run by hand or by `make bench`; never a test).

On the local stack (infra.local.stack, in this process, API on a free loopback port), for each of N escalations
of the demo tenant, one after the other:

1. escalation → task visible: from `start_escalation()` until the task shows in `GET /v1/tasks` over HTTP
   (Summarize, Route, AcknowledgeCustomer and the human task's storage all happen in between);
2. decision → writeback enqueued: from `POST /v1/tasks/{id}/decision` until the decision's outbox items are
   committed (EnqueueWriteback, which sends them to the writeback queue right after the commit).

    python -m bench.bench_escalation [--escalations 60]

Prints one JSON object and a summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
import urllib.request
import uuid
from typing import Any

from bench.bench_intake import summary_ms  # one percentile rule for every bench

for key, value in {
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_METRICS_DISABLED": "true",  # EMF lines would drown the results
}.items():
    os.environ.setdefault(key, value)

POLL_S = 0.02
WAIT_S = 30.0


def _http(base_url: str, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        base_url + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def _until(check: Any, what: str) -> Any:
    deadline = time.perf_counter() + WAIT_S
    while time.perf_counter() < deadline:
        found = check()
        if found:
            return found
        time.sleep(POLL_S)
    raise RuntimeError(f"timed out waiting for {what}")


def run(escalations: int) -> dict[str, Any]:
    from deflect.bootstrap import container
    from deflect.domain.models import Classification, Decision, Draft, Message, Ticket
    from deflect.domain.tenancy import TenantContext
    from deflect.escalation import EscalationRequest, execution_name, start_escalation
    from deflect.escalation.records import outbox_id_for
    from deflect.repositories import Tickets
    from infra.local.moto_patches import dynamodb_serialised
    from infra.local.seed import DEMO_TENANT
    from infra.local.stack import start_stack
    from tests.integration.conftest_escalation import without_table_stream

    data_dir = tempfile.mkdtemp(prefix="deflect-bench-escalation-")
    # moto's DynamoDB loses concurrent writes when a transaction rolls back (see dynamodb_serialised): without
    # the lock some escalations' tasks vanish under the stack's concurrent pollers and workflows.
    serialised = dynamodb_serialised()
    serialised.__enter__()
    stack = start_stack(port=0, data_dir=data_dir, quiet=True)
    without_table_stream()  # moto copies the whole stream history on every transaction item (see there)
    try:
        c = container()
        ctx = TenantContext.system(DEMO_TENANT)
        token = stack.tokens["approver"]
        visible: list[float] = []
        enqueued: list[float] = []
        for n in range(escalations):
            ticket = Ticket(
                tenant_id=DEMO_TENANT,
                ticket_id=f"bench-{uuid.uuid4().hex[:12]}",
                provider="zendesk",
                external_id=str(1000 + n),
                subject_redacted="Cannot export my data",
                status="triaging",
            )
            message = Message(
                tenant_id=DEMO_TENANT,
                ticket_id=ticket.ticket_id,
                message_id="m1",
                body_redacted="Export fails.",
            )
            c.store.transact(ctx, [Tickets(c.store).save_write(ticket), Tickets.message_write(message)])
            decision = Decision(
                tenant_id=DEMO_TENANT,
                ticket_id=ticket.ticket_id,
                outcome="escalate",
                reasons=["low confidence"],
                classification=Classification(
                    intent="data_export", intent_confidence=0.4, product_area="data"
                ),
                draft=Draft(text="Try Settings > Export.", confidence=0.4),
            )
            execution = execution_name(EscalationRequest.from_decision(decision, ticket))

            started = time.perf_counter()
            start_escalation(c, decision, ticket)

            def task_listed(ticket_id: str = ticket.ticket_id) -> dict[str, Any] | None:
                status, body = _http(stack.base_url, token, "GET", "/v1/tasks?status=open")
                assert status == 200, body
                return next((t for t in body["tasks"] if t["ticket_id"] == ticket_id), None)

            task = _until(task_listed, "the task in GET /v1/tasks")
            visible.append(time.perf_counter() - started)

            decided = time.perf_counter()
            body = {"decision_id": f"d-{n}-{uuid.uuid4().hex[:8]}", "outcome": "approve"}
            status, answer = _http(
                stack.base_url, token, "POST", f"/v1/tasks/{task['task_id']}/decision", body
            )
            assert status == 200, answer
            note_id = outbox_id_for(execution, "writeback", "internal_note")
            _until(lambda: c.escalation_ports.outbox.get(ctx, note_id), "the writeback outbox items")  # noqa: B023
            enqueued.append(time.perf_counter() - decided)
        return {
            "part": "escalation_local_stack",
            "escalations": escalations,
            "escalation_to_task_visible": summary_ms(visible),
            "decision_to_writeback_enqueued": summary_ms(enqueued),
            "first_10_vs_last_10_visible_p50_ms": [
                round(statistics.median(visible[:10]) * 1000, 1),
                round(statistics.median(visible[-10:]) * 1000, 1),
            ],
        }
    finally:
        stack.stop()
        serialised.__exit__(None, None, None)
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--escalations", type=int, default=60)
    args = parser.parse_args(argv)
    result = run(max(50, args.escalations))
    print(json.dumps(result), flush=True)
    v, e = result["escalation_to_task_visible"], result["decision_to_writeback_enqueued"]
    print(
        f"escalation: task visible p50 {v['p50_ms']} ms / p95 {v['p95_ms']} ms; "
        f"decision → writeback enqueued p50 {e['p50_ms']} ms / p95 {e['p95_ms']} ms (n={v['n']}, local stack)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
