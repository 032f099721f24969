"""What one triaged message asks of Bedrock, measured on the real request path instead of assumed.

The triage case messages (tests/triage_cases/cases.jsonl) go through the embedded engine against the demo help
center: the texts the intent classifier embeds (the message and, for a longer one, each sentence: with Titan, one
InvokeModel call each) and the search's query embedding are counted. The passages triage assembles (search hits
plus the other sections of the best articles) then go to the real BedrockAnswerComposer and
BedrockLanguageModel over a bedrock-runtime stand-in that records every Converse request and answers with a valid
grounded answer (the first sentence of the first passage) and a self-check that supports it. Bedrock reports its
own token counts; offline they are estimated at 4 characters a token of the request as sent (system prompt,
messages and tool schema), which is roughly what Claude's tokenizer gives for English. The same messages are
composed once more without the other sections, to show what reading them costs.

    python -m bench.bench_model_calls [--cases tests/triage_cases/cases.jsonl]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.fit_calibration import ROOT

CHARS_PER_TOKEN = 4.0


def _tokens(chars: int) -> int:
    return round(chars / CHARS_PER_TOKEN)


class CountingEmbeddings:
    """Passes embedding calls through and counts the texts: with Titan each text is one InvokeModel call."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.texts = 0
        self.chars = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def embed(self, texts: list[str], **options: Any) -> Any:
        self.texts += len(texts)
        self.chars += sum(len(t) for t in texts)
        return self.inner.embed(texts, **options)


class RecordingConverse:
    """A bedrock-runtime stand-in: records each Converse request and answers through the tool it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []  # (input tokens, output tokens), estimated

    def converse(self, **request: Any) -> dict[str, Any]:
        tool = request["toolConfig"]["tools"][0]["toolSpec"]["name"]
        prompt = request["messages"][0]["content"][0]["text"]
        if tool == "grounded_answer":
            passage = (
                prompt.split('<passage id="P1"', 1)[1].split(">", 1)[1].split("</passage>", 1)[0].strip()
            )
            first = passage.split(". ")[0][:300]
            answer = {"answerable": True, "sentences": [{"text": first, "passage": "P1", "quote": first}]}
        else:
            answer = {"verdicts": [{"index": 0, "supported": True}]}
        used = (_tokens(len(json.dumps(request))), _tokens(len(json.dumps(answer))))
        self.calls.append(used)
        return {
            "output": {
                "message": {
                    "role": "assistant",
                    "content": [{"toolUse": {"toolUseId": "t1", "name": tool, "input": answer}}],
                }
            },
            "stopReason": "tool_use",
            "usage": {"inputTokens": used[0], "outputTokens": used[1], "totalTokens": sum(used)},
        }


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "mean": round(statistics.fmean(ordered), 2),
        "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=ROOT / "tests" / "triage_cases" / "cases.jsonl")
    args = parser.parse_args(argv)

    from deflect.adapters.bedrock_model import BedrockAnswerComposer, BedrockLanguageModel
    from deflect.insight.usage import PriceTable
    from deflect.knowledge.models import Audience
    from deflect.ports import ModelRejected, ModelUnavailable
    from deflect.settings import Settings
    from deflect.triage import offline
    from deflect.triage.engine import RETRIEVAL_K

    tenant = offline.build(model_data_dir=Settings.from_env().model_data_dir)
    prices = PriceTable.load().model
    intents = tenant.engine.classifier.intents
    intents.embeddings = counting = CountingEmbeddings(intents.embeddings)
    tenant.index._embedder = searching = CountingEmbeddings(tenant.index._embedder_())
    texts = [json.loads(line)["text"] for line in args.cases.read_text(encoding="utf-8").splitlines() if line]
    audience = Audience(kind="customer")

    rows: list[dict[str, float]] = []
    for text in texts:
        counting.texts = searching.texts = 0
        results = tenant.search.search(tenant.ctx, text, k=RETRIEVAL_K, record_gap=False, audience=audience)
        sections = (
            tenant.search.sections(tenant.ctx, text, results, audience=audience) if results.hits else []
        )
        tenant.engine.classifier.classify(tenant.ctx, text)
        row = {"intent_embeddings": counting.texts, "search_embeddings": searching.texts}
        for name, passages in (("with_sections", [*results.hits, *sections]), ("hits_only", results.hits)):
            client = RecordingConverse()
            composer = BedrockAnswerComposer(BedrockLanguageModel(client, prices["model_id"]))
            # A refusal (e.g. a cited passage the stand-in could not name) still paid for its calls.
            with contextlib.suppress(ModelRejected, ModelUnavailable):
                composer.compose(tenant.ctx, text, passages)
            row[f"{name}_calls"] = len(client.calls)
            row[f"{name}_input_tokens"] = sum(c[0] for c in client.calls)
            row[f"{name}_output_tokens"] = sum(c[1] for c in client.calls)
        rows.append(row)

    def dollars(prefix: str) -> float:
        spent = [
            r[f"{prefix}_input_tokens"] * prices["input_per_million_tokens"]
            + r[f"{prefix}_output_tokens"] * prices["output_per_million_tokens"]
            for r in rows
        ]
        return round(statistics.fmean(spent) / 1e6, 6)

    report: dict[str, Any] = {"messages": len(rows), "chars_per_token": CHARS_PER_TOKEN}
    for key in rows[0]:
        report[key] = _summary([r[key] for r in rows])
    report["model_usd_per_message_with_sections"] = dollars("with_sections")
    report["model_usd_per_message_hits_only"] = dollars("hits_only")
    for key, value in report.items():
        print(f"{key}: {value}", file=sys.stderr)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
