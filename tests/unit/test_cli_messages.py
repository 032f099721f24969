"""What an operator reads when a command cannot do what was asked: one line saying what is wrong and what to do,
and a non-zero exit code, never a traceback (a bug keeps its traceback; `--debug` keeps it for the rest too).

Each case is one a new user met walking through the README: no AWS credentials without `--local`, incomplete
helpdesk credentials, erasing a customer who does not exist, a policy value out of range, and `kb search`'s score
read as triage's confidence.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest

# Imported while sockets are still allowed: on first import, urllib3 (under botocore) opens a socket to probe for
# IPv6, which the unit tests' socket ban would report as a warning.
import urllib3  # noqa: F401

from deflect.cli import build_parser, main
from deflect.domain.errors import TransientFailure
from deflect.domain.models import Customer, TenantConfig, utcnow
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemoryEvidenceStore, MemorySupportStore
from deflect.embedded.search import EmbeddedKnowledgeIndex
from deflect.helpdesk.errors import HelpdeskNotConfigured
from deflect.helpdesk.models import HelpdeskCredentials
from deflect.knowledge.ingestion import KnowledgeIngestion
from deflect.knowledge.models import ArticleInput
from deflect.knowledge.search import KnowledgeGaps, KnowledgeSearch
from deflect.repositories import Customers, TenantConfigs, save
from tests.cli_shell import deflect, one_line
from tests.knowledge_cases.fakes import HashingEmbedder

NO_CREDENTIALS = (
    "no AWS credentials found (without --local or --stack, deflect acts on AWS): add --local to use the stack "
    "`make run` started, or configure AWS credentials (aws configure, aws sso login, or AWS_PROFILE) and add "
    "--stack NAME for a deployed stack"
)


@pytest.fixture(autouse=True)
def _fresh_settings():
    """Settings and the container are cached per process: each test reads its own environment."""
    from deflect import bootstrap

    bootstrap.reset()
    yield
    bootstrap.reset()


# --------------------------------------------------------------------------- 1. no AWS credentials


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """An operator's shell with no AWS credentials anywhere botocore looks (and no instance metadata to ask)."""
    from deflect import bootstrap

    for name in list(os.environ):
        if name.startswith("AWS_") and name not in ("AWS_REGION", "AWS_DEFAULT_REGION"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    bootstrap.reset()
    yield
    bootstrap.reset()


@pytest.mark.parametrize(
    "command",
    [
        ["tasks", "list", "--tenant", "demo"],
        ["customer", "erase", "--tenant", "demo", "--customer", "cus_1"],
        ["outbox", "list", "--tenant", "demo"],
        ["audit", "verify", "--tenant", "demo"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_a_command_without_credentials_says_what_to_do_in_one_line(capsys, no_credentials, command):
    code, out, err = deflect(capsys, *command)

    assert code == 1 and out == ""
    assert one_line(err) == NO_CREDENTIALS


@pytest.mark.parametrize(
    "command",
    [["tenant", "show", "--tenant", "demo"], ["policy", "show", "--tenant", "demo"]],
    ids=["tenant show", "policy show"],
)
def test_commands_that_answer_in_json_say_it_in_their_json_error(capsys, no_credentials, command):
    code, out, err = deflect(capsys, *command)

    assert code == 1 and out == ""
    assert json.loads(one_line(err)) == {"error": "unavailable", "message": NO_CREDENTIALS}


def test_with_debug_the_traceback_is_kept(capsys, no_credentials):
    with pytest.raises(TransientFailure, match="NoCredentialsError"):
        main(["--debug", "tasks", "list", "--tenant", "demo"])


def test_a_stack_without_credentials_is_refused_before_any_command_runs(capsys, no_credentials):
    code, _, err = deflect(capsys, "--stack", "deflect-prod", "tasks", "list", "--tenant", "demo")

    assert code == 1
    line = one_line(err)
    assert line.startswith("stack 'deflect-prod': no AWS credentials found: --stack uses your own")
    assert "--local" in line


def test_a_stack_without_a_region_says_which_to_set(capsys, no_credentials, monkeypatch):
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")

    code, _, err = deflect(capsys, "--stack", "deflect-prod", "tasks", "list", "--tenant", "demo")

    assert code == 1
    assert one_line(err).startswith("stack 'deflect-prod': no AWS region configured: set AWS_REGION")


def test_a_stack_found_in_the_profiles_region_is_used_in_that_region(monkeypatch):
    """boto3 reads AWS_DEFAULT_REGION (or the profile's region), Deflect's settings read AWS_REGION: the commands
    must use the region the stack was found in, not the settings' default us-east-1."""
    from deflect.cli import stack
    from deflect.settings import settings

    monkeypatch.delenv("AWS_REGION")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setattr(stack, "deployed_environment", lambda *_: {"SUPPORT_TABLE": "deflect-prod-Support"})

    stack.use_deployed_stack("deflect-prod")

    assert settings().region == "eu-west-1" and settings().support_table == "deflect-prod-Support"


def test_a_domain_error_is_its_message_and_a_bug_keeps_its_traceback(capsys, monkeypatch):
    from deflect.cli import tasks
    from deflect.domain.errors import Conflict, TenantNotFound

    def refused(_args):
        raise Conflict("task already decided")

    monkeypatch.setattr(tasks, "run_list", refused)  # the parser main builds binds the patched function
    code, _, err = deflect(capsys, "tasks", "list", "--tenant", "demo")
    assert code == 1 and one_line(err) == "task already decided"

    def unknown(_args):
        raise TenantNotFound()

    monkeypatch.setattr(tasks, "run_list", unknown)
    code, _, err = deflect(capsys, "tasks", "list", "--tenant", "demo")
    assert code == 1
    assert one_line(err).startswith("no active tenant 'demo' on AWS (region us-east-1, table SupportTable")

    def bug(_args):
        raise KeyError("a bug")

    monkeypatch.setattr(tasks, "run_list", bug)
    with pytest.raises(KeyError):
        main(["tasks", "list", "--tenant", "demo"])


# --------------------------------------------------------------------------- 2. set-connection


def set_connection(capsys, name: str, value: dict | str) -> tuple[int, dict]:
    text = value if isinstance(value, str) else json.dumps(value)
    code, out, err = deflect(
        capsys, "tenant", "set-connection", "--tenant", "demo", "--name", name, "--value", text
    )
    assert out == ""
    return code, json.loads(one_line(err))


SECRET = "s3cr3t-value-never-shown"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "zendesk-writeback",
            {"base_url": "https://acme.zendesk.com", "bot_user_id": "42"},
            "zendesk-writeback credentials are invalid: missing either email + api_token, or oauth_token "
            "(zendesk needs base_url, bot_user_id, and either email + api_token, or oauth_token)",
        ),
        (
            "zendesk-writeback",
            {"base_url": "https://acme.zendesk.com", "email": "bot@acme.test", "oauth_token": SECRET},
            "zendesk-writeback credentials are invalid: missing bot_user_id "
            "(zendesk needs base_url, bot_user_id, and either email + api_token, or oauth_token)",
        ),
        (
            "intercom-writeback",
            {"base_url": "https://api.intercom.io", "bot_user_id": "7"},
            "intercom-writeback credentials are invalid: missing api_token "
            "(intercom needs base_url, api_token, bot_user_id)",
        ),
        (
            "freshdesk-writeback",
            {"api_token": SECRET},
            "freshdesk-writeback credentials are invalid: missing base_url, bot_user_id "
            "(freshdesk needs base_url, api_token, bot_user_id)",
        ),
        (
            "jira-writeback",
            {"base_url": "https://acme.atlassian.net", "api_token": SECRET, "bot_user_id": "5b10"},
            "jira-writeback credentials are invalid: missing email "
            "(jira needs base_url, email, api_token, bot_user_id)",
        ),
        (
            "crm-writeback",
            {"base_url": "http://crm.acme.test", "signing_secret": SECRET},
            "crm-writeback credentials are invalid: base_url: must be https (http is allowed only for loopback) "
            "(crm needs base_url, signing_secret)",
        ),
        (
            "generic-writeback",
            {"base_url": "https://hooks.acme.test"},
            "generic-writeback credentials are invalid: missing signing_secret (generic needs base_url, "
            "signing_secret)",
        ),
    ],
    ids=["zendesk no token", "zendesk no bot", "intercom", "freshdesk", "jira", "crm http", "generic"],
)
def test_incomplete_writeback_credentials_name_what_is_missing(capsys, name, value, message):
    code, error = set_connection(capsys, name, value)

    assert code == 1
    assert error == {"error": "malformed_payload", "message": message}
    assert SECRET not in json.dumps(error)


def test_misspelt_fields_and_bad_values_are_named_with_what_is_accepted(capsys):
    code, error = set_connection(
        capsys,
        "jira-writeback",
        {"base_url": "https://acme.atlassian.net", "email": "b@acme.test", "token": SECRET, "bot_user_id": "5",
         "timeout_s": 600},
    )  # fmt: skip

    assert code == 1
    assert error["message"] == (
        "jira-writeback credentials are invalid: missing api_token; timeout_s: Input should be less than or equal "
        "to 60; token: not a field of a jira connection (jira needs base_url, email, api_token, bot_user_id; also "
        "accepted: oauth_token, signing_secret, requests_per_minute, timeout_s, status_map, snooze_hours, "
        "intercom_version)"
    )
    assert SECRET not in error["message"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "zendesk-writeback",
            "{not json",
            "zendesk-writeback credentials are invalid: not JSON at line 1 column 2",
        ),
        (
            "intercom-writeback",
            "[1, 2]",
            "intercom-writeback credentials are invalid: expected a JSON object",
        ),
        ("zendesk", "x", "unknown connection 'zendesk': use zendesk-writeback, intercom-writeback, "),
        ("telemetry", "  ", "the telemetry token is empty"),
    ],
)
def test_a_connection_that_is_not_credentials_at_all_says_so(capsys, name, value, message):
    code, error = set_connection(capsys, name, value)

    assert code == 1 and error["message"].startswith(message)


