"""Property-based fuzzing of every provider parser: any input ends in a result or a clear MalformedPayload.

Three sources of input: arbitrary JSON, the real sample payloads with random parts replaced or removed, and raw
bytes. "Clear" means: the error is MalformedPayload, names where the shape broke, and never echoes values.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deflect.domain.errors import MalformedPayload
from deflect.webhooks import PROVIDERS, Ignored, InboundMessage, decode_json, parse_payload, provider

EVENTS = Path(__file__).parents[2] / "events"
SAMPLES = {
    name: [json.loads(p.read_text()) for p in sorted((EVENTS / name).glob("*.json"))] for name in PROVIDERS
}
NAMES = sorted(PROVIDERS)

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
# Keys the parsers look for, so random objects reach deep into the models instead of failing at the root.
known_keys = st.sampled_from(
    [
        "event", "ticket", "id", "type", "detail", "topic", "data", "item", "freshdesk_webhook", "ticket_id",
        "webhookEvent", "issue", "fields", "comment", "body", "requester", "message", "source", "author",
        "conversation_parts", "description", "attachments", "created_at", "updated_at", "tags", "custom_fields",
    ]
)  # fmt: skip
shaped = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(known_keys | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(name: str, payload) -> None:
    try:
        result = parse_payload(name, "acme", payload)
    except MalformedPayload as error:
        assert error.detail and len(error.detail) < 2000
        return
    assert isinstance(result, (InboundMessage, Ignored))
    if isinstance(result, InboundMessage):
        assert result.external_ticket_id and isinstance(result.body_text, str)
        json.dumps(result.model_dump(mode="json"))  # storable as-is


def _delivery(name: str, payload) -> None:
    headers = {"x-deflect-delivery": "d-1"}
    try:
        delivery = provider(name).delivery_id(headers, payload if isinstance(payload, dict) else {}, b"{}")
    except MalformedPayload:
        return
    assert isinstance(delivery, str) and delivery


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(payload=st.dictionaries(known_keys | st.text(max_size=10), shaped, max_size=6))
def test_arbitrary_objects_never_escape_as_unexpected_errors(name, payload):
    _check(name, payload)
    _delivery(name, payload)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


def _mutate(sample, path, replacement, delete):
    mutated = copy.deepcopy(sample)
    if not path:
        return replacement
    parent = mutated
    for step in path[:-1]:
        parent = parent[step]
    if delete and isinstance(parent, dict):
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = replacement
    return mutated


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data(), replacement=json_values, delete=st.booleans())
def test_mutated_real_payloads_never_escape_as_unexpected_errors(name, data, replacement, delete):
    sample = data.draw(st.sampled_from(SAMPLES[name]))
    paths = list(_paths(sample))
    for path in data.draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3)):
        try:
            sample = _mutate(sample, path, replacement, delete)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this path
    if isinstance(sample, dict):
        _check(name, sample)
        _delivery(name, sample)


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_raw_bytes_decode_to_an_object_or_a_clear_error(body):
    try:
        assert isinstance(decode_json(body), dict)
    except MalformedPayload as error:
        assert "JSON" in error.detail or "nested" in error.detail


def test_deeply_nested_json_is_refused_not_crashed():
    with pytest.raises(MalformedPayload):
        decode_json(b'{"a":' * 5000 + b"1" + b"}" * 5000)
    with pytest.raises(MalformedPayload):
        decode_json(b"[" * 100 + b"]" * 100)


def test_errors_name_locations_not_values():
    with pytest.raises(MalformedPayload) as caught:
        parse_payload("zendesk", "acme", {"ticket": {"id": {"secret": "jane@example.com"}}})
    assert "ticket.id" in caught.value.detail and "jane@example.com" not in caught.value.detail


@pytest.mark.parametrize("name", NAMES)
def test_every_sample_parses(name):
    for sample in SAMPLES[name]:
        assert isinstance(parse_payload(name, "acme", sample), (InboundMessage, Ignored))
