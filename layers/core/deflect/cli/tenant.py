"""`deflect tenant create|show|rotate-secret|set-connection|profile|replay`: onboard a tenant, inspect it, rotate
secrets, connect writeback and telemetry, set its triage profile, replay quarantine.

Secrets and API keys are printed once, when created; `show` prints how many secrets each provider has, never values.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from deflect.cli.errors import environment_problem
from deflect.cli.files import UnusableFile, json_object, read_text
from deflect.cli.operator import add_actor, operator_name
from deflect.domain.errors import DeflectError, MalformedPayload

PROVIDERS = ("zendesk", "intercom", "freshdesk", "jira", "generic")


def register(commands: argparse._SubParsersAction) -> None:
    tenant = commands.add_parser("tenant", help="tenant onboarding and secrets").add_subparsers(
        dest="tenant_command", required=True
    )

    create = tenant.add_parser("create", help="create a tenant, its webhook secrets and its API key")
    create.add_argument("--tenant", required=True, help="tenant id (^[a-z0-9][a-z0-9-]{2,62}$)")
    create.add_argument("--name", required=True, help="display name")
    create.add_argument("--providers", default=",".join(PROVIDERS), help="comma list of helpdesks to accept")
    create.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="PROVIDER=VALUE",
        help="a signing secret the helpdesk generated (Zendesk signing secret, Intercom client secret)",
    )
    create.add_argument("--freshdesk-header", help="header that carries the Freshdesk shared secret")
    add_actor(create)
    create.set_defaults(func=run_create)

    show = tenant.add_parser("show", help="print a tenant's configuration and secret status")
    show.add_argument("--tenant", required=True)
    show.set_defaults(func=run_show)

    rotate = tenant.add_parser("rotate-secret", help="new current secret; the previous one keeps verifying")
    rotate.add_argument("--tenant", required=True)
    rotate.add_argument("--provider", required=True, choices=(*PROVIDERS, "api"))
    rotate.add_argument("--value", help="the new secret when the helpdesk generates it (Zendesk, Intercom)")
    add_actor(rotate)
    rotate.set_defaults(func=run_rotate)

    connect = tenant.add_parser(
        "set-connection",
        help="store writeback credentials (<connector>-writeback, JSON) or the diagnostic tools' telemetry token",
    )
    connect.add_argument("--tenant", required=True)
    connect.add_argument(
        "--name", required=True, help="zendesk-writeback … crm-writeback, generic-writeback, or telemetry"
    )
    given = connect.add_mutually_exclusive_group(required=True)
    given.add_argument("--value", help="the secret itself (prefer --file: shells keep history)")
    given.add_argument("--file", help="a file holding the secret, or - for standard input")
    add_actor(connect)
    connect.set_defaults(func=run_set_connection)

    profile = tenant.add_parser(
        "profile",
        help="print the triage profile (model ids, tool grants, telemetry), or change it with --set",
    )
    profile.add_argument("--tenant", required=True)
    profile.add_argument("--set", dest="changes", help="JSON file of fields to change (versioned, audited)")
    add_actor(profile)
    profile.set_defaults(func=run_profile)

    replay = tenant.add_parser("replay", help="re-run a quarantined webhook through the current parser")
    replay.add_argument("--tenant", required=True)
    replay.add_argument(
        "--key", required=True, help="quarantine_key from the 400 answer (also logged when quarantined)"
    )
    replay.add_argument(
        "--delivery-id",
        help="the helpdesk's delivery id, if it came without one (default: the delivery's own, or one derived "
        "from the body, so replaying twice stores one message)",
    )
    add_actor(replay)
    replay.set_defaults(func=run_replay)


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _fail(error: DeflectError | UnusableFile) -> int:
    if isinstance(error, UnusableFile):  # never the file's content: it may hold a secret
        code, message = error.error_code, error.message
    else:  # no AWS credentials, say, is told with what to do about it, not as "GetItem: NoCredentialsError"
        code, message = error.code, environment_problem(error) or error.detail
    print(json.dumps({"error": code, "message": message}), file=sys.stderr)
    return 1


def _secrets(pairs: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        provider, sep, value = pair.partition("=")
        if not sep or provider not in PROVIDERS or not value:
            raise SystemExit(f"--secret expects PROVIDER=VALUE with PROVIDER in {', '.join(PROVIDERS)}")
        found[provider] = value
    return found


def run_create(args: argparse.Namespace) -> int:
    from deflect.bootstrap import container

    providers = [p.strip() for p in args.providers.split(",") if p.strip()]
    try:
        created = container().tenant_admin.create(
            args.tenant,
            args.name,
            providers=providers,
            actor=operator_name(args.actor),
            provided_secrets=_secrets(args.secret),
            freshdesk_secret_header=args.freshdesk_header,
        )
    except DeflectError as error:
        return _fail(error)
    created["webhook_paths"] = {p: f"/v1/webhooks/{p}/{args.tenant}" for p in providers}
    created["note"] = (
        "api_key and webhook_secrets are shown once; store them in your helpdesk / secret manager now"
    )
    _print(created)
    return 0


def run_show(args: argparse.Namespace) -> int:
    from deflect.bootstrap import container

    try:
        _print(container().tenant_admin.show(args.tenant))
    except DeflectError as error:
        return _fail(error)
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    from deflect.bootstrap import container

    try:
        _print(
            container().tenant_admin.rotate_secret(
                args.tenant, args.provider, actor=operator_name(args.actor), value=args.value
            )
        )
    except DeflectError as error:
        return _fail(error)
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from deflect.bootstrap import container
    from deflect.domain.tenancy import TenantContext

    ctx = TenantContext(tenant_id=args.tenant, actor=operator_name(args.actor), via="cli")
    try:
        reply = container().intake.replay_quarantined(ctx, args.key, args.delivery_id)
    except MalformedPayload as error:  # still refused: what is wrong, and that the body was not lost
        return _fail(MalformedPayload(f"{error.detail} (the quarantined body stays at {args.key})"))
    except DeflectError as error:
        return _fail(error)
    _print({"status_code": reply.status_code, **reply.body})
    return 0


def run_set_connection(args: argparse.Namespace) -> int:
    from deflect.bootstrap import container

    try:
        value = args.value if args.value is not None else read_text(args.file).strip()
    except UnusableFile as problem:
        return _fail(problem)
    refused = connection_problem(args.name, value)
    if refused is not None:  # before any AWS call: what is wrong, and what the connection takes
        print(json.dumps({"error": "malformed_payload", "message": refused}), file=sys.stderr)
        return 1
    try:
        _print(
            container().tenant_admin.set_connection(
                args.tenant, args.name, value, actor=operator_name(args.actor)
            )
        )
    except DeflectError as error:
        return _fail(error)
    return 0


def connection_problem(name: str, value: str) -> str | None:
    """Why `set-connection --name NAME` would refuse `value`, naming the fields at fault and what that connection
    takes, never a value (they are secrets); None when it is accepted. The service checks again when it stores it
    (HelpdeskCredentials.parse, as writeback reads it) but names only the fields, not what is wrong with them."""
    from pydantic import ValidationError

    from deflect.helpdesk.errors import HelpdeskNotConfigured
    from deflect.helpdesk.models import HelpdeskCredentials
    from deflect.services.tenant_admin import TELEMETRY_SECRET, WRITEBACK_CONNECTORS, WRITEBACK_SUFFIX

    known = [f"{connector}{WRITEBACK_SUFFIX}" for connector in WRITEBACK_CONNECTORS]
    if name == TELEMETRY_SECRET:
        return None if value.strip() else "the telemetry token is empty"
    if name not in known:
        return f"unknown connection {name!r}: use {', '.join(known)} or {TELEMETRY_SECRET}"
    provider = name.removesuffix(WRITEBACK_SUFFIX)
    try:
        HelpdeskCredentials.parse(provider, value)
        return None
    except HelpdeskNotConfigured:
        pass
    required, alternatives = _connection_fields(provider)
    needs = ", ".join([*required, *([f"and {alternatives}"] if alternatives else [])])
    refused = f"{name} credentials are invalid: {{}} ({provider} needs {needs}{{}})"
    try:
        raw = json.loads(value)
    except ValueError as error:
        where = (
            f" at line {error.lineno} column {error.colno}" if isinstance(error, json.JSONDecodeError) else ""
        )
        return refused.format(f"not JSON{where}", "")
    if not isinstance(raw, dict):
        return refused.format("expected a JSON object", "")
    problems = []
    if raw.get("provider", provider) != provider:
        problems.append(f"provider: leave it out or give {provider!r}")
    missing = [field for field in required if not raw.get(field)]
    lacks = ", ".join(missing)
    if (
        provider == "zendesk"
        and not raw.get("oauth_token")
        and not (raw.get("email") and raw.get("api_token"))
    ):
        lacks = f"{lacks} and {alternatives}" if lacks else alternatives
    if lacks:
        problems.append(f"missing {lacks}")
    unknown = False
    try:
        HelpdeskCredentials.model_validate({**raw, "provider": provider})
    except ValidationError as error:
        for found in error.errors(include_input=False):
            field = ".".join(str(part) for part in found["loc"])
            reason = str(found["msg"]).removeprefix("Value error, ").removeprefix(f"{field} ")
            if (found["type"] == "missing" and field in missing) or (not field and lacks):
                continue  # said above, with what would do instead
            if found["type"] == "extra_forbidden":
                unknown = True
                problems.append(f"{field}: not a field of a {provider} connection")
            else:
                problems.append(f"{field}: {reason}" if field else reason)
    accepted = [
        field
        for field in HelpdeskCredentials.model_fields
        if field != "provider" and field not in required and field not in alternatives
    ]
    return refused.format(
        "; ".join(problems) or "not usable", f"; also accepted: {', '.join(accepted)}" * unknown
    )


def _connection_fields(provider: str) -> tuple[list[str], str]:
    """The fields a provider's connection must have, and the alternatives it must have one of (Zendesk's)."""
    from deflect.helpdesk.models import _REQUIRED  # what HelpdeskCredentials checks, per provider

    alternatives = "either email + api_token, or oauth_token" if provider == "zendesk" else ""
    return ["base_url", *_REQUIRED[provider]], alternatives


def run_profile(args: argparse.Namespace) -> int:
    from deflect.bootstrap import container
    from deflect.domain.tenancy import TenantContext
    from deflect.triage.profile import TriageProfiles

    try:
        changes = json_object(args.changes, "object of profile fields") if args.changes else None
    except UnusableFile as problem:
        return _fail(problem)
    c = container()
    ctx = TenantContext(
        tenant_id=args.tenant, actor=operator_name(args.actor), roles=frozenset({"admin"}), via="cli"
    )
    profiles = TriageProfiles(c.store)
    try:
        c.tenants.get(ctx)  # a profile belongs to a tenant that exists
        profile = profiles.get(ctx) if changes is None else profiles.change(ctx, c.audit, changes)
    except DeflectError as error:
        return _fail(error)
    _print(profile.model_dump(mode="json"))
    return 0
