"""The launcher: turn a planned step into a runnable StepSpec, and its results back
into outputs. It plays the part of KFP's driver + launcher for one container step.

``prepare_step`` provisions output URIs (``<root>/<pipeline>/<run>/<task>/<uuid>/<name>``),
stages remote input artifacts into the step's work directory, writes nothing else,
builds the ExecutorInput, and renders the command with every placeholder.
``finish_step`` reads ``executor_output.json`` or the per-parameter files, uploads
remote outputs, and returns the step's outputs.

Artifacts whose URIs are local paths (the filesystem store) are used in place, as
kfp.local does: the kfp SDK's ``Artifact.path`` is the URI itself. Remote artifacts
(``s3://``, ``minio://``) are staged: the step sees a local path as the artifact's
``uri`` and ``path`` in its ExecutorInput, and the recorded artifact keeps the remote URI.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from apps.backends.base import StepResult, StepSpec
from apps.engine.executor_io import OutputError, build_executor_input, collect_outputs
from apps.engine.model import ArtifactRef, NodeIO, StepLaunch
from apps.engine.placeholders import local_path_for_uri, render_command
from apps.storage import StoreConfig, build_artifact_uri, get_store

MAX_EXECUTOR_OUTPUT_BYTES = 16 * 1024 * 1024
MAX_PARAMETER_FILE_BYTES = 4 * 1024 * 1024


class LaunchError(RuntimeError):
    """The step could not be prepared (bad URI, unreachable store...)."""


@dataclass(frozen=True)
class PreparedStep:
    """A step ready to run, and what ``finish_step`` needs to read its results."""

    spec: StepSpec
    executor_input: dict[str, Any]
    output_file: Path
    parameter_files: Mapping[str, Path]
    output_uris: Mapping[str, str]  # output name -> recorded URI
    staged_outputs: Mapping[str, Path] = field(default_factory=dict)  # remote outputs: name -> local path
    store_config: StoreConfig = field(default_factory=StoreConfig)

    @property
    def argv(self) -> list[str]:
        """The rendered command line."""
        return list(self.spec.argv)


def _is_local(uri: str) -> bool:
    return uri.startswith("/") or uri.startswith("file://")


def _local(uri: str) -> Path:
    return Path(local_path_for_uri(uri))


def prepare_step(
    launch: StepLaunch,
    *,
    task_id: str,
    attempt: int,
    work_dir: Path,
    log_path: Path,
    store_config: StoreConfig,
    base_env: Mapping[str, str] | None = None,
    default_timeout: float | None = None,
    pipeline_name: str = "",
) -> PreparedStep:
    """Provision outputs, stage inputs and render the command of one attempt."""
    if launch.container is None:
        raise LaunchError(f"step {launch.key!r} has no container to run")
    if not launch.container.command and not launch.container.args:
        image = launch.container.image
        if image.startswith("argostub/"):
            # kfp-kubernetes' CreatePVC/DeletePVC: KFP's driver does them against the
            # Kubernetes API; there is no program to run.
            raise LaunchError(
                f"'{launch.display_name}' is a Kubernetes-only operation ({image.split('/', 1)[1]}, from "
                "kfp-kubernetes); the local backend cannot create or delete volumes. Run this pipeline on "
                "the Argo backend."
            )
        raise LaunchError(f"the container of '{launch.display_name}' ({image}) has no command or args to run")
    work_dir.mkdir(parents=True, exist_ok=True)
    outputs_dir = work_dir / "outputs"
    outputs_dir.mkdir(exist_ok=True)

    output_uris: dict[str, str] = {}
    staged_outputs: dict[str, Path] = {}
    executor_uris: dict[str, str] = {}
    unique = task_id if attempt <= 1 else f"{task_id}-{attempt}"
    for name in launch.output_artifacts:
        uri = build_artifact_uri(
            launch.pipeline_root,
            pipeline_name or "pipeline",
            launch.run_id,
            launch.task_name,
            name,
            unique=unique,
        )
        output_uris[name] = uri
        if _is_local(uri):
            _local(uri).parent.mkdir(parents=True, exist_ok=True)
            executor_uris[name] = uri
        else:
            staged = outputs_dir / "artifacts" / name / name
            staged.parent.mkdir(parents=True, exist_ok=True)
            staged_outputs[name] = staged
            executor_uris[name] = str(staged)

    parameter_files = {name: outputs_dir / "parameters" / name for name in launch.output_parameters}
    if parameter_files:
        (outputs_dir / "parameters").mkdir(exist_ok=True)
    output_file = outputs_dir / "executor_output.json"

    staged_launch = _stage_inputs(launch, work_dir / "inputs", store_config)
    executor_input = build_executor_input(
        staged_launch,
        executor_uris,
        {name: str(path) for name, path in parameter_files.items()},
        str(output_file),
    )
    context = replace(launch.placeholder_context, pipeline_task_uuid=task_id)
    argv = render_command(launch.container, executor_input, context)
    env = dict(base_env or {})
    env.update(dict(launch.container.env))
    timeout = launch.timeout_seconds if launch.timeout_seconds else default_timeout
    spec = StepSpec(
        step_id=f"{task_id}:{attempt}",
        argv=argv,
        image=launch.container.image,
        env=env,
        workdir=work_dir,
        log_path=log_path,
        timeout=timeout or None,
    )
    return PreparedStep(
        spec=spec,
        executor_input=executor_input,
        output_file=output_file,
        parameter_files=parameter_files,
        output_uris=output_uris,
        staged_outputs=staged_outputs,
        store_config=store_config,
    )


def _stage_inputs(launch: StepLaunch, inputs_dir: Path, config: StoreConfig) -> StepLaunch:
    """Download remote input artifacts; the step sees their local copies."""
    if not any(not _is_local(ref.uri) for refs in launch.input_artifacts.values() for ref in refs):
        return launch
    staged: dict[str, list[ArtifactRef]] = {}
    for name, refs in launch.input_artifacts.items():
        out = []
        for index, ref in enumerate(refs):
            if _is_local(ref.uri) or not ref.uri:
                out.append(ref)
                continue
            dest = inputs_dir / name / str(index) / (ref.uri.rstrip("/").rsplit("/", 1)[-1] or name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                get_store(ref.uri, config).stage_in(ref.uri, dest)
            except Exception as exc:
                raise LaunchError(f"cannot download input artifact '{name}' from {ref.uri}: {exc}") from exc
            out.append(replace(ref, uri=str(dest)))
        staged[name] = out
    return replace(launch, input_artifacts=staged)


def _read_text(path: Path, limit: int, what: str) -> str | None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size > limit:
        raise OutputError(f"{what} is {size:,} bytes; the limit is {limit:,}")
    return path.read_text(encoding="utf-8", errors="replace")


def finish_step(prepared: PreparedStep, launch: StepLaunch, result: StepResult) -> NodeIO:
    """The outputs of a successful step (raises OutputError when they are missing or malformed)."""
    if not result.succeeded:
        raise OutputError(result.error or f"the step exited with code {result.exit_code}")
    text = _read_text(prepared.output_file, MAX_EXECUTOR_OUTPUT_BYTES, "executor_output.json")
    executor_output: dict[str, Any] | None = None
    if text:
        try:
            executor_output = json.loads(text)
        except json.JSONDecodeError as exc:
            raise OutputError(
                f"executor_output.json is not valid JSON: {exc.msg} (line {exc.lineno})"
            ) from exc
    parameter_texts: dict[str, str] = {}
    for name, path in prepared.parameter_files.items():
        value = _read_text(path, MAX_PARAMETER_FILE_BYTES, f"output parameter file '{name}'")
        if value is not None:
            parameter_texts[name] = value
    local_uris = {
        name: (str(prepared.staged_outputs[name]) if name in prepared.staged_outputs else uri)
        for name, uri in prepared.output_uris.items()
    }
    outputs = collect_outputs(launch, executor_output, parameter_texts, local_uris)
    if not prepared.staged_outputs:
        return outputs
    # Upload staged outputs and record their remote URIs.
    staged_to_remote = {
        str(path): prepared.output_uris[name] for name, path in prepared.staged_outputs.items()
    }
    artifacts: dict[str, list[ArtifactRef]] = {}
    for name, refs in outputs.artifacts.items():
        out = []
        for ref in refs:
            remote = staged_to_remote.get(ref.uri)
            if remote is not None:
                local = Path(ref.uri)
                if local.exists():
                    get_store(remote, prepared.store_config).stage_out(local, remote)
                ref = replace(ref, uri=remote)
            out.append(ref)
        artifacts[name] = out
    return NodeIO(outputs.parameters, artifacts)


def step_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Base environment variables every step gets (the backend adds PATH and HOME)."""
    env = {"PYTHONUNBUFFERED": "1", "KFP_RUNNER": "canal"}
    if extra:
        env.update(extra)
    return env


__all__ = [
    "LaunchError",
    "PreparedStep",
    "finish_step",
    "prepare_step",
    "step_environment",
]
