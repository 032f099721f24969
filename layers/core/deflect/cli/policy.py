"""`deflect policy show|set|history`: a tenant's decision policy, its versions and who changed it.

    deflect policy show --tenant T [--version N]       # the current policy (or a past version) and its version
    deflect policy set --tenant T FILE [--actor NAME]  # JSON object of policy fields; omitted fields keep their value
    deflect policy history --tenant T                  # every version, newest first: who, when, which fields

`set` goes through the same service path as `PUT /v1/tenants/{id}/config`: a changed policy gets the next version, a
snapshot and a `policy.changed` audit event (chain `tenant-config`) naming the actor; an identical one changes
nothing. `show` prints the policy without its version inside, so `show | jq .policy` is a valid FILE for `set`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from deflect.cli.errors import environment_problem
from deflect.cli.files import UnusableFile, read_json
from deflect.cli.operator import admin_context
from deflect.domain.errors import DeflectError
from deflect.domain.tenancy import TenantContext


def register(commands: argparse._SubParsersAction) -> None:
    policy = commands.add_parser("policy", help="a tenant's versioned decision policy").add_subparsers(
        dest="policy_command", required=True
    )
    show = policy.add_parser("show", help="print the current policy (or a past version) with its version")
    show.add_argument("--tenant", required=True)
    show.add_argument("--version", type=int, help="a past version, as decisions record it (policy_version)")
    show.set_defaults(func=run_show)

    change = policy.add_parser("set", help="change policy fields (versioned, audited with the actor)")
    change.add_argument("--tenant", required=True)
    change.add_argument("file", type=Path, help="JSON object of policy fields, or - for standard input")
    change.add_argument("--actor", default=None, help="who makes the change (default: cli:<OS user>)")
    change.set_defaults(func=run_set)

    history = policy.add_parser("history", help="every policy version, newest first, with who and when")
    history.add_argument("--tenant", required=True)
    history.set_defaults(func=run_history)


def _current(tenant: str) -> tuple[TenantContext, Any, Any]:
    """The operator's context, the container and the tenant's configuration (None: no such tenant)."""
    from deflect.bootstrap import container

    ctx = admin_context(tenant)
    c = container()
    return ctx, c, c.tenants.find(ctx)


def _fail(code: str, message: str) -> int:
    print(json.dumps({"error": code, "message": message}), file=sys.stderr)
    return 1


def _failed(error: DeflectError) -> int:
    # no AWS credentials, say, is told with what to do about it, not as "GetItem: NoCredentialsError"
    return _fail(error.code, environment_problem(error) or error.detail)


def invalid_policy(error: Any) -> str:
    """What is wrong with each field, in pydantic's words as the admin API reports them (the value sent is never
    repeated): `not a valid policy: answer_threshold: Input should be less than or equal to 1`."""
    from deflect.domain.models import DecisionPolicy

    problems, unknown = [], False
    for problem in error.errors():
        field = ".".join(str(p) for p in problem["loc"][1:]) or "policy"
        if problem["type"] == "extra_forbidden":
            unknown = True
            problems.append(f"{field}: not a policy field")
        else:
            problems.append(f"{field}: {str(problem['msg']).removeprefix('Value error, ')}")
    message = "not a valid policy: " + "; ".join(problems)
    if unknown:
        message += f" (policy fields: {', '.join(f for f in DecisionPolicy.model_fields if f != 'version')})"
    return message


def _shown(tenant: str, snapshot: dict[str, Any] | None, policy: dict[str, Any]) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "version": policy["version"],
        "changed_by": (snapshot or {}).get("changed_by"),
        "changed_at": (snapshot or {}).get("changed_at"),
        # without "version": this object is what `policy set` takes
        "policy": {k: v for k, v in policy.items() if k != "version"},
    }


def run_show(args: argparse.Namespace) -> int:
    from deflect.triage.policy import history_pk, snapshot_sk

    try:
        ctx, c, config = _current(args.tenant)
        if config is None:
            return _fail("not_found", "tenant not found")
        version = args.version or config.policy.version
        item = c.store.get(ctx, history_pk(ctx.tenant_id), snapshot_sk(version))
    except DeflectError as error:
        return _failed(error)
    snapshot = dict(item.data) if item else None
    if version == config.policy.version:
        policy = config.policy.model_dump(mode="json")
    elif snapshot is not None:
        policy = snapshot["policy"]
    else:
        return _fail("not_found", f"policy version {version} is not recorded for {args.tenant}")
    print(json.dumps(_shown(args.tenant, snapshot, policy), indent=2))
    return 0


def run_set(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from deflect.bootstrap import container
    from deflect.services.tenant_admin import TenantConfigUpdate
    from deflect.triage.policy import history_pk, snapshot_sk

    try:
        fields = read_json(args.file)
    except UnusableFile as problem:  # missing, unreadable, not UTF-8, not JSON
        return _fail(problem.error_code, problem.message)
    if not isinstance(fields, dict):
        return _fail("malformed_payload", f"{args.file}: expected a JSON object of policy fields")
    try:
        update = TenantConfigUpdate.model_validate({"policy": fields})
    except ValidationError as error:
        return _fail("malformed_payload", invalid_policy(error))
    try:
        ctx = admin_context(args.tenant, args.actor)
        c = container()
        before = c.tenants.find(ctx)
        config = c.tenant_admin.update_config(ctx, ctx.tenant_id, update)
    except DeflectError as error:
        return _failed(error)
    changed = before is not None and config.policy.version != before.policy.version
    policy = config.policy.model_dump(mode="json")
    if changed:
        by_this_run = {"changed_by": ctx.actor, "changed_at": config.updated_at.isoformat()}
        shown = _shown(args.tenant, by_this_run, policy)
    else:
        # Nothing changed: who set the version still current, and when, as `policy show` reports them.
        try:
            item = c.store.get(ctx, history_pk(ctx.tenant_id), snapshot_sk(config.policy.version))
        except DeflectError as error:
            return _failed(error)
        shown = _shown(args.tenant, dict(item.data) if item else None, policy)
    shown["changed"] = changed
    print(json.dumps(shown, indent=2))
    return 0


def run_history(args: argparse.Namespace) -> int:
    from deflect.triage.policy import policy_history

    try:
        ctx, c, config = _current(args.tenant)
        if config is None:
            return _fail("not_found", "tenant not found")
        versions = policy_history(c.store, ctx)
    except DeflectError as error:
        return _failed(error)
    for snapshot in versions:
        version = snapshot["policy"]["version"]
        line = {
            "version": version,
            "current": version == config.policy.version,
            "changed_by": snapshot.get("changed_by"),
            "changed_at": snapshot.get("changed_at"),
            "changed": snapshot.get("changed"),
            "sha256": snapshot.get("sha256"),
        }
        if snapshot.get("changed_by") is None and snapshot.get("recorded_by"):
            # set before policy history existed: we only know when, and by whose change, it was superseded
            line.update(superseded_by=snapshot["recorded_by"], superseded_at=snapshot.get("recorded_at"))
        print(json.dumps(line))
    if not any(s["policy"]["version"] == config.policy.version for s in versions):
        # a tenant created before policy history whose policy never changed since
        print(json.dumps({"version": config.policy.version, "current": True, "changed_by": None}))
    print(
        json.dumps(
            {"tenant": args.tenant, "current": config.policy.version, "versions": max(len(versions), 1)}
        )
    )
    return 0
