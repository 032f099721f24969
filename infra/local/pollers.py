"""Lambda's SQS event source mapping, played by one thread per (function, queue) of template.yaml.

Batches arrive with the real SQS event shape; with ReportBatchItemFailures only the messages the function
did not list in `batchItemFailures` are deleted, and a function error deletes nothing (the queue's
visibility timeout and redrive policy then apply, as on AWS).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

from infra.local.resources import REGION

Invoke = Callable[[str, dict[str, Any]], Any]


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str = REGION) -> dict[str, Any]:
    """The event Lambda builds from a ReceiveMessage answer."""
    records = []
    for message in messages:
        attributes = {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": value.get("StringListValues", []),
                "binaryListValues": value.get("BinaryListValues", []),
                "dataType": value["DataType"],
            }
            for name, value in (message.get("MessageAttributes") or {}).items()
        }
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": attributes,
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


def to_delete(messages: list[dict[str, Any]], result: Any) -> list[dict[str, Any]]:
    """Messages the batch response lets go. A malformed response fails the whole batch, as Lambda does."""
    if result is None:
        return list(messages)
    if not isinstance(result, dict) or not isinstance(result.get("batchItemFailures", []), list):
        return []
    failures = result.get("batchItemFailures") or []
    failed_ids = {f.get("itemIdentifier") for f in failures if isinstance(f, dict)}
    if None in failed_ids or "" in failed_ids:
        return []
    return [m for m in messages if m["MessageId"] not in failed_ids]


class Poller:
    """A daemon thread that calls `poll_once()` until stopped, pausing `idle_s` between passes (a second after an
    error: moto stopping, a transient failure), as Lambda's event source mappings keep polling. What it finds goes
    to `invoke(function, event)`."""

    idle_s = 0.0

    def __init__(self, kind: str, function: str, invoke: Invoke) -> None:
        self.function = function
        self.invoke = invoke
        self.name = f"{kind}-{function}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to finish its pass and end, without waiting (so several pollers wind down at once)."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.idle_s + 5)

    def poll_once(self) -> int:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as error:
                if self._stop.is_set():
                    return
                print(f"[{self.name}] {type(error).__name__}: {error}", file=sys.stderr)
                self._stop.wait(1.0)
                continue
            if self.idle_s:
                self._stop.wait(self.idle_s)


class SqsPoller(Poller):
    """Long-polls (`wait_s`) instead of pausing between passes."""

    def __init__(
        self,
        sqs: Any,
        function: str,
        queue_url: str,
        queue_arn: str,
        invoke: Invoke,
        *,
        batch_size: int = 10,
        wait_s: int = 1,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.batch_size = batch_size
        self.wait_s = wait_s
        super().__init__("poll", function, invoke)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.wait_s + 5)

    def poll_once(self) -> int:
        """Receive one batch, deliver it, delete what succeeded. Returns how many messages were delivered."""
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            return 0
        try:
            result = self.invoke(self.function, sqs_event(messages, self.queue_arn))
        except Exception as error:
            print(f"[poller] {self.function} failed on a batch of {len(messages)}: {error}", file=sys.stderr)
            return len(messages)
        done = to_delete(messages, result)
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        return len(messages)
