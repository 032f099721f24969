"""`deflect replay` on the exports helpdesks actually produce, deciding each past ticket as production would: the
tenant's triage profile, the requester's account, their earlier tickets, the subject as triage reads it."""

import argparse
import json
import types

import pytest

from deflect.cli import replay
from deflect.cli.replay import load_export, past_tickets
from deflect.domain.models import Account, Customer, DecisionPolicy, Message, Ticket
from deflect.ports import IntentPrediction
from deflect.repositories import Accounts, Customers, TenantConfigs, Tickets, save
from deflect.triage.profile import TriageProfiles
from tests.unit.triage_fakes import make_world

SSO_QUESTION = "How do I set up SSO for my team?"


def zendesk(ticket_id, *, status="solved", comments=None, **fields):
    ticket = {
        "id": ticket_id,
        "subject": f"Export {ticket_id}",
        "description": "How do I export a report?",
        "status": status,
        "requester_id": 9,
        "tags": [],
        **fields,
    }
    if comments is not None:
        ticket["comments"] = comments
    return ticket


def read(tmp_path, text):
    path = tmp_path / "export.json"
    path.write_text(text, encoding="utf-8")
    return [t.ticket_id for t in past_tickets(load_export(path))]


# --------------------------------------------------------------------------- reading exports


def test_incremental_export_pages_saved_one_per_line_are_all_read(tmp_path):
    pages = [{"tickets": [zendesk(1), zendesk(2)], "after_cursor": "x"}, {"tickets": [zendesk(3)]}]
    assert read(tmp_path, "\n".join(json.dumps(page) for page in pages)) == ["1", "2", "3"]


def test_pages_saved_as_one_json_array_are_all_read(tmp_path):
    assert read(tmp_path, json.dumps([{"tickets": [zendesk(1)]}, {"tickets": [zendesk(2)]}])) == ["1", "2"]


def test_a_pretty_printed_page_with_its_tickets_after_the_sideloads_is_read(tmp_path):
    users = [{"id": n, "name": "x" * 50, "email": f"u{n}@example.com"} for n in range(40)]
    page = {"users": users, "tickets": [zendesk(1)], "count": 1}
    assert read(tmp_path, json.dumps(page, indent=2)) == ["1"]


def test_an_export_with_a_byte_order_mark_is_read(tmp_path):
    assert read(tmp_path, "\ufeff" + json.dumps({"tickets": [zendesk(1)]})) == ["1"]


# --------------------------------------------------------------------------- what agents did


def test_solved_tickets_without_a_conversation_are_not_counted_as_answered():
    incremental = zendesk(1)  # Zendesk incremental exports carry no comments
    freshdesk_list = {"id": 5, "subject": "Export?", "description_text": "How to export", "status": 5}
    answered = zendesk(2, comments=[{"author_id": 9, "body": "q"}, {"author_id": 7, "body": "a"}])

    assert [t.agent_action for t in past_tickets([incremental, freshdesk_list, answered])] == [
        "unknown",
        "unknown",
        "answered",
    ]


# --------------------------------------------------------------------------- running a replay


@pytest.fixture
def replaying(monkeypatch, tmp_path, capsys):
    """Run `deflect replay` against a world's store and triage engine; returns (exit code, lines, stderr)."""

    def run(world, tickets=None, *, text=None, tenant="acme"):
        monkeypatch.setattr(
            "deflect.bootstrap.container",
            lambda: types.SimpleNamespace(
                store=world.store, tenants=TenantConfigs(world.store), triage_engine=world.service.engine
            ),
        )
        export = tmp_path / "export.json"
        export.write_text(json.dumps({"tickets": tickets}) if text is None else text)
        code = replay.run(argparse.Namespace(tenant=tenant, export=export, format="auto", limit=None))
        captured = capsys.readouterr()
        return code, [json.loads(line) for line in captured.out.splitlines()], captured.err

    return run


def test_tickets_whose_handling_is_unknown_are_counted_apart_not_as_agreement(replaying):
    world = make_world(policy=DecisionPolicy(rollout_default="shadow"))
    answered = zendesk(2, comments=[{"author_id": 9, "body": "q"}, {"author_id": 7, "body": "a"}])

    code, lines, _ = replaying(world, [zendesk(1), answered])

    summary = lines[-1]
    assert code == 0 and [line["verdict"] for line in lines[:-1]] == [None, "would_deflect_agrees"]
    assert summary["comparison"] == {"would_deflect_agrees": 1} and summary["not_compared"] == 1
    assert summary["agents"] == {"unknown": 1, "answered": 1}


