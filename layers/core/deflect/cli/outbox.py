"""`deflect outbox list|replay|sweep --tenant T`: see what writeback has not delivered, and send it again."""

from __future__ import annotations

import argparse
import json
from typing import Any

from deflect.cli.operator import add_actor, operator_name
from deflect.domain.tenancy import TenantContext

STATUSES = ("pending", "dispatching", "failed", "conflict", "dead")


def register(commands: argparse._SubParsersAction) -> None:
    outbox = commands.add_parser("outbox", help="writeback outbox").add_subparsers(
        dest="outbox_command", required=True
    )

    listing = outbox.add_parser("list", help="items not yet delivered: pending, failed, conflict, dead")
    listing.add_argument("--tenant", required=True)
    listing.add_argument(
        "--status", action="append", choices=STATUSES, help="repeatable; default: all of them"
    )
    listing.add_argument("--limit", type=int, default=None)
    listing.set_defaults(func=run_list)

    replay = outbox.add_parser(
        "replay",
        help="send dead/failed items again (the receipt check still applies); items the DLQ holds that were never "
        "finished (still pending, or a delivery that timed out) are queued again before their message is removed",
    )
    replay.add_argument("--tenant", required=True)
    replay.add_argument(
        "--id", dest="ids", action="append", default=[], help="outbox id; repeatable; default: all"
    )
    replay.add_argument("--status", action="append", choices=STATUSES, help="default: dead and failed")
    replay.add_argument(
        "--keep-dlq",
        action="store_true",
        help="leave the DLQ as it is (and its pending items where they are)",
    )
    add_actor(replay)
    replay.set_defaults(func=run_replay)

    sweep = outbox.add_parser("sweep", help="re-queue items that nobody is working on")
    sweep.add_argument("--tenant", required=True)
    sweep.add_argument("--older-than", type=float, default=300.0, help="seconds since the last change")
    add_actor(sweep)
    sweep.set_defaults(func=run_sweep)


def _context(args: argparse.Namespace) -> TenantContext:
    return TenantContext(
        tenant_id=args.tenant,
        actor=operator_name(getattr(args, "actor", None)),
        roles=frozenset({"admin"}),
        via="cli",
    )


def _service(args: argparse.Namespace) -> Any:
    service = getattr(args, "service", None)  # tests pass one in; the command line uses the composition root
    if service is None:
        from deflect.bootstrap import container

        service = container().writeback
    return service


def run_list(args: argparse.Namespace) -> int:
    ctx = _context(args)
    items = _service(args).list(ctx, tuple(args.status or STATUSES), limit=args.limit)
    for item in items:
        print(
            json.dumps(
                {
                    "outbox_id": item.outbox_id,
                    "status": item.status,
                    "kind": item.kind,
                    "provider": item.provider,
                    "ticket_id": item.ticket_id,
                    "attempts": item.attempts,
                    "last_error": item.last_error,
                    "created_at": item.created_at.isoformat(),
                    "updated_at": item.updated_at.isoformat(),
                }
            )
        )
    counts: dict[str, int] = {}
    for item in items:
        counts[item.status] = counts.get(item.status, 0) + 1
    print(json.dumps({"tenant": args.tenant, "items": len(items), "by_status": counts}))
    return 0


def run_replay(args: argparse.Namespace) -> int:
    ctx = _context(args)
    service = _service(args)
    replayed = service.replay(ctx, tuple(args.ids), tuple(args.status or ("dead", "failed")))
    # The drain also queues again what the DLQ holds of items still waiting to go out: removing their message
    # without that would leave them pending with nothing to ever send them.
    drained = None if args.keep_dlq else service.drain_dead_letters(ctx, replayed)
    print(
        json.dumps(
            {
                "tenant": args.tenant,
                "replayed": replayed,
                "requeued_from_dlq": drained.requeued if drained else [],
                "dlq_messages_removed": drained.removed if drained else 0,
            }
        )
    )
    missing = sorted(set(args.ids) - set(replayed))
    if missing:
        print(json.dumps({"not_replayed": missing, "why": "unknown id, or not in a replayable status"}))
        return 1
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    ctx = _context(args)
    queued = _service(args).sweep(ctx, args.older_than)
    print(json.dumps({"tenant": args.tenant, "requeued": queued}))
    return 0
