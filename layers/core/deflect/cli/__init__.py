"""`deflect`: the operators' command line. Sub-commands live in their own modules, each with `register()`.

`eval` is a group shared by several modules: they add their evaluation through `register_eval()`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# Modules that contribute sub-commands. A module may define register(subparsers) and/or register_eval(eval_subparsers).
COMMAND_MODULES = (
    "deflect.cli.audit",
    "deflect.cli.tenant",
    "deflect.cli.kb",
    "deflect.cli.eval_retrieval",
    "deflect.cli.intents",
    "deflect.cli.eval_triage",
    "deflect.cli.replay",
    "deflect.cli.outbox",
    "deflect.cli.tasks",
    "deflect.cli.report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deflect", description="Deflect operators' command line")
    commands = parser.add_subparsers(dest="command", required=True)
    evaluations = commands.add_parser("eval", help="measure quality on a data set").add_subparsers(
        dest="evaluation", required=True
    )
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as missing:
            if missing.name == name:
                continue  # that capability is not installed in this build
            raise
        if hasattr(module, "register"):
            module.register(commands)
        if hasattr(module, "register_eval"):
            module.register_eval(evaluations)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # EMF metrics are for Lambda's log stream; on an operator's terminal they would garble JSON output.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
