"""The launcher: turn a planned step into a runnable StepSpec, and its results back
into outputs. It plays the part of KFP's driver + launcher for one container step.

``prepare_step`` provisions output URIs (``<root>/<pipeline>/<run>/<task>/<uuid>/<name>``),
stages the input artifacts into the step's directory, builds the ExecutorInput,
and renders the command with every placeholder. ``finish_step`` reads
``executor_output.json`` or the per-parameter files, moves or uploads the output
artifacts to their URIs, and returns the step's outputs.

Every artifact is staged, local or remote: a step (sandboxed) sees only its own
directory, laid out as

    <step dir>/work      its working directory and home (read-write)
    <step dir>/outputs   executor_output.json, parameter files, output artifacts (read-write)
    <step dir>/inputs    its input artifacts (read-only; hard links when on the same filesystem)
    <step dir>/sandbox   the backend's scratch space (private /tmp, environment overlay)

so the ExecutorInput gives it local paths inside that directory as the artifacts'
``uri`` and ``path``, and the recorded artifacts keep their real URIs. Local
outputs are moved into place (a rename on the same filesystem); remote ones are
uploaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from apps.backends.base import StepResult, StepSpec
from apps.backends.pod_fields import FieldPathError, platform_pod_env, platform_pod_metadata
from apps.engine.executor_io import OutputError, build_executor_input, collect_outputs
from apps.engine.model import ArtifactRef, NodeIO, StepLaunch
from apps.engine.placeholders import render_command
from apps.storage import ArtifactNotFound, StoreConfig, build_artifact_uri, get_store

MAX_EXECUTOR_OUTPUT_BYTES = 16 * 1024 * 1024
RUN_WORKSPACE = "workspace"  # beside the run's step directories: the run's shared workspace
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


def prepare_step(
    launch: StepLaunch,
    *,
    task_id: str,
    attempt: int,
    step_dir: Path,
    log_path: Path,
    store_config: StoreConfig,
    tenant: str = "",
    tenant_dir: Path | None = None,
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
                "kfp-kubernetes); the local executor cannot create or delete volumes. Run this pipeline on "
                "the argo executor (a Kubernetes cluster with Argo Workflows)."
            )
        raise LaunchError(f"the container of '{launch.display_name}' ({image}) has no command or args to run")
    unique = task_id if attempt <= 1 else f"{task_id}-{attempt}"
    # Refused before anything is staged: a pod field that has no value here.
    pod_env = _pod_field_env(
        launch, pod_name=step_pod_name(pipeline_name, launch.task_name, unique), namespace=tenant
    )
    work_dir = step_dir / "work"
    outputs_dir = step_dir / "outputs"
    inputs_dir = step_dir / "inputs"
    # The run's workspace ({{$.workspace_path}}), shared by the run's steps.
    workspace = step_dir.parent / RUN_WORKSPACE
    for directory in (work_dir, outputs_dir, inputs_dir, workspace):
        directory.mkdir(parents=True, exist_ok=True)

    output_uris: dict[str, str] = {}
    staged_outputs: dict[str, Path] = {}
    for name in launch.output_artifacts:
        output_uris[name] = build_artifact_uri(
            launch.pipeline_root,
            pipeline_name or "pipeline",
            launch.run_id,
            launch.task_name,
            name,
            unique=unique,
        )
        staged = outputs_dir / "artifacts" / name / name
        staged.parent.mkdir(parents=True, exist_ok=True)
        staged_outputs[name] = staged

    parameter_files = {name: outputs_dir / "parameters" / name for name in launch.output_parameters}
    if parameter_files:
        (outputs_dir / "parameters").mkdir(exist_ok=True)
    output_file = outputs_dir / "executor_output.json"

    staged_launch = _stage_inputs(launch, inputs_dir, store_config)
    executor_input = build_executor_input(
        staged_launch,
        {name: str(path) for name, path in staged_outputs.items()},
        {name: str(path) for name, path in parameter_files.items()},
        str(output_file),
    )
    context = replace(launch.placeholder_context, pipeline_task_uuid=task_id)
    argv = render_command(launch.container, executor_input, context)
    env = dict(base_env or {})
    env.update(dict(launch.container.env))
    env.update(pod_env)
    timeout = launch.timeout_seconds if launch.timeout_seconds else default_timeout
    resources = launch.container.resources
    spec = StepSpec(
        step_id=f"{task_id}:{attempt}",
        argv=argv,
        image=launch.container.image,
        env=env,
        workdir=work_dir,
        log_path=log_path,
        timeout=timeout or None,
        tenant=tenant,
        tenant_dir=tenant_dir,
        read_only=(inputs_dir,),
        read_write=(outputs_dir, workspace),
        scratch_dir=step_dir / "sandbox",
        memory_limit=resources.memory_limit if resources else "",
        cpu_limit=resources.cpu_limit if resources else "",
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


def step_pod_name(pipeline_name: str, task_name: str, unique: str) -> str:
    """The name a step's pod would have: ``<pipeline>-<task>-<attempt id>``, as a DNS name."""
    slug = re.sub(r"[^a-z0-9]+", "-", f"{pipeline_name or 'pipeline'}-{task_name}".lower()).strip("-")
    return f"{slug[:200].rstrip('-')}-{re.sub(r'[^a-z0-9-]+', '', unique.lower())[:40]}"


