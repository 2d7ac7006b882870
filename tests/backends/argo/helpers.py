"""Compiling corpus and hand-made IR for the Argo compiler tests, and reading the result."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from apps.backends.argo.compiler import ArgoSettings, compile_workflow
from apps.importers import ImportedPipeline, import_pipeline
from tests.paths import KFP_GOLDEN, KFP_VALID

RUN_ID = "7d3f1a52-0000-4000-8000-000000000001"
GOLDEN = KFP_GOLDEN
EXPECTATIONS = Path(__file__).resolve().parents[2] / "runs" / "data" / "corpus_expectations.yaml"
# Values for required pipeline parameters the corpus table gives none for, by type.
SAMPLE_VALUES: dict[str, Any] = {
    "STRING": "text",
    "NUMBER_INTEGER": 1,
    "NUMBER_DOUBLE": 1.5,
    "BOOLEAN": True,
    "LIST": [1, 2],
    "STRUCT": {"key": "value"},
}


def corpus_names() -> list[str]:
    """Every corpus pipeline file (YAML and archives), relative to ``valid/``."""
    return sorted(
        str(p.relative_to(KFP_VALID)) for p in KFP_VALID.rglob("*") if p.suffix in (".yaml", ".zip")
    )


@cache
def imported(name: str) -> ImportedPipeline:
    """A corpus file read as an upload is."""
    path = KFP_VALID / name
    return import_pipeline(path.read_bytes(), path.name)


@cache
def _expectations() -> dict[str, Any]:
    table: dict[str, Any] = yaml.safe_load(EXPECTATIONS.read_text())
    return table


def run_parameters(name: str) -> dict[str, Any]:
    """The parameters the local corpus test runs ``name`` with, plus samples for required ones."""
    entry = _expectations().get(name, {})
    params: dict[str, Any] = json.loads(json.dumps(entry.get("params", {})).replace("{tmp}", "/tmp/canal"))
    spec = imported(name).pipeline_spec
    definitions = ((spec.get("root") or {}).get("inputDefinitions") or {}).get("parameters") or {}
    for pname, definition in definitions.items():
        if pname in params or "defaultValue" in definition or definition.get("isOptional"):
            continue
        params[pname] = SAMPLE_VALUES[definition.get("parameterType", "STRING")]
    return params


def local_expectation(name: str) -> str:
    """What the local backend's corpus test expects of ``name`` (SUCCEEDED, FAILED, skip, ...)."""
    return str(_expectations().get(name, {}).get("expect", "?"))


def compile_corpus(name: str, **kwargs: Any) -> dict[str, Any]:
    """Compile a corpus file with its run parameters."""
    pipeline = imported(name)
    options: dict[str, Any] = {"run_id": RUN_ID, "parameters": run_parameters(name)}
    options.update(kwargs)
    return compile_workflow(pipeline.pipeline_spec, platform_spec=pipeline.platform_spec, **options)


def compile_ir(ir: dict[str, Any], platform: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Compile a hand-made IR dict."""
    options: dict[str, Any] = {"run_id": RUN_ID, "settings": ArgoSettings()}
    options.update(kwargs)
    return compile_workflow(copy.deepcopy(ir), platform_spec=platform, **options)


def templates(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The workflow's templates by name."""
    return {t["name"]: t for t in workflow["spec"]["templates"]}


def role(workflow: dict[str, Any], role_name: str, task_key: str) -> dict[str, Any]:
    """The template with annotations canal.io/role and canal.io/task."""
    for template in workflow["spec"]["templates"]:
        annotations = (template.get("metadata") or {}).get("annotations") or {}
        if annotations.get("canal.io/role") == role_name and annotations.get("canal.io/task") == task_key:
            return template
    raise AssertionError(f"no {role_name} template for {task_key}")


def dag_task(workflow: dict[str, Any], template_name: str, task_name: str) -> dict[str, Any]:
    """One task of a DAG template."""
    for task in templates(workflow)[template_name]["dag"]["tasks"]:
        if task["name"] == task_name:
            return dict(task)
    raise AssertionError(f"no task {task_name} in {template_name}")


def driver_config(template: dict[str, Any]) -> dict[str, Any]:
    """The CANAL_CONFIG a driver template carries, decoded."""
    for env in template["script"]["env"]:
        if env["name"] == "CANAL_CONFIG":
            config: dict[str, Any] = json.loads(env["value"])
            return config
    raise AssertionError("not a driver template")


def ir_with_platform(executor: str, config: dict[str, Any]) -> dict[str, Any]:
    """A platform spec configuring one executor."""
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {executor: config}}}}}
