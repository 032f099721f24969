"""The writeback DLQ on SQS: dead outbox items are sent here (an alarm watches its depth) and drained after
`deflect outbox replay`. Sending is the same as any work queue; receiving lets the replay clear its messages."""

from __future__ import annotations

import json

from deflect.adapters.aws_errors import translated
from deflect.adapters.sqs_queue import SqsWorkQueue
from deflect.ports import DeadLetter


class SqsDeadLetters(SqsWorkQueue):
    def receive(self, max_messages: int = 10, wait_s: int = 0) -> list[DeadLetter]:
        if not self._url:
            return []
        with translated("ReceiveMessage"):
            answer = self._client.receive_message(
                QueueUrl=self._url,
                MaxNumberOfMessages=min(10, max_messages),
                WaitTimeSeconds=wait_s,
                VisibilityTimeout=30,
            )
        letters = []
        for message in answer.get("Messages", []):
            try:
                body = json.loads(message["Body"])
            except ValueError:
                body = {}  # a message we did not write: kept (released) for a human to look at
            letters.append(
                DeadLetter(handle=message["ReceiptHandle"], body=body if isinstance(body, dict) else {})
            )
        return letters

    def delete(self, handle: str) -> None:
        with translated("DeleteMessage"):
            self._client.delete_message(QueueUrl=self._url, ReceiptHandle=handle)

    def release(self, handle: str) -> None:
        with translated("ChangeMessageVisibility"):
            self._client.change_message_visibility(
                QueueUrl=self._url, ReceiptHandle=handle, VisibilityTimeout=0
            )
