"""Intake benchmarks (run by hand or by `make bench`; never a test).

1. In-process on moto: the real intake handler fed API Gateway events — p50/p95 latency of new deliveries,
   duplicate deliveries and rejected (bad signature) deliveries.
2. Through the local HTTP stack (infra/local, started in a child process on a free port): a loopback load
   generator at concurrency 20 posts signed webhooks (a quarter of them repeats of earlier ones); afterwards every
   ticket is counted in DynamoDB: the expected number exists, each with exactly one message — 0 lost, 0 duplicated.

    python -m bench.bench_intake [--deliveries 100] [--http-deliveries 120] [--skip-http]

Prints one JSON object per part and a summary line.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shutil
import statistics
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for key, value in {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_METRICS_DISABLED": "true",  # EMF lines would drown the results
}.items():
    os.environ.setdefault(key, value)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary_ms(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 2), "p95_ms": round(percentile(ms, 95), 2)}


def generic_body(n: int, tag: str) -> bytes:
    template = json.loads((ROOT / "events/generic/ticket_created.json").read_text())
    template["ticket"]["id"] = f"BENCH-{tag}-{n}"
    template["message"]["id"] = f"m-{tag}-{n}"
    return json.dumps(template).encode()


def zendesk_body(n: int, tag: str) -> bytes:
    template = json.loads((ROOT / "events/zendesk/trigger_ticket_created.json").read_text())
    template["ticket"]["id"] = f"{tag}{n}"
    return json.dumps(template).encode()


BODIES = {"generic": generic_body, "zendesk": zendesk_body}


# --------------------------------------------------------------------------- part 1: in-process on moto


def quiet() -> None:
    """Results only: no per-request log lines or EMF metric lines from the handlers in this process."""
    import logging

    from deflect import bootstrap
    from deflect.observability import logger

    logger().setLevel(logging.WARNING)
    bootstrap.container().intake.metric = lambda _name, _value: None


class AwsCallTimer:
    """Time spent inside AWS SDK calls (botocore before-call/after-call events on the container's session)."""

    def __init__(self, container: Any) -> None:
        self.total, self.calls, self._started = 0.0, 0, 0.0
        events = container.boto_session.events  # register before the container creates its clients
        events.register("before-call", self._before)
        events.register("after-call", self._after)

    def reset(self) -> None:
        self.total, self.calls = 0.0, 0

    def _before(self, **_: Any) -> None:
        self._started = time.perf_counter()

    def _after(self, **_: Any) -> None:
        self.total += time.perf_counter() - self._started
        self.calls += 1


def _load_handler() -> Any:
    spec = importlib.util.spec_from_file_location("intake_app_bench", ROOT / "functions/intake/app.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def in_process(deliveries: int) -> dict[str, Any]:
    import warnings

    import boto3
    from moto import mock_aws

    warnings.filterwarnings("ignore", category=UserWarning)
    with mock_aws():
        from deflect import bootstrap
        from deflect.webhooks import sign
        from infra.local import api as local_api
        from infra.local import template as tpl
        from infra.local.functions import LambdaContext
        from infra.local.resources import create_all

        resources = create_all(boto3.session.Session(region_name="us-east-1"), execute_state_machines=False)
        os.environ.update(resources.environment("IntakeFunction"))
        bootstrap.reset()
        aws = AwsCallTimer(bootstrap.container())
        own: list[float] = []
        calls: list[int] = []
        created = bootstrap.container().tenant_admin.create(
            "bench",
            "Bench",
            providers=["zendesk", "generic"],
            actor="bench",
            provided_secrets={"zendesk": "zd-bench"},
        )
        secrets = {"zendesk": "zd-bench", "generic": created["webhook_secrets"]["generic"]}
        module = _load_handler()
        quiet()
        routes = local_api.compile_routes([r for r in tpl.routes() if r.function == "IntakeFunction"])

        def call(
            provider: str, body: bytes, headers: dict[str, str], tenant: str = "bench"
        ) -> tuple[int, float]:
            path = f"/v1/webhooks/{provider}/{tenant}"
            route, params = local_api.match(routes, "POST", path)
            event = local_api.rest_event(
                route, method="POST", path=path, query="", headers=list(headers.items()), body=body,
                path_parameters=params, claims=None, stage="local",
            )  # fmt: skip
            aws.reset()
            started = time.perf_counter()
            result = module.handler(event, LambdaContext("IntakeFunction", timeout_s=30))
            took = time.perf_counter() - started
            own.append(took - aws.total)
            calls.append(aws.calls)
            return result["statusCode"], took

        call(
            "generic",
            generic_body(0, "warm"),
            sign("generic", secrets["generic"], generic_body(0, "warm"), delivery_id="warm"),
        )
        new, repeat, rejected = [], [], []
        sent: list[tuple[str, bytes, dict[str, str]]] = []
        new_own: list[float] = []
        new_calls: list[int] = []
        for n in range(deliveries):
            provider = "zendesk" if n % 2 else "generic"
            body = BODIES[provider](n, "p")
            headers = sign(provider, secrets[provider], body, delivery_id=f"inproc-{n}")
            status, took = call(provider, body, headers)
            assert status == 200, status
            new.append(took)
            new_own.append(own[-1])
            new_calls.append(calls[-1])
            sent.append((provider, body, headers))
        for n, (provider, body, _) in enumerate(sent[: deliveries // 2]):
            # A helpdesk re-signs each retry (fresh timestamp) with the same delivery id.
            status, took = call(
                provider, body, sign(provider, secrets[provider], body, delivery_id=f"inproc-{n}")
            )
            assert status == 200, status
            repeat.append(took)
        for provider, body, headers in sent[: deliveries // 2]:
            status, took = call(provider, body, {**headers, **sign(provider, "wrong", body, delivery_id="x")})
            assert status == 401, status
            rejected.append(took)
        bootstrap.reset()
    return {
        "part": "intake handler in-process on moto",
        "new_delivery": summary_ms(new),
        # moto's TransactWriteItems deep-copies the whole table for rollback, so backend time grows with the
        # table; our own code's share is reported separately (handler time minus time inside AWS calls).
        "new_delivery_excluding_aws_calls": summary_ms(new_own),
        "aws_calls_per_new_delivery": statistics.median(new_calls),
        "duplicate_delivery": summary_ms(repeat),
        "rejected_signature": summary_ms(rejected),
    }


# --------------------------------------------------------------------------- part 2: HTTP through the local stack


def over_http(deliveries: int, concurrency: int = 20, duplicate_share: float = 0.25) -> dict[str, Any]:
    import boto3

    from deflect.domain import keys
    from deflect.services.intake import ticket_id_for
    from deflect.webhooks import sign
    from infra.local.stack import start_stack

    data_dir = Path(tempfile.mkdtemp(prefix="deflect-bench-"))
    stack = start_stack(0, data_dir, separate_process=True, quiet=True, timeout_s=180)
    try:
        secrets = stack.webhook_secrets
        tag = f"h{int(time.time())}"
        plan: list[tuple[str, int]] = [("zendesk" if n % 2 else "generic", n) for n in range(deliveries)]
        rng = random.Random(7)
        repeats = [rng.choice(plan) for _ in range(int(deliveries * duplicate_share))]
        requests = plan + repeats
        rng.shuffle(requests)

        def send(item: tuple[str, int]) -> tuple[int, float]:
            provider, n = item
            body = BODIES[provider](n, tag)
            started = time.perf_counter()
            for _attempt in range(20):  # a provider retries timeouts, 429 and 5xx; so does the load generator
                # Every attempt is signed afresh (new timestamp, same delivery id), as helpdesks do.
                headers = sign(provider, secrets[provider], body, delivery_id=f"{tag}-{n}")
                request = urllib.request.Request(
                    f"{stack.base_url}/v1/webhooks/{provider}/demo",
                    data=body,
                    headers={"Content-Type": "application/json", **headers},
                    method="POST",
                )
                try:
                    with urllib.request.urlopen(request, timeout=120) as answer:
                        return answer.status, time.perf_counter() - started
                except urllib.error.HTTPError as error:
                    if error.code not in (429, 502, 503):
                        return error.code, time.perf_counter() - started
                except (TimeoutError, ConnectionError, urllib.error.URLError):
                    pass  # the local server dropped or stalled the connection: retried like any helpdesk would
                time.sleep(0.2)
            return 599, time.perf_counter() - started

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            results = list(pool.map(send, requests))
        wall = time.perf_counter() - started

        ddb = boto3.client("dynamodb", endpoint_url=stack.moto_url, region_name="us-east-1")
        table = stack.resources.tables["SupportTable"]
        found_tickets = duplicated = 0
        for provider, n in plan:
            external = f"BENCH-{tag}-{n}" if provider == "generic" else f"{tag}{n}"
            pk = keys.ticket_pk("demo", ticket_id_for(provider, external))
            items = ddb.query(
                TableName=table,
                KeyConditionExpression="PK = :pk",
                ExpressionAttributeValues={":pk": {"S": pk}},
            )["Items"]
            metas = [i for i in items if i["SK"]["S"] == "META"]
            messages = [i for i in items if i["SK"]["S"].startswith("MSG#")]
            found_tickets += len(metas) == 1 and len(messages) >= 1
            duplicated += max(0, len(messages) - 1)
        statuses: dict[int, int] = {}
        for status, _ in results:
            statuses[status] = statuses.get(status, 0) + 1
        return {
            "part": "webhooks through the local HTTP stack (loopback load generator)",
            "concurrency": concurrency,
            "requests": len(requests),
            "unique_deliveries": deliveries,
            "duplicates_sent": len(repeats),
            "wall_s": round(wall, 2),
            "webhooks_per_s": round(len(requests) / wall, 1),
            "latency": summary_ms([t for _, t in results]),
            "statuses": statuses,
            "tickets_expected": deliveries,
            "tickets_found": found_tickets,
            "lost": deliveries - found_tickets,
            "duplicated_messages": duplicated,
        }
    finally:
        stack.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # moto's TransactWriteItems copies the whole table, so in-process time grows with the table: keep this modest.
    parser.add_argument("--deliveries", type=int, default=100)
    # The local stack runs each function like one warm container (serialised) on moto: keep this modest.
    parser.add_argument("--http-deliveries", type=int, default=120)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-in-process", action="store_true")
    args = parser.parse_args(argv)
    results = [] if args.skip_in_process else [in_process(args.deliveries)]
    if results:
        print(json.dumps(results[-1]))
    if not args.skip_http:
        results.append(over_http(args.http_deliveries, args.concurrency))
        print(json.dumps(results[-1]))
    parts = []
    for result in results:
        if "new_delivery" in result:
            new, own = result["new_delivery"], result["new_delivery_excluding_aws_calls"]
            parts.append(
                f"in-process new p50 {new['p50_ms']} ms / p95 {new['p95_ms']} ms "
                f"(own code {own['p50_ms']} / {own['p95_ms']} ms)"
            )
        else:
            parts.append(
                f"HTTP {result['webhooks_per_s']} webhooks/s at c={result['concurrency']}, "
                f"lost {result['lost']}, duplicated {result['duplicated_messages']}"
            )
    print("intake: " + "; ".join(parts))
    return 0 if all(r.get("lost", 0) == 0 and r.get("duplicated_messages", 0) == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
