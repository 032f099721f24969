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


@contextmanager
def sfn_token_per_attempt() -> Iterator[None]:
    """Give each attempt of a `.waitForTaskToken` task its own token, and refuse a failed attempt's token.

    On AWS a retried task is invoked again with a new token, and the failed (or timed-out) attempt's token answers
    SendTaskSuccess/Failure with TaskTimedOut. moto 5.2.5 makes one token when the state is entered, keeps it for
    every retry and accepts it for as long as the execution runs, so a retry that never stored its token (and a
    decision sent with a dead token) would look fine locally and strand the workflow on AWS.
    """
    from moto.core.exceptions import AWSError
    from moto.stepfunctions.parser import models
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackConsumerTimeout

    # moto raises these without the message its error class requires (a TypeError, a 500): answer as AWS does.
    class TaskTimedOut(AWSError):
        TYPE = "TaskTimedOut"

        def __init__(self) -> None:
            super().__init__("Task Timed Out: 'Provided task does not exist anymore'")

    class TaskDoesNotExist(AWSError):
        TYPE = "TaskDoesNotExist"

        def __init__(self) -> None:
            super().__init__("Task does not exist anymore")

    class InvalidToken(AWSError):
        TYPE = "InvalidToken"

        def __init__(self, message: str = "Invalid Token: 'Invalid token'") -> None:
            super().__init__(message)

    errors = {"TaskTimedOut": TaskTimedOut, "TaskDoesNotExist": TaskDoesNotExist, "InvalidToken": InvalidToken}
    moto_errors = {name: getattr(models, name) for name in errors}
    had_own = "_evaluate_with_timeout" in StateTaskServiceCallback.__dict__
    original = StateTaskServiceCallback._evaluate_with_timeout

    @functools.wraps(original)
    def attempt(self: Any, env: Any) -> Any:
        task = env.states.context_object.context_object_data.get("Task")
        pool = env.callback_pool_manager
        endpoint = pool.get(task["Token"]) if task else None
        if endpoint is None:  # not a waitForTaskToken task
            return original(self, env)
        if endpoint.consumer_error is not None:  # a retry: the failed attempt's token stays dead
            endpoint = pool.add(env.states.context_object.update_task_token())
        try:
            return original(self, env)
        except Exception:
            # moto answers TaskTimedOut for a token whose consumer timed out, as AWS does for a failed attempt's.
            endpoint.report(CallbackConsumerTimeout())
            raise

    StateTaskServiceCallback._evaluate_with_timeout = attempt
    for name, error in errors.items():
        setattr(models, name, error)
    try:
        yield
    finally:
        for name, error in moto_errors.items():
            setattr(models, name, error)
        if had_own:
            StateTaskServiceCallback._evaluate_with_timeout = original
        else:
            del StateTaskServiceCallback._evaluate_with_timeout
