"""The int8-compute MiniLM derived at first use: same meaning as the packaged model, and never a hard failure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from deflect.embedded import embeddings

SENTENCES = [
    "How do I reset my password?",
    "The webhook signature check fails with a 401 after rotating the secret.",
    "Refund the duplicate charge on invoice INV-2041.",
    "Export all tickets from last quarter as CSV",
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def packaged_vectors() -> np.ndarray:
    return embeddings.MiniLMEmbedder(threads=1, fast=False).embed(SENTENCES)


@pytest.fixture(scope="module")
def fast(cache_dir: Path) -> embeddings.MiniLMEmbedder:
    return embeddings.MiniLMEmbedder(threads=1, cache_dir=cache_dir)


def test_converted_model_gives_the_packaged_models_vectors(
    fast: embeddings.MiniLMEmbedder, packaged_vectors: np.ndarray
) -> None:
    vectors = fast.embed(SENTENCES)
    assert fast.model_id == embeddings.FAST_MODEL_ID
    assert vectors.shape == (len(SENTENCES), embeddings.DIMENSIONS)
    cosines = (vectors * packaged_vectors).sum(axis=1)
    assert cosines.min() >= 0.98, cosines


def test_converted_model_is_reused_from_the_cache(fast: embeddings.MiniLMEmbedder, cache_dir: Path) -> None:
    cached = sorted(cache_dir.glob("*.onnx"))
    assert len(cached) == 1 and embeddings.FAST_RECIPE in cached[0].name
    before = cached[0].stat().st_mtime_ns
    embeddings.MiniLMEmbedder(threads=1, cache_dir=cache_dir)
    assert cached[0].stat().st_mtime_ns == before


def test_corrupted_cache_is_rebuilt(cache_dir: Path, fast: embeddings.MiniLMEmbedder) -> None:
    corrupted = cache_dir / "corrupt"
    corrupted.mkdir()
    fresh = embeddings.MiniLMEmbedder(threads=1, cache_dir=corrupted)
    (model,) = corrupted.glob("*.onnx")
    model.write_bytes(b"not a model")
    rebuilt = embeddings.MiniLMEmbedder(threads=1, cache_dir=corrupted)
    assert rebuilt.model_id == embeddings.FAST_MODEL_ID
    np.testing.assert_allclose(rebuilt.embed(SENTENCES[:2]), fresh.embed(SENTENCES[:2]), atol=1e-6)


def test_falls_back_to_the_packaged_model_when_conversion_is_impossible(
    tmp_path: Path, packaged_vectors: np.ndarray
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    embedder = embeddings.MiniLMEmbedder(threads=1, cache_dir=blocker / "models")
    # A different model id makes persisted vectors from the int8 model re-embed instead of mixing.
    assert embedder.model_id == embeddings.MODEL_ID
    np.testing.assert_allclose(embedder.embed(SENTENCES), packaged_vectors, atol=1e-6)
