"""Run the Argo interpreter's pods with Canal's sandboxed local backend.

A pod becomes one sandboxed host process per container (init containers first),
each with a container-like view of files: a fresh directory is the process's
``/`` (writable), the host's programs are mounted read-only over it, and the
pod's ``emptyDir`` volumes are mounted at their ``mountPath``. So a step that
writes ``/tmp/out.txt`` or ``/mnt/out/x`` writes into its pod's own directory,
and two pods never see each other's files. Input artifacts are placed at their
paths before the main container starts; output parameters and artifacts are read
from the pod's files after it ends (symlinks that leave the pod are refused).

The image is never pulled: the command runs on the host. A program that only
exists inside the image (``argosay``, ``cowsay``) fails with the local backend's
"executable … was not found … not inside the image" message, and a container
that gives no command (its image's entrypoint would run) fails with a message
that says so.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from apps.backends.base import StartedCallback, StepResult, StepSpec, StepStarted
from apps.backends.local import EnvSpec, LocalBackend
from apps.backends.local.runner import force_rmtree
from apps.backends.local.sandbox import SYSTEM_PATHS
from apps.storage.paths import UnsafePathError, check_relative, resolve_within

from .interpreter.model import ContainerSpec, PodRequest, PodResult, VolumeMount

__all__ = ["ArtifactError", "ArtifactRepository", "LocalArtifactRepository", "LocalPodRunner"]

_RESULT_BYTES = 256 * 1024
_PARAMETER_BYTES = 256 * 1024
# Paths a pod cannot write: the host's programs are mounted read-only there.
_READ_ONLY_ROOTS = (*SYSTEM_PATHS, "/proc", "/dev")


class ArtifactError(Exception):
    """An artifact could not be stored or fetched."""


class ArtifactRepository(Protocol):
    """Where the pods' artifacts are kept: Canal's filesystem store, an S3 bucket, ..."""

    def save(self, source: Path, key: str) -> dict[str, Any]:
        """Store a file or directory under ``key``; return its Argo artifact location."""
        ...

    def load(self, location: Mapping[str, Any], target: Path) -> None:
        """Put the artifact at ``location`` (or a ``raw`` one) at ``target``."""
        ...


class LocalArtifactRepository:
    """Artifacts as files under ``root``, at their key (``<workflow>/<pod>/<name>``).

    A stored artifact's location is ``{"s3": {"key": key}}``, the shape Argo
    writes for an artifact in a workflow's default repository; ``raw`` artifacts
    carry their data inline.
    """

    def __init__(self, root: str | os.PathLike[str], *, max_bytes: int = 1024**3) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    def path(self, key: str) -> Path:
        """Where the artifact with ``key`` lives (the key is checked: no '..', not absolute)."""
        try:
            return resolve_within(self.root, key)
        except UnsafePathError as exc:
            raise ArtifactError(f"artifact key {key!r} is not usable: {exc}") from None

    def save(self, source: Path, key: str) -> dict[str, Any]:
        """Copy a file or directory into the repository; returns its location."""
        target = self.path(key)
        if target.exists() or target.is_symlink():
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        total = _size(source)
        if total > self.max_bytes:
            raise ArtifactError(f"the artifact is {total:,} bytes; at most {self.max_bytes:,} are kept")
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copyfile(source, target, follow_symlinks=False)
        return {"s3": {"key": key}}

    def load(self, location: Mapping[str, Any], target: Path) -> None:
        """Put the artifact at ``location`` at ``target`` (a file or a directory)."""
        if write_raw(location, target):
            return
        s3 = location.get("s3")
        key = s3.get("key") if isinstance(s3, Mapping) else None
        if not key:
            raise ArtifactError(f"the artifact location {dict(location)!r} is not in this repository")
        source = self.path(str(key))
        if not source.exists():
            raise ArtifactError(f"artifact '{key}' does not exist in the repository")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copyfile(source, target)


def write_raw(location: Mapping[str, Any], target: Path) -> bool:
    """Write a ``raw`` artifact's inline data at ``target``; False if it is not raw."""
    raw = location.get("raw")
    if not isinstance(raw, Mapping):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(str(raw.get("data", "")))
    return True


