"""Kubernetes manifests as the tests read them: rendered by ``kubectl kustomize`` and loaded,
strictly, into the ``kubernetes`` client's models.

The client's deserializer keeps only the fields its model knows and drops every other key
without a word: ``readinesProbe`` (a typo) would vanish, and the API server would reject
the manifest (or, with a lenient server, ignore the probe). ``strict_model`` therefore
serializes the model back and fails on any key of the manifest that did not survive the
round trip, and on any value that changed on the way (``"8"`` where an integer belongs).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml
from kubernetes.client import ApiClient

from tests.paths import PROJECT

KUSTOMIZATION = PROJECT / "deploy" / "kubernetes"
SECRETS_EXAMPLE = KUSTOMIZATION / "secrets.example.yaml"

Obj = dict[str, Any]


def kubectl() -> str:
    """kubectl, or skip: `.ci/run` installs it (Debian's kubernetes-client), as it installs
    Chromium for the browser tests, which are skipped the same way when it is absent."""
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not installed (scripts/ensure-system-deps.sh kubectl installs it)")
    return path


def render(directory: Path = KUSTOMIZATION) -> list[Obj]:
    """``kubectl kustomize directory``, as a list of objects."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]


def load_yaml(path: Path) -> list[Obj]:
    """The objects of a plain (not kustomized) manifest file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def by_kind(objects: list[Obj], kind: str) -> dict[str, Obj]:
    """The objects of one kind, by name."""
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def model_name(obj: Obj) -> str:
    """The client's model class for an object: ``apps/v1`` ``Deployment`` is ``V1Deployment``."""
    version = str(obj.get("apiVersion", "")).rsplit("/", 1)[-1]
    name = version[:1].upper() + version[1:] + str(obj.get("kind", ""))
    if not hasattr(kubernetes.client, name):
        raise AssertionError(f"the kubernetes client has no model {name} for {obj.get('apiVersion')}")
    return name


@dataclass
class JsonResponse:
    """What ``ApiClient.deserialize`` reads: a response whose body is JSON."""

    data: str


def lost_fields(given: Any, kept: Any, path: str = "") -> list[str]:
    """Where ``kept`` (the model, serialized back) differs from ``given`` (the manifest):
    keys that were dropped, values whose type or value changed. A null is absence."""
    where = path or "(top)"
    if isinstance(given, dict):
        if not isinstance(kept, dict):
            return [f"{where}: a mapping read as {type(kept).__name__}"]
        problems: list[str] = []
        for key, value in given.items():
            inner = f"{path}.{key}" if path else str(key)
            if value is None:
                continue
            if key not in kept:
                problems.append(f"{inner}: unknown field, dropped by the model")
            else:
                problems += lost_fields(value, kept[key], inner)
        problems += [f"{path}.{key}: appeared" for key in kept.keys() - given.keys()]
        return problems
    if isinstance(given, list):
        if not isinstance(kept, list) or len(kept) != len(given):
            return [f"{where}: a list of {len(given)} read as {kept!r}"]
        return [
            p
            for i, (g, k) in enumerate(zip(given, kept, strict=True))
            for p in lost_fields(g, k, f"{path}[{i}]")
        ]
    if type(given) is not type(kept) or given != kept:
        return [f"{where}: {given!r} read as {kept!r}"]
    return []


def strict_model(obj: Obj) -> Any:
    """The object as its ``kubernetes`` client model; AssertionError if the model refuses it
    (a required field missing: the model's own check) or loses or changes any part of it."""
    name = model_name(obj)
    with ApiClient() as api:
        try:
            model = api.deserialize(JsonResponse(json.dumps(obj)), name)
        except (ValueError, TypeError) as exc:
            raise AssertionError(
                f"{obj['kind']}/{obj['metadata'].get('name')}: {name} refuses it: {exc}"
            ) from None
        kept = api.sanitize_for_serialization(model)
    problems = lost_fields(obj, kept)
    if problems:
        raise AssertionError(
            f"{obj['kind']}/{obj['metadata'].get('name')} does not fit {name}:\n  " + "\n  ".join(problems)
        )
    return model
