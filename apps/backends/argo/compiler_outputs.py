"""Reading a compiled Workflow's status back as Canal task outputs (for the persistence agent).

The compiler records on each template what it is (``canal.io/role``: driver, executor,
importer, dag, loop, iteration, check, pvc) and which task it runs (``canal.io/task``, the
static key ``root/loop/task``). A driver's ``resolved`` output parameter holds the task's
runtime key (with iteration indexes), its resolved inputs, its cache fingerprint and
whether its condition held. An executor's outputs are what the user's program left in
``/canal/outputs``; :func:`executor_outputs` turns them into typed parameters and
artifacts with their object-store URIs, applying the same rules as the engine's
``collect_outputs`` (the ExecutorOutput file wins, parameter files are parsed by type,
written artifact metadata is merged) through the driver's own functions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from apps.backends.argo.compiler import (
    ANNOTATION_OUTPUTS,
    ANNOTATION_ROLE,
    ANNOTATION_TASK,
    OUTPUT_DIR,
    OUTPUTS_ARTIFACT,
)
from apps.backends.argo.runtime import driver
from apps.backends.argo.runtime.driver import OutputError

__all__ = ["OutputError", "StepOutputs", "TemplateInfo", "executor_outputs", "template_info"]


@dataclass(frozen=True)
class TemplateInfo:
    """What one template of a compiled Workflow is for."""

    role: str  # driver | executor | importer | dag | loop | iteration | check | pvc
    task_key: str  # static key: root/loop/task (iteration indexes are in the driver's record)


@dataclass(frozen=True)
class StepOutputs:
    """A finished executor's outputs: parameters by name, artifacts as RuntimeArtifact dicts."""

    parameters: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def template_info(workflow: Mapping[str, Any], template_name: str) -> TemplateInfo | None:
    """The role and task of a template (None for a template the compiler did not annotate)."""
    for template in (workflow.get("spec") or {}).get("templates") or []:
        if template.get("name") == template_name:
            annotations = (template.get("metadata") or {}).get("annotations") or {}
            if ANNOTATION_ROLE in annotations:
                return TemplateInfo(annotations[ANNOTATION_ROLE], annotations.get(ANNOTATION_TASK, ""))
    return None


def executor_outputs(
    workflow: Mapping[str, Any], template_name: str, node_outputs: Mapping[str, Any] | None
) -> StepOutputs:
    """Decode an executor node's ``outputs`` (Argo status) into Canal outputs.

    Raises OutputError, naming the output, when the program left an output missing or
    malformed: the task then fails, as on the local backend.
    """
    template = next(
        (t for t in (workflow.get("spec") or {}).get("templates") or [] if t.get("name") == template_name),
        None,
    )
    if template is None:
        raise ValueError(f"the workflow has no template {template_name!r}")
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    described = json.loads(annotations.get(ANNOTATION_OUTPUTS) or "{}")
    outputs = node_outputs or {}
    values = {p.get("name"): p.get("value", driver.ABSENT) for p in outputs.get("parameters") or []}
    task = str(annotations.get(ANNOTATION_TASK, "")).rsplit("/", 1)[-1]
    executor_output = values.get("executor-output", driver.ABSENT)
    ran = not driver.is_absent(values.get("ran", driver.ABSENT))
    parameters: dict[str, Any] = {}
    for argo_name, spec in (described.get("parameters") or {}).items():
        info = {"task": task, "key": spec["name"], "type": spec["type"]}
        present, value = driver.output_parameter(
            info, values.get(argo_name, driver.ABSENT), executor_output, ran
        )
        if present:
            parameters[spec["name"]] = value
    base = _directory_uri(workflow, outputs)
    artifacts: dict[str, list[dict[str, Any]]] = {}
    for name, spec in (described.get("artifacts") or {}).items():
        info = {
            "task": task,
            "key": name,
            "type": spec["type"],
            "meta": spec.get("metadata") or {},
            "list": spec.get("list", False),
            "file": spec["file"],
            "dir": base,
            "root": OUTPUT_DIR,
        }
        artifacts[name] = [
            dict(item, name=name if i == 0 else item.get("name", name))
            for i, item in enumerate(driver.output_artifacts(info, executor_output, ""))
        ]
    return StepOutputs(parameters, artifacts)


def _directory_uri(workflow: Mapping[str, Any], outputs: Mapping[str, Any]) -> str:
    """The object-store URI of the executor's uploaded output directory ('' when none)."""
    root = str(((workflow.get("metadata") or {}).get("annotations") or {}).get("canal.io/pipeline-root", ""))
    parts = urlsplit(root)
    for artifact in outputs.get("artifacts") or []:
        if artifact.get("name") != OUTPUTS_ARTIFACT:
            continue
        s3 = artifact.get("s3") or {}
        key = str(s3.get("key") or "").strip("/")
        bucket = str(s3.get("bucket") or parts.netloc)
        if key:
            return f"{parts.scheme or 's3'}://{bucket}/{key}"
    return ""
