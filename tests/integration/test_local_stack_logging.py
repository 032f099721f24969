"""On the local stack every function shares one process and runs at once: each invocation's log lines must still
carry its own function's name (Powertools' `inject_lambda_context` keys), as they would on Lambda."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from infra.local import template as tpl
from infra.local.functions import LocalFunctions

HANDLER = """
import threading

from deflect.observability import logger

started = threading.Event()
proceed = threading.Event()


@logger().inject_lambda_context(clear_state=True)
def handler(event, context):
    if event.get("hold"):
        started.set()
        assert proceed.wait(10)
    logger().info(event["say"])
    return {"said": event["say"]}
"""


class _Lines(logging.Handler):
    """Every deflect log line as the stack prints it (the Powertools formatter, run on the logging thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        from deflect.observability import logger

        self.lines.append(json.loads(logger().registered_formatter.format(record)))


def _functions(code: Path, *names: str) -> LocalFunctions:
    (code / "app.py").write_text(HANDLER)
    specs = {
        name: tpl.FunctionSpec(name=name, code_uri=str(code), handler="app.handler", timeout=30)
        for name in names
    }
    functions = LocalFunctions(specs)
    functions.load_all()
    assert not functions.load_errors, functions.load_errors
    return functions


def test_an_invocation_logs_under_its_own_function_while_another_runs(tmp_path):
    from deflect.observability import logger

    functions = _functions(tmp_path, "AlphaFunction", "BetaFunction")
    alpha = functions.module("AlphaFunction")
    lines = _Lines()
    logger().addHandler(lines)
    try:
        logger().info("before both")
        # Alpha starts first and logs last: Beta's invocation starts (and sets its keys) while Alpha is running.
        first = threading.Thread(
            target=functions.invoke, args=("AlphaFunction", {"hold": True, "say": "alpha line"})
        )
        first.start()
        assert alpha.started.wait(10)
        functions.invoke("BetaFunction", {"say": "beta line"})
        alpha.proceed.set()
        first.join(10)
        logger().info("after both")
    finally:
        alpha.proceed.set()
        logger().removeHandler(lines)

    by_message = {line["message"]: line for line in lines.lines}
    assert by_message["alpha line"].get("function_name") == "AlphaFunction"
    assert by_message["beta line"].get("function_name") == "BetaFunction"
    assert by_message["alpha line"]["function_request_id"] != by_message["beta line"]["function_request_id"]
    # Outside any invocation the process's own keys are as they were: neither invocation leaked into them.
    assert by_message["after both"].get("function_name") == by_message["before both"].get("function_name")