@pytest.mark.parametrize(
    "text",
    ['{"results": [{"id": 1, "subject": "x"}]}', "[]", '{"tickets": []}', '[{"id": 1, "status": "open"}]'],
    ids=["another API's list", "an empty list", "an empty page", "tickets without text"],
)
def test_a_file_in_which_no_ticket_is_found_is_an_error_not_an_empty_replay(replaying, text):
    world = make_world()

    code, lines, err = replaying(world, text=text)

    assert code == 2 and lines == []
    assert "no tickets found" in err and "export.json" in err


def test_replay_decides_with_the_tenants_triage_profile_as_production_does(replaying):
    unsure = IntentPrediction(
        intent="how_to", confidence=0.3, kind="question", product_area="general", risk=0.05
    )
    world = make_world(policy=DecisionPolicy(rollout_default="shadow"), rules=[("sso", unsure)])
    # A strict tenant: every low-confidence classification goes to a person.
    TriageProfiles(world.store).change(world.ctx, world.audit, {"low_confidence_risk_tolerance": 0.0})
    production = world.triage("tkt-1", SSO_QUESTION)

    _, [line, _], _ = replaying(world, [zendesk(1, subject="", description=SSO_QUESTION)])

    assert production.outcome == line["would"] == "escalate"
    assert line["reasons"] == production.reasons == ["low_classification_confidence"]


def test_replay_reads_the_subject_as_triage_does(replaying):
    world = make_world(policy=DecisionPolicy(rollout_default="shadow"))
    tickets = Tickets(world.store)
    ticket = Ticket(
        tenant_id="acme",
        ticket_id="tkt-1",
        provider="zendesk",
        external_id="1",
        subject_redacted="set up SSO",
    )
    message = Message(tenant_id="acme", ticket_id="tkt-1", message_id="msg-1", body_redacted=SSO_QUESTION)
    save(world.store, world.ctx, [tickets.save_write(ticket), Tickets.message_write(message)])
    world.service.triage(world.ctx, "tkt-1", "msg-1")  # the subject is in the body: the body alone is read

    replaying(world, [zendesk(1, subject="set up SSO", description=SSO_QUESTION)])

    assert world.search.queries == [SSO_QUESTION, SSO_QUESTION]


def test_an_earlier_ticket_of_the_same_requester_makes_a_repeat_contact(replaying):
    world = make_world(policy=DecisionPolicy(rollout_default="auto"))
    first = zendesk(1, subject="", description=SSO_QUESTION, created_at="2024-03-01T09:00:00Z")
    again = zendesk(
        2,
        subject="",
        description="I still can't set up SSO for my team, how do I do it?",
        created_at="2024-03-03T09:00:00Z",
    )
    other = {**again, "id": 3, "requester_id": 10}
    stale = {**again, "id": 4, "created_at": "2024-06-01T09:00:00Z"}  # past the 14-day window

    # Listed newest first, as some exports are: replay still reads them in the order they arrived.
    _, lines, _ = replaying(world, [stale, other, again, first])

    would = {line["ticket_id"]: (line["would"], line["reasons"]) for line in lines[:-1]}
    assert would["1"][0] == "deflect" and would["3"][0] == "deflect" and would["4"][0] == "deflect"
    assert would["2"] == ("escalate", ["repeat_contact_same_answer"])


def test_the_requesters_sla_tier_counts_as_in_production(replaying):
    world = make_world(policy=DecisionPolicy(rollout_default="shadow"))
    account = Account(tenant_id="acme", account_id="acc-1", plan="enterprise", sla_tier="enterprise")
    customer = Customer(
        tenant_id="acme", customer_id="cust-9", external_ids={"zendesk": "9"}, account_id="acc-1"
    )
    save(world.store, world.ctx, [Accounts(world.store).save_write(account)])
    save(world.store, world.ctx, Customers(world.store).save_writes(customer))
    outage = "The export is down"  # an outage: P2, and P1 on a priority SLA tier
    production = world.triage("tkt-1", outage, customer_id="cust-9", account_id="acc-1")

    _, [line, _], _ = replaying(world, [zendesk(1, subject="", description=outage)])

    assert "severity:P1" in production.reasons and line["reasons"] == production.reasons
