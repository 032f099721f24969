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
    "deflect.cli.policy",
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
    parser.add_argument(
        "--local", action="store_true", help="act on the running `make run` stack instead of AWS"
    )
    parser.add_argument(
        "--stack-file", default=".deflect-data/stack.json", help="with --local: the stack's description"
    )
    parser.add_argument(
        "--stack",
        default=None,
        metavar="NAME",
        help="act on a deployed CloudFormation stack, with the settings its functions use (your credentials)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an error, not just its message (also DEFLECT_DEBUG=1)",
    )
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
    if args.local and args.stack:
        raise SystemExit("give --local or --stack, not both")
    from deflect.cli import errors

    if args.local:
        errors.use_target(errors.Target("local", args.stack_file))
        _use_local_stack(args.stack_file)
    elif args.stack:
        from deflect.cli.stack import use_deployed_stack

        errors.use_target(errors.Target("stack", args.stack))
        use_deployed_stack(args.stack)
    else:
        errors.use_target(errors.Target("aws"))
    try:
        return int(args.func(args) or 0)
    except Exception as error:
        # The domain's errors and the operator's AWS set-up are told in one line; a bug keeps its traceback.
        if args.debug or errors.debugging():
            raise
        message = errors.explain(error, tenant=getattr(args, "tenant", None))
        if message is None:
            raise
        raise SystemExit(message) from None


def _use_local_stack(path: str) -> None:
    """Point this process's settings at the local stack's moto, with the same resource names its handlers use."""
    from pathlib import Path

    from deflect.cli.files import MALFORMED, UnusableFile, read_json

    described = Path(path)
    if not described.exists():
        raise SystemExit(f"{path} not found: is `make run` running?")
    stack = read_json(described)
    environment = stack.get("environment") if isinstance(stack, dict) else None
    if not isinstance(environment, dict):
        raise UnusableFile(path, "not the stack description `make run` writes", code=MALFORMED)
    os.environ.update({str(name): str(value) for name, value in environment.items()})
    from deflect import bootstrap

    bootstrap.reset()


if __name__ == "__main__":
    sys.exit(main())
