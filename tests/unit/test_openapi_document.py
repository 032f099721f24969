"""GET /v1/openapi.json: every template route carries the schema its handler declares, under the template's path.

The template spells path parameters as API Gateway serves them (`/v1/tasks/{id}`); handlers name them for their
own signatures (`/v1/tasks/<task_id>`). The merge must match the two by shape, not by spelling, or a route with a
real request model shows up as `x-deflect-declared-only`.
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from pydantic import BaseModel

from infra.local import openapi
from infra.local import template as tpl
from infra.local.functions import LocalFunctions

_PARAMETER = re.compile(r"\{[^{}/]+\}")
_ROUTES = tpl.routes()


def _shape(path: str) -> str:
    return _PARAMETER.sub("{}", path)


def _path_names(path: str) -> list[str]:
    return [name.strip("{}") for name in _PARAMETER.findall(path)]


@pytest.fixture(scope="module")
def handlers() -> LocalFunctions:
    serving = {route.function for route in _ROUTES}
    functions = LocalFunctions({name: spec for name, spec in tpl.functions().items() if name in serving})
    functions.load_all()
    assert functions.load_errors == {}
    return functions


@pytest.fixture(scope="module")
def document(handlers: LocalFunctions) -> dict[str, Any]:
    return openapi.merged_document(handlers, "http://127.0.0.1:3000")


@pytest.fixture(scope="module")
def handler_operations(handlers: LocalFunctions) -> dict[tuple[str, str, str], tuple[str, dict[str, Any]]]:
    """What each handler's own resolver says, keyed by (function, METHOD, path shape)."""
    found: dict[tuple[str, str, str], tuple[str, dict[str, Any]]] = {}
    for function, module in handlers.loaded().items():
        app = getattr(module, "app", None)
        if app is None or not hasattr(app, "get_openapi_json_schema"):
            continue
        part = json.loads(app.get_openapi_json_schema(title="t", version="0"))
        for path, operations in part["paths"].items():
            for method, operation in operations.items():
                key = (function, method.upper(), _shape(path))
                assert key not in found, f"{function} declares {method.upper()} {_shape(path)} twice"
                found[key] = (path, operation)
    return found


def _ref_name(schema: dict[str, Any]) -> str:
    return schema["$ref"].rsplit("/", 1)[1]


def test_the_document_reports_no_handler_errors(document):
    assert document["info"].get("x-deflect-openapi-errors") is None, document["info"][
        "x-deflect-openapi-errors"
    ]


def test_every_handler_operation_lands_on_a_template_route(handler_operations):
    served = {(r.function, r.method, _shape(r.path)) for r in _ROUTES}

    unmatched = sorted(
        f"{f} {m} {path}"
        for (f, m, shape), (path, _) in handler_operations.items()
        if (f, m, shape) not in served
    )

    assert unmatched == []


@pytest.mark.parametrize("route", _ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_a_route_its_handler_declares_carries_the_handlers_schema(document, handler_operations, route):
    merged = document["paths"][route.path][route.method.lower()]
    declared = handler_operations.get((route.function, route.method, _shape(route.path)))
    if declared is None:
        assert merged.get("x-deflect-declared-only") is True
        return
    handler_path, operation = declared

    assert "x-deflect-declared-only" not in merged
    # The request body is the handler's own model (possibly renamed if another handler used its name).
    if "requestBody" in operation:
        assert "requestBody" in merged, f"{route.method} {route.path} lost its request body"
        body = merged["requestBody"]["content"]["application/json"]["schema"]
        original = operation["requestBody"]["content"]["application/json"]["schema"]
        if "$ref" in original:
            assert _ref_name(body).startswith(_ref_name(original))
            assert _ref_name(body) in document["components"]["schemas"]
        else:
            assert body == original
    else:
        assert "requestBody" not in merged
    # Same parameters, with path parameters spelled as the template (what API Gateway serves) spells them.
    renamed = dict(zip(_path_names(handler_path), _path_names(route.path), strict=True))
    expected = sorted(
        (renamed.get(p["name"], p["name"]) if p["in"] == "path" else p["name"], p["in"])
        for p in operation.get("parameters", [])
    )
    assert sorted((p["name"], p["in"]) for p in merged.get("parameters", [])) == expected
    in_path = [p["name"] for p in merged.get("parameters", []) if p["in"] == "path"]
    assert sorted(in_path) == sorted(_path_names(route.path))


def test_no_operation_with_a_handler_model_is_declared_only(document, handler_operations):
    declared_only = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if operation.get("x-deflect-declared-only")
    }
    described = {
        (r.method, r.path) for r in _ROUTES if (r.function, r.method, _shape(r.path)) in handler_operations
    }

    assert sorted(declared_only & described) == []
    assert declared_only == {(r.method, r.path) for r in _ROUTES} - described


