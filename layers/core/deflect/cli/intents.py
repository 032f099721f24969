"""`deflect intents`: train, list and activate a tenant's versioned intent taxonomy.

    deflect intents train --tenant T FILE        # JSONL {text,label} (+ optional {intent,...} rows) or JSON
    deflect intents train --tenant T --starter   # the built-in support taxonomy
    deflect intents list --tenant T
    deflect intents activate --tenant T --version N   # roll back or forward

Training embeds the examples with the deployment's embeddings (local MiniLM, or Bedrock Titan v2 when
MODEL_BACKEND=bedrock), fits the head and its out-of-scope gate (numpy: run it where the dev extra is
installed), stores it as a new immutable version, audits the change (chain `tenant-config`, with who did it)
and only then makes it the version triage uses.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from deflect.cli.files import MALFORMED, UnusableFile, read_text
from deflect.cli.operator import admin_context
from deflect.domain.tenancy import TenantContext

if TYPE_CHECKING:
    from deflect.triage.intents import Taxonomy

CHAIN = "tenant-config"


def register(commands: argparse._SubParsersAction) -> None:
    intents = commands.add_parser("intents", help="tenant intent taxonomies").add_subparsers(
        dest="intents_command", required=True
    )
    train = intents.add_parser("train", help="train a new taxonomy version and make it current")
    train.add_argument("--tenant", required=True)
    train.add_argument("file", nargs="?", type=Path, help="JSONL {text,label} or JSON {intents:[...]}")
    train.add_argument("--starter", action="store_true", help="train the built-in starter taxonomy")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--max-in-scope-loss",
        type=float,
        default=0.025,
        help="in-scope accuracy the out-of-scope gate may give up on held-out folds (more catches more)",
    )
    train.add_argument("--actor", default=None, help="who trains it (default: the OS user)")
    train.add_argument("--no-activate", action="store_true", help="store the version without using it yet")
    train.set_defaults(func=run_train)

    listing = intents.add_parser("list", help="stored versions and the current one")
    listing.add_argument("--tenant", required=True)
    listing.set_defaults(func=run_list)

    activate = intents.add_parser("activate", help="make a stored version the current one")
    activate.add_argument("--tenant", required=True)
    activate.add_argument("--version", type=int, required=True)
    activate.add_argument("--actor", default=None)
    activate.set_defaults(func=run_activate)


def run_train(args: argparse.Namespace) -> int:
    from deflect.bootstrap import container
    from deflect.embedded.model import train_taxonomy
    from deflect.triage.intents import next_version, starter_taxonomy

    if bool(args.file) == bool(args.starter):
        raise SystemExit("give a taxonomy FILE or --starter")
    taxonomy = starter_taxonomy() if args.starter else read_taxonomy(args.file)
    ctx = admin_context(args.tenant, args.actor)
    c = container()
    c.tenants.get(ctx)  # the tenant must exist and be active
    store = c.intent_models
    version = next_version(store, args.tenant)
    head = train_taxonomy(
        c.intent_embeddings,
        taxonomy,
        tenant_id=args.tenant,
        version=version,
        trained_by=ctx.actor,
        seed=args.seed,
        max_in_scope_loss=args.max_in_scope_loss,
    )
    store.save(head)
    summary = {
        "tenant": args.tenant,
        "version": version,
        "intents": len(head.labels),
        "examples": int(head.metrics.get("examples", 0)),
        "taxonomy_sha256": head.taxonomy_sha256,
        "embedding_model_id": head.embedding_model_id,
        "oos_threshold": round(head.gate.threshold, 4) if head.gate else None,
        "gate_features": head.gate.features if head.gate else [],
        "word_weight": head.lexical_weight,
        "folds": head.gate.folds if head.gate else {},
        "active": not args.no_activate,
    }
    details = {k: v for k, v in summary.items() if k not in ("tenant", "active")}
    # Every stored version has its audit event (who trained which taxonomy), whether or not it is used yet.
    c.audit.append(ctx, CHAIN, "intents.trained", {"actor": ctx.actor, "to_version": version, **details})
    if not args.no_activate:
        _activate(c, ctx, version, details)
    print(json.dumps(summary))
    return 0


def read_taxonomy(path: Path) -> Taxonomy:
    """The taxonomy in a user's file; UnusableFile (one line, no traceback) when it cannot be read or is not one."""
    from deflect.domain.errors import MalformedPayload
    from deflect.triage.intents import parse_taxonomy

    text = read_text(path)
    try:
        return parse_taxonomy(text)
    except MalformedPayload as error:
        raise UnusableFile(path, error.detail, code=MALFORMED) from None


def _activate(c: object, ctx: TenantContext, version: int, details: dict) -> None:
    store = c.intent_models  # type: ignore[attr-defined]
    previous = store.current_version(ctx.tenant_id)
    # Audited first: a version triage uses always has its audit event (who, when, which taxonomy).
    c.audit.append(  # type: ignore[attr-defined]
        ctx,
        CHAIN,
        "intents.activated",
        {"actor": ctx.actor, "from_version": previous, "to_version": version, **details},
    )
    store.activate(ctx.tenant_id, version)


def run_list(args: argparse.Namespace) -> int:
    from deflect.bootstrap import container

    store = container().intent_models
    current = store.current_version(args.tenant)
    for version in store.versions(args.tenant):
        head = store.load(args.tenant, version)
        if head is None:
            continue
        print(
            json.dumps(
                {
                    "version": version,
                    "current": version == current,
                    "intents": len(head.labels),
                    "trained_by": head.trained_by,
                    "trained_at": head.trained_at.isoformat(),
                    "taxonomy_sha256": head.taxonomy_sha256,
                }
            )
        )
    print(json.dumps({"tenant": args.tenant, "current": current}))
    return 0


def run_activate(args: argparse.Namespace) -> int:
    from deflect.bootstrap import container

    c = container()
    ctx = admin_context(args.tenant, args.actor)
    head = c.intent_models.load(args.tenant, args.version)
    if head is None:
        print(f"version {args.version} does not exist for {args.tenant}", file=sys.stderr)
        return 1
    _activate(c, ctx, args.version, {"taxonomy_sha256": head.taxonomy_sha256})
    print(json.dumps({"tenant": args.tenant, "current": args.version}))
    return 0
