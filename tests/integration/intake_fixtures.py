"""The fixtures most intake test modules share: a moto harness per module, an `acme` tenant on it, and intake
answering from the queue path (no synchronous triage) unless a test plugs one in. Import them by their function
names (`from tests.integration.intake_fixtures import acme_fixture, harness_fixture, queue_path_fixture  # noqa:
F401`); tests ask for `harness` and `acme`."""

from __future__ import annotations

import pytest

from tests.integration.intake_support import moto_harness, queued_triage_only


@pytest.fixture(scope="module", name="harness")
def harness_fixture():
    yield from moto_harness()


@pytest.fixture(scope="module", name="acme")
def acme_fixture(harness):
    return harness.create_tenant("acme")


@pytest.fixture(autouse=True, name="without_sync_triage")
def queue_path_fixture(harness):
    """The handler's own intake answers from the queue path unless a test plugs a triage in."""
    yield from queued_triage_only()
