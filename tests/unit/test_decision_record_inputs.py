"""Every decision is stored with the inputs that produced it: the triage profile it was made under, the intent's
risk, the SLA tier and audience, the model actually called, and what became of each attachment."""

from __future__ import annotations

import json
import urllib.error
from typing import Any

import pytest

from deflect.domain.models import (
    AttachmentRef,
    DecisionPolicy,
    DiagnosticsChecklist,
    Message,
    Ticket,
)
from deflect.helpdesk.attachments import HelpdeskAttachmentReader
from deflect.ports import IntentPrediction
from deflect.repositories import Tickets, save
from deflect.triage.classification import Classifier
from deflect.triage.engine import TriageEngine
from deflect.triage.profile import TriageProfiles
from tests.unit.triage_fakes import EXPORT_ARTICLE, bedrock_writing, make_world

UNSURE = IntentPrediction(intent="how_to", confidence=0.3, kind="question", product_area="general", risk=0.05)
CRASH = IntentPrediction(
    intent="error_report", confidence=0.9, kind="problem", product_area="troubleshooting"
)
CHECKLIST = [DiagnosticsChecklist(product_area="troubleshooting", required=["app_version", "os"])]


def _record(world: Any, ticket_id: str) -> tuple[Any, dict[str, Any]]:
    [decision] = Tickets(world.store).decisions(world.ctx, ticket_id)
    return decision, json.loads(world.evidence.read(world.ctx, decision.evidence))


def _admin(world: Any) -> Any:
    return world.ctx.model_copy(update={"actor": "admin:dana"})


def test_a_profile_change_that_flips_the_decision_shows_in_both_records_and_in_the_audit_log():
    world = make_world(policy=DecisionPolicy(rollout_default="auto"), rules=[("export", UNSURE)])
    deflected = world.triage("tkt-1", "How do I export a report?", customer_id=None)
    TriageProfiles(world.store).change(_admin(world), world.audit, {"low_confidence_risk_tolerance": 0.0})
    escalated = world.triage("tkt-2", "How do I export a report?", customer_id=None)
    assert (deflected.outcome, escalated.outcome) == ("deflect", "escalate")

    _, first = _record(world, "tkt-1")
    _, second = _record(world, "tkt-2")
    assert first["profile"]["risk_tolerance"] == 0.15 and second["profile"]["risk_tolerance"] == 0.0
    assert (first["profile"]["version"], second["profile"]["version"]) == (0, 1)
    assert first["intent"]["risk"] == second["intent"]["risk"] == 0.05
    assert first["sla_tier"] == "standard" and first["audience"] == {"kind": "customer", "segments": []}

    _, events = world.audit.load(world.ctx, "tenant-config")
    [changed] = [e.payload for e in events if e.type == "triage.profile_updated"]
    assert changed["values"] == {"low_confidence_risk_tolerance": {"old": 0.15, "new": 0.0}}


def test_the_record_names_the_tenants_model_and_guardrail_and_none_when_no_model_was_called():
    world = make_world(policy=DecisionPolicy(rollout_default="auto"))
    profiles = TriageProfiles(world.store)
    tenant_model = "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"
    profiles.change(
        _admin(world),
        world.audit,
        {"bedrock_model_id": tenant_model, "guardrail_id": "gr-tenant", "guardrail_version": "7"},
    )
    sentence = "To set up SSO, open Settings → Security → Single sign-on."
    composer = bedrock_writing(sentence, sentence)

    def model_for(ctx: Any) -> tuple[str | None, str | None, str | None]:  # as bootstrap wires it
        profile = profiles.get(ctx)
        return profile.bedrock_model_id, profile.guardrail_id, profile.guardrail_version

    composer.model_for = model_for
    world.service.engine = TriageEngine(Classifier(world.intents), world.search, composer)
    world.triage("tkt-1", "How do I set up SSO for my team?")
    world.triage("tkt-2", "Does the desktop app run on a Raspberry Pi?", customer_id=None)

    answered, record = _record(world, "tkt-1")
    assert answered.model_id.endswith(f"bedrock:{tenant_model}")
    assert record["profile"] == {
        "version": 1,
        "risk_tolerance": 0.15,
        "bedrock_model_id": tenant_model,
        "guardrail_id": "gr-tenant",
        "guardrail_version": "7",
    }
    unanswered, record = _record(world, "tkt-2")
    # No passage, no call: the deployment's default model did not take part in this decision.
    assert unanswered.model_id.endswith(" + none") and "bedrock" not in unanswered.model_id
    assert record["model_id"] == unanswered.model_id


def test_the_embedded_composer_is_named_as_it_names_itself():
    world = make_world(policy=DecisionPolicy(rollout_default="auto"))
    world.triage("tkt-1", "How do I export a report?")
    decision, record = _record(world, "tkt-1")
    assert decision.outcome == "deflect" and decision.model_id.endswith(" + extractive-minilm-v3")
    assert record["profile"]["version"] == 0 and "guardrail_id" not in record["profile"]


class FailingReader:
    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.asked: list[str] = []

    def read_attachment(self, ctx: Any, ticket: Any, attachment: AttachmentRef) -> Any:
        from deflect.domain.models import AttachmentRead

        self.asked.append(attachment.name)
        return AttachmentRead(outcome="failed", reason=self.reason)


