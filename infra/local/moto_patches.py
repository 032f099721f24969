"""Patches that make moto behave like AWS where the services rely on it. Used by the local stack, tests and benches."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def dynamodb_serialised() -> Iterator[None]:
    """Make moto's DynamoDB as atomic as DynamoDB across threads (workflow threads, the API, the test).

    moto 5.2.5 is not: a transaction snapshots the whole table and, when one of its conditions fails, restores
    that snapshot — erasing what other threads wrote meanwhile — and a query iterating the table can fail with
    "dictionary changed size during iteration" while another thread writes. One lock around the backend's
    reads and writes gives the guarantees the services rely on (conditional writes and transactions that are
    all-or-nothing without losing anyone else's write).
    """
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    names = (
        "get_item",
        "query",
        "put_item",
        "update_item",
        "delete_item",
        "transact_write_items",
        "batch_write_item",
    )
    originals = {name: getattr(DynamoDBBackend, name) for name in names}

    def locked(method: Any) -> Any:
        @functools.wraps(method)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(self, *args, **kwargs)

        return call

    for name, method in originals.items():
        setattr(DynamoDBBackend, name, locked(method))
    try:
        yield
    finally:
        for name, method in originals.items():
            setattr(DynamoDBBackend, name, method)
