"""Rendering of a container's command and args: every KFP placeholder, never via a shell.

Supported, as the KFP launcher and kfp.local resolve them:

* ``{{$}}``: the whole ExecutorInput as JSON;
* ``{{$.inputs.parameters['x']}}``: strings raw, numbers like Go's
  ``FormatFloat(x, 'f', -1, 64)`` (``3``, ``2.5``), ``true``/``false``, JSON for lists
  and structs;
* ``{{$.inputs.artifacts['a'].uri|.path|.metadata|.metadata['k']}}`` and
  ``{{$.inputs.artifacts['a']}}`` (the artifact list as JSON);
* ``{{$.outputs.parameters['p'].output_file}}``,
  ``{{$.outputs.artifacts['a'].uri|.path|.metadata}}``, ``{{$.outputs.output_file}}``
  (and its old name ``{{$.outputMetadataUri}}``);
* run context: ``pipeline_job_name``, ``pipeline_job_resource_name``,
  ``pipeline_job_uuid``, ``pipeline_task_name``, ``pipeline_task_uuid``,
  ``pipeline_root``, ``pipeline_job_create_time_utc``,
  ``pipeline_job_schedule_time_utc``, ``workspace_path``;
* structured placeholders: an argument that is exactly a JSON object
  ``{"Concat": [...]}`` or ``{"IfPresent": {"InputName": n, "Then": [...], "Else": [...]}}``,
  nested to any depth; an ``IfPresent`` whose input is absent and that has no ``Else``
  contributes no argument at all.

Placeholders may sit anywhere inside a longer string (f-strings). A placeholder that
names an input the task did not receive is left verbatim, as KFP's launcher does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from apps.engine.spec import ContainerSpec, ResourceSpec
from apps.engine.values import value_to_text

WORKSPACE_MOUNT_PATH: Final = "/kfp-workspace"

_PLACEHOLDER = re.compile(r"\{\{\$(?:\.[^{}]*)?\}\}")
_IO = re.compile(
    r"""^\$\.(?P<side>inputs|outputs)\.(?P<group>parameters|artifacts)\['(?P<name>[^']*)'\]"""
    r"""(?:\.(?P<attr>uri|path|metadata|output_file|value))?(?:\['(?P<key>[^']*)'\])?$"""
)


@dataclass(frozen=True)
class PlaceholderContext:
    """Run- and task-level values for the ``{{$.pipeline_*}}`` placeholders."""

    pipeline_job_name: str = ""  # the run's display name
    pipeline_job_resource_name: str = ""  # the run's resource name
    pipeline_job_uuid: str = ""  # the run id
    pipeline_task_name: str = ""
    pipeline_task_uuid: str = ""  # the task's id; the service fills it in
    pipeline_root: str = ""
    pipeline_job_create_time_utc: str = ""
    pipeline_job_schedule_time_utc: str = ""
    workspace_path: str = WORKSPACE_MOUNT_PATH

    def constants(self) -> dict[str, str]:
        """The run-context placeholders and their values."""
        return {
            "{{$.pipeline_job_name}}": self.pipeline_job_name,
            "{{$.pipeline_job_resource_name}}": self.pipeline_job_resource_name,
            "{{$.pipeline_job_uuid}}": self.pipeline_job_uuid,
            "{{$.pipeline_task_name}}": self.pipeline_task_name,
            "{{$.pipeline_task_uuid}}": self.pipeline_task_uuid,
            "{{$.pipeline_root}}": self.pipeline_root,
            "{{$.pipeline_job_create_time_utc}}": self.pipeline_job_create_time_utc,
            "{{$.pipeline_job_schedule_time_utc}}": self.pipeline_job_schedule_time_utc,
            "{{$.workspace_path}}": self.workspace_path,
        }


def local_path_for_uri(uri: str) -> str:
    """Where an artifact URI is mounted inside a step, as KFP maps it (``gs://b/x`` → ``/gcs/b/x``)."""
    for prefix, mount in (("gs://", "/gcs/"), ("minio://", "/minio/"), ("s3://", "/s3/")):
        if uri.startswith(prefix):
            return mount + uri[len(prefix) :]
    if uri.startswith("oci://"):
        return "/oci/" + uri[len("oci://") :].replace("/", "_") + "/models"
    if uri.startswith("file://"):
        return uri[len("file://") :]
    return uri


PathMapper = Callable[[str], str]


