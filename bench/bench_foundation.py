"""Foundation benchmarks (run by `make bench`; never a test).

1. Cold import of each function's handler module (functions/*/app.py): median over fresh processes, beside
   `import boto3` alone, and the ratio (target: every handler <= 1.6 x boto3). Runs are interleaved so load
   on the machine hits every target alike.
2. The core layer built for the Lambda platform (pip for manylinux2014_aarch64 / CPython 3.13, binary wheels
   only, plus the deflect package): zipped and unzipped size, and the largest packages in it.
3. Local stack cold start: seconds from start_stack() to a served GET /v1/health.

    python -m bench.bench_foundation [--runs 10] [--skip-layer] [--skip-stack]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.6


def lambda_environment() -> dict[str, str]:
    """What a function sees at import on Lambda: the template's literal global variables (references to resources
    are left out); no endpoint, no credentials."""
    from infra.local import template

    literal = {k: v for k, v in template.globals_environment().items() if isinstance(v, str)}
    return {**literal, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "DEFLECT_STAGE": "dev"}


_TIMER = """
import importlib.util, sys, time
path = sys.argv[1]
started = time.perf_counter()
if path == "boto3":
    import boto3
else:
    spec = importlib.util.spec_from_file_location("app", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["app"] = module
    spec.loader.exec_module(module)
print(time.perf_counter() - started)
"""


def _one_import(target: str, env: dict[str, str]) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _TIMER, target], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def import_times(runs: int) -> dict[str, Any]:
    handlers = {
        p.parent.name: str(p.relative_to(ROOT)) for p in sorted((ROOT / "functions").glob("*/app.py"))
    }
    targets = {"boto3": "boto3", **handlers}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "DEFLECT_"))}
    # The warm-up below must be able to write bytecode, or every run compiles whatever changed since the last one.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(lambda_environment())
    env["PYTHONPATH"] = str(ROOT / "layers" / "core")
    for target in targets.values():
        _one_import(target, env)  # warm the bytecode caches once; Lambda's snapshot starts warm too
    samples: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(runs):
        for name, target in targets.items():
            samples[name].append(_one_import(target, env))
    baseline = statistics.median(samples["boto3"])
    rows = {}
    for name, values in samples.items():
        median = statistics.median(values)
        rows[name] = {"median_ms": round(median * 1000, 1), "ratio": round(median / baseline, 2)}
    over = [n for n in handlers if rows[n]["ratio"] > TARGET_RATIO]
    return {
        "part": "cold_import",
        "runs": runs,
        "target_ratio": TARGET_RATIO,
        "results": rows,
        "over_target": over,
    }


def layer_size() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="deflect-layer-") as tmp:
        site = Path(tmp) / "python"
        command = [
            sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
            "-r", str(ROOT / "layers" / "core" / "requirements.txt"),
            "--platform", "manylinux2014_aarch64", "--python-version", "3.13", "--implementation", "cp",
            "--only-binary=:all:", "--target", str(site),
        ]  # fmt: skip
        built = subprocess.run(command, capture_output=True, text=True)
        if built.returncode != 0:  # pip's own warnings are noise unless the build failed
            raise RuntimeError(f"pip could not build the layer:\n{built.stdout}\n{built.stderr}")
        shutil.copytree(
            ROOT / "layers" / "core" / "deflect",
            site / "deflect",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        archive = Path(tmp) / "layer.zip"
        unzipped = 0
        packages: dict[str, int] = {}
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zipped:
            for path in sorted(site.rglob("*")):
                if path.is_file():
                    zipped.write(path, path.relative_to(Path(tmp)))
                    size = path.stat().st_size
                    unzipped += size
                    top = path.relative_to(site).parts[0]
                    packages[top] = packages.get(top, 0) + size
        largest = sorted(packages.items(), key=lambda kv: -kv[1])[:8]
        return {
            "part": "core_layer",
            "platform": "manylinux2014_aarch64 / cp313",
            "zipped_mb": round(archive.stat().st_size / 1e6, 2),
            "unzipped_mb": round(unzipped / 1e6, 2),
            "largest_unzipped_mb": {name: round(size / 1e6, 2) for name, size in largest},
        }


def stack_cold_start() -> dict[str, Any]:
    import urllib.request

    from infra.local.stack import start_stack

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="deflect-bench-") as data_dir:
        stack = start_stack(port=0, data_dir=data_dir, separate_process=True)
        try:
            with urllib.request.urlopen(stack.base_url + "/v1/health", timeout=30) as answer:
                status = json.loads(answer.read())["status"]
            ready = time.perf_counter() - started
        finally:
            stack.stop()
    return {
        "part": "local_stack",
        "cold_start_s": round(ready, 2),
        "boot_inside_s": stack.started_s,
        "health": status,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--skip-layer", action="store_true", help="no pip build (needs the package registry)")
    parser.add_argument("--skip-stack", action="store_true")
    args = parser.parse_args(argv)

    results = [import_times(max(10, args.runs))]
    print(json.dumps(results[-1]), flush=True)
    if not args.skip_layer:
        results.append(layer_size())
        print(json.dumps(results[-1]), flush=True)
    if not args.skip_stack:
        results.append(stack_cold_start())
        print(json.dumps(results[-1]), flush=True)

    imports = results[0]["results"]
    ratios = ", ".join(f"{n} {r['ratio']}x" for n, r in imports.items() if n != "boto3")
    parts = [
        f"import boto3 {imports['boto3']['median_ms']} ms; handlers {ratios} (target <= {TARGET_RATIO}x)"
    ]
    for result in results[1:]:
        if result["part"] == "core_layer":
            parts.append(f"layer {result['zipped_mb']} MB zipped / {result['unzipped_mb']} MB")
        if result["part"] == "local_stack":
            parts.append(f"stack cold start {result['cold_start_s']} s")
    print("foundation: " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
