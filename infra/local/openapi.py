"""One OpenAPI document for the whole API, merged from each handler's own resolver (its pydantic models).

The template decides which routes exist and which need the agent authorizer; each function's Powertools
resolver describes its operations. A handler operation matches a template route by method and path *shape*:
the template spells path parameters as API Gateway does (`/v1/tasks/{id}`) while a handler names them for its
own signature (`/v1/tasks/<task_id>`), so parameter names are compared by position, not by spelling. The
document keeps the template's spelling and renames the handler's path parameters to match it. A template route
the handler does not declare yet is still listed (marked `x-deflect-declared-only`) so the document never hides
a reachable path.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from typing import Any

from deflect import __version__
from infra.local import template as tpl
from infra.local.functions import LocalFunctions

SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "Cognito ID token on AWS; locally a dev token from the banner or <data dir>/tokens.json.",
}
_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
# One path parameter segment, `{name}` or API Gateway's greedy `{name+}`.
_PARAMETER = re.compile(r"\{([^{}/]+?)(\+?)\}")


def path_shape(path: str) -> str:
    """The path with its parameter names blanked: `/v1/tasks/{id}` and `/v1/tasks/{task_id}` are one route."""
    return _PARAMETER.sub(lambda m: "{" + m.group(2) + "}", path)


def path_parameter_names(path: str) -> list[str]:
    return [m.group(1) for m in _PARAMETER.finditer(path)]


def merged_document(functions: LocalFunctions, server_url: str) -> dict[str, Any]:
    routes = tpl.routes()
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Deflect API",
            "version": __version__,
            "description": "Every route of template.yaml, described by the handlers that serve it.",
        },
        "servers": [{"url": server_url}],
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": {}},
    }
    schemas: dict[str, Any] = document["components"]["schemas"]
    # (function, METHOD, shape) -> [(handler path, operation)]; more than one only if a handler repeats a shape.
    described: dict[tuple[str, str, str], list[tuple[str, dict[str, Any]]]] = {}
    problems: dict[str, str] = {}
    for function, module in sorted(functions.loaded().items()):
        app = getattr(module, "app", None)
        if app is None or not hasattr(app, "get_openapi_json_schema"):
            continue
        try:
            part = json.loads(app.get_openapi_json_schema(title="Deflect API", version=__version__))
        except Exception as error:  # one handler's bad annotation must not hide every other route
            problems[function] = f"{type(error).__name__}: {str(error).splitlines()[0]}"
            print(f"[openapi] {function}: {problems[function]}", file=sys.stderr)
            continue
        part = _merge_schemas(schemas, part.get("components", {}).get("schemas", {}), part, function)
        for path, operations in part.get("paths", {}).items():
            for method, operation in operations.items():
                if method in _METHODS:
                    described.setdefault((function, method.upper(), path_shape(path)), []).append(
                        (path, operation)
                    )

    for route in routes:
        operation = _described_for(described, route, problems)
        if operation is None:
            operation = {
                "summary": f"{route.method} {route.path}",
                "description": "Declared in template.yaml; the handler does not describe this operation yet.",
                "responses": {"default": {"description": "See the handler"}},
                "x-deflect-declared-only": True,
            }
        operation["x-deflect-function"] = route.function
        if route.authorizer:
            operation["security"] = [{route.authorizer: []}]
            document["components"]["securitySchemes"][route.authorizer] = SECURITY_SCHEME
            operation.setdefault("responses", {})["401"] = {"description": "Missing or invalid token"}
        document["paths"].setdefault(route.path, {})[route.method.lower()] = operation
    if problems:
        # Said in the document itself, so a broken description is noticed rather than silently thin.
        document["info"]["x-deflect-openapi-errors"] = problems
    return document


def _described_for(
    described: dict[tuple[str, str, str], list[tuple[str, dict[str, Any]]]],
    route: tpl.Route,
    problems: dict[str, str],
) -> dict[str, Any] | None:
    """The handler's operation for a template route (a copy, path parameters renamed to the template's names)."""
    candidates = described.get((route.function, route.method, path_shape(route.path)), [])
    exact = [c for c in candidates if c[0] == route.path]
    if exact:
        candidates = exact
    if not candidates:
        return None
    if len(candidates) > 1:
        paths = ", ".join(sorted(path for path, _ in candidates))
        problems[f"{route.function} {route.method} {route.path}"] = f"ambiguous handler routes: {paths}"
        return None
    handler_path, operation = candidates[0]
    operation = copy.deepcopy(operation)
    if handler_path == route.path:
        return operation
    names = dict(zip(path_parameter_names(handler_path), path_parameter_names(route.path), strict=True))
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "path" and parameter.get("name") in names:
            parameter["name"] = names[parameter["name"]]
    if operation.get("summary") == f"{route.method} {handler_path}":  # Powertools' default summary
        operation["summary"] = f"{route.method} {route.path}"
    operation["x-deflect-handler-path"] = handler_path
    return operation


def _merge_schemas(
    merged: dict[str, Any], incoming: dict[str, Any], part: dict[str, Any], function: str
) -> dict[str, Any]:
    """Add `incoming` component schemas; a name already used for a different schema is renamed for this part."""
    renames = {}
    for name, schema in incoming.items():
        if name in merged and merged[name] != schema:
            renames[name] = f"{name}_{function}"
        else:
            merged[name] = schema
    if not renames:
        return part
    text = json.dumps(part)
    for old, new in renames.items():
        text = text.replace(f'"#/components/schemas/{old}"', f'"#/components/schemas/{new}"')
    part = json.loads(text)
    for old, new in renames.items():
        merged[new] = part["components"]["schemas"][old]
    return part


DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Deflect API (local)</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#222}
h1{font-size:1.4rem} .op{border:1px solid #ddd;border-radius:6px;margin:.5rem 0}
summary{cursor:pointer;padding:.5rem;display:flex;gap:.75rem;align-items:center}
.m{font-weight:700;width:4.5rem;text-transform:uppercase} .get{color:#0a7}.post{color:#06c}.put{color:#c70}
.delete{color:#c22} .lock{font-size:.8rem;background:#fee;border-radius:4px;padding:0 .3rem}
.todo{font-size:.8rem;background:#eee;border-radius:4px;padding:0 .3rem}
pre{background:#f6f6f6;padding:.75rem;overflow:auto;margin:0 .5rem .5rem}
</style></head><body>
<h1>Deflect API (local stack)</h1>
<p>From <a href="/v1/openapi.json">/v1/openapi.json</a>. Routes marked <span class="lock">token</span> need
<code>Authorization: Bearer &lt;token&gt;</code> (dev tokens are in the start-up banner).</p>
<div id="ops">Loading…</div>
<script>
fetch("/v1/openapi.json").then(r => r.json()).then(doc => {
  const box = document.getElementById("ops"); box.textContent = "";
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const d = document.createElement("details"); d.className = "op";
      const s = document.createElement("summary");
      const m = document.createElement("span"); m.className = "m " + method; m.textContent = method;
      const p = document.createElement("code"); p.textContent = path;
      const t = document.createElement("span"); t.textContent = op.summary || "";
      s.append(m, p, t);
      if (op.security) { const l = document.createElement("span"); l.className = "lock"; l.textContent = "token"; s.append(l); }
      if (op["x-deflect-declared-only"]) { const l = document.createElement("span"); l.className = "todo"; l.textContent = "not described yet"; s.append(l); }
      const pre = document.createElement("pre");
      pre.textContent = JSON.stringify({parameters: op.parameters, requestBody: op.requestBody, responses: op.responses}, null, 2);
      d.append(s, pre); box.append(d);
    }
  }
  const c = document.createElement("details"); c.className = "op";
  const cs = document.createElement("summary"); cs.textContent = "Schemas";
  const cp = document.createElement("pre"); cp.textContent = JSON.stringify(doc.components.schemas, null, 2);
  c.append(cs, cp); box.append(c);
});
</script></body></html>
"""