@pytest.mark.parametrize(
    ("provider", "value"),
    [
        ("zendesk", {"base_url": "https://a.zendesk.com", "bot_user_id": "1", "oauth_token": "t"}),
        (
            "zendesk",
            {"base_url": "https://a.zendesk.com", "bot_user_id": "1", "email": "e", "api_token": "t"},
        ),
        ("zendesk", {"base_url": "https://a.zendesk.com", "bot_user_id": "1", "email": "e"}),
        (
            "zendesk",
            {"provider": "jira", "base_url": "https://a.zendesk.com", "bot_user_id": "1", "oauth_token": "t"},
        ),
        ("intercom", {"base_url": "https://api.intercom.io", "api_token": "t", "bot_user_id": "1"}),
        ("intercom", {"base_url": "https://api.intercom.io", "api_token": "", "bot_user_id": "1"}),
        ("jira", {"base_url": "https://a.atlassian.net", "email": "e", "api_token": "t", "bot_user_id": "1"}),
        ("crm", {"base_url": "http://127.0.0.1:8080", "signing_secret": "s"}),
        ("generic", {"base_url": "https://h", "signing_secret": "s", "snooze_hours": 0}),
    ],
)
def test_the_cli_refuses_exactly_what_writeback_would_refuse(provider, value):
    from deflect.cli.tenant import connection_problem

    text = json.dumps(value)
    try:
        HelpdeskCredentials.parse(provider, text)
        accepted = True
    except HelpdeskNotConfigured:
        accepted = False

    assert (connection_problem(f"{provider}-writeback", text) is None) == accepted


