"""`deflect audit verify`: recompute the hash chain of a ticket or of a whole tenant."""

from __future__ import annotations

import argparse
import json

from deflect.domain.tenancy import TenantContext


def register(commands: argparse._SubParsersAction) -> None:
    audit = commands.add_parser("audit", help="audit log").add_subparsers(dest="audit_command", required=True)
    verify = audit.add_parser("verify", help="recompute the hash chain and name the first broken link")
    verify.add_argument("--tenant", required=True)
    verify.add_argument("--ticket")
    verify.set_defaults(func=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    from deflect.bootstrap import container

    ctx = TenantContext(tenant_id=args.tenant, actor="cli:audit", via="cli")
    log = container().audit
    reports = [log.verify(ctx, args.ticket)] if args.ticket else log.verify_tenant(ctx)
    for report in reports:
        print(json.dumps(report.as_dict()))
    broken = [r for r in reports if not r.ok]
    warnings = sum(len(r.warnings) for r in reports)
    summary = {"tenant": args.tenant, "tickets": len(reports), "broken": len(broken), "ok": not broken}
    print(json.dumps({**summary, "warnings": warnings}))
    return 1 if broken else 0
