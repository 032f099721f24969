"""`deflect tasks list --tenant T`: the tenant's human tasks as agents see them (near-due first)."""

from __future__ import annotations

import argparse
import json

from deflect.domain.tenancy import TenantContext

STATUSES = ("open", "claimed", "decided", "expired", "reassigned", "failed")


def register(commands: argparse._SubParsersAction) -> None:
    tasks = commands.add_parser("tasks", help="human tasks of escalations").add_subparsers(
        dest="tasks_command", required=True
    )
    listing = tasks.add_parser("list", help="list a tenant's tasks, near-due first")
    listing.add_argument("--tenant", required=True)
    listing.add_argument("--queue")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    from deflect.bootstrap import container

    # Operators read queues like a supervisor would; the CLI never decides.
    ctx = TenantContext(tenant_id=args.tenant, actor="cli:tasks", roles=frozenset({"supervisor"}), via="cli")
    tasks = container().approvals.list_tasks(ctx, args.queue, args.status, args.limit)
    for task in tasks:
        print(json.dumps(task, sort_keys=True))
    near_due = sum(t["near_due"] for t in tasks)
    print(json.dumps({"tenant": args.tenant, "tasks": len(tasks), "near_due": near_due}))
    return 0