def test_complete_credentials_are_stored(moto_stack, capsys):
    moto_stack.container().tenant_admin.create("conn-ok", "Conn", providers=["zendesk"], actor="test")
    value = {
        "base_url": "https://acme.zendesk.com",
        "bot_user_id": "42",
        "email": "b@acme.test",
        "api_token": "t",
    }

    code, out, _ = deflect(
        capsys, "tenant", "set-connection", "--tenant", "conn-ok", "--name", "zendesk-writeback", "--value",
        json.dumps(value),
    )  # fmt: skip

    assert code == 0 and json.loads(out)["stored"] is True


# --------------------------------------------------------------------------- 3. customer erase


def test_erasing_a_customer_that_does_not_exist_says_so_and_fails(moto_stack, capsys):
    moto_stack.container().tenant_admin.create("erase-none", "Erase", providers=["generic"], actor="test")

    code, out, err = deflect(
        capsys, "customer", "erase", "--tenant", "erase-none", "--customer", "cus_doesnotexist"
    )

    assert code == 1 and out == ""
    assert one_line(err) == (
        "no customer 'cus_doesnotexist' in tenant 'erase-none': nothing is stored under that id and no audited "
        "ticket names it, so nothing was erased"
    )


def test_erasing_in_a_tenant_that_does_not_exist_says_that_too(moto_stack, capsys):
    code, _, err = deflect(
        capsys, "customer", "erase", "--tenant", "nope-tenant", "--customer", "cus_1", "--thorough"
    )

    assert code == 1
    assert one_line(err).startswith("no customer 'cus_1' in tenant 'nope-tenant' (no such tenant either):")


