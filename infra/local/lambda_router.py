"""Routes Lambda invokes made to moto (by Step Functions tasks) to the real handlers, in this process.

moto runs function code only in Docker; its Docker-less backend (`LambdaSimpleBackend`) just echoes. The local
stack swaps that backend's `invoke` for `_routed_invoke` below. This is a private moto API: moto is pinned
exactly in pyproject.toml and tests/unit/test_lambda_router_contract.py fails loudly if its signature moves.
Nothing outside infra/local touches it.
"""

from __future__ import annotations

import inspect
import json
import threading
import traceback
from collections.abc import Callable
from typing import Any

from infra.local.functions import FunctionFailed, LocalFunctions

# The exact signature this module replaces (moto 5.2.5).
EXPECTED_PARAMETERS = ("self", "function_name", "qualifier", "body", "headers", "response_headers")


class RouterContractBroken(RuntimeError):
    """moto's Lambda backend no longer looks like what the local stack patches."""


def _backend_class() -> type:
    from moto.awslambda_simple.models import LambdaSimpleBackend

    return LambdaSimpleBackend


def check_contract() -> None:
    found = tuple(inspect.signature(_backend_class().invoke).parameters)
    if found != EXPECTED_PARAMETERS:
        raise RouterContractBroken(
            f"moto's LambdaSimpleBackend.invoke is now {found}, the local stack expects {EXPECTED_PARAMETERS}: "
            "update infra/local/lambda_router.py for this moto version"
        )


def install(functions: LocalFunctions) -> Callable[[], None]:
    """Route invokes of the template's functions to `functions`; others keep moto's behaviour. Returns undo."""
    check_contract()
    backend = _backend_class()
    original = backend.invoke

    def _routed_invoke(
        self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
    ) -> bytes | None:
        name = functions.name_of(function_name)
        if name is None:
            return original(self, function_name, qualifier, body, headers, response_headers)
        event = json.loads(body) if body else {}
        if (headers or {}).get("X-Amz-Invocation-Type") == "Event":
            # Asynchronous invoke: Lambda queues it and answers 202 at once.
            threading.Thread(target=_invoke_quietly, args=(functions, name, event), daemon=True).start()
            return b""
        try:
            result = functions.invoke(name, event)
        except FunctionFailed as failed:
            traceback.print_exception(failed.error)
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(failed.payload()).encode()
        return json.dumps(result).encode()

    backend.invoke = _routed_invoke  # type: ignore[method-assign]

    def undo() -> None:
        backend.invoke = original  # type: ignore[method-assign]

    return undo


def _invoke_quietly(functions: LocalFunctions, name: str, event: Any) -> None:
    try:
        functions.invoke(name, event)
    except FunctionFailed as failed:
        traceback.print_exception(failed.error)