def test_the_decision_route_is_described_by_its_model(document):
    decision = document["paths"]["/v1/tasks/{id}/decision"]["post"]

    assert "x-deflect-declared-only" not in decision
    assert decision["requestBody"]["required"] is True
    schema = decision["requestBody"]["content"]["application/json"]["schema"]
    assert _ref_name(schema) == "DecisionRequest"
    assert document["components"]["schemas"]["DecisionRequest"]["properties"]
    assert [(p["name"], p["in"], p["required"]) for p in decision["parameters"]] == [("id", "path", True)]
    assert decision["summary"] == "POST /v1/tasks/{id}/decision"
    assert decision["security"] == [{"AgentAuthorizer": []}]
    assert "/v1/tasks/{task_id}/decision" not in document["paths"]  # only the template's spelling is listed


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/v1/customers/{id}"),
        ("PUT", "/v1/accounts/{id}"),
        ("PUT", "/v1/tenants/{id}/config"),
        ("PUT", "/v1/knowledge/articles/{id}"),
        ("POST", "/v1/conversations/{id}/messages"),
    ],
)
def test_audited_write_routes_have_request_bodies(document, method, path):
    operation = document["paths"][path][method.lower()]

    assert "x-deflect-declared-only" not in operation
    assert operation["requestBody"]["content"]["application/json"]["schema"]


# The merge itself, on a handler written for the purpose (no real handler loaded).


class _Thing(BaseModel):
    name: str


def _fake_functions(app: APIGatewayRestResolver) -> Any:
    return SimpleNamespace(loaded=lambda: {"ThingFunction": SimpleNamespace(app=app)})


def _route(method: str, path: str) -> tpl.Route:
    return tpl.Route("ThingFunction", method, path, None, "functions/thing")


def test_merge_matches_by_position_and_keeps_the_template_spelling(monkeypatch):
    app = APIGatewayRestResolver(enable_validation=True)

    @app.put("/v1/things/<thing_id>/parts/<part>")
    def put_part(thing_id: str, part: str, thing: _Thing) -> dict:
        return {}

    @app.get("/v1/things/<thing_id>")
    def get_thing(thing_id: str) -> dict:
        return {}

    monkeypatch.setattr(
        openapi.tpl,
        "routes",
        lambda: [
            _route("PUT", "/v1/things/{id}/parts/{slot}"),
            _route("GET", "/v1/things/{id}"),
            _route("DELETE", "/v1/things/{id}"),  # not declared by the handler
            _route("GET", "/v1/things/{id}/other"),  # different shape
        ],
    )

    paths = openapi.merged_document(_fake_functions(app), "http://x")["paths"]

    put = paths["/v1/things/{id}/parts/{slot}"]["put"]
    assert [(p["name"], p["in"]) for p in put["parameters"]] == [("id", "path"), ("slot", "path")]
    assert _ref_name(put["requestBody"]["content"]["application/json"]["schema"]) == "_Thing"
    assert put["x-deflect-handler-path"] == "/v1/things/{thing_id}/parts/{part}"
    assert [p["name"] for p in paths["/v1/things/{id}"]["get"]["parameters"]] == ["id"]
    assert paths["/v1/things/{id}"]["delete"]["x-deflect-declared-only"] is True
    assert paths["/v1/things/{id}/other"]["get"]["x-deflect-declared-only"] is True
    assert set(paths) == {"/v1/things/{id}/parts/{slot}", "/v1/things/{id}", "/v1/things/{id}/other"}


def test_merge_prefers_an_exact_path_and_reports_an_ambiguous_shape(monkeypatch):
    app = APIGatewayRestResolver(enable_validation=True)

    @app.get("/v1/things/<id>")
    def by_id(id: str) -> dict:
        return {}

    @app.get("/v1/things/<name>")
    def by_name(name: str) -> dict:
        return {}

    monkeypatch.setattr(openapi.tpl, "routes", lambda: [_route("GET", "/v1/things/{id}")])
    exact = openapi.merged_document(_fake_functions(app), "http://x")
    assert [p["name"] for p in exact["paths"]["/v1/things/{id}"]["get"]["parameters"]] == ["id"]
    assert "x-deflect-handler-path" not in exact["paths"]["/v1/things/{id}"]["get"]

    monkeypatch.setattr(openapi.tpl, "routes", lambda: [_route("GET", "/v1/things/{key}")])
    ambiguous = openapi.merged_document(_fake_functions(app), "http://x")
    assert ambiguous["paths"]["/v1/things/{key}"]["get"]["x-deflect-declared-only"] is True
    assert "ambiguous" in ambiguous["info"]["x-deflect-openapi-errors"]["ThingFunction GET /v1/things/{key}"]


def test_path_shape_blanks_names_but_keeps_greedy_segments():
    assert openapi.path_shape("/v1/tasks/{task_id}/tools/{tool}") == openapi.path_shape(
        "/v1/tasks/{id}/tools/{x}"
    )
    assert openapi.path_shape("/v1/files/{proxy+}") != openapi.path_shape("/v1/files/{id}")
