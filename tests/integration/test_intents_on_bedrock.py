"""The production intent path, wired by the container with MODEL_BACKEND=bedrock: `deflect intents train` embeds the
examples with Titan through bedrock-runtime InvokeModel (answered at the boundary by a before-send hook that checks
the exact request), stores the versioned head as locked evidence in S3 (moto), and triage classifies with it."""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from deflect.domain.models import TenantConfig
from deflect.domain.tenancy import TenantContext
from deflect.repositories import save
from tests.integration.test_triage_cli import TAXONOMY

TENANT = "acme-bedrock"
DIMENSIONS = 256


class _Raw(io.BytesIO):
    """An HTTP body botocore can both stream (parsing) and read (InvokeModel's StreamingBody)."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.getvalue()


def titan(text: str) -> list[float]:
    """A deterministic stand-in for Titan's vector: hashed words, unit length."""
    vector = [0.0] * DIMENSIONS
    for word in re.findall(r"[a-z]+", text.lower()):
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % DIMENSIONS] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


@pytest.fixture
def bedrock(moto_stack: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    from deflect import bootstrap

    monkeypatch.setenv("MODEL_BACKEND", "bedrock")
    monkeypatch.setenv("EMBEDDING_DIMENSIONS", str(DIMENSIONS))
    monkeypatch.setenv("MODEL_DATA_DIR", str(tmp_path / "models"))  # must stay unused on this backend
    bootstrap.reset()
    container = bootstrap.container()
    seen: dict[str, Any] = {"bodies": [], "models": set()}

    def invoke_model(request: Any, **_: Any) -> AWSResponse:
        body = json.loads(request.body)
        seen["bodies"].append(body)
        seen["models"].add(urllib.parse.unquote(request.url.split("/model/")[1].split("/")[0]))
        answer = {
            "embedding": titan(body["inputText"]),
            "inputTextTokenCount": len(body["inputText"].split()),
        }
        return AWSResponse(
            request.url, 200, {"Content-Type": "application/json"}, _Raw(json.dumps(answer).encode())
        )

    container.client("bedrock-runtime").meta.events.register(
        "before-send.bedrock-runtime.InvokeModel", invoke_model
    )
    for tenant in (TENANT, "globex-bedrock"):
        ctx = TenantContext.system(tenant, actor="test")
        save(
            container.store,
            ctx,
            [container.tenants.save_write(TenantConfig(tenant_id=tenant, display_name=tenant))],
        )
    yield {"container": container, "seen": seen, "tmp": tmp_path}
    bootstrap.reset()


def test_a_taxonomy_trained_on_titan_is_stored_in_the_evidence_bucket_and_classifies(
    bedrock, tmp_path, capsys
):
    from deflect.cli import main

    taxonomy = tmp_path / "intents.jsonl"
    taxonomy.write_text(
        "\n".join(json.dumps({"text": t, "label": label}) for label, texts in TAXONOMY for t in texts)
    )
    assert main(["intents", "train", "--tenant", TENANT, str(taxonomy), "--actor", "admin:dana"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["embedding_model_id"] == "amazon.titan-embed-text-v2:0" and summary["version"] == 1

    seen = bedrock["seen"]
    # Titan's request shape: one text per call, the configured dimensions, unit vectors asked for.
    assert seen["models"] == {"amazon.titan-embed-text-v2:0"}
    assert all(set(b) == {"inputText", "dimensions", "normalize"} for b in seen["bodies"])
    assert {b["dimensions"] for b in seen["bodies"]} == {DIMENSIONS}
    assert len(seen["bodies"]) == sum(len(texts) for _, texts in TAXONOMY)
    assert not (tmp_path / "models").exists()  # nothing of the embedded default was used

    c = bedrock["container"]
    s3 = c.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=c.settings.evidence_bucket).get("Contents", [])]
    assert any(k.startswith(f"tenant={TENANT}/") and "intent" in k for k in keys)

    prediction = c.intent_classifier.classify(TenantContext.system(TENANT), "please refund my last payment")
    assert prediction.intent == "refund" and prediction.taxonomy_version == 1
    assert seen["bodies"][-1]["inputText"] == "please refund my last payment"
    # Another tenant has no head (and Bedrock has no built-in taxonomy): it is not classified with this one.
    other = c.intent_classifier.classify(
        TenantContext.system("globex-bedrock"), "please refund my last payment"
    )
    assert other.intent != "refund" and other.taxonomy_version == 0
