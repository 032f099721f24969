"""The local stack's stream mapping filters records as Lambda does with the template's FilterCriteria: only outbox
items reach the writeback function, so its own usage tally (a table write) does not invoke it again."""

from __future__ import annotations

import json

import pytest

from infra.local import template as tpl
from infra.local.helpdesks.outbox_stream import check_supported, passes


def _record(event: str, entity: str | None) -> dict:
    image = {"PK": {"S": "T#demo#X"}, **({"entity": {"S": entity}} if entity else {})}
    return {"eventName": event, "dynamodb": {"Keys": {}, "NewImage": image, "SequenceNumber": "1"}}


def test_only_new_or_changed_outbox_items_pass_the_templates_filter():
    [spec] = [s for s in tpl.functions().values() if s.stream]
    patterns = [json.loads(p) for p in spec.stream_filters]
    assert patterns, "the writeback stream mapping declares a filter"
    assert passes(_record("INSERT", "OUTBOX"), patterns)
    assert passes(_record("MODIFY", "OUTBOX"), patterns)
    assert not passes(_record("MODIFY", "USAGE"), patterns)  # the meter's own write
    assert not passes(_record("MODIFY", None), patterns)  # an update that names no entity
    assert not passes(_record("REMOVE", "OUTBOX"), patterns)
    assert passes(_record("MODIFY", "USAGE"), [])  # no filter: everything, as Lambda does


def test_a_filter_operator_the_local_stack_does_not_emulate_is_refused_not_ignored():
    check_supported({"dynamodb": {"NewImage": {"entity": {"S": ["OUTBOX"]}}}})
    with pytest.raises(ValueError, match="not supported"):
        check_supported({"dynamodb": {"Keys": {"PK": {"S": [{"prefix": "T#"}]}}}})