def _inside(root: Path, relative: str) -> Path:
    """``root / relative``, refused (ArtifactError) if it would leave ``root``."""
    try:
        return resolve_within(root, relative)
    except UnsafePathError as exc:
        raise ArtifactError(f"'{relative}' is not a usable name here: {exc}") from None


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _clean_inside(path: str, what: str) -> str:
    """An absolute path inside a pod, normalised; refuses '..' and relative paths."""
    if not path.startswith("/"):
        raise ArtifactError(f"{what} '{path}' is not an absolute path")
    relative = path.strip("/")
    if not relative:
        return "/"
    try:
        check_relative(relative)
    except UnsafePathError as exc:
        raise ArtifactError(f"{what} '{path}': {exc}") from None
    return "/" + relative


class _Pod:
    """The host directories of one pod: its root, its volumes and its logs."""

    def __init__(self, base: Path, request: PodRequest) -> None:
        self.dir = base
        self.volumes = {name: base / "volumes" / name for name in request.volumes}

    def root(self, container: str) -> Path:
        return self.dir / ("root" if container == "main" else f"root-{container}")

    def mounts(self, container: ContainerSpec) -> list[tuple[Path, str]]:
        out: list[tuple[Path, str]] = []
        for mount in container.volume_mounts:
            source = self.volumes.get(mount.name)
            if source is None:
                raise ArtifactError(f"volume '{mount.name}' is not an emptyDir volume of this pod")
            inside = _clean_inside(mount.mount_path, "mountPath")
            if inside == "/" or any(inside == p or inside.startswith(p + "/") for p in _READ_ONLY_ROOTS):
                raise ArtifactError(f"volume '{mount.name}' cannot be mounted at '{mount.mount_path}'")
            if mount.sub_path:
                source = resolve_within(source, mount.sub_path)
                source.mkdir(parents=True, exist_ok=True)
            out.append((source, inside))
        insides = sorted(inside for _, inside in out)
        for a, b in itertools.pairwise(insides):
            if b == a or b.startswith(a + "/"):
                raise ArtifactError(f"volume mounts '{a}' and '{b}' overlap; nested mounts are not supported")
        return out

    def host_path(self, container: ContainerSpec, inside: str, what: str) -> Path:
        """The host path behind ``inside`` (a volume's directory, else the container's root)."""
        clean = _clean_inside(inside, what)
        best: VolumeMount | None = None
        for mount in container.volume_mounts:
            mp = "/" + mount.mount_path.strip("/")
            if (clean == mp or clean.startswith(mp.rstrip("/") + "/")) and (
                best is None or len(mp) > len(best.mount_path)
            ):
                best = mount
        if best is not None:
            base = self.volumes[best.name]
            if best.sub_path:
                base = base / best.sub_path
            rest = clean[len("/" + best.mount_path.strip("/")) :].strip("/")
            return resolve_within(base, rest) if rest else Path(os.path.realpath(base))
        if any(clean == p or clean.startswith(p + "/") for p in _READ_ONLY_ROOTS):
            raise ArtifactError(f"{what} '{inside}' is in the host's read-only system directories")
        root = self.root(container.name)
        rest = clean.strip("/")
        return resolve_within(root, rest) if rest else Path(os.path.realpath(root))


