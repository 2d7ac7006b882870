"""ExecutorInput in, ExecutorOutput back: the files a KFP component reads and writes.

* :func:`build_executor_input` produces exactly the JSON KFP's launcher gives a component
  (the ``{{$}}`` placeholder, ``--executor_input`` of lightweight Python components).
* :func:`collect_outputs` reads what the component left behind, like the launcher's
  ``collectOutputParameters`` + ``uploadOutputArtifacts``: ``executor_output.json``
  wins; a parameter missing from it is read from its output file and parsed by its
  declared type; artifact metadata written by the component (Metrics and
  ClassificationMetrics values live there) is merged onto the provisioned artifact.
* :func:`resolve_importer` is the importer "executor": no process, just the artifact.

Artifacts returned here have an empty ``id``; the service assigns one when it stores them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apps.engine.model import ArtifactRef, NodeIO, StepLaunch
from apps.engine.placeholders import render_string
from apps.engine.spec import MAX_NAME, MAX_URI, OutputArtifactDef, normalize_parameter_value
from apps.engine.untrusted import InputError, check_json
from apps.engine.values import json_type_name

# Where KFP's launcher tells a component to write its ExecutorOutput and parameters.
DEFAULT_OUTPUT_FILE = "/tmp/kfp_outputs/output_metadata.json"  # noqa: S108 - KFP's fixed path
DEFAULT_PARAMETER_DIR = "/tmp/kfp/outputs"  # noqa: S108


class OutputError(ValueError):
    """A step finished but its outputs are missing or malformed; the step fails with this message."""


def build_executor_input(
    launch: StepLaunch,
    output_artifact_uris: Mapping[str, str],
    output_parameter_files: Mapping[str, str],
    output_file: str,
) -> dict[str, Any]:
    """The ExecutorInput JSON for a step (``inputs`` and ``outputs``, camelCase as protojson writes it)."""
    inputs: dict[str, Any] = {"parameterValues": dict(launch.input_parameters)}
    if launch.input_artifacts:
        inputs["artifacts"] = {
            name: {"artifacts": [ref.runtime_artifact() for ref in refs]}
            for name, refs in launch.input_artifacts.items()
        }
    outputs: dict[str, Any] = {"outputFile": output_file}
    if launch.output_parameters:
        missing = sorted(set(launch.output_parameters) - set(output_parameter_files))
        if missing:
            raise ValueError(f"no output file given for output parameters {missing}")
        outputs["parameters"] = {
            name: {"outputFile": output_parameter_files[name]} for name in launch.output_parameters
        }
    if launch.output_artifacts:
        missing = sorted(set(launch.output_artifacts) - set(output_artifact_uris))
        if missing:
            raise ValueError(f"no URI given for output artifacts {missing}")
        outputs["artifacts"] = {
            name: {"artifacts": [_provisioned(name, definition, output_artifact_uris[name])]}
            for name, definition in launch.output_artifacts.items()
        }
    return {"inputs": inputs, "outputs": outputs}


def _provisioned(name: str, definition: OutputArtifactDef, uri: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": definition.artifact_type.to_json(),
        "uri": uri,
        "metadata": dict(definition.metadata),
    }


def default_parameter_files(launch: StepLaunch, directory: str = DEFAULT_PARAMETER_DIR) -> dict[str, str]:
    """KFP's output parameter file layout: ``<directory>/<name>``."""
    return {name: f"{directory.rstrip('/')}/{name}" for name in launch.output_parameters}


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_parameter_text(text: str, parameter_type: str, name: str = "") -> Any:
    """Parse an output parameter file by its declared type (KFP's ``TextToPbValue``)."""
    label = f"output parameter '{name}'" if name else "output parameter"
    stripped = text.strip()
    try:
        if parameter_type == "STRING":
            return text
        if parameter_type == "NUMBER_INTEGER":
            return int(stripped, 10)
        if parameter_type == "NUMBER_DOUBLE":
            return float(stripped)
        if parameter_type == "BOOLEAN":
            if stripped in _TRUE:
                return True
            if stripped in _FALSE:
                return False
            raise ValueError(f"{stripped!r} is not a boolean")
        if parameter_type in ("LIST", "STRUCT", "TASK_FINAL_STATUS", "TASK_CONFIG"):
            try:
                value = json.loads(text)
            except RecursionError:
                raise ValueError("the JSON is nested too deeply") from None
            want = list if parameter_type == "LIST" else dict
            if not isinstance(value, want):
                raise ValueError(f"expected a {parameter_type} but the JSON is a {json_type_name(value)}")
            return value
    except ValueError as exc:
        raise OutputError(f"{label} ({parameter_type}) could not be read: {exc}") from exc
    raise OutputError(f"{label} has an unknown type {parameter_type}")


