"""A deterministic stand-in for the MiniLM embedder: hashed bag of word stems, unit length.

Texts that share words are close, texts that do not are orthogonal: enough to exercise fusion, filters and
persistence in unit tests without loading a model.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

CASES = Path(__file__).parent
HELP_CENTER = CASES.parents[1] / "infra" / "local" / "demo" / "helpcenter"
_WORD = re.compile(r"[a-z0-9]+")


class HashingEmbedder:
    dimensions = 256
    model_id = "hashing-test-embedder"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def embed(self, texts: list[str], *, max_tokens: int = 256) -> np.ndarray:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower())[:max_tokens]:
                stem = word[:6]
                out[row, int(hashlib.md5(stem.encode()).hexdigest()[:8], 16) % self.dimensions] += 1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
        return out

    @property
    def embedded(self) -> int:
        return sum(self.calls)
