"""Severity P1–P4 from the message's own words, the account's SLA and repeat contacts (the rules agents rely
on to pick what to open first)."""

from __future__ import annotations

import pytest

from deflect.ports import IntentPrediction
from deflect.triage.classification import Classifier
from deflect.triage.detectors import detect

HOW_TO = IntentPrediction(intent="how_to", confidence=0.9, kind="question", product_area="syncs")
PROBLEM = IntentPrediction(intent="sync_failing", confidence=0.9, kind="problem", product_area="syncs")
UNSURE = IntentPrediction(intent="out_of_scope", confidence=0.1, out_of_scope=True)


def severity_of(text: str, prediction: IntentPrediction = UNSURE, **kw: object) -> tuple[str, list[str]]:
    result = Classifier.combine(detect(text), prediction, **kw)  # type: ignore[arg-type]
    return result.classification.severity, result.severity_reasons


@pytest.mark.parametrize(
    ("text", "prediction", "expected"),
    [
        ("How do I pause a sync?", HOW_TO, "P4"),
        ("My sync fails with error SB-4040 since this morning.", PROBLEM, "P3"),
        ("The dashboard is down for me.", UNSURE, "P2"),
        (
            "Everything is down: all of our syncs stopped and every user in the company is affected.",
            UNSURE,
            "P1",
        ),
        ("Production is down since 9:00, nothing runs.", PROBLEM, "P2"),
    ],
)
def test_outage_and_impact_language_set_severity(
    text: str, prediction: IntentPrediction, expected: str
) -> None:
    assert severity_of(text, prediction)[0] == expected


def test_an_outage_for_an_enterprise_account_is_p1_and_says_why() -> None:
    level, reasons = severity_of("The dashboard is down for me.", sla_tier="enterprise")
    assert level == "P1"
    assert reasons == ["outage_language", "outage_enterprise_sla"]
    assert severity_of("The dashboard is down for me.", sla_tier="standard")[0] == "P2"


def test_many_users_and_urgency_each_raise_a_problem_one_level() -> None:
    assert severity_of("Several users in our team get an error when they open a beam.", PROBLEM) == (
        "P2",
        ["many_affected"],
    )
    assert severity_of("Urgent: the export fails with an error.", PROBLEM) == ("P2", ["urgent"])
    # Without outage language two raises stop at P2: a P1 needs the service to be down.
    level, reasons = severity_of("Urgent: 40 users get an error when they open a beam.", PROBLEM)
    assert level == "P2" and set(reasons) == {"many_affected", "urgent"}


def test_urgency_alone_does_not_raise_a_question() -> None:
    assert severity_of("Urgent question: how do I pause a sync?", HOW_TO)[0] == "P4"


def test_enterprise_sla_raises_a_problem_one_level() -> None:
    assert severity_of("My export fails with an error.", PROBLEM, sla_tier="enterprise") == (
        "P2",
        ["enterprise_sla"],
    )


def test_a_repeat_contact_raises_severity() -> None:
    first = severity_of("My export fails with an error.", PROBLEM)[0]
    again, reasons = severity_of("My export fails with an error.", PROBLEM, repeat=True)
    assert (first, again) == ("P3", "P2")
    assert "repeat_contact" in reasons


def test_security_and_legal_matters_are_at_least_p2() -> None:
    assert severity_of("I think someone else logged into my account from another country.") == (
        "P2",
        ["security_or_legal"],
    )
    assert severity_of("Our lawyer will contact you about this contract breach.") == (
        "P2",
        ["security_or_legal"],
    )


def test_a_tenants_own_priority_tier_raises_severity_and_enterprise_can_be_turned_off() -> None:
    from deflect.domain.models import SlaTier, TenantConfig

    config = TenantConfig(
        tenant_id="acme",
        display_name="Acme",
        sla_tiers={
            "standard": SlaTier(name="standard", first_response_minutes=1440, review_timeout_seconds=86400),
            "platinum": SlaTier(
                name="platinum", first_response_minutes=30, review_timeout_seconds=1800, raises_severity=True
            ),
            "enterprise": SlaTier(
                name="enterprise",
                first_response_minutes=60,
                review_timeout_seconds=3600,
                raises_severity=False,
            ),
        },
    )
    tiers = config.priority_tiers()
    assert tiers == {"platinum"}
    text = "My export fails with an error."
    assert severity_of(text, PROBLEM, sla_tier="platinum", priority_tiers=tiers)[0] == "P2"
    assert severity_of(text, PROBLEM, sla_tier="enterprise", priority_tiers=tiers)[0] == "P3"
    # A stored configuration from before tiers could say so: "enterprise" keeps raising severity.
    assert TenantConfig(tenant_id="acme", display_name="Acme").priority_tiers() == {"enterprise"}
