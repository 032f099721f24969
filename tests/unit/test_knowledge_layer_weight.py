"""The Lambda layer does not grow by the embedded engine: with the OpenSearch backend, the retrieval handler and
everything it builds import opensearch-py and boto3, never tantivy, onnxruntime, tokenizers or numpy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import importlib.util, json, os, sys
os.environ.update({"KNOWLEDGE_BACKEND": "opensearch", "OPENSEARCH_ENDPOINT": "https://search.example.es.amazonaws.com",
                   "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
                   "POWERTOOLS_TRACE_DISABLED": "1"})
spec = importlib.util.spec_from_file_location("retrieval_app", "functions/retrieval/app.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
from deflect.bootstrap import container
built = container()
index, ingestion, search = built.knowledge_index, built.knowledge_ingestion, built.knowledge_search
import deflect.knowledge.importers, deflect.knowledge.bulk_import
print(json.dumps({"index": type(index).__name__,
                  "loaded": sorted(m for m in ("tantivy", "onnxruntime", "tokenizers", "numpy") if m in sys.modules)}))
"""


def test_the_opensearch_backend_never_loads_the_embedded_engine():
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT / 'layers' / 'core'}:{ROOT}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == '{"index": "OpenSearchKnowledgeIndex", "loaded": []}'