def _crash_with(world: Any, attachments: list[AttachmentRef]) -> Any:
    world.ticket("tkt-1", "placeholder", message_id="m-0")
    message = Message(
        tenant_id="acme",
        ticket_id="tkt-1",
        message_id="m-1",
        body_redacted="The app crashes every time I sync, log attached",
        attachments=attachments,
    )
    save(world.store, world.ctx, [Tickets.message_write(message)])
    return world.service.triage(world.ctx, "tkt-1", "m-1")


def test_a_log_that_failed_to_download_is_recorded_and_not_asked_for_again():
    world = make_world(articles=[EXPORT_ARTICLE], diagnostics=CHECKLIST, rules=[("crash", CRASH)])
    world.service.attachments = FailingReader("timeout")
    log = AttachmentRef(name="console.log", url="https://acme.zendesk.com/a/2", content_type="text/plain")
    screenshot = AttachmentRef(
        name="screen.png", url="https://acme.zendesk.com/a/3", content_type="image/png"
    )
    result = _crash_with(world, [log, screenshot])

    # A person opens the log in the helpdesk; the customer is not asked for the version and OS it states.
    assert result.outcome == "escalate"
    assert result.reasons[0] == "attachment_not_read:app_version,os"
    assert result.reply is None
    _, record = _record(world, "tkt-1")
    assert record["attachments"] == [
        {"name": "console.log", "read": "failed", "reason": "timeout"},
        {"name": "screen.png", "read": "skipped", "reason": "type"},
    ]


def test_without_a_failed_download_the_customer_is_still_asked():
    world = make_world(articles=[EXPORT_ARTICLE], diagnostics=CHECKLIST, rules=[("crash", CRASH)])
    world.service.attachments = FailingReader("timeout")
    result = _crash_with(world, [])
    assert result.outcome == "ask_diagnostics" and result.reply


def test_attachments_past_the_read_limit_are_recorded_as_skipped():
    world = make_world(articles=[EXPORT_ARTICLE], diagnostics=CHECKLIST, rules=[("crash", CRASH)])
    reader = FailingReader("http_403")
    world.service.attachments = reader
    logs = [AttachmentRef(name=f"part{n}.log", url=f"https://acme.zendesk.com/a/{n}") for n in range(4)]
    _crash_with(world, logs)
    _, record = _record(world, "tkt-1")
    assert [(a["read"], a["reason"]) for a in record["attachments"]] == [("failed", "http_403")] * 3 + [
        ("skipped", "read_limit")
    ]
    assert len(reader.asked) == 3


TICKET = Ticket(tenant_id="acme", ticket_id="tkt-1", provider="generic", external_id="1")


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (TimeoutError("timed out"), "timeout"),
        (urllib.error.URLError(TimeoutError("timed out")), "timeout"),
        (urllib.error.URLError(ConnectionRefusedError()), "connection"),
        ((503, None, b""), "http_503"),
        ((403, None, b""), "http_403"),
    ],
)
def test_the_helpdesk_reader_names_why_a_download_failed(monkeypatch, failure, reason):
    from deflect.domain.models import AttachmentRead

    reader = HelpdeskAttachmentReader(directory=None)  # type: ignore[arg-type] - no helpdesk credentials needed

    def get(url: str, headers: dict[str, str], limit: int) -> tuple[int, str | None, bytes]:
        if isinstance(failure, Exception):
            raise failure
        return failure

    monkeypatch.setattr(reader, "_get", get)
    log = AttachmentRef(name="console.log", url="https://files.example.com/console.log")
    assert reader.read_attachment(None, TICKET, log) == AttachmentRead(outcome="failed", reason=reason)  # type: ignore[arg-type]
    assert reader.read_text(None, TICKET, log) is None  # type: ignore[arg-type]


def test_the_helpdesk_reader_says_what_it_skipped_and_returns_what_it_read(monkeypatch):
    from deflect.domain.models import AttachmentRead

    reader = HelpdeskAttachmentReader(directory=None, max_bytes=10)  # type: ignore[arg-type]
    monkeypatch.setattr(reader, "_get", lambda url, headers, limit: (200, None, b"app 3.2.1"))
    ctx = None
    image = AttachmentRef(name="screen.png", url="https://files.example.com/screen.png")
    huge = AttachmentRef(name="dump.log", url="https://files.example.com/dump.log", size=1000)
    plain = AttachmentRef(name="a.log", url="http://files.example.com/a.log")
    assert reader.read_attachment(ctx, TICKET, image) == AttachmentRead(outcome="skipped", reason="type")  # type: ignore[arg-type]
    assert reader.read_attachment(ctx, TICKET, huge) == AttachmentRead(outcome="skipped", reason="size")  # type: ignore[arg-type]
    assert reader.read_attachment(ctx, TICKET, plain) == AttachmentRead(outcome="skipped", reason="link")  # type: ignore[arg-type]
    good = AttachmentRef(name="a.log", url="https://files.example.com/a.log")
    found = reader.read_attachment(ctx, TICKET, good)  # type: ignore[arg-type]
    assert (found.outcome, found.text) == ("read", "app 3.2.1")
