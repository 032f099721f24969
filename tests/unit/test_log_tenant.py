"""Log lines name the tenant whose work they describe: concurrent handlers (the local stack runs every function in
one process) never label each other's lines, and a new invocation starts without the last one's tenant."""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest

from deflect.observability import bind_tenant, logger


@pytest.fixture()
def lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger().registered_formatter)
    logger().addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger().removeHandler(handler)
        logger().structure_logs()  # what the next invocation's clear_state does


def test_concurrent_handlers_log_their_own_tenant(lines):
    both_bound = threading.Barrier(2)

    def handle(tenant: str) -> None:
        bind_tenant(tenant)
        both_bound.wait()  # each binds before either logs: a shared key would now name the last one bound
        logger().info("handled", extra={"for": tenant})

    workers = [threading.Thread(target=handle, args=(t,)) for t in ("acme", "globex")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    logged = lines()
    assert len(logged) == 2
    assert all(line["tenant_id"] == line["for"] for line in logged)


def test_a_new_invocation_does_not_carry_the_last_tenant(lines):
    bind_tenant("acme")
    logger().info("first invocation")
    logger().structure_logs()  # inject_lambda_context(clear_state=True) at the next invocation
    logger().info("second invocation, tenant not resolved yet")

    first, second = lines()
    assert first["tenant_id"] == "acme"
    assert "tenant_id" not in second
