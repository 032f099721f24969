"""Escalation rules that need no AWS: routing, roles, SLA windows, the acknowledgement, the summary, diffs, the
triage contract and the SNS request shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import boto3
import pytest
from botocore.stub import Stubber

from deflect.adapters.sns_notifier import SnsNotifier
from deflect.domain.errors import Forbidden
from deflect.domain.models import (
    Account,
    ArticleRef,
    Citation,
    Classification,
    Customer,
    Decision,
    Draft,
    EvidenceRef,
    HumanTask,
    Message,
    RequestedAction,
    SlaTier,
    TenantConfig,
    Ticket,
)
from deflect.domain.tenancy import TenantContext
from deflect.escalation import EscalationRequest, execution_name, policy, start_escalation
from deflect.escalation.acknowledgement import TEMPLATES, acknowledgement_text, language_of
from deflect.escalation.approval import edit_diff
from deflect.escalation.summary import build_summary, render_markdown

NOW = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
REFUND = RequestedAction(kind="refund", amount=Decimal("120"), currency="EUR")
BIG_REFUND = RequestedAction(kind="refund", amount=Decimal("900"), currency="EUR")


def _config(**changes) -> TenantConfig:
    fields = dict(
        tenant_id="acme", display_name="Acme", escalation_queues=["billing", "tier1", "tier2", "supervisor"]
    )
    return TenantConfig(**{**fields, **changes})


def _request(**changes) -> EscalationRequest:
    fields = dict(
        tenant_id="acme",
        ticket_id="t1",
        decision_id="dec_1",
        classification=Classification(intent="refund_request", intent_confidence=0.9, product_area="billing"),
        proposed_action=REFUND,
        product_area="billing",
        escalated_at=NOW,
    )
    return EscalationRequest(**{**fields, **changes})


def _task(**changes) -> HumanTask:
    fields = dict(
        tenant_id="acme", ticket_id="t1", queue="tier1", due_at=NOW + timedelta(hours=1), created_at=NOW
    )
    return HumanTask(**{**fields, **changes})


# ------------------------------------------------------------------ routing and SLA
def test_routes_by_skill_then_generic_tiers_then_supervisor():
    plan = policy.queue_plan(_request(), _config())
    assert plan == [
        "billing",
        "tier1",
        "supervisor",
    ]  # max_reassign_hops=2 bounds the hops before the supervisor


def test_urgent_work_skips_the_first_generic_tier():
    general = _request(proposed_action=RequestedAction(), product_area="general")
    assert policy.queue_plan(general, _config())[0] == "tier1"
    assert policy.queue_plan(general.model_copy(update={"severity": "P1"}), _config())[0] == "tier2"
    assert policy.queue_plan(general.model_copy(update={"sla_tier": "enterprise"}), _config())[0] == "tier2"


def test_security_actions_route_to_a_security_queue_when_the_tenant_has_one():
    request = _request(proposed_action=RequestedAction(kind="reset_mfa"), product_area="login")
    plan = policy.queue_plan(request, _config(escalation_queues=["tier1", "security", "supervisor"]))
    assert plan[0] == "security"


def test_first_route_takes_its_timeout_from_the_tenants_sla_tier():
    route = policy.first_route(_request(sla_tier="premium"), _config())
    assert route.timeout_seconds == 14400
    assert route.wait_seconds == 14400 - 3600  # warned an hour before due
    assert (route.required_role, route.approvals_required) == ("approver", 1)
    assert policy.first_route(_request(proposed_action=BIG_REFUND), _config()).approvals_required == 2


def test_reassignment_is_bounded_and_ends_in_the_supervisor_queue():
    config = _config()
    route = policy.first_route(_request(), config)
    queues = [route.queue]
    while not route.exhausted:
        route = policy.next_route(route, REFUND, config)
        queues.append(route.queue)
    assert queues == ["billing", "tier1", "supervisor", "supervisor"]
    assert route.hops == 2


@pytest.mark.parametrize(("window", "first_wait"), [(1, 1), (2, 1), (3, 2), (3600, 2700), (86400, 82800)])
def test_waits_split_the_window_at_the_warning_time(window, first_wait):
    assert policy.first_wait(window) == first_wait


def test_near_due_uses_a_quarter_of_the_window_capped_at_an_hour():
    task = _task(due_at=NOW + timedelta(hours=24))
    assert not policy.near_due(task, NOW + timedelta(hours=22, minutes=59))
    assert policy.near_due(task, NOW + timedelta(hours=23, minutes=1))


# ------------------------------------------------------------------ who may decide
def test_refund_needs_an_approver_whatever_the_tenant_lists():
    config = _config()
    config.policy.approver_required_actions = []
    task = _task(required_role="approver", proposed_action=REFUND)
    with pytest.raises(Forbidden):
        policy.authorize_decision({"agent"}, "agent:al", task, "approve", REFUND, config.policy)
    with pytest.raises(Forbidden):
        policy.authorize_decision({"supervisor"}, "agent:sue", task, "approve", REFUND, config.policy)
    policy.authorize_decision({"supervisor"}, "agent:sue", task, "reject", RequestedAction(), config.policy)
    policy.authorize_decision({"approver"}, "agent:ann", task, "approve", REFUND, config.policy)


def test_an_agent_cannot_edit_a_plain_task_into_a_refund():
    task = _task(required_role="agent")
    with pytest.raises(Forbidden):
        policy.authorize_decision({"agent"}, "agent:al", task, "edit", REFUND, _config().policy)


def test_second_approval_needs_a_different_approver():
    task = _task(
        required_role="approver", approvals=["agent:ann"], approvals_required=2, proposed_action=BIG_REFUND
    )
    with pytest.raises(Forbidden, match="different"):
        policy.authorize_decision({"approver"}, "agent:ann", task, "approve", BIG_REFUND, _config().policy)
    policy.authorize_decision({"approver"}, "agent:bob", task, "approve", BIG_REFUND, _config().policy)


def test_a_refund_without_an_amount_needs_two_approvers_it_is_open_ended():
    rules = _config().policy
    assert policy.needs_two_people(RequestedAction(kind="refund", target="inv-9"), rules)
    assert not policy.needs_two_people(RequestedAction(kind="change_plan", target="pro"), rules)
    assert not policy.needs_two_people(REFUND, rules) and policy.needs_two_people(BIG_REFUND, rules)


def test_with_a_threshold_currency_an_amount_in_another_needs_two_approvers():
    rules = _config().policy.model_copy(update={"two_person_currency": "USD"})
    small = RequestedAction(kind="refund", amount=Decimal("499"))
    assert not policy.needs_two_people(small.model_copy(update={"currency": "USD"}), rules)
    assert not policy.needs_two_people(small, rules)  # no currency given: the tenant's own
    assert policy.needs_two_people(small.model_copy(update={"currency": "KWD"}), rules)  # ~1,600 USD


def test_the_supervisor_queue_needs_a_supervisor():
    task = _task(queue="supervisor", required_role="supervisor")
    with pytest.raises(Forbidden):
        policy.authorize_work({"agent", "approver"}, task)
    policy.authorize_work({"supervisor"}, task)


# ------------------------------------------------------------------ the customer's acknowledgement
@pytest.mark.parametrize(
    ("language", "phrase"),
    [("en", "follow up"), ("de-DE", "meldet sich"), ("fr", "reviendra"), ("es_MX", "contacto")],
)
def test_acknowledgement_in_the_tickets_language_with_the_follow_up_time(language, phrase):
    text = acknowledgement_text(language, NOW + timedelta(minutes=240))
    assert phrase in text and "2025-03-04 14:00 UTC" in text


def test_acknowledgement_promises_a_person_and_a_time_never_an_outcome():
    for text in TEMPLATES.values():
        lowered = text.lower()
        for promise in ("refund", "approved", "resolved", "will be fixed", "erstatt", "rembours", "reembols"):
            assert promise not in lowered
    assert language_of("pt-BR", None, "de") == "de" and language_of("pt") == "en"


# ------------------------------------------------------------------ the summary
def test_summary_has_everything_an_agent_needs_to_decide():
    request = _request(
        reasons=["refund requested: policy requires a person"],
        proposed_reply="We can refund invoice 42.",
        retrieved=[
            ArticleRef(article_id="kb-refunds", version=3, title="Refund policy", url="https://help/refunds")
        ],
        citations=[Citation(article_id="kb-refunds", version=3, quote="Refunds within 30 days.")],
        missing_diagnostics=["invoice_number"],
        evidence_refs=[
            EvidenceRef(key="tenant=acme/tickets/t1/evidence/abc.json", sha256="abc", kind="decision")
        ],
        classification=Classification(
            intent="refund_request", intent_confidence=0.9, sentiment="negative", repeat_contact=True
        ),
    )
    ticket = Ticket(
        tenant_id="acme",
        ticket_id="t1",
        provider="zendesk",
        external_id="1",
        subject_redacted="Refund please",
    )
    message = Message(tenant_id="acme", ticket_id="t1", message_id="m1", body_redacted="I was charged twice.")
    customer = Customer(tenant_id="acme", customer_id="c1", name="Dana", verified=True)
    account = Account(tenant_id="acme", account_id="a1", name="Dana Co", plan="pro", entitlements=["sso"])
    tier = SlaTier(name="premium", first_response_minutes=240, review_timeout_seconds=14400)
    summary = build_summary(request, ticket, [message], customer, account, tier, ["browser_version"])
    markdown = render_markdown(summary, {"tenant=acme/tickets/t1/evidence/abc.json": "https://signed/abc"})
    for expected in [
        "I was charged twice.",
        "Dana (c1) — verified",
        "plan pro",
        "premium; first response within 240 min",
        "[Refund policy](https://help/refunds) v3",
        'Cited kb-refunds v3: "Refunds within 30 days."',
        "- browser_version",
        "- invoice_number",
        "Sentiment: negative",
        "repeat contact",
        "We can refund invoice 42.",
        "refund, 120 EUR",
        "account-changing action requested: refund",
        "[decision: abc.json](https://signed/abc)",
    ]:
        assert expected in markdown, expected


def test_edit_diff_names_changed_fields_and_reply_lines():
    diff = edit_diff(REFUND, BIG_REFUND, "Hello\nWe refund 120.", "Hello\nWe refund 900.")
    assert diff["action"] == {"amount": {"from": "120", "to": "900"}}
    assert "-We refund 120." in diff["reply"] and "+We refund 900." in diff["reply"]
    assert edit_diff(REFUND, REFUND, "x", "x") == {}


# ------------------------------------------------------------------ how triage starts an escalation
class _RecordingWorkflow:
    def __init__(self):
        self.started: list[tuple[str, dict]] = []

    def start(self, name, payload):
        self.started.append((name, payload))
        return f"arn:aws:states:us-east-1:123456789012:execution:EscalationStateMachine:{name}"


def test_start_escalation_names_the_execution_and_sends_the_contract():
    ticket = Ticket(
        tenant_id="acme", ticket_id="t1", provider="zendesk", external_id="1", sla_tier="premium", locale="fr"
    )
    decision = Decision(
        tenant_id="acme",
        ticket_id="t1",
        outcome="escalate",
        reasons=["refund"],
        classification=Classification(
            intent="refund_request", intent_confidence=0.8, requested_action=REFUND, language="fr"
        ),
        draft=Draft(
            text="Bonjour", confidence=0.7, citations=[Citation(article_id="kb", version=1, quote="q")]
        ),
    )
    workflow = _RecordingWorkflow()

    arn = start_escalation(workflow, decision, ticket)

    name, payload = workflow.started[0]
    assert (
        arn.endswith(name)
        and len(name) <= 80
        and name == execution_name(EscalationRequest.model_validate(payload))
    )
    request = EscalationRequest.model_validate(payload)
    assert (request.sla_tier, request.language, request.proposed_reply) == ("premium", "fr", "Bonjour")
    assert request.proposed_action == REFUND and request.decision_id == decision.decision_id
    assert json.loads(json.dumps(payload)) == payload  # plain JSON, as Step Functions needs


# ------------------------------------------------------------------ SNS request shape
def test_notifier_publishes_to_the_sla_topic_with_tenant_attributes():
    client = boto3.client("sns", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    topic = "arn:aws:sns:us-east-1:123456789012:deflect-sla-dev"
    expected = {
        "TopicArn": topic,
        "Subject": "Deflect task_near_due (acme)",
        "Message": json.dumps(
            {
                "due_at": "2025-03-04T11:00:00+00:00",
                "event": "task_near_due",
                "task_id": "task_1",
                "tenant_id": "acme",
            },
            sort_keys=True,
        ),
        "MessageAttributes": {
            "tenant_id": {"DataType": "String", "StringValue": "acme"},
            "event": {"DataType": "String", "StringValue": "task_near_due"},
        },
    }
    with Stubber(client) as stub:
        stub.add_response("publish", {"MessageId": "m-1"}, expected)
        SnsNotifier(client, topic).notify(
            TenantContext.system("acme"),
            "task_near_due",
            {"task_id": "task_1", "due_at": "2025-03-04T11:00:00+00:00"},
        )
        stub.assert_no_pending_responses()
