"""`make bench`: run every bench/bench_*.py module's main() in turn, each in a fresh process, then summarise.

    python -m bench                 # all of them
    python -m bench foundation      # only bench_foundation (names without the bench_ prefix)

A fresh process per module keeps one benchmark's imports, environment and moto state out of the next one's
numbers. Each module's last output line is its summary.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def modules(selected: list[str]) -> list[str]:
    found = sorted(p.stem for p in (ROOT / "bench").glob("bench_*.py"))
    if selected:
        wanted = {s if s.startswith("bench_") else f"bench_{s}" for s in selected}
        unknown = wanted - set(found)
        if unknown:
            raise SystemExit(f"no such benchmark: {', '.join(sorted(unknown))} (have: {', '.join(found)})")
        found = [m for m in found if m in wanted]
    return found


def run(module: str) -> tuple[int, float, str]:
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "core"), str(ROOT)])}
    code = f"import sys; from bench import {module} as m; sys.exit(m.main([]) or 0)"
    process = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=None, text=True
    )
    last = ""
    assert process.stdout is not None
    for line in process.stdout:
        print(line, end="", flush=True)
        if line.strip():
            last = line.strip()
    return process.wait(), time.perf_counter() - started, last


def main(argv: list[str] | None = None) -> int:
    names = modules(list(sys.argv[1:] if argv is None else argv))
    results = []
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        results.append((name, *run(name)))
    print("\n=== summary ===")
    for name, code, seconds, last in results:
        status = "ok" if code == 0 else f"exit {code}"
        print(f"{name:<22} {status:<8} {seconds:6.1f}s  {last[:200]}")
    return 0 if all(code == 0 for _, code, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
