"""`deflect tenant create|show|rotate-secret`: onboarding prints secrets once, rotation keeps two valid."""

from __future__ import annotations

import json

import pytest

from deflect.cli import main
from deflect.domain.errors import SignatureInvalid
from deflect.domain.tenancy import TenantContext
from deflect.webhooks import sign
from tests.integration.intake_support import moto_harness, sample


@pytest.fixture(scope="module")
def harness():
    yield from moto_harness()


def run(capsys, *argv: str) -> tuple[int, dict]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


def test_create_show_and_rotate(harness, capsys):
    code, created = run(
        capsys, "tenant", "create", "--tenant", "globex", "--name", "Globex", "--providers", "zendesk,generic",
        "--secret", "zendesk=zd-signing-secret",
    )  # fmt: skip
    assert code == 0
    assert created["api_key"].startswith("dfk_globex_")
    assert set(created["webhook_secrets"]) == {"zendesk", "generic"}
    assert created["webhook_paths"]["generic"] == "/v1/webhooks/generic/globex"

    code, shown = run(capsys, "tenant", "show", "--tenant", "globex")
    assert code == 0 and shown["secrets"] == {"zendesk": 1, "generic": 1, "api": 1}
    assert created["webhook_secrets"]["generic"] not in json.dumps(shown) and created[
        "api_key"
    ] not in json.dumps(shown)

    from deflect.bootstrap import container

    intake = container().intake  # the CLI's own container: secrets are cached per process for a minute
    body = sample("generic", "message_created")
    first = created["webhook_secrets"]["generic"]
    code, rotated = run(capsys, "tenant", "rotate-secret", "--tenant", "globex", "--provider", "generic")
    second = rotated["secret"]
    for delivery, secret in (("r-1", first), ("r-2", second)):  # both valid during the rotation
        assert (
            intake.receive_webhook(
                "generic", "globex", sign("generic", secret, body, delivery_id=delivery), body
            ).status_code
            == 200
        )
    run(capsys, "tenant", "rotate-secret", "--tenant", "globex", "--provider", "generic")
    with pytest.raises(SignatureInvalid):  # two rotations later the first secret is gone
        intake.receive_webhook("generic", "globex", sign("generic", first, body, delivery_id="r-3"), body)

    code, new_key = run(capsys, "tenant", "rotate-secret", "--tenant", "globex", "--provider", "api")
    assert intake.authenticate_api_key(new_key["secret"])[0].tenant_id == "globex"
    assert (
        intake.authenticate_api_key(created["api_key"])[0].tenant_id == "globex"
    )  # previous key still valid

    types = [
        e.type for e in harness.container().audit.entries(TenantContext.system("globex"), "tenant-config")
    ]
    assert types == [
        "tenant.created",
        "tenant.secret_rotated",
        "tenant.secret_rotated",
        "tenant.secret_rotated",
    ]


def test_zendesk_rotation_needs_the_value_zendesk_generated(harness, capsys):
    run(capsys, "tenant", "create", "--tenant", "initech", "--name", "Initech", "--providers", "zendesk")
    code = main(["tenant", "rotate-secret", "--tenant", "initech", "--provider", "zendesk"])
    assert code == 1
    assert "--value" in capsys.readouterr().err


def test_creating_an_existing_tenant_fails_cleanly(harness, capsys):
    run(capsys, "tenant", "create", "--tenant", "hooli", "--name", "Hooli")
    assert main(["tenant", "create", "--tenant", "hooli", "--name", "Hooli again"]) == 1
    assert "conflict" in capsys.readouterr().err
