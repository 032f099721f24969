"""Objects read from S3 by the bulk import: the body and the ETag of the version read, optionally only if the
object still has the ETag an earlier part read (S3 answers 412, a Conflict, once it was replaced)."""

from __future__ import annotations

from typing import Any

from deflect.adapters.aws_errors import translated


class S3ObjectReader:
    def __init__(self, client: Any) -> None:
        self._client = client

    def __call__(self, bucket: str, key: str, if_match: str | None = None) -> tuple[bytes, str]:
        request = {"Bucket": bucket, "Key": key}
        if if_match:
            request["IfMatch"] = if_match
        with translated("GetObject"):
            answer = self._client.get_object(**request)
            return answer["Body"].read(), str(answer.get("ETag", ""))
