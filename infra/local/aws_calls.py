"""Which AWS operations each function's code makes on the local stack, so they can be checked against the IAM
the template grants (moto does not check IAM; a missing grant only shows on AWS).

`DEFLECT_RECORD_AWS_CALLS=FILE` makes the stack record one line per distinct (function, service, operation;
`SendMessage@Queue`, `GetItem@Table` and `GetObject@bucket` name the queue, table or bucket),
written while a handler runs (`attributed`): calls by the emulated Lambda service itself — queue and stream
pollers — are not the function's and are not recorded.
"""

from __future__ import annotations

import contextvars
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# A context variable, not a thread-local: work a handler hands to a thread with its context (the conversation
# API's synchronous triage) is still that function's.
_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("deflect_function", default=None)
_lock = threading.Lock()
_seen: set[tuple[str, str, str]] = set()
_path: Path | None = None


@contextmanager
def attributed(function: str) -> Iterator[None]:
    """AWS calls made by this thread until exit are the named function's."""
    token = _current.set(function)
    try:
        yield
    finally:
        _current.reset(token)


def install(path: str | Path) -> None:
    """Record from now on, appending to `path` (JSON lines: function, service, operation)."""
    global _path
    from botocore.client import BaseClient

    _path = Path(path)
    if getattr(BaseClient._make_api_call, "_records_calls", False):
        return
    original = BaseClient._make_api_call

    def recording(self: Any, operation_name: str, api_params: Any) -> Any:
        function = _current.get()
        if function is not None:
            service = self.meta.service_model.signing_name
            named = _named(service, operation_name, api_params)
            for target in _targets(service, operation_name, api_params) or [""]:
                _record(function, service, f"{named}@{target}" if target else named)
        return original(self, operation_name, api_params)

    recording._records_calls = True  # type: ignore[attr-defined]
    BaseClient._make_api_call = recording  # type: ignore[method-assign]


def _named(service: str, operation: str, params: Any) -> str:
    """The operation, marked where its parameters change the permission it needs (reading one version of an
    object needs s3:GetObjectVersion, not s3:GetObject)."""
    if service == "s3" and operation in ("GetObject", "HeadObject") and isinstance(params, dict):
        return f"{operation}+VersionId" if params.get("VersionId") else operation
    return operation


def _targets(service: str, operation: str, params: Any) -> list[str]:
    """The queue, tables or bucket a call acts on, where grants name one (local queue and table names are the
    template's ids, a FIFO queue's with SQS's `.fifo` suffix; buckets keep their BucketName, matched as a
    pattern)."""
    if not isinstance(params, dict):
        return []
    if service == "sqs" and operation.startswith("SendMessage"):
        return [str(params.get("QueueUrl", "")).rsplit("/", 1)[-1].removesuffix(".fifo")]
    if service == "s3" and params.get("Bucket"):
        return [str(params["Bucket"])]
    if service == "dynamodb":
        if "TableName" in params:
            return [str(params["TableName"])]
        items = params.get("TransactItems") or []
        return sorted(
            {str(body.get("TableName")) for item in items for body in item.values() if isinstance(body, dict)}
        )
    return []


def _record(function: str, service: str, operation: str) -> None:
    key = (function, service, operation)
    with _lock:
        if key in _seen or _path is None:
            return
        _seen.add(key)
        with _path.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"function": function, "service": service, "operation": operation}) + "\n")


def read(path: str | Path) -> list[tuple[str, str, str]]:
    lines = Path(path).read_text(encoding="utf-8").splitlines() if Path(path).exists() else []
    rows = [json.loads(line) for line in lines if line.strip()]
    return sorted({(r["function"], r["service"], r["operation"]) for r in rows})
