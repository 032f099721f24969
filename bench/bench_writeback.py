"""Writeback benchmarks (run by `make bench`; never a test): on the local stack (moto server, the real writeback
handler behind its SQS poller, the local helpdesks answering normally), with the audit log on.

1. outbox-to-effect latency: an outbox item is committed and enqueued; the clock stops when the helpdesk has
   applied its effect. One item at a time, providers in turn; p50 / p95 / max.
2. effects per second: N items committed and enqueued at once, drained by the one queue consumer (one Lambda
   execution at a time: on AWS, multiply by the function's concurrency).

    python -m bench.bench_writeback [--latency-items 60] [--burst-items 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from typing import Any

PROVIDERS = ("zendesk", "intercom", "freshdesk", "jira")
TENANT = "demo"


def _item(helpdesks: Any, provider: str, n: int) -> Any:
    from deflect.domain.models import Ticket
    from deflect.services import outbox

    desk = helpdesks.state.create_ticket(provider, TENANT)
    ticket = Ticket(
        tenant_id=TENANT, ticket_id=f"bench-{n}", provider=provider, external_id=desk.id, external_updated_at=desk.updated_at
    )
    return outbox.reply(ticket, f"Benchmark answer {n}: restart the sync.", tags=["deflected"], status_value="solved")


def _wait_for(helpdesks: Any, outbox_ids: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(i in helpdesks.state.effect_times for i in outbox_ids):
            return
        time.sleep(0.002)
    missing = [i for i in outbox_ids if i not in helpdesks.state.effect_times]
    raise TimeoutError(f"{len(missing)} effects not seen after {timeout_s}s")


def run(latency_items: int, burst_items: int) -> dict[str, Any]:
    os.environ["DEFLECT_OUTBOX_STREAM"] = "0"  # the queue path, as deployed (the template's stream is off)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    import infra.local.helpdesks as local_helpdesks
    from deflect.bootstrap import container
    from deflect.domain.tenancy import TenantContext
    from deflect.services import outbox
    from infra.local.stack import start_stack

    stack = start_stack(port=0, data_dir=tempfile.mkdtemp(prefix="bench-writeback-"), quiet=True)
    try:
        local_helpdesks.stack_hook(stack)
        helpdesks = local_helpdesks.RUNNING
        c = container()
        ctx = TenantContext.system(TENANT)

        # warm-up: first imports, connections and secret reads are not what we measure
        warm = [_item(helpdesks, p, -i) for i, p in enumerate(PROVIDERS)]
        c.store.transact(ctx, outbox.writes(warm))
        outbox.enqueue(c.writeback_queue, ctx, warm)
        _wait_for(helpdesks, [i.outbox_id for i in warm], 60)

        latencies = []
        for n in range(latency_items):
            item = _item(helpdesks, PROVIDERS[n % len(PROVIDERS)], n)
            started = time.monotonic()
            c.store.transact(ctx, outbox.writes([item]))
            outbox.enqueue(c.writeback_queue, ctx, [item])
            _wait_for(helpdesks, [item.outbox_id], 60)
            latencies.append((helpdesks.state.effect_times[item.outbox_id] - started) * 1000)

        burst = [_item(helpdesks, PROVIDERS[n % len(PROVIDERS)], 10_000 + n) for n in range(burst_items)]
        started = time.monotonic()
        for item in burst:
            c.store.transact(ctx, outbox.writes([item]))
        outbox.enqueue(c.writeback_queue, ctx, burst)
        _wait_for(helpdesks, [i.outbox_id for i in burst], 600)
        elapsed = max(helpdesks.state.effect_times[i.outbox_id] for i in burst) - started
        duplicates = sum(1 for i in warm + burst if helpdesks.state.effects[i.outbox_id] != 1)
    finally:
        stack.stop()
    cuts = statistics.quantiles(latencies, n=20)
    return {
        "latency_items": latency_items,
        "latency_p50_ms": round(statistics.median(latencies), 1),
        "latency_p95_ms": round(cuts[18], 1),
        "latency_max_ms": round(max(latencies), 1),
        "burst_items": burst_items,
        "burst_seconds": round(elapsed, 2),
        "effects_per_s": round(burst_items / elapsed, 1),
        "items_not_exactly_once": duplicates,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-items", type=int, default=60)
    parser.add_argument("--burst-items", type=int, default=200)
    args = parser.parse_args(argv)
    result = run(args.latency_items, args.burst_items)
    print(json.dumps(result, indent=2))
    print(
        f"writeback: outbox→effect p50 {result['latency_p50_ms']} ms, p95 {result['latency_p95_ms']} ms; "
        f"{result['effects_per_s']} effects/s (one consumer); not exactly-once: {result['items_not_exactly_once']}"
    )
    return 0 if result["items_not_exactly_once"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
