"""Canal's OpenAPI document against KFP's published v2beta1 swagger, operation by operation.

Every operation of ``corpus/kfp/swagger/kfp_api_single_file.swagger.json`` (method and
path, path parameters compared by position: KFP's ``{pipeline.pipeline_id}`` and
Canal's ``{pipeline_id}`` are the same segment) must be in Canal's document. Then, for
each operation, the names of its query parameters, of the top-level fields of its
request body (a body that is one string counts as the field ``<string>``; a multipart
upload's form fields count as body fields) and of the top-level fields of its 200
response are compared. Every difference, either way, must be listed with a reason in
``tests/api/data/swagger_differences.yaml``; a new one fails, and so does a listed one
that is no longer a difference. Operations only Canal has are differences too.

Field types and nested fields (the items of a List response) are not compared.
The count and the differences are printed in pytest's terminal summary.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Operation:
    path: str  # as the document writes it
    query: frozenset[str]
    request: frozenset[str] | None  # None: no body
    response: frozenset[str] | None  # None: no 200 response


def _normalise(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def _resolve(schema: dict[str, Any], lookup: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = lookup[schema["$ref"].rsplit("/", 1)[1]]
    if len(schema.get("allOf") or ()) == 1:
        return _resolve(schema["allOf"][0], lookup)
    return schema


def _fields(schema: dict[str, Any] | None, lookup: dict[str, Any]) -> frozenset[str]:
    if schema is None:
        return frozenset()
    schema = _resolve(schema, lookup)
    if schema.get("type") == "string":
        return frozenset({"<string>"})
    return frozenset(schema.get("properties") or {})


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
            form = frozenset(p["name"] for p in parameters if p["in"] == "formData")
            request = _fields(body[0]["schema"], lookup) if body else (form or None)
            ok = spec["responses"].get("200")
            found[(method.upper(), _normalise(path))] = Operation(
                path=path,
                query=frozenset(p["name"] for p in parameters if p["in"] == "query"),
                request=request,
                response=None if ok is None else _fields(ok.get("schema"), lookup),
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
                response = _fields(
                    ((ok.get("content") or {}).get("application/json") or {}).get("schema"), lookup
                )
            found[(method.upper(), _normalise(path))] = Operation(
                path=path,
                query=frozenset(p["name"] for p in spec.get("parameters") or [] if p["in"] == "query"),
                request=None if kind is None else _fields(content[kind]["schema"], lookup),
                response=response,
            )
    return found


Difference = tuple[str, str, str, str]  # (operation, where, field, only_in)


def differences(
    kfp: dict[tuple[str, str], Operation], canal: dict[tuple[str, str], Operation]
) -> set[Difference]:
    """Every difference between the two documents, named by KFP's path where KFP has the
    operation (by Canal's where only Canal has it)."""
    found: set[Difference] = set()
    for key in sorted(set(canal) - set(kfp)):
        found.add((f"{key[0]} {canal[key].path}", "operation", "", "Canal"))
    for key, theirs in sorted(kfp.items()):
        ours = canal.get(key)
        name = f"{key[0]} {theirs.path}"
        if ours is None:
            found.add((name, "operation", "", "KFP"))
            continue
        for where in ("query", "request", "response"):
            a, b = getattr(theirs, where), getattr(ours, where)
            if a is None and b is None:
                continue
            if a is None or b is None:
                whole = NO_200 if where == "response" else "(a body)"
                found.add((name, where, whole, "KFP" if b is None else "Canal"))
                continue
            found.update((name, where, field, "KFP") for field in a - b)
            found.update((name, where, field, "Canal") for field in b - a)
    return found


def _allowed() -> dict[Difference, str]:
    listed = yaml.safe_load(ALLOWED.read_text())["differences"]
    return {(d["operation"], d["in"], d.get("field", ""), d["only_in"]): d["reason"] for d in listed}


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
    found = differences(kfp, canal)
    allowed = _allowed()
    lines = [
        f"KFP operations: {len(kfp)}, all served; Canal operations: {len(canal)} "
        f"({len(set(canal) - set(kfp))} of them Canal's own)",
        f"differences: {len(found)}, each listed with a reason in {ALLOWED.name}",
        *(f"{op} | {where} | {field or '-'} | only in {side}" for op, where, field, side in sorted(found)),
    ]
    report(request.config, "KFP swagger parity", lines)
    unexplained = sorted(found - set(allowed))
    assert not unexplained, f"differences from KFP's swagger with no reason in {ALLOWED}:\n" + "\n".join(
        f"- operation: {op}\n  in: {w}\n  field: {f!r}\n  only_in: {s}" for op, w, f, s in unexplained
    )
    stale = sorted(set(allowed) - found)
    assert not stale, f"listed in {ALLOWED.name} but no longer a difference: {stale}"
    assert all(reason and reason.strip() for reason in allowed.values())


def test_the_comparison_sees_a_difference() -> None:
    """The comparison itself: a field removed from one side is reported, either way."""
    swagger = json.loads(SWAGGER.read_text())
    kfp = kfp_operations(swagger)
    key = ("GET", "/apis/v2beta1/experiments/{}")
    assert {"display_name", "namespace", "storage_state"} <= kfp[key].response  # type: ignore[operator]
    trimmed = dict(kfp)
    trimmed[key] = Operation(
        path="/apis/v2beta1/experiments/{experiment_id}",
        query=kfp[key].query | {"extra"},
        request=None,
        response=kfp[key].response - {"namespace"},  # type: ignore[operator]
    )
    del trimmed[("POST", "/apis/v2beta1/workflows")]
    found = differences(kfp, trimmed)
    assert found == {
        ("GET /apis/v2beta1/experiments/{experiment_id}", "response", "namespace", "KFP"),
        ("GET /apis/v2beta1/experiments/{experiment_id}", "query", "extra", "Canal"),
        ("POST /apis/v2beta1/workflows", "operation", "", "KFP"),
    }