def _legacy_parameter(value: Any) -> Any:
    # The deprecated ExecutorOutput.parameters map holds typed Values.
    if isinstance(value, dict) and len(value) == 1:
        kind, inner = next(iter(value.items()))
        if kind == "intValue":
            return int(inner)
        if kind == "doubleValue":
            return float(inner)
        if kind == "stringValue":
            return str(inner)
    return value


def collect_outputs(
    launch: StepLaunch,
    executor_output: Mapping[str, Any] | None,
    parameter_file_contents: Mapping[str, str],
    output_artifact_uris: Mapping[str, str] | None = None,
) -> NodeIO:
    """A finished step's outputs, from ``executor_output.json`` and the per-parameter files."""
    produced = executor_output or {}
    if not isinstance(produced, Mapping):
        raise OutputError("the executor output is not a JSON object")
    values = dict(produced.get("parameterValues") or {})
    for name, legacy in (produced.get("parameters") or {}).items():
        values.setdefault(name, _legacy_parameter(legacy))

    parameters: dict[str, Any] = {}
    for name, definition in launch.output_parameters.items():
        if name in values:
            value = normalize_parameter_value(values[name], definition.parameter_type)
            if definition.parameter_type == "STRING" and not isinstance(value, str):
                raise OutputError(
                    f"output parameter '{name}' should be a string, got a {json_type_name(value)}"
                )
            parameters[name] = value
        elif name in parameter_file_contents:
            parameters[name] = parse_parameter_text(
                parameter_file_contents[name], definition.parameter_type, name
            )
        else:
            raise OutputError(f"the step did not produce its output parameter '{name}'")

    uris = output_artifact_uris or {}
    written = produced.get("artifacts") or {}
    artifacts: dict[str, list[ArtifactRef]] = {}
    for name, artifact_def in launch.output_artifacts.items():
        base = ArtifactRef(
            id="",
            name=name,
            uri=uris.get(name, ""),
            schema_title=artifact_def.artifact_type.schema_title,
            schema_version=artifact_def.artifact_type.schema_version,
            metadata=dict(artifact_def.metadata),
        )
        entries = (written.get(name) or {}).get("artifacts") or []
        if not entries:
            artifacts[name] = [base]
            continue
        refs = [_merge(base, entries[0])]
        if artifact_def.is_artifact_list:
            # A list output (List[Artifact] return) may carry more than the provisioned one.
            refs.extend(_merge(replace_uri(base, ""), extra) for extra in entries[1:])
        artifacts[name] = refs
    _check_outputs(parameters, artifacts)
    return NodeIO(parameters, artifacts)


def _check_outputs(parameters: Mapping[str, Any], artifacts: Mapping[str, list[ArtifactRef]]) -> None:
    """Refuse outputs Canal could not store, render or hash (a lone surrogate from a
    ``"\\ud800"`` escape, absurd nesting): the step fails saying which output, rather
    than breaking the run's page and the cache fingerprints of the steps after it."""
    values: list[tuple[str, Any]] = [(f"output parameter '{n}'", v) for n, v in parameters.items()]
    values += [
        (f"output artifact '{n}'", [ref.name, ref.uri, ref.metadata])
        for n, refs in artifacts.items()
        for ref in refs
    ]
    for what, value in values:
        try:
            check_json(value, lenient=True, json_only=False)
        except InputError as exc:
            where = f" at {exc.field}" if exc.path else ""
            raise OutputError(f"{what}{where}: {exc.message}") from None
    for n, refs in artifacts.items():
        for ref in refs:
            _check_artifact_ref(f"output artifact '{n}'", ref)


