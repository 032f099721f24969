"""Escalation workflow on Step Functions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError

from deflect.adapters.aws_errors import error_code, translated
from deflect.domain.canonical import json_default
from deflect.domain.errors import Conflict, Gone


class StepFunctionsWorkflow:
    def __init__(self, client: Any, state_machine_arn: str | None, *, callback_client: Any = None) -> None:
        self._client = client
        self._arn = state_machine_arn
        # Task callbacks go through a client that does not retry: a callback that landed but whose answer was
        # lost would be retried into "task does not exist" and read as refused. Left to the caller, it is unknown.
        self._callbacks = callback_client or client

    def start(self, name: str, payload: Mapping[str, Any]) -> str:
        """Always named: the name is our idempotency key (a second start with it is a no-op)."""
        try:
            with translated("StartExecution"):
                response = self._client.start_execution(
                    stateMachineArn=self._arn, name=name, input=json.dumps(payload, default=json_default)
                )
        except self._client.exceptions.ExecutionAlreadyExists:
            return f"{self._arn.replace(':stateMachine:', ':execution:')}:{name}"
        return response["executionArn"]

    def send_task_success(self, token: str, output: Mapping[str, Any]) -> None:
        self._task_call("SendTaskSuccess", taskToken=token, output=json.dumps(output, default=json_default))

    def send_task_failure(self, token: str, error: str, cause: str) -> None:
        self._task_call("SendTaskFailure", taskToken=token, error=error, cause=cause)

    def _task_call(self, operation: str, **params: Any) -> None:
        client = self._callbacks
        method = getattr(client, "send_task_success" if operation == "SendTaskSuccess" else "send_task_failure")
        try:
            method(**params)
        except client.exceptions.ClientError as error:
            code = error_code(error)
            if code in {"TaskTimedOut", "TaskDoesNotExist"}:
                raise Gone("the workflow no longer waits for this task") from error
            if code == "InvalidToken":
                raise Conflict("task token rejected") from error
            with translated(operation):
                raise
        except BotoCoreError:
            with translated(operation):  # no answer: it may have landed (TransientFailure, not a refusal)
                raise