class _Renderer:
    def __init__(
        self,
        executor_input: Mapping[str, Any],
        context: PlaceholderContext,
        path_for_uri: PathMapper,
    ) -> None:
        self.executor_input = executor_input
        self.context = context
        self.path_for_uri = path_for_uri
        inputs = executor_input.get("inputs") or {}
        self.parameters: Mapping[str, Any] = inputs.get("parameterValues") or {}
        self.input_artifacts: Mapping[str, Any] = inputs.get("artifacts") or {}
        outputs = executor_input.get("outputs") or {}
        self.output_parameters: Mapping[str, Any] = outputs.get("parameters") or {}
        self.output_artifacts: Mapping[str, Any] = outputs.get("artifacts") or {}
        self.output_file: str = outputs.get("outputFile") or ""
        self._executor_input_json: str | None = None
        self.constants = context.constants()

    def executor_input_json(self) -> str:
        if self._executor_input_json is None:
            self._executor_input_json = json.dumps(
                self.executor_input, separators=(",", ":"), ensure_ascii=False
            )
        return self._executor_input_json

    def is_present(self, name: str) -> bool:
        if name in self.parameters and self.parameters[name] is not None:
            return True
        entry = self.input_artifacts.get(name)
        return bool(entry and entry.get("artifacts"))

    def resolve(self, placeholder: str) -> str | None:
        if placeholder == "{{$}}":
            return self.executor_input_json()
        if placeholder in self.constants:
            return self.constants[placeholder]
        if placeholder in ("{{$.outputs.output_file}}", "{{$.outputMetadataUri}}"):
            return self.output_file
        match = _IO.match(placeholder[2:-2])
        if match is None:
            return None
        side, group, name, attr, key = match.group("side", "group", "name", "attr", "key")
        if group == "parameters":
            if side == "inputs":
                if attr is not None or name not in self.parameters or self.parameters[name] is None:
                    return None
                return value_to_text(self.parameters[name])
            if attr == "output_file" and name in self.output_parameters:
                return str(self.output_parameters[name].get("outputFile", ""))
            return None
        source = self.input_artifacts if side == "inputs" else self.output_artifacts
        entry = source.get(name)
        artifacts = (entry or {}).get("artifacts") or []
        if not artifacts:
            return None
        if attr is None and key is None:
            return json.dumps(artifacts, separators=(",", ":"), ensure_ascii=False)
        first = artifacts[0]
        if attr == "uri":
            return str(first.get("uri", ""))
        if attr == "path":
            return self.path_for_uri(str(first.get("uri", "")))
        if attr == "metadata":
            metadata = first.get("metadata") or {}
            if key is None:
                return json.dumps(metadata, separators=(",", ":"), ensure_ascii=False)
            if key not in metadata:
                return None
            return value_to_text(metadata[key])
        return None

    def substitute(self, text: str) -> str:
        if "{{$" not in text:
            return text

        def replace(match: re.Match[str]) -> str:
            value = self.resolve(match.group(0))
            return match.group(0) if value is None else value

        return _PLACEHOLDER.sub(replace, text)

    # -- structured placeholders ------------------------------------------------------
    def expand(self, arg: str) -> list[str]:
        structure = structured_placeholder(arg)
        if structure is None:
            return [self.substitute(arg)]
        return self._items(structure)

    def _items(self, node: Any) -> list[str]:
        # Any node may yield zero, one or several arguments.
        if node is None:
            return []
        if isinstance(node, str):
            return [self.substitute(node)]
        if isinstance(node, list):
            out: list[str] = []
            for item in node:
                out.extend(self._items(item))
            return out
        if isinstance(node, dict) and "Concat" in node:
            return ["".join("".join(self._items(item)) for item in node["Concat"])]
        if isinstance(node, dict) and "IfPresent" in node:
            body = node["IfPresent"]
            branch = body.get("Then") if self.is_present(str(body.get("InputName"))) else body.get("Else")
            return self._items(branch)
        raise ValueError(f"unknown structured placeholder: {node!r}")


def structured_placeholder(arg: str) -> Any:
    """The decoded structured placeholder when the whole argument is a JSON object
    ``{"Concat": ...}`` or ``{"IfPresent": ...}``; else None (the argument is text)."""
    text = arg.strip()
    if not (text.startswith("{") and ('"Concat"' in text or '"IfPresent"' in text)):
        return None
    try:
        decoded = json.loads(text)
    except ValueError:
        return None
    if isinstance(decoded, dict) and len(decoded) == 1 and next(iter(decoded)) in ("Concat", "IfPresent"):
        return decoded
    return None


def render_args(
    args: Sequence[str],
    executor_input: Mapping[str, Any],
    context: PlaceholderContext | None = None,
    *,
    path_for_uri: PathMapper = local_path_for_uri,
) -> list[str]:
    """Render a list of command/args strings into argv entries."""
    renderer = _Renderer(executor_input, context or PlaceholderContext(), path_for_uri)
    out: list[str] = []
    for arg in args:
        out.extend(renderer.expand(arg))
    return out


def render_command(
    container: ContainerSpec,
    executor_input: Mapping[str, Any],
    context: PlaceholderContext | None = None,
    *,
    path_for_uri: PathMapper = local_path_for_uri,
) -> list[str]:
    """The argv to execute: the container's command followed by its args, fully rendered."""
    return render_args(
        [*container.command, *container.args], executor_input, context, path_for_uri=path_for_uri
    )


def render_string(
    text: str,
    executor_input: Mapping[str, Any],
    context: PlaceholderContext | None = None,
    *,
    path_for_uri: PathMapper = local_path_for_uri,
) -> str:
    """Substitute the placeholders inside one string (no structured placeholders)."""
    return _Renderer(executor_input, context or PlaceholderContext(), path_for_uri).substitute(text)


def render_resources(resources: ResourceSpec, parameter_values: Mapping[str, Any]) -> ResourceSpec:
    """Resolve ``{{$.inputs.parameters[...]}}`` in resource fields (set_cpu_limit(pipeline_input))."""
    executor_input = {"inputs": {"parameterValues": dict(parameter_values)}}
    renderer = _Renderer(executor_input, PlaceholderContext(), local_path_for_uri)
    return ResourceSpec(
        cpu_limit=renderer.substitute(resources.cpu_limit),
        cpu_request=renderer.substitute(resources.cpu_request),
        memory_limit=renderer.substitute(resources.memory_limit),
        memory_request=renderer.substitute(resources.memory_request),
        accelerator_type=renderer.substitute(resources.accelerator_type),
        accelerator_count=renderer.substitute(resources.accelerator_count),
    )


def substitute_parameters(text: str, parameter_values: Mapping[str, Any]) -> str:
    """Replace ``{{$.inputs.parameters['x']}}`` inside ``text`` from ``parameter_values``."""
    if "{{$" not in text:
        return text
    return render_string(text, {"inputs": {"parameterValues": dict(parameter_values)}})
