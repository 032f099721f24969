"""The local stack patches one private moto API. If moto changes it, this fails loudly (and says where)."""

from __future__ import annotations

import inspect
import json

import pytest
from moto.awslambda_simple.models import LambdaSimpleBackend

from infra.local import lambda_router
from infra.local.functions import LocalFunctions
from infra.local.template import FunctionSpec


def test_moto_lambda_backend_still_has_the_invoke_the_router_replaces():
    parameters = tuple(inspect.signature(LambdaSimpleBackend.invoke).parameters)

    assert parameters == lambda_router.EXPECTED_PARAMETERS, (
        "moto changed LambdaSimpleBackend.invoke; update infra/local/lambda_router.py before bumping moto"
    )
    lambda_router.check_contract()


def test_a_changed_signature_is_refused_not_silently_patched(monkeypatch):
    monkeypatch.setattr(LambdaSimpleBackend, "invoke", lambda self, name, body: b"")

    with pytest.raises(lambda_router.RouterContractBroken, match=r"lambda_router\.py"):
        lambda_router.install(LocalFunctions({}))


@pytest.fixture
def routed(tmp_path):
    (tmp_path / "app.py").write_text(
        "def handler(event, context):\n"
        "    if event.get('boom'):\n"
        "        raise KeyError('boom')\n"
        "    return {'got': event, 'function': context.function_name}\n"
    )
    functions = LocalFunctions(
        {"ProbeFunction": FunctionSpec("ProbeFunction", str(tmp_path), "app.handler", 3)}
    )
    undo = lambda_router.install(functions)
    yield LambdaSimpleBackend("us-east-1", "123456789012")
    undo()


def test_invokes_of_template_functions_reach_the_real_handler(routed):
    arn = "arn:aws:lambda:us-east-1:123456789012:function:ProbeFunction:live"

    answer = routed.invoke(arn, None, json.dumps({"task": "summarize"}), {}, {})

    assert json.loads(answer) == {"got": {"task": "summarize"}, "function": "ProbeFunction"}


def test_a_handler_error_is_a_lambda_function_error(routed):
    headers: dict[str, str] = {}

    answer = json.loads(routed.invoke("ProbeFunction", None, json.dumps({"boom": True}), {}, headers))

    assert headers["x-amz-function-error"] == "Unhandled"
    assert answer["errorType"] == "KeyError"


def test_other_functions_keep_moto_behaviour(routed):
    assert routed.invoke("SomethingElse", None, '{"a": 1}', {}, {}) == b'{"a": 1}'


def test_undo_restores_moto(tmp_path):
    original = LambdaSimpleBackend.invoke
    undo = lambda_router.install(LocalFunctions({}))
    assert LambdaSimpleBackend.invoke is not original
    undo()
    assert LambdaSimpleBackend.invoke is original
