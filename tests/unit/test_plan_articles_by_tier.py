"""A plan's articles are read by customers on that plan, not by everyone whose support tier has the same name: every
account has a tier ("standard" by default), and tiers are named like plans."""

import pytest

from deflect.domain.models import Account
from deflect.triage.profile import TriageProfile
from deflect.triage.service import customer_options


def _audience(**account):
    profile = TriageProfile(tenant_id="acme")
    return customer_options(profile, Account(tenant_id="acme", account_id="a-1", **account))["audience"]


def test_a_free_plan_account_on_the_default_tier_does_not_read_the_standard_plan_article():
    free = _audience(plan="free")  # sla_tier "standard", the default
    assert not free.may_read("segments", ["standard"])
    assert free.may_read("segments", ["free"])


@pytest.mark.parametrize("tier", ["premium", "enterprise"])
def test_a_support_tier_reads_only_articles_written_for_that_tier(tier):
    audience = _audience(plan="starter", sla_tier=tier)
    assert not audience.may_read("segments", [tier])
    assert audience.may_read("segments", [f"tier-{tier}"])


def test_plans_and_entitlements_still_open_their_articles():
    audience = _audience(plan="Business", entitlements=["beta-api"])
    assert audience.may_read("segments", ["business"])
    assert audience.may_read("segments", ["beta-api"])