class LocalPodRunner:
    """Runs each pod of the Argo interpreter as sandboxed host processes (see the module docstring).

    ``work_dir`` holds the pods' directories (default: ``argo-pods`` inside
    ``tenant_dir``, which is by default the backend's tenant directory for
    ``tenant``; it must lie inside ``tenant_dir``); ``logs_dir`` keeps each container's log as
    ``<pod name>.log`` / ``<pod name>.<init>.log``; ``artifacts`` is where output
    artifacts are kept. ``keep_pods`` leaves each pod's files behind for
    debugging. ``run`` may place one pod elsewhere (``pod_dir``, ``log_dir``), as
    the emulated cluster's kubelet does with its own pod directories and logs.
    """

    def __init__(
        self,
        backend: LocalBackend,
        *,
        artifacts: ArtifactRepository,
        logs_dir: str | os.PathLike[str],
        work_dir: str | os.PathLike[str] | None = None,
        tenant: str = "",
        tenant_dir: str | os.PathLike[str] | None = None,
        keep_pods: bool = False,
    ) -> None:
        self.backend = backend
        self.artifacts = artifacts
        self.logs_dir = Path(logs_dir)
        self.tenant = tenant
        self.tenant_dir = Path(tenant_dir) if tenant_dir is not None else backend.default_tenant_dir(tenant)
        self.work_dir = Path(work_dir) if work_dir is not None else self.tenant_dir / "argo-pods"
        self.keep_pods = keep_pods
        self._env_ready = False
        self._lock = threading.Lock()

    def log_path(self, request: PodRequest, container: str = "main", log_dir: Path | None = None) -> Path:
        """Where a container's log is written (``<log_dir>/<container>.log`` when ``log_dir`` is given)."""
        if log_dir is not None:
            return log_dir / f"{container}.log"
        name = request.pod_name if container == "main" else f"{request.pod_name}.{container}"
        return _inside(self.logs_dir, f"{name}.log")

    def _ensure_env(self) -> None:
        # Built once up front, so "[canal] building task environment" never lands in a
        # pod's log (where it would become part of outputs.result).
        with self._lock:
            if not self._env_ready:
                self.backend.envs.ensure(EnvSpec(tenant=self.tenant))
                self._env_ready = True

    def run(
        self,
        request: PodRequest,
        cancel: threading.Event,
        *,
        pod_dir: Path | None = None,
        log_dir: Path | None = None,
        on_started: Callable[[int], None] | None = None,
    ) -> PodResult:
        """Run the pod in this thread: inputs, init containers, main container, outputs.

        ``pod_dir`` is the pod's own directory (default: ``<work_dir>/<workflow>/<node
        id>``; inside ``tenant_dir``, which is all the step sandbox shows of the host's
        directories; emptied first, removed after unless ``keep_pods``), ``log_dir`` where
        its containers' logs go (``<container>.log``; default: ``logs_dir``).
        ``on_started`` gets the main container's pid once its process exists.
        """
        started = datetime.now(UTC)
        clock = time.monotonic()
        (log_dir or self.logs_dir).mkdir(parents=True, exist_ok=True)
        # The names come from the uploaded Workflow: they may not climb out of work_dir.
        base = (
            pod_dir
            if pod_dir is not None
            else _inside(self.work_dir, f"{request.workflow_name}/{request.node_id}")
        )
        if base.exists():
            force_rmtree(base)  # an earlier run of this pod (re-run after a restart)
        pod = _Pod(base, request)
        try:
            self._ensure_env()
            for directory in pod.volumes.values():
                directory.mkdir(parents=True, exist_ok=True)
            self._make_root(pod, request.main)
            for art in request.input_artifacts:
                if art.location.get("raw") is None and art.location.get("s3") is None and art.optional:
                    continue
                target = pod.host_path(request.main, art.path, f"inputs.artifacts.{art.name}.path")
                try:
                    self.artifacts.load(art.location, target)
                except ArtifactError:
                    if art.optional:
                        continue
                    raise
                if art.mode is not None:
                    os.chmod(target, art.mode & 0o7777)
            if request.script_source is not None:
                script = pod.host_path(request.main, request.script_path, "script")
                script.parent.mkdir(parents=True, exist_ok=True)
                script.write_text(request.script_source)
                os.chmod(script, 0o755)  # noqa: S103  (the pod's own file, run by the pod)
            for init in request.init_containers:
                self._make_root(pod, init)
                result = self._run_container(request, pod, init, cancel, clock, log_dir)
                if not result.succeeded:
                    return self._pod_result(result, started, message_prefix=f"init container '{init.name}': ")
            if not request.main.argv or not request.main.has_command:
                return PodResult(
                    exit_code=None,
                    error=True,
                    message=(
                        "the container gives no command, so Kubernetes would run the entrypoint of image "
                        f"'{request.main.image}'; the local backend runs commands on the host, not inside "
                        "the image: give the container a command, or run this workflow on Argo"
                    ),
                    started_at=started,
                    finished_at=datetime.now(UTC),
                )
            report: StartedCallback | None = None
            if on_started is not None:
                callback = on_started

                def report(event: StepStarted) -> None:
                    callback(event.pid)

            result = self._run_container(request, pod, request.main, cancel, clock, log_dir, report)
            outcome = self._pod_result(result, started)
            stdout = self._stdout(self.log_path(request, log_dir=log_dir))
            parameters = self._parameters(request, pod)
            artifacts: dict[str, Mapping[str, Any]] = {}
            if result.succeeded:
                artifacts = self._save_artifacts(request, pod)
            return PodResult(
                exit_code=outcome.exit_code,
                message=outcome.message,
                stdout=stdout,
                parameters=parameters,
                artifacts=artifacts,
                timed_out=outcome.timed_out,
                error=outcome.error,
                canceled=outcome.canceled,
                started_at=started,
                finished_at=outcome.finished_at,
            )
        except (ArtifactError, UnsafePathError, OSError) as exc:
            return PodResult(
                exit_code=None,
                error=True,
                message=f"the pod could not be prepared: {exc}",
                started_at=started,
                finished_at=datetime.now(UTC),
            )
        finally:
            if not self.keep_pods:
                force_rmtree(base)

    def _make_root(self, pod: _Pod, container: ContainerSpec) -> Path:
        root = pod.root(container.name)
        # The directories every image has (the host's programs are mounted over the rest).
        for sub in ("tmp", "var/tmp", "root", "home", "mnt", "srv", "media", "run", "argo/staging"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("tmp", "var/tmp"):
            os.chmod(root / sub, 0o1777)  # noqa: S103  (a pod's private /tmp, sticky as in any image)
        return root

    def _run_container(
        self,
        request: PodRequest,
        pod: _Pod,
        container: ContainerSpec,
        cancel: threading.Event,
        clock: float,
        log_dir: Path | None,
        on_started: StartedCallback | None = None,
    ) -> StepResult:
        root = pod.root(container.name)
        workdir = root
        if container.working_dir:
            workdir = pod.host_path(container, container.working_dir, "workingDir")
            workdir.mkdir(parents=True, exist_ok=True)
        mounts = pod.mounts(container)
        timeout = None
        if request.deadline_seconds is not None:
            timeout = max(0.5, request.deadline_seconds - (time.monotonic() - clock))
        env = {"HOME": "/root", **dict(container.env)}
        log = self.log_path(request, container.name, log_dir)
        with contextlib.suppress(FileNotFoundError):
            log.unlink()
        spec = StepSpec(
            step_id=f"argo:{request.workflow_name}:{request.node_id}:{container.name}",
            argv=list(container.argv),
            image=container.image,
            env=env,
            workdir=workdir,
            log_path=log,
            timeout=timeout,
            tenant=self.tenant,
            tenant_dir=self.tenant_dir,
            read_write=(root, *pod.volumes.values()),
            root_dir=root,
            mounts=tuple(mounts),
        )
        return self.backend.run(spec, cancel=cancel, on_started=on_started)

    @staticmethod
    def _pod_result(result: StepResult, started: datetime, message_prefix: str = "") -> PodResult:
        message = ""
        if result.out_of_memory or (result.error and result.exit_code is None):
            message = message_prefix + (result.error or "")
        elif result.exit_code not in (0, None) and message_prefix:
            message = f"{message_prefix}{result.error or ''}"
        return PodResult(
            exit_code=result.exit_code,
            message=message,
            timed_out=result.timed_out,
            canceled=result.canceled and not result.timed_out,
            error=result.exit_code is None and not result.timed_out and not result.canceled,
            started_at=started,
            finished_at=result.finished_at,
        )

    @staticmethod
    def _stdout(log: Path) -> str:
        try:
            with open(log, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - _RESULT_BYTES))
                data = handle.read()
        except OSError:
            return ""
        text = data.decode("utf-8", errors="replace")
        # The backend's own notes are not the step's output.
        lines = text.splitlines(keepends=True)
        while lines and lines[0].startswith("[canal] "):
            lines.pop(0)
        return "".join(lines)

    def _parameters(self, request: PodRequest, pod: _Pod) -> dict[str, str]:
        out: dict[str, str] = {}
        for param in request.output_parameters:
            try:
                path = pod.host_path(request.main, param.path, f"outputs.parameters.{param.name}.path")
            except (ArtifactError, UnsafePathError):
                continue
            if not path.is_file():
                continue
            with open(path, "rb") as handle:
                data = handle.read(_PARAMETER_BYTES + 1)
            out[param.name] = data.decode("utf-8", errors="replace")
        return out

    def _save_artifacts(self, request: PodRequest, pod: _Pod) -> dict[str, Mapping[str, Any]]:
        out: dict[str, Mapping[str, Any]] = {}
        for art in request.output_artifacts:
            try:
                path = pod.host_path(request.main, art.path, f"outputs.artifacts.{art.name}.path")
            except (ArtifactError, UnsafePathError):
                continue
            if not (path.is_file() or path.is_dir()):
                continue
            if stat.S_ISLNK(os.lstat(path).st_mode):
                continue
            out[art.name] = self.artifacts.save(path, art.key)
        return out
