"""Canal's OpenAPI document against KFP's published v2beta1 swagger, operation by
operation and field by field.

Every operation of ``corpus/kfp/swagger/kfp_api_single_file.swagger.json`` (method and
path, path parameters compared by position: KFP's ``{pipeline.pipeline_id}`` and
Canal's ``{pipeline_id}`` are the same segment) must be in Canal's document. Then, for
each operation, the names of its query parameters are compared, and its request body
and 200 response schemas are walked together, recursively: nested messages, array items
(``field[]``), map values (``field{}``). At each field the kinds (string, integer,
number, boolean, object, array) must agree, and so must the enum value sets where both
documents give one. A multipart upload's form fields count as body fields.

Every difference, either way, must be listed with a reason in
``tests/api/data/swagger_differences.yaml``; a new one fails, and so does a listed one
that is no longer a difference. Operations only Canal has are differences too. The
counts (operations, fields compared) and the differences are printed in pytest's
terminal summary.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from rest_framework.test import APIClient

from tests.api.conftest import API
from tests.hardening.hostile import report
from tests.paths import CORPUS

SWAGGER = CORPUS / "kfp" / "swagger" / "kfp_api_single_file.swagger.json"
ALLOWED = Path(__file__).parent / "data" / "swagger_differences.yaml"
METHODS = ("get", "post", "put", "patch", "delete")
NO_200 = "(a 200 response)"
MAX_DEPTH = 8  # google.rpc.Status -> Any -> ... : deep enough for every KFP message


@dataclass(frozen=True)
class Operation:
    path: str  # as the document writes it
    query: frozenset[str]
    request: dict[str, Any] | None  # the body's schema; None: no body
    response: dict[str, Any] | None  # the 200 schema ({} if it has no content); None: no 200
    lookup: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def _normalise(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def _resolve(schema: dict[str, Any], lookup: dict[str, Any]) -> dict[str, Any]:
    while True:
        if "$ref" in schema:
            schema = lookup[schema["$ref"].rsplit("/", 1)[1]]
        elif len(schema.get("allOf") or ()) == 1:
            schema = schema["allOf"][0]
        else:
            return schema


def _kind(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, str) and kind != "object":
        return kind
    if "enum" in schema:
        return "string"
    return "object"


def _form(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


def kfp_operations(swagger: dict[str, Any]) -> dict[tuple[str, str], Operation]:
    """Swagger 2.0: body and formData parameters, ``definitions``."""
    lookup = swagger["definitions"]
    found = {}
    for path, item in swagger["paths"].items():
        for method, spec in item.items():
            if method not in METHODS:
                continue
            parameters = spec.get("parameters") or []
            body = [p for p in parameters if p["in"] == "body"]
            form = {p["name"]: {"type": p["type"]} for p in parameters if p["in"] == "formData"}
            request = body[0]["schema"] if body else (_form(form) if form else None)
            ok = spec["responses"].get("200")
            found[(method.upper(), _normalise(path))] = Operation(
                path=path,
                query=frozenset(p["name"] for p in parameters if p["in"] == "query"),
                request=request,
                response=None if ok is None else (ok.get("schema") or {}),
                lookup=lookup,
            )
    return found


def canal_operations(document: dict[str, Any]) -> dict[tuple[str, str], Operation]:
    """OpenAPI 3: ``requestBody`` (JSON, else multipart), ``components/schemas``."""
    lookup = document["components"]["schemas"]
    found = {}
    for path, item in document["paths"].items():
        for method, spec in item.items():
            if method not in METHODS:
                continue
            content = (spec.get("requestBody") or {}).get("content") or {}
            kind = next((k for k in ("application/json", "multipart/form-data") if k in content), None)
            ok = spec["responses"].get("200")
            response = None
            if ok is not None:
                response = ((ok.get("content") or {}).get("application/json") or {}).get("schema") or {}
            request = None if kind is None else content[kind]["schema"]
            if kind == "multipart/form-data":
                # OpenAPI 3 writes an uploaded file as a binary string; Swagger 2 as type "file".
                properties = _resolve(request, lookup).get("properties") or {}
                request = _form(
                    {
                        name: {"type": "file"} if prop.get("format") == "binary" else prop
                        for name, prop in properties.items()
                    }
                )
            found[(method.upper(), _normalise(path))] = Operation(
                path=path,
                query=frozenset(p["name"] for p in spec.get("parameters") or [] if p["in"] == "query"),
                request=request,
                response=response,
                lookup=lookup,
            )
    return found


Difference = tuple[str, str, str, str]  # (operation, where, field path, what differs)


@dataclass
class Walk:
    """Two schemas walked side by side; ``compared`` counts the fields both have."""

    found: set[Difference] = field(default_factory=set)
    compared: int = 0

    def schemas(
        self,
        name: str,
        where: str,
        at: str,
        theirs: dict[str, Any],
        ours: dict[str, Any],
        lookups: tuple[dict[str, Any], dict[str, Any]],
        depth: int = 0,
    ) -> None:
        a, b = _resolve(theirs, lookups[0]), _resolve(ours, lookups[1])
        ka, kb = _kind(a), _kind(b)
        if ka != kb:
            self.found.add((name, where, at, f"type: KFP {ka}, Canal {kb}"))
            return
        if "enum" in a and "enum" in b:
            only_kfp = sorted(set(map(str, a["enum"])) - set(map(str, b["enum"])))
            only_canal = sorted(set(map(str, b["enum"])) - set(map(str, a["enum"])))
            if only_kfp or only_canal:
                what = f"enum: only KFP {only_kfp}, only Canal {only_canal}"
                self.found.add((name, where, at, what))
        if depth >= MAX_DEPTH:
            return
        prefix = f"{at}." if at else ""
        if ka == "array":
            items = (a.get("items") or {}, b.get("items") or {})
            self.schemas(name, where, f"{at}[]", *items, lookups, depth + 1)
            return
        if ka != "object":
            return
        pa, pb = a.get("properties") or {}, b.get("properties") or {}
        for key in sorted(set(pa) - set(pb)):
            self.found.add((name, where, prefix + key, "KFP"))
        for key in sorted(set(pb) - set(pa)):
            self.found.add((name, where, prefix + key, "Canal"))
        for key in sorted(set(pa) & set(pb)):
            self.compared += 1
            self.schemas(name, where, prefix + key, pa[key], pb[key], lookups, depth + 1)
        va, vb = a.get("additionalProperties"), b.get("additionalProperties")
        if not pa and not pb and isinstance(va, dict) and isinstance(vb, dict) and va and vb:
            self.schemas(name, where, f"{at}{{}}", va, vb, lookups, depth + 1)


def differences(
    kfp: dict[tuple[str, str], Operation], canal: dict[tuple[str, str], Operation], walk: Walk | None = None
) -> set[Difference]:
    """Every difference between the two documents, named by KFP's path where KFP has the
    operation (by Canal's where only Canal has it)."""
    walk = walk if walk is not None else Walk()
    for key in sorted(set(canal) - set(kfp)):
        walk.found.add((f"{key[0]} {canal[key].path}", "operation", "", "Canal"))
    for key, theirs in sorted(kfp.items()):
        ours = canal.get(key)
        name = f"{key[0]} {theirs.path}"
        if ours is None:
            walk.found.add((name, "operation", "", "KFP"))
            continue
        walk.found.update((name, "query", q, "KFP") for q in theirs.query - ours.query)
        walk.found.update((name, "query", q, "Canal") for q in ours.query - theirs.query)
        walk.compared += len(theirs.query & ours.query)
        for where in ("request", "response"):
            a, b = getattr(theirs, where), getattr(ours, where)
            if a is None and b is None:
                continue
            if a is None or b is None:
                whole = NO_200 if where == "response" else "(a body)"
                walk.found.add((name, where, whole, "KFP" if b is None else "Canal"))
                continue
            walk.schemas(name, where, "", a, b, (theirs.lookup, ours.lookup))
    return walk.found


def _key(what: str) -> str:
    return "only_in" if what in ("KFP", "Canal") else "differs"


def _allowed() -> dict[Difference, str]:
    """The listed differences. ``operation`` may be a list: one reason for the same field
    of several operations. ``only_in`` (KFP or Canal) or ``differs`` says what differs."""
    allowed = {}
    for d in yaml.safe_load(ALLOWED.read_text())["differences"]:
        operations = d["operation"] if isinstance(d["operation"], list) else [d["operation"]]
        what = d["only_in"] if "only_in" in d else d["differs"]
        for operation in operations:
            key = (operation, d["in"], d.get("field", ""), what)
            assert key not in allowed, f"listed twice in {ALLOWED.name}: {key}"
            allowed[key] = d["reason"]
    return allowed


@pytest.fixture
def documents(api: APIClient) -> tuple[dict[str, Any], dict[str, Any]]:
    served = api.get(f"{API}/openapi.json")
    assert served.status_code == 200
    return json.loads(SWAGGER.read_text()), served.json()


@pytest.mark.django_db
def test_every_kfp_operation_is_served(
    documents: tuple[dict[str, Any], dict[str, Any]], request: Any
) -> None:
    swagger, document = documents
    kfp, canal = kfp_operations(swagger), canal_operations(document)
    assert len(kfp) == 40  # the swagger's own count (corpus README)
    missing = sorted(f"{method} {kfp[(method, path)].path}" for method, path in set(kfp) - set(canal))
    assert not missing, f"KFP operations Canal does not serve: {missing}"
    walk = Walk()
    found = differences(kfp, canal, walk)
    allowed = _allowed()
    lines = [
        f"KFP operations: {len(kfp)}, all served; Canal operations: {len(canal)} "
        f"({len(set(canal) - set(kfp))} of them Canal's own)",
        f"fields compared (query parameters, request and response fields at every depth): {walk.compared}",
        f"differences: {len(found)}, each listed with a reason in {ALLOWED.name}",
        *(f"{op} | {where} | {name or '-'} | {what}" for op, where, name, what in sorted(found)),
    ]
    report(request.config, "KFP swagger parity", lines)
    assert walk.compared > 500  # the walk goes into nested messages, not just the top level
    unexplained = sorted(found - set(allowed))
    assert not unexplained, f"differences from KFP's swagger with no reason in {ALLOWED}:\n" + "\n".join(
        f"- operation: {op}\n  in: {w}\n  field: {f!r}\n  {_key(s)}: {s!r}" for op, w, f, s in unexplained
    )
    stale = sorted(set(allowed) - found)
    assert not stale, f"listed in {ALLOWED.name} but no longer a difference: {stale}"
    assert all(reason and reason.strip() for reason in allowed.values())


def test_the_comparison_sees_a_difference() -> None:
    """The comparison itself: a field removed from one side is reported, either way, at
    any depth; so is a field whose type or enum values differ."""
    swagger = json.loads(SWAGGER.read_text())
    kfp = kfp_operations(swagger)
    assert not differences(kfp, kfp)
    key = ("GET", "/apis/v2beta1/experiments/{}")
    lookup = json.loads(json.dumps(swagger["definitions"]))
    experiment = lookup["v2beta1Experiment"]["properties"]
    del experiment["namespace"]
    experiment["display_name"] = {"type": "integer"}
    lookup["v2beta1ExperimentStorageState"]["enum"].append("GONE")
    task = lookup["v2beta1PipelineTaskDetail"]["properties"]
    task["child_tasks"]["items"] = {"type": "object", "properties": {"task_id": {"type": "string"}}}
    trimmed = {k: Operation(op.path, op.query, op.request, op.response, lookup) for k, op in kfp.items()}
    trimmed[key] = Operation(
        path="/apis/v2beta1/experiments/{experiment_id}",
        query=kfp[key].query | {"extra"},
        request=None,
        response=kfp[key].response,
        lookup=lookup,
    )
    del trimmed[("POST", "/apis/v2beta1/workflows")]
    found = differences(kfp, trimmed)
    run = "GET /apis/v2beta1/runs/{run_id}"
    experiment_op = "GET /apis/v2beta1/experiments/{experiment_id}"
    assert (experiment_op, "response", "namespace", "KFP") in found
    assert (experiment_op, "response", "display_name", "type: KFP string, Canal integer") in found
    assert (experiment_op, "response", "storage_state", "enum: only KFP [], only Canal ['GONE']") in found
    assert (experiment_op, "query", "extra", "Canal") in found
    assert (run, "response", "run_details.task_details[].child_tasks[].pod_name", "KFP") in found
    assert ("POST /apis/v2beta1/workflows", "operation", "", "KFP") in found
