"""Lambda's DynamoDB stream event source mapping for the writeback function, on the local stack.

Reads the SupportTable stream (moto) from LATEST and hands records to the function in batches with the
stream event shape. Records the function lists in `batchItemFailures` are retried a few times after a pause,
as Lambda retries a shard. The function only relays pending outbox items to WritebackQueue from here. The template's FilterCriteria is not applied here: the handler ignores every record that is
not a pending outbox item.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from infra.local.pollers import Poller

RETRIES = 3


def stream_event(records: list[dict[str, Any]], stream_arn: str) -> dict[str, Any]:
    events = []
    for record in records:
        change = dict(record["dynamodb"])
        created = change.get("ApproximateCreationDateTime")
        if hasattr(created, "timestamp"):
            change["ApproximateCreationDateTime"] = int(created.timestamp())
        events.append(
            {
                **{k: v for k, v in record.items() if k != "dynamodb"},
                "dynamodb": change,
                "eventSourceARN": stream_arn,
            }
        )
    return {"Records": events}


class OutboxStreamPoller(Poller):
    """Reads every shard in turn (its own loop: an iterator per shard), pausing when nothing arrived."""

    def __init__(
        self, session: Any, table: str, function: str, invoke: Callable[[str, dict[str, Any]], Any]
    ) -> None:
        self.streams = session.client("dynamodbstreams")
        self.arn = session.client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]
        super().__init__("stream", function, invoke)

    def _iterators(self) -> dict[str, str]:
        shards = self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        return {
            s["ShardId"]: self.streams.get_shard_iterator(
                StreamArn=self.arn, ShardId=s["ShardId"], ShardIteratorType="LATEST"
            )["ShardIterator"]
            for s in shards
        }

    def _deliver(self, records: list[dict[str, Any]]) -> None:
        pending = records
        for attempt in range(RETRIES + 1):
            result = self.invoke(self.function, stream_event(pending, self.arn)) or {}
            failed = {f.get("itemIdentifier") for f in result.get("batchItemFailures") or []}
            pending = [r for r in pending if r["dynamodb"].get("SequenceNumber") in failed]
            if not pending or self._stop.wait(0.5 * (attempt + 1)):
                return
        print(
            f"[stream] {self.function}: {len(pending)} records still failing; SQS will deliver them",
            file=sys.stderr,
        )

    def _run(self) -> None:
        iterators = self._iterators()
        while not self._stop.is_set():
            busy = False
            for shard, iterator in list(iterators.items()):
                try:
                    answer = self.streams.get_records(ShardIterator=iterator, Limit=25)
                    iterators[shard] = answer["NextShardIterator"]
                    if answer["Records"]:
                        busy = True
                        self._deliver(answer["Records"])
                except (
                    Exception
                ) as error:  # moto stopping, or a handler error: keep reading until told to stop
                    if self._stop.is_set():
                        return
                    print(f"[stream] {self.function}: {type(error).__name__}: {error}", file=sys.stderr)
            if not busy:
                self._stop.wait(0.2)
