"""Lambda's DynamoDB stream event source mapping for the writeback function, on the local stack.

Reads the SupportTable stream (moto) from LATEST and hands records to the function in batches with the
stream event shape. Records the function lists in `batchItemFailures` are retried a few times after a pause,
as Lambda retries a shard. The function only relays pending outbox items to WritebackQueue from here. The template's
FilterCriteria is applied as Lambda applies it: a record no pattern matches never reaches the function (without it,
every write to the table, the function's own usage tally included, invoked the function, which wrote again).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
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


def matches(pattern: Any, value: Any) -> bool:
    """Lambda event filtering, the subset templates use: an object names fields to match (all of them), a list
    holds the values allowed (equality)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            k in value and matches(p, value[k]) for k, p in pattern.items()
        )
    if isinstance(pattern, list):
        return any(value == allowed for allowed in pattern)
    return bool(pattern == value)


def check_supported(pattern: Any) -> None:
    """Prefix, exists, anything-but and numeric matching are not emulated: a template using them stops the local
    stack at start, instead of its stream quietly dropping every record."""
    if isinstance(pattern, dict):
        for value in pattern.values():
            check_supported(value)
    elif isinstance(pattern, list) and any(isinstance(allowed, dict) for allowed in pattern):
        raise ValueError(f"stream filter not supported by the local stack: {pattern}")


def passes(record: dict[str, Any], patterns: Sequence[Any]) -> bool:
    """No filter lets every record through; otherwise one matching pattern is enough."""
    return not patterns or any(matches(p, record) for p in patterns)


class OutboxStreamPoller(Poller):
    """Reads every shard in turn (its own loop: an iterator per shard), pausing when nothing arrived."""

    def __init__(
        self,
        session: Any,
        table: str,
        function: str,
        invoke: Callable[[str, dict[str, Any]], Any],
        filters: Sequence[str] = (),
    ) -> None:
        self.patterns = [json.loads(f) for f in filters]
        for pattern in self.patterns:
            check_supported(pattern)
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
                        wanted = [r for r in answer["Records"] if passes(r, self.patterns)]
                        if wanted:
                            self._deliver(wanted)
                except (
                    Exception
                ) as error:  # moto stopping, or a handler error: keep reading until told to stop
                    if self._stop.is_set():
                        return
                    print(f"[stream] {self.function}: {type(error).__name__}: {error}", file=sys.stderr)
            if not busy:
                self._stop.wait(0.2)
