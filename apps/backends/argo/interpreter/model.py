"""What the interpreter asks a pod runner to do, and what the runner reports back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "FULFILLED",
    "ContainerSpec",
    "InputArtifact",
    "OutputArtifactSpec",
    "OutputParameterSpec",
    "PodRequest",
    "PodResult",
    "Tick",
    "VolumeMount",
]

# Node phases that will not change again (Argo's NodePhase.Fulfilled without task results).
FULFILLED = frozenset({"Succeeded", "Failed", "Error", "Skipped", "Omitted"})


@dataclass(frozen=True)
class VolumeMount:
    """A pod volume (``emptyDir``) seen by one container at ``mount_path``."""

    name: str
    mount_path: str
    read_only: bool = False
    sub_path: str = ""


@dataclass(frozen=True)
class ContainerSpec:
    """One container of a pod: what runs, with substitutions done.

    ``argv`` is ``command + args``; it is empty when the container gives no
    command (its image's entrypoint would run, which a host cannot know).
    """

    name: str
    image: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str = ""
    volume_mounts: tuple[VolumeMount, ...] = ()
    has_command: bool = True


@dataclass(frozen=True)
class InputArtifact:
    """An artifact to place at ``path`` before the main container starts.

    ``location`` is the Argo artifact as resolved (``raw``, ``s3`` key of an earlier
    output, …); ``optional`` artifacts with no location are skipped.
    """

    name: str
    path: str
    location: Mapping[str, Any]
    optional: bool = False
    mode: int | None = None


@dataclass(frozen=True)
class OutputParameterSpec:
    """An output parameter read from a file after the main container ends."""

    name: str
    path: str


@dataclass(frozen=True)
class OutputArtifactSpec:
    """A file or directory saved as an artifact after the main container ends."""

    name: str
    path: str
    optional: bool = False
    key: str = ""  # where to store it in the artifact repository


@dataclass(frozen=True)
class PodRequest:
    """One pod to run: the main container (a script's ``source`` is written to
    ``script_path`` and its path appended to argv), init containers run first, the
    pod's ``emptyDir`` volumes, its inputs and the outputs to collect.

    ``deadline_seconds`` (from ``activeDeadlineSeconds`` / ``timeout``) bounds the
    whole pod; ``capture_result`` says whether stdout becomes ``outputs.result``.
    """

    node_id: str
    node_name: str
    pod_name: str
    workflow_name: str
    template_name: str
    kind: Literal["container", "script"]
    main: ContainerSpec
    init_containers: tuple[ContainerSpec, ...] = ()
    script_source: str | None = None
    script_path: str = "/argo/staging/script"
    volumes: tuple[str, ...] = ()
    input_artifacts: tuple[InputArtifact, ...] = ()
    output_parameters: tuple[OutputParameterSpec, ...] = ()
    output_artifacts: tuple[OutputArtifactSpec, ...] = ()
    deadline_seconds: float | None = None
    capture_result: bool = False
    on_exit: bool = False


@dataclass(frozen=True)
class PodResult:
    """How a pod ended.

    ``exit_code`` is the main container's (None: it never started).
    ``error`` marks a pod that could not run at all (a missing program, an input
    that could not be placed): the node ends in phase Error rather than Failed.
    ``parameters`` and ``artifacts`` hold the outputs that were found (name ->
    value, name -> artifact location); missing ones are decided by the
    interpreter (default, optional, or an error). ``stdout`` is the tail used
    for ``outputs.result``.
    """

    exit_code: int | None
    message: str = ""
    stdout: str = ""
    parameters: Mapping[str, str] = field(default_factory=dict)
    artifacts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    timed_out: bool = False
    error: bool = False
    canceled: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class Tick:
    """What one ``advance`` decided: pods to start, pods to stop, when to call again."""

    start: tuple[PodRequest, ...] = ()
    stop: tuple[str, ...] = ()  # node ids of running pods to terminate
    wake_at: datetime | None = None  # call advance() again by then even if nothing happens
    done: bool = False