def test_a_customer_without_tickets_is_erased_and_a_retry_says_it_already_is(moto_stack, capsys):
    from deflect.cli.operator import admin_context
    from deflect.services.tenant_admin import CustomerUpdate

    container = moto_stack.container()
    container.tenant_admin.create("erase-bare", "Erase", providers=["generic"], actor="test")
    ctx = admin_context("erase-bare", "admin:crm")
    container.tenant_admin.put_customer(ctx, "crm_42", CustomerUpdate(email="zoe@example.org", name="Zoe"))
    erase = ["customer", "erase", "--tenant", "erase-bare", "--customer", "crm_42"]

    code, out, err = deflect(capsys, *erase)
    report = json.loads(out)
    assert code == 0 and err == ""
    # the profile, its email lookup and its email claim are deleted; no tickets, no data key to destroy
    assert (report["tickets"], report["deleted_items"], report["key_destroyed"]) == ([], 3, False)
    assert Customers(container.store).get(ctx, "crm_42") is None

    # nothing is left under the id, but the customer's own audit chain says it existed: a retry succeeds
    code, out, err = deflect(capsys, *erase)
    assert code == 0 and json.loads(out)["deleted_items"] == 0
    assert one_line(err) == (
        "crm_42: already erased: nothing was left under that id; audit chain customer-crm_42 records it"
    )


def test_the_retry_of_an_interrupted_erasure_finishes_it(moto_stack, capsys):
    """Erasure deletes the profile first and the data key last: a retry after the profile went must not be told
    the customer does not exist while its lookups, ticket links or key are still there."""
    from deflect.domain import keys
    from deflect.ports import Delete

    container = moto_stack.container()
    container.tenant_admin.create("erase-half", "Erase", providers=["generic"], actor="test")
    ctx = TenantContext.system("erase-half")
    customer = Customer(tenant_id="erase-half", customer_id="cus_half", email="half@example.org")
    container.store.transact(ctx, Customers(container.store).save_writes(customer))
    container.store.delete(ctx, Delete(pk=keys.customer_pk("erase-half", "cus_half"), sk="PROFILE"))

    code, out, _ = deflect(capsys, "customer", "erase", "--tenant", "erase-half", "--customer", "cus_half")

    assert code == 0 and json.loads(out)["deleted_items"] == 1  # the email lookup left behind
    assert container.store.query(ctx, keys.customer_pk("erase-half", "cus_half")) == []


