"""Word evidence for intents: a naive-Bayes view of a tenant's labelled examples, kept beside the embedding head.

Why: sentence embeddings blur sibling intents ("my top-up was reverted" lands on "top-up failed"); the words an
intent's examples use separate them. The head adds these word log-likelihoods (with a small weight) to its
softmax logits, and the out-of-scope gate reads how well the message's words fit the intent that was picked: a
message whose words the intent's examples never use is more likely about something the taxonomy does not cover.

Pure Python like the rest of inference (no numpy in the Lambda layer). Terms are lower-cased words without
stopwords, plus adjacent word pairs; each example counts a term once.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence

from pydantic import BaseModel, Field

_WORD = re.compile(r"[a-z0-9']+")
# Function words carry no intent; the list is short on purpose (negations and amounts stay).
STOPWORDS = frozenset(
    {"a", "am", "an", "and", "are", "at", "be", "can", "could", "did", "do", "does", "for", "from", "get"}
    | {"have", "how", "i", "i'm", "in", "is", "it", "me", "my", "of", "on", "please", "that", "the", "there"}
    | {"this", "to", "was", "what", "why", "with", "would", "you", "your"}
)
LEXICAL_FEATURES = ("word_fit_min", "word_fit_mean", "word_fit_max", "no_known_words")


def terms(text: str) -> list[str]:
    words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
    return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]


class IntentLexicon(BaseModel):
    """Per term, how many of each intent's examples contain it (sparse), and examples per intent."""

    alpha: float = 0.5
    examples: list[int]
    # term -> [intent index, count, intent index, count, ...]
    postings: dict[str, list[int]] = Field(default_factory=dict)

    @classmethod
    def fit(
        cls, texts: Sequence[str], labels: Sequence[int], intents: int, *, alpha: float = 0.5
    ) -> IntentLexicon:
        counts: dict[str, dict[int, int]] = {}
        examples = [0] * intents
        for text, label in zip(texts, labels, strict=True):
            examples[label] += 1
            for term in set(terms(text)):
                row = counts.setdefault(term, {})
                row[label] = row.get(label, 0) + 1
        postings = {
            term: [v for pair in sorted(row.items()) for v in pair] for term, row in sorted(counts.items())
        }
        return cls(alpha=alpha, examples=examples, postings=postings)

    def compile(self) -> CompiledLexicon:
        return CompiledLexicon(self)


class CompiledLexicon:
    """Log tables built once per head, so a message costs a few dictionary lookups per term."""

    def __init__(self, lexicon: IntentLexicon) -> None:
        a = lexicon.alpha
        k = len(lexicon.examples)
        self.intents = k
        total_examples = sum(lexicon.examples)
        occurrences = [0] * k
        for flat in lexicon.postings.values():
            for i in range(0, len(flat), 2):
                occurrences[flat[i]] += flat[i + 1]
        vocabulary = max(1, len(lexicon.postings))
        prior_total = max(1, total_examples)
        self.prior = [math.log(max(n, 1) / prior_total) for n in lexicon.examples]
        # Multinomial likelihood of an unseen (term, intent) pair and the gain when the intent's examples use it.
        self._unseen = [math.log(a / (occurrences[c] + a * vocabulary)) for c in range(k)]
        self._gain: dict[str, dict[int, float]] = {}
        # Document-frequency ratio log P(term | intent) - log P(term) for the gate's "word fit".
        self._fit_unseen = [math.log(a / (n + 2 * a)) for n in lexicon.examples]
        self._fit: dict[str, tuple[float, dict[int, float]]] = {}
        for term, flat in lexicon.postings.items():
            pairs = {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
            self._gain[term] = {c: math.log((n + a) / a) for c, n in pairs.items()}
            background = math.log((sum(pairs.values()) + a) / (total_examples + 2 * a))
            self._fit[term] = (
                background,
                {c: math.log((n + a) / (lexicon.examples[c] + 2 * a)) for c, n in pairs.items()},
            )

    def known(self, text: str) -> list[str]:
        return [t for t in terms(text) if t in self._gain]

    def log_likelihoods(self, known: Sequence[str]) -> list[float]:
        """log P(intent) + log P(words | intent) for every intent (multinomial naive Bayes)."""
        scores = [p + len(known) * u for p, u in zip(self.prior, self._unseen, strict=True)]
        for term in known:
            for c, gain in self._gain[term].items():
                scores[c] += gain
        return scores

    def word_fit(self, known: Sequence[str], intent: int) -> list[float]:
        """How much likelier each known word is among the intent's examples than among all: min, mean, max,
        and a flag for "no word the taxonomy has seen"."""
        if not known:
            return [0.0, 0.0, 0.0, 1.0]
        ratios = []
        for term in known:
            background, by_intent = self._fit[term]
            ratios.append(by_intent.get(intent, self._fit_unseen[intent]) - background)
        return [min(ratios), sum(ratios) / len(ratios), max(ratios), 0.0]
