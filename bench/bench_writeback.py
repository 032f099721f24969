"""Writeback benchmarks (run by `make bench`; never a test), with the local helpdesks answering normally and
the audit log on. Each phase runs in its own process.

1. stack: outbox-to-effect latency on the local stack — moto server, the WritebackQueue poller, the real
   handler, the local helpdesks. An item is committed and enqueued; the clock stops when the helpdesk has
   applied the effect. One item at a time, providers in turn: p50 / p95.
2. pipeline: effects per second — N items committed, then drained in SQS batches of 10 through the real
   handler's batch processing, in-process moto (its table without a stream: moto copies every stream record
   on each transaction, which would measure moto rather than writeback). One consumer; on AWS multiply by
   the function's concurrency. Also p50 / p95 of commit-to-effect inside the burst.

    python -m bench.bench_writeback [--latency-items 40] [--burst-items 200] [--phase stack|pipeline]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROVIDERS = ("zendesk", "intercom", "freshdesk", "jira")


def _item(helpdesks: Any, tenant: str, provider: str, n: int) -> Any:
    from deflect.services import outbox
    from infra.local.helpdesks.harness import helpdesk_ticket

    ticket = helpdesk_ticket(helpdesks, tenant, provider, f"bench-{n}")
    return outbox.reply(
        ticket, f"Benchmark answer {n}: restart the sync.", tags=["deflected"], status_value="solved"
    )


def _wait_for(helpdesks: Any, outbox_ids: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(i in helpdesks.state.effect_times for i in outbox_ids):
            return
        time.sleep(0.002)
    raise TimeoutError(f"effects not seen after {timeout_s}s")


def _percentiles(values: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=20)
    return {"p50_ms": round(statistics.median(values), 1), "p95_ms": round(cuts[18], 1)}


def stack_phase(items: int) -> dict[str, Any]:
    os.environ["DEFLECT_OUTBOX_STREAM"] = "0"  # the queue path alone: latency without the stream relay's duplicates
    import infra.local.helpdesks as local_helpdesks
    from deflect.bootstrap import container
    from deflect.domain.tenancy import TenantContext
    from deflect.services import outbox
    from infra.local.seed import DEMO_TENANT
    from infra.local.stack import start_stack

    stack = start_stack(port=0, data_dir=tempfile.mkdtemp(prefix="bench-writeback-"), quiet=True)
    try:
        local_helpdesks.stack_hook(stack)
        helpdesks = local_helpdesks.RUNNING
        c = container()
        ctx = TenantContext.system(DEMO_TENANT)
        latencies = []
        for n in range(-len(PROVIDERS), items):  # the first round warms imports, connections and secrets
            item = _item(helpdesks, DEMO_TENANT, PROVIDERS[n % len(PROVIDERS)], n)
            started = time.monotonic()
            c.store.transact(ctx, outbox.writes([item]))
            outbox.enqueue(c.writeback_queue, ctx, [item])
            _wait_for(helpdesks, [item.outbox_id], 60)
            if n >= 0:
                latencies.append((helpdesks.state.effect_times[item.outbox_id] - started) * 1000)
        twice = sum(1 for v in helpdesks.state.effects.values() if v != 1)
    finally:
        stack.stop()
    return {"phase": "stack", "items": items, **_percentiles(latencies), "not_exactly_once": twice}


def pipeline_phase(items: int) -> dict[str, Any]:
    from deflect.domain.tenancy import TenantContext
    from deflect.services import outbox
    from infra.local.helpdesks import connect_tenant, start_helpdesks
    from infra.local.helpdesks.harness import service, writeback_aws
    from infra.local.pollers import sqs_event

    sys.path.insert(0, str(ROOT / "functions" / "writeback"))
    import app  # the writeback function's handler module

    tenant = "bench"
    with writeback_aws(stream=False) as aws, start_helpdesks() as helpdesks:
        from deflect.helpdesk.http import HelpdeskHttp

        connect_tenant(aws.container.secrets, helpdesks, tenant)
        http = HelpdeskHttp()
        spent: list[float] = []
        http.hooks.append(lambda event: spent.append(event.elapsed_s))
        svc = service(aws, http)
        ctx = TenantContext.system(tenant)
        sqs = aws.session.client("sqs")
        url = aws.resources.queues["WritebackQueue"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        burst = [_item(helpdesks, tenant, PROVIDERS[n % len(PROVIDERS)], n) for n in range(items)]
        committed: dict[str, float] = {}
        started = time.monotonic()
        for item in burst:
            aws.container.store.transact(ctx, outbox.writes([item]))
            committed[item.outbox_id] = time.monotonic()
        outbox.enqueue(aws.container.writeback_queue, ctx, burst)
        drained = 0
        with contextlib.redirect_stdout(io.StringIO()):  # the metrics' EMF lines
            while drained < items:
                messages = sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
                ).get("Messages", [])
                event = sqs_event(messages, arn)  # as Lambda builds it from the FIFO queue
                failed = {
                    f["itemIdentifier"] for f in app.process(event, None, service=svc)["batchItemFailures"]
                }
                done = [m for m in messages if m["MessageId"] not in failed]
                if done:
                    sqs.delete_message_batch(
                        QueueUrl=url,
                        Entries=[
                            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                        ],
                    )
                drained += len(done)
        elapsed = max(helpdesks.state.effect_times[i.outbox_id] for i in burst) - started
        latencies = [(helpdesks.state.effect_times[i] - t) * 1000 for i, t in committed.items()]
        twice = sum(1 for i in burst if helpdesks.state.effects[i.outbox_id] != 1)
    return {
        "phase": "pipeline",
        "items": items,
        "seconds": round(elapsed, 2),
        "effects_per_s": round(items / elapsed, 1),
        **{f"burst_{k}": v for k, v in _percentiles(latencies).items()},
        # Where the time goes: helpdesk HTTP (requests per effect, ms per effect); the rest is moto + our code.
        "helpdesk_requests_per_effect": round(len(spent) / items, 2),
        "helpdesk_ms_per_effect": round(sum(spent) * 1000 / items, 1),
        "not_exactly_once": twice,
    }


def _phase_in_child(phase: str, items: int) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "core"), str(ROOT)]),
        "POWERTOOLS_LOG_LEVEL": "ERROR",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_writeback", "--phase", phase, "--items", str(items)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads([line for line in out.stdout.splitlines() if line.startswith('{"phase"')][-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency-items", type=int, default=40)
    parser.add_argument("--burst-items", type=int, default=200)
    parser.add_argument("--phase", choices=("stack", "pipeline"))
    parser.add_argument("--items", type=int, default=40)
    args = parser.parse_args(argv)
    if args.phase:
        result = stack_phase(args.items) if args.phase == "stack" else pipeline_phase(args.items)
        print(json.dumps(result), flush=True)
        return 0
    stack = _phase_in_child("stack", args.latency_items)
    pipeline = _phase_in_child("pipeline", args.burst_items)
    print(json.dumps({"stack": stack, "pipeline": pipeline}, indent=2))
    twice = stack["not_exactly_once"] + pipeline["not_exactly_once"]
    print(
        f"writeback: outbox→effect on the local stack p50 {stack['p50_ms']} ms, p95 {stack['p95_ms']} ms; "
        f"{pipeline['effects_per_s']} effects/s per consumer ({pipeline['helpdesk_ms_per_effect']} ms of it helpdesk HTTP); "
        f"not exactly-once: {twice}"
    )
    return 0 if twice == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