# --------------------------------------------------------------------------- 4. policy set


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"answer_threshold": 5},
            "not a valid policy: answer_threshold: Input should be less than or equal to 1",
        ),
        (
            {"classification_threshold": -0.1, "rollout_default": "everything"},
            "not a valid policy: classification_threshold: Input should be greater than or equal to 0; "
            "rollout_default: Input should be 'shadow', 'assist' or 'auto'",
        ),
        (
            {"answer_treshold": 0.6},
            "not a valid policy: answer_treshold: not a policy field (policy fields: answer_threshold, "
            "classification_threshold, always_escalate_flags, approver_required_actions, "
            "two_person_amount_threshold, two_person_currency, rollout_default, rollout_by_intent)",
        ),
        (
            {"rollout_by_intent": {"billing": "later"}},
            "not a valid policy: rollout_by_intent.billing: Input should be 'shadow', 'assist' or 'auto'",
        ),
    ],
    ids=["above 1", "two fields", "misspelt", "nested"],
)
def test_policy_set_says_what_is_wrong_with_each_field(capsys, tmp_path, fields, message):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(fields))

    code, out, err = deflect(capsys, "policy", "set", "--tenant", "demo", str(policy))

    assert code == 1 and out == ""
    assert json.loads(one_line(err)) == {"error": "malformed_payload", "message": message}


# --------------------------------------------------------------------------- 5. kb search


def knowledge(threshold: float | None = None) -> SimpleNamespace:
    store, index = MemorySupportStore(), EmbeddedKnowledgeIndex(None, HashingEmbedder())
    ctx = TenantContext.system("acme", actor="test")
    save(store, ctx, [TenantConfigs(store).save_write(TenantConfig(tenant_id="acme", display_name="Acme"))])
    ingestion = KnowledgeIngestion(store, MemoryEvidenceStore(), index)
    ingestion.put(ctx, "gs-cli", ArticleInput(title="Install the CLI", body="Run pip install syncbeam-cli."))
    search = KnowledgeSearch(index, store, threshold_for=None if threshold is None else (lambda _: threshold))
    return SimpleNamespace(knowledge_search=search, store=store, ctx=ctx)


def kb_search(capsys, container: SimpleNamespace, query: str) -> list[str]:
    args = build_parser().parse_args(["kb", "search", query, "--tenant", "acme"])
    args.container = container
    assert args.func(args) == 0
    return capsys.readouterr().out.splitlines()


def test_kb_search_calls_its_score_a_retrieval_score_and_says_when_a_gap_is_recorded(capsys):
    container = knowledge()

    lines = kb_search(capsys, container, "How do I install the CLI?")

    score = float(lines[-2].split()[3])  # search scores drift a little with the article's age: read it back
    assert score < 0.55
    assert lines[-2] == (
        f"best retrieval score {score:.3f} (how well the best passage matches the question, from search alone), "
        "answer threshold 0.55"
    )
    assert lines[-1] == (
        "  under the threshold, yet triage may still answer: it drafts a reply from these passages and weighs the "
        "draft's own confidence against the threshold, and records a knowledge gap only when it cannot draft one. "
        "The search API (GET /v1/knowledge/search) records a gap for a score this low; `deflect kb search` never "
        "does."
    )
    assert "is recorded as a knowledge gap" not in "\n".join(lines)
    assert KnowledgeGaps(container.store).month(container.ctx, utcnow()) == []  # as before: it records none


def test_kb_search_over_the_threshold_says_nothing_about_gaps(capsys):
    lines = kb_search(capsys, knowledge(threshold=0.0), "How do I install the CLI?")

    assert lines[-1].startswith("best retrieval score ") and lines[-1].endswith("answer threshold 0.00")
    assert "gap" not in "\n".join(lines)