def _pod_field_env(launch: StepLaunch, *, pod_name: str, namespace: str) -> dict[str, str]:
    """The platform spec's ``fieldPathAsEnv``, resolved on the step's pod-like metadata (its
    ``podMetadata`` labels and annotations, a pod name, the Canal namespace)."""
    config = launch.platform_config or {}
    if not config.get("fieldPathAsEnv"):
        return {}
    try:
        pod = platform_pod_metadata(config, name=pod_name, namespace=namespace)
        return platform_pod_env(config, pod)
    except FieldPathError as exc:
        raise LaunchError(
            f"the Kubernetes platform spec of '{launch.display_name}' "
            f"(executor {launch.executor_label}): {exc}"
        ) from None


def _stage_inputs(launch: StepLaunch, inputs_dir: Path, config: StoreConfig) -> StepLaunch:
    """Bring every input artifact into the step's inputs directory; the step sees those copies."""
    staged: dict[str, list[ArtifactRef]] = {}
    for name, refs in launch.input_artifacts.items():
        out = []
        for index, ref in enumerate(refs):
            if not ref.uri:
                out.append(ref)
                continue
            leaf = ref.uri.rstrip("/").rsplit("/", 1)[-1] or name
            dest = inputs_dir / name / str(index) / leaf
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                get_store(ref.uri, config).stage_in(ref.uri, dest)
            except ArtifactNotFound:
                pass  # the step finds nothing there, as it would on KFP
            except Exception as exc:
                raise LaunchError(f"cannot stage input artifact '{name}' from {ref.uri}: {exc}") from exc
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
    local_uris = {name: str(path) for name, path in prepared.staged_outputs.items()}
    outputs = collect_outputs(launch, executor_output, parameter_texts, local_uris)
    # Move (local) or upload (remote) what the step wrote, and record the real URIs.
    staged_to_real = {str(path): prepared.output_uris[name] for name, path in prepared.staged_outputs.items()}
    artifacts: dict[str, list[ArtifactRef]] = {}
    for name, refs in outputs.artifacts.items():
        out = []
        for ref in refs:
            real = staged_to_real.get(ref.uri)
            if real is not None:
                local = Path(ref.uri)
                if local.exists() and not local.is_symlink():
                    get_store(real, prepared.store_config).stage_out(local, real)
                ref = replace(ref, uri=real)
            out.append(ref)
        artifacts[name] = out
    return NodeIO(outputs.parameters, artifacts)


def step_base_variables(extra: Mapping[str, str] | None = None) -> dict[str, str]:
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
    "step_base_variables",
]
