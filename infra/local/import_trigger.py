"""The S3 trigger of template.yaml (an `S3` event on a function), played on the local stack.

On AWS, S3 invokes the function once per created object with an event notification. Here a thread lists each
triggered bucket every second and hands every object it has not seen (by key and ETag, so an overwrite counts as
new) to the function with the same event shape, one record per event, as S3 does. A failed invoke is retried on
the next pass a few times (S3 retries asynchronous invokes twice), then reported and dropped.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from infra.local.pollers import Poller
from infra.local.resources import REGION

ATTEMPTS = 3


def object_created_event(bucket: str, listed: dict[str, Any], sequence: int) -> dict[str, Any]:
    """The notification S3 sends for one created object (keys arrive URL-encoded, as from S3)."""
    modified = listed.get("LastModified") or datetime.now(UTC)
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": modified.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:local"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {"x-amz-request-id": f"local-{sequence}", "x-amz-id-2": "local"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "local-trigger",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "local"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {
                        "key": quote_plus(listed["Key"], safe="/"),
                        "size": int(listed.get("Size", 0)),
                        "eTag": str(listed.get("ETag", "")).strip('"'),
                        "sequencer": f"{sequence:016X}",
                    },
                },
            }
        ]
    }


class ObjectCreatedPoller(Poller):
    def __init__(
        self,
        s3: Any,
        bucket: str,
        function: str,
        invoke: Callable[[str, dict[str, Any]], Any],
        *,
        interval_s: float = 1.0,
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.idle_s = interval_s
        self._delivered: set[tuple[str, str]] = set()
        self._failures: dict[tuple[str, str], int] = {}
        self._sequence = 0
        super().__init__("s3", function, invoke)

    def poll_once(self) -> int:
        """Deliver every object not delivered yet. Returns how many were delivered."""
        delivered = 0
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for listed in page.get("Contents", []):
                seen = (listed["Key"], str(listed.get("ETag", "")))
                if seen in self._delivered:
                    continue
                self._sequence += 1
                try:
                    self.invoke(self.function, object_created_event(self.bucket, listed, self._sequence))
                    delivered += 1
                except Exception as error:
                    tries = self._failures[seen] = self._failures.get(seen, 0) + 1
                    print(f"[s3] {self.function} failed on {listed['Key']}: {error}", file=sys.stderr)
                    if tries < ATTEMPTS:
                        continue
                    print(f"[s3] {listed['Key']}: giving up after {tries} attempts", file=sys.stderr)
                self._failures.pop(seen, None)
                self._delivered.add(seen)
        return delivered
