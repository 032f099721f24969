"""The control API of the local helpdesks (its URL is in the `make run` banner) says what it offers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from infra.local.helpdesks import start_helpdesks

EXAMPLES = {"{provider}": "zendesk", "{account}": "demo", "{id}": "T-1"}
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/_control/faults"): {"provider": "zendesk", "status": 503, "count": 1},
    ("POST", "/_control/{provider}/{account}/tickets"): {"id": "T-1", "first_message": "Hi"},
    ("POST", "/_control/{provider}/{account}/tickets/{id}/human"): {"kind": "comment", "body": "Newer"},
}


def _call(url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw else None


@pytest.fixture
def helpdesks():
    with start_helpdesks(0) as handle:
        yield handle


@pytest.mark.parametrize("path", ["/_control/", "/_control"])
def test_the_control_url_in_the_banner_answers_with_an_index(helpdesks, path):
    status, index = _call(helpdesks.url + path)

    assert status == 200, index
    listed = {
        (call["method"], call["path"].removeprefix(helpdesks.url).split("?")[0]) for call in index["calls"]
    }
    assert {
        ("GET", "/_control/"),
        ("GET", "/_control/calls"),
        ("GET", "/_control/effects"),
        ("POST", "/_control/faults"),
        ("POST", "/_control/{provider}/{account}/tickets"),
        ("POST", "/_control/{provider}/{account}/tickets/{id}/human"),
        ("GET", "/_control/{provider}/{account}/credentials"),
        ("POST", "/_control/reset"),
    } <= listed
    assert all(call["does"] for call in index["calls"])


def test_every_call_the_index_lists_is_served(helpdesks):
    _, index = _call(helpdesks.url + "/_control/")
    # In the order listed, except reset last (it forgets the ticket the human edit needs).
    calls = sorted(index["calls"], key=lambda c: c["path"].endswith("/reset"))

    for call in calls:
        path = call["path"].removeprefix(helpdesks.url).split("?")[0]
        url = helpdesks.url + path
        for placeholder, value in EXAMPLES.items():
            url = url.replace(placeholder, value)
        status, body = _call(url, call["method"], BODIES.get((call["method"], path)))
        assert status < 400, (call, status, body)
