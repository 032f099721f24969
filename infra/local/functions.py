"""The template's functions, loaded in this process so the local stack calls the real handlers.

Each function is loaded once from its CodeUri/Handler (by file path, under a unique module name, because
every function's entry module is called `app`). Invocations of one function are serialised, like one warm
Lambda container: handlers keep per-invocation state on module globals (the resolver's current event).
Invocations of different functions run at once, each in its own copy of the caller's context, with its own
Powertools log keys (`function_name`, request id, correlation id): see `_per_invocation_log_keys`.
"""

from __future__ import annotations

import contextvars
import importlib.util
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from infra.local import aws_calls
from infra.local import template as tpl
from infra.local.resources import ACCOUNT, REGION


@dataclass
class LambdaContext:
    """The attributes Powertools and handlers read from Lambda's context object."""

    function_name: str
    timeout_s: int
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/{self.aws_request_id}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class FunctionFailed(Exception):
    """The handler raised (Lambda reports this as a function error)."""

    def __init__(self, function: str, error: BaseException) -> None:
        super().__init__(f"{function}: {type(error).__name__}: {error}")
        self.function = function
        self.error = error

    def payload(self) -> dict[str, Any]:
        # The shape Lambda returns for an unhandled error; Step Functions reads errorType as the error name.
        return {
            "errorType": type(self.error).__name__,
            "errorMessage": str(self.error),
            "stackTrace": traceback.format_tb(self.error.__traceback__),
        }


class LocalFunctions:
    """Loads and invokes the template's functions. A function whose module fails to import is reported, not fatal."""

    def __init__(self, specs: dict[str, tpl.FunctionSpec] | None = None) -> None:
        self.specs = specs if specs is not None else tpl.functions()
        self._modules: dict[str, ModuleType] = {}
        self.load_errors: dict[str, str] = {}
        self._locks = {name: threading.Lock() for name in self.specs}

    def load_all(self) -> None:
        for name in self.specs:
            try:
                self.module(name)
            except Exception as error:  # a broken handler must not take the whole stack down
                self.load_errors[name] = f"{type(error).__name__}: {error}"
                traceback.print_exc()

    def module(self, function: str) -> ModuleType:
        if function not in self._modules:
            self._modules[function] = _load(self.specs[function])
        return self._modules[function]

    def loaded(self) -> dict[str, ModuleType]:
        return dict(self._modules)

    def name_of(self, function_ref: str) -> str | None:
        """Logical id from a name or an ARN (with or without a qualifier such as `:live`)."""
        name = function_ref.split(":")[6] if function_ref.startswith("arn:") else function_ref.split(":")[0]
        return name if name in self.specs else None

    def invoke(self, function: str, event: Any) -> Any:
        spec = self.specs[function]
        handler: Callable[[Any, Any], Any] = getattr(self.module(function), spec.handler.rsplit(".", 1)[1])
        fresh_keys = _per_invocation_log_keys()
        with self._locks[function], aws_calls.attributed(function):
            context = LambdaContext(function_name=function, timeout_s=spec.timeout)
            try:
                # A context of its own: what the handler sets in context variables (its log keys, its tenant)
                # ends with the invocation and never labels the caller's thread or another invocation.
                return contextvars.copy_context().run(_run, fresh_keys, handler, event, context)
            except Exception as error:
                raise FunctionFailed(function, error) from error


def _run(fresh_keys: Callable[[], None], handler: Callable[[Any, Any], Any], event: Any, context: Any) -> Any:
    fresh_keys()
    return handler(event, context)


# ---------------------------------------------------------------------------------------------- log keys
# Powertools' Logger keeps the keys `inject_lambda_context` sets (function_name, function_request_id, cold_start,
# correlation_id) in one dict on the formatter every Logger of the process shares. On Lambda one invocation runs
# per process at a time; here every function shares the process and runs at once, so each line was labelled with
# whichever invocation had started last ("triaged" under WritebackFunction). Inside an invocation that dict is
# now the invocation's own (a context variable, set by `invoke`); outside one it is the process-wide dict as before.
_invocation_log_keys: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "deflect_local_log_keys", default=None
)


_patching = threading.Lock()


class _PerInvocationLogKeys:
    """Mixed into the shared formatter's class: `log_format` is read and replaced per invocation."""

    @property
    def log_format(self) -> dict[str, Any]:
        own = _invocation_log_keys.get()
        return self.__dict__["_process_log_format"] if own is None else own

    @log_format.setter
    def log_format(self, value: dict[str, Any]) -> None:
        if _invocation_log_keys.get() is None:
            self.__dict__["_process_log_format"] = value
        else:
            _invocation_log_keys.set(value)


def _per_invocation_log_keys() -> Callable[[], None]:
    """Give the process's Powertools formatter per-invocation keys (once); returns what starts an invocation's."""
    from deflect.observability import logger

    formatter = logger().registered_formatter
    with _patching:
        if not isinstance(formatter, _PerInvocationLogKeys):
            process_keys = formatter.__dict__.pop("log_format")
            formatter.__class__ = type(
                f"PerInvocation{type(formatter).__name__}", (_PerInvocationLogKeys, type(formatter)), {}
            )
            formatter.__dict__["_process_log_format"] = process_keys

    def fresh() -> None:
        # What the process-wide keys hold (service, level, ...), then whatever the handler's decorator sets.
        _invocation_log_keys.set(dict(formatter.__dict__["_process_log_format"]))

    return fresh


def _load(spec: tpl.FunctionSpec) -> ModuleType:
    module_file, _ = spec.handler.rsplit(".", 1)
    code_dir = tpl.ROOT / spec.code_uri
    path = code_dir / (module_file.replace(".", "/") + ".py")
    unique = f"deflect_local_{spec.name.lower()}_{Path(module_file).name}"
    loader_spec = importlib.util.spec_from_file_location(unique, path)
    if loader_spec is None or loader_spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[unique] = module
    # On Lambda the CodeUri folder is the working root: sibling modules import by bare name.
    sys.path.insert(0, str(code_dir))
    try:
        loader_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(unique, None)
        raise
    finally:
        sys.path.remove(str(code_dir))
    return module