def _check_artifact_ref(what: str, ref: ArtifactRef) -> None:
    # What a step (or an importer's input) gave at run time and an artifact row stores.
    if len(ref.uri) > MAX_URI:
        raise OutputError(
            f"{what}: its URI is {len(ref.uri):,} characters long; at most {MAX_URI} are allowed"
        )
    if len(ref.name) > MAX_NAME:
        raise OutputError(
            f"{what}: its name is {len(ref.name):,} characters long; at most {MAX_NAME} are allowed"
        )


def replace_uri(ref: ArtifactRef, uri: str) -> ArtifactRef:
    """A copy of ``ref`` with another URI and no metadata."""
    return ArtifactRef(ref.id, ref.name, uri, ref.schema_title, ref.schema_version, {})


def _merge(base: ArtifactRef, written: Mapping[str, Any]) -> ArtifactRef:
    # KFP's mergeRuntimeArtifacts: a written URI replaces the provisioned one, metadata
    # keys are merged over the provisioned metadata.
    metadata = dict(base.metadata)
    metadata.update(written.get("metadata") or {})
    return ArtifactRef(
        id=base.id,
        name=str(written.get("name") or base.name) if not base.name else base.name,
        uri=str(written.get("uri") or base.uri),
        schema_title=base.schema_title,
        schema_version=base.schema_version,
        metadata=metadata,
    )


@dataclass(frozen=True)
class ImportedArtifact:
    """The importer's result: the artifact, and whether an existing one with the same URI may be reused."""

    outputs: NodeIO
    reimport: bool


def resolve_importer(launch: StepLaunch) -> ImportedArtifact:
    """Resolve an importer step: URI (constant or runtime parameter), type and metadata."""
    importer = launch.importer
    if importer is None:
        raise ValueError(f"step {launch.key!r} is not an importer")
    if importer.artifact_uri_constant is not None:
        uri = importer.artifact_uri_constant
    else:
        source = importer.artifact_uri_runtime_parameter or ""
        if source not in launch.input_parameters:
            raise OutputError(f"the importer's URI input '{source}' has no value")
        uri = launch.input_parameters[source]
        if not isinstance(uri, str):
            raise OutputError(f"the importer's URI input '{source}' is a {json_type_name(uri)}, not a string")
    if not uri:
        raise OutputError("the importer's artifact URI is empty")
    metadata = _resolve_metadata(importer.metadata, launch.input_parameters)
    if not isinstance(metadata, dict):
        raise OutputError("the importer's metadata must be a mapping")
    output_name = next(iter(launch.output_artifacts), "artifact")
    ref = ArtifactRef(
        id="",
        name=output_name,
        uri=uri,
        schema_title=importer.type_schema.schema_title,
        schema_version=importer.type_schema.schema_version,
        metadata=metadata,
    )
    _check_artifact_ref("the imported artifact", ref)
    return ImportedArtifact(NodeIO({}, {output_name: [ref]}), importer.reimport)


def _resolve_metadata(node: Any, parameters: Mapping[str, Any]) -> Any:
    # Importer metadata may hold input placeholders in keys and values. A value that is
    # exactly one placeholder keeps the parameter's JSON type; embedded ones become text.
    if isinstance(node, dict):
        return {
            str(_resolve_metadata(k, parameters)): _resolve_metadata(v, parameters) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_resolve_metadata(item, parameters) for item in node]
    if isinstance(node, str) and "{{$" in node:
        prefix, suffix = "{{$.inputs.parameters['", "']}}"
        if node.startswith(prefix) and node.endswith(suffix) and node.count("{{") == 1:
            name = node[len(prefix) : -len(suffix)]
            if name in parameters:
                return parameters[name]
        return render_string(node, {"inputs": {"parameterValues": dict(parameters)}})
    return node
