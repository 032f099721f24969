"""Embeddings from Amazon Bedrock (Titan Text Embeddings v2 by default; v1 ids work too).

One InvokeModel call per text (Titan takes one input per request), a few in parallel. Errors are translated to
domain errors (throttling → Throttled; 5xx, a model still loading or timing out → TransientFailure) like every
AWS adapter. Only Titan text embedding ids are accepted: another family (Cohere, ...) has another request body
and response, and asymmetric ones need to know a document from a query, which `embed(texts)` does not say.
"""

from __future__ import annotations

import json
import math
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from deflect.adapters.aws_errors import translated

DEFAULT_MODEL_ID = "amazon.titan-embed-text-v2:0"
# Titan Text Embeddings v2, v1 and its G1 id; an ARN ends in one of these.
SUPPORTED_MODELS = re.compile(r"^amazon\.titan-embed-(?:text-v1|text-v2|g1-text-02)")
# Titan v2 accepts up to 8,192 tokens / 50,000 characters; retrieval chunks and questions are far shorter.
MAX_INPUT_CHARS = 20_000


class BedrockEmbeddings:
    def __init__(
        self,
        client: Any,
        model_id: str = DEFAULT_MODEL_ID,
        *,
        dimensions: int = 1024,
        workers: int = 4,
    ) -> None:
        if not SUPPORTED_MODELS.match(model_id.rsplit("/", 1)[-1]):
            # Fail at start-up: a wrong body would fail every call, a silently wrong vector every search.
            raise ValueError(
                f"embedding model {model_id!r} is not supported: use a Titan Text Embeddings id "
                f"(e.g. {DEFAULT_MODEL_ID} or amazon.titan-embed-text-v1)"
            )
        if "titan-embed-text-v2" in model_id and dimensions not in (256, 512, 1024):
            raise ValueError("Titan Text Embeddings v2 supports 256, 512 or 1024 dimensions")
        self._client = client
        self.model_id = model_id
        self.dimensions = dimensions if "titan-embed-text-v2" in model_id else 1536
        self._workers = max(1, workers)

    def request_body(self, text: str) -> dict[str, Any]:
        body: dict[str, Any] = {"inputText": text[:MAX_INPUT_CHARS] or " "}
        if "titan-embed-text-v2" in self.model_id:
            body.update(dimensions=self.dimensions, normalize=True)
        return body

    def embed_one(self, text: str) -> list[float]:
        with translated("InvokeModel"):
            response = self._client.invoke_model(
                modelId=self.model_id,
                body=json.dumps(self.request_body(text)),
                contentType="application/json",
                accept="application/json",
            )
        vector = [float(v) for v in json.loads(response["body"].read())["embedding"]]
        # v1 does not normalise; cosine ranking and the shared score assume unit vectors.
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]

    def embed(self, texts: list[str]) -> list[list[float]]:
        if len(texts) <= 1 or self._workers == 1:
            return [self.embed_one(t) for t in texts]
        with ThreadPoolExecutor(max_workers=min(self._workers, len(texts))) as pool:
            return list(pool.map(self.embed_one, texts))
