"""One step's path through the local backend, in one place:

    prepare  -> limits parsed, task environment ready, directories made, the request built
    sandbox  -> the confinement policy the step will apply to itself, directories handed over
    spawn    -> forked from a warm zygote, or started cold; put into its cgroup, then released
    supervise-> waited for, heartbeats, cancel/timeout/lost lease (SIGTERM, then SIGKILL)
    finish   -> the result: exit, OOM with the limit named, sandbox failure, or why it was stopped

Every early return and every resource (cgroup, scratch space) is handled here,
so nothing about a step's life is spread over several modules.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apps.backends.base import StartedCallback, StepResult, StepSpec, StepStarted
from apps.backends.local.environment import process_environment, resolve_executable
from apps.backends.local.limits import ResourceLimits, StepCgroup, fallback_policy, parse_limits
from apps.backends.local.prelude import EXECUTOR_MODULE, SOURCE_FILE_NAME
from apps.backends.local.process import (
    RunningProcess,
    StarterProcess,
    Watch,
    describe_exit,
    supervise,
    wait_group_gone,
)
from apps.backends.local.sandbox import PRIVATE_TMP, StepPaths
from apps.backends.local.starter import start_once
from apps.backends.local.taskenv import EnvBuildError, EnvInterrupted, TaskEnv
from apps.backends.local.zygote import Zygote, ZygoteError, ZygoteLost, ZygoteProcess

if TYPE_CHECKING:
    from apps.backends.local.backend import CommandPlan, LocalBackend

__all__ = ["StepRunner"]

logger = logging.getLogger(__name__)

# Per-step scratch spaces (private /tmp, the environment overlay) live in this directory
# of the tenant directory.
SCRATCH_DIR_NAME = ".canal-scratch"

_STOP_MESSAGES = {
    "canceled": "canceled; the step's process group was terminated",
    "timed_out": "timed out after {timeout}s; the step's process group was terminated",
    "lost": "{detail}; the step's process group was terminated",
}
# What a process prints when an allocation fails (RLIMIT_AS, no cgroup to count OOM kills).
_ALLOCATION_FAILURES = (b"MemoryError", b"Cannot allocate memory", b"std::bad_alloc", b"out of memory")


def _now() -> datetime:
    return datetime.now(UTC)


class _Done(Exception):
    """The step ends before it runs (a refusal or a stop); carries its result."""

    def __init__(self, result: StepResult) -> None:
        super().__init__(result.error)
        self.result = result


@dataclass
class _Prepared:
    plan: CommandPlan
    env: TaskEnv
    env_created: bool
    workdir: Path
    tenant_dir: Path
    scratch: Path
    limits: ResourceLimits
    request: dict[str, Any]
    cgroup: StepCgroup | None = None
    owned_workdir: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def extra_public(self) -> dict[str, Any]:
        """What the result reports about the environment."""
        return {k: v for k, v in self.extra.items() if k in ("task_env", "env_created")}


class StepRunner:
    """Runs one StepSpec on a LocalBackend; ``run()`` is the whole path."""

    def __init__(
        self,
        backend: LocalBackend,
        spec: StepSpec,
        watch: Watch,
        log_fd: int,
        on_started: StartedCallback | None,
    ) -> None:
        self.backend = backend
        self.spec = spec
        self.watch = watch
        self.log_fd = log_fd
        self.on_started = on_started
        self.started_at = _now()
        self.sandbox = backend.sandbox if backend.sandbox.active else None

    def run(self) -> StepResult:
        """prepare, sandbox, spawn, supervise, finish."""
        early = self.watch.poll()
        if early is not None:
            return self._stopped(early, None)
        prepared: _Prepared | None = None
        try:
            prepared = self.prepare()
            self.confine(prepared)
            proc, mode = self.spawn(prepared)
            try:
                self._report_started(proc, mode)
                returncode, stopped = self.supervise(proc, prepared, mode)
                return self.finish(prepared, proc, mode, returncode, stopped)
            finally:
                proc.close()
        except _Done as done:
            return done.result
        finally:
            if prepared is not None:
                self._clean_up(prepared)

    # -- prepare ----------------------------------------------------------------------------
    def prepare(self) -> _Prepared:
        """Limits, the task environment, directories and the request the step process gets."""
        spec = self.spec
        try:
            limits = parse_limits(spec.memory_limit, spec.cpu_limit)
        except ValueError as exc:
            raise _Done(self._result(None, f"invalid resource limit: {exc}")) from None
        plan = self.backend.plan(spec.argv, tenant=spec.tenant)
        try:
            env, created = self.backend.envs.ensure(plan.env_spec, watch=self.watch, log_fd=self.log_fd)
        except EnvInterrupted as exc:
            raise _Done(self._stopped(exc.reason, None, detail=self.watch.lost_reason)) from None
        except EnvBuildError as exc:
            raise _Done(self._result(None, str(exc))) from None
        common = {"task_env": str(env.path), "env_created": created}

        # The tenant directory is what a zygote of this tenant can see: every step
        # directory and scratch space of the tenant lies inside it.
        owned = spec.workdir is None
        if spec.workdir is not None:
            workdir = Path(spec.workdir)
            tenant_dir = Path(spec.tenant_dir) if spec.tenant_dir is not None else workdir
        else:
            tenant_dir = self.backend.default_tenant_dir(spec.tenant)
            workdir = tenant_dir / f"canal-step-{uuid.uuid4().hex}"
        if spec.scratch_dir is not None:
            scratch = Path(spec.scratch_dir)
        else:
            scratch = tenant_dir / SCRATCH_DIR_NAME / uuid.uuid4().hex

        rooted = spec.root_dir is not None
        if rooted and self.sandbox is None:
            message = (
                "this step needs its own root filesystem (a container's view of files), which only "
                "the step sandbox provides: " + self.backend.sandbox.status().summary()
            )
            os.write(self.log_fd, f"[canal] {message}\n".encode())
            raise _Done(self._result(None, message, mode="none", **common))
        inside_cwd = _inside_root(workdir, spec.root_dir) if spec.root_dir is not None else str(workdir)
        step_env = process_environment(spec.env, task_env=env.path, passthrough=self.backend.env_passthrough)
        if "HOME" not in spec.env:
            step_env["HOME"] = inside_cwd  # the host's home is not the step's to write
        step_env["TMPDIR"] = PRIVATE_TMP if self.sandbox is not None else str(scratch / "tmp")
        request: dict[str, Any]
        if plan.lightweight is not None:
            step_env["_KFP_RUNTIME"] = "true"
            request = {
                "mode": "python",
                "module": EXECUTOR_MODULE,
                "source": plan.lightweight.source,
                "source_name": SOURCE_FILE_NAME,
                "args": list(plan.lightweight.args),
                "env": step_env,
                "cwd": inside_cwd,
            }
        else:
            program = str(spec.argv[0])
            executable = None
            if spec.root_dir is not None and program.startswith("/"):
                # A program the step's own root holds (an earlier container put it there).
                candidate = Path(spec.root_dir) / program.lstrip("/")
                if candidate.is_file() and os.access(candidate, os.X_OK):
                    executable = program
            if executable is None:
                executable = resolve_executable(program, step_env, str(workdir))
                if (
                    executable is not None
                    and self.sandbox is not None
                    and not self.sandbox.visible(executable)
                ):
                    executable = None
            if executable is None:
                where = "inside the step sandbox" if self.sandbox is not None else "on this host"
                message = (
                    f"executable {program!r} was not found {where}. The local backend runs "
                    f"commands on the host, not inside the image {spec.image or '(none given)'!r}: "
                    f"install {program!r} on the host, or run this pipeline on a container backend."
                )
                os.write(self.log_fd, f"[canal] {message}\n".encode())
                raise _Done(self._result(None, message, mode="none", **common))
            request = {
                "mode": "exec",
                "argv": [str(a) for a in spec.argv],
                "executable": executable,
                "env": step_env,
                "cwd": inside_cwd,
            }
        for directory in (workdir, scratch / "tmp"):
            directory.mkdir(parents=True, exist_ok=True)
        return _Prepared(
            plan,
            env,
            created,
            workdir,
            tenant_dir,
            scratch,
            limits,
            request,
            owned_workdir=owned,
            extra=common,
        )

    # -- sandbox ----------------------------------------------------------------------------
    def confine(self, prepared: _Prepared) -> None:
        """The policy the step applies to itself; its directories handed to the step's uid."""
        policy: dict[str, Any] = {}
        limits = prepared.limits
        if limits:
            tree = self.backend.cgroups()
            if tree is not None:
                try:
                    prepared.cgroup = tree.create(self.spec.step_id, limits)
                except OSError as exc:
                    logger.warning(
                        "step %s: no cgroup (%s); limits fall back to rlimits", self.spec.step_id, exc
                    )
            if prepared.cgroup is None:
                policy.update(fallback_policy(limits))
            elif limits.cpu is not None and not tree.enforces_cpu():  # type: ignore[union-attr]
                policy["cpu_count"] = fallback_policy(limits)["cpu_count"]
        if self.sandbox is not None:
            scratch = prepared.scratch
            overlay = scratch / "overlay"
            writable = [prepared.workdir, *self.spec.read_write]
            self.sandbox.prepare_dirs(scratch / "tmp", overlay / "upper", overlay / "work", *writable)
            _hand_over(writable, self.sandbox.step_uid, self.sandbox.gid)
            policy.update(
                self.sandbox.step_policy(
                    StepPaths(
                        tenant_dir=prepared.tenant_dir,
                        read_only=tuple(self.spec.read_only),
                        read_write=tuple(writable),
                        tmp=scratch / "tmp",
                        overlay_dir=overlay,
                        root=Path(self.spec.root_dir) if self.spec.root_dir is not None else None,
                        mounts=tuple(self.spec.mounts),
                    ),
                    environment=prepared.env.path,
                )
            )
        prepared.request["confine"] = policy
        prepared.request["hold"] = prepared.cgroup is not None

    # -- spawn ------------------------------------------------------------------------------
    def spawn(self, prepared: _Prepared) -> tuple[RunningProcess, str]:
        """Fork it from the environment's zygote, else start it cold; then into its cgroup."""
        proc: RunningProcess | None = None
        mode = "subprocess"
        backend = self.backend
        if backend.use_zygote:
            for attempt in range(2):
                zygote = backend.zygotes.acquire(prepared.env, prepared.plan.preload, prepared.tenant_dir)
                if zygote is None:
                    break
                try:
                    proc = zygote.launch(prepared.request, self.log_fd)
                    prepared.extra["zygote"] = zygote
                    mode = "zygote"
                    break
                except ZygoteError as exc:
                    logger.warning("zygote launch failed (attempt %d): %s", attempt + 1, exc)
                    backend.zygotes.discard(zygote)
        if proc is None:
            try:
                proc = start_once(
                    prepared.request,
                    python=prepared.env.python,
                    log_fd=self.log_fd,
                    env=prepared.request["env"],
                    sandbox=self.sandbox,
                    read_only=[prepared.env.path],
                    read_write=[prepared.tenant_dir],
                )
            except OSError as exc:
                message = f"the step could not be started: {exc}"
                raise _Done(self._result(None, message, **prepared.extra_public())) from None
        if prepared.cgroup is not None and proc.pid > 0:
            try:
                prepared.cgroup.add(proc.pid)
            except OSError as exc:
                logger.warning("step %s: could not enter its cgroup: %s", self.spec.step_id, exc)
                proc.signal_group(9)
        if prepared.cgroup is not None:
            _release(proc)
        return proc, mode

    def _report_started(self, proc: RunningProcess, mode: str) -> None:
        if self.on_started is None or proc.pid <= 0:
            return
        try:
            self.on_started(StepStarted(step_id=self.spec.step_id, pid=proc.pid, pgid=proc.pid, mode=mode))
        except Exception:
            logger.exception("on_started callback failed for step %s", self.spec.step_id)

    # -- supervise --------------------------------------------------------------------------
    def supervise(
        self, proc: RunningProcess, prepared: _Prepared, mode: str
    ) -> tuple[int | None, str | None]:
        """Wait for the step: (exit code, why we stopped it); ``(None, 'zygote:...')`` if its zygote died."""
        try:
            outcome = supervise(proc, self.watch, self.backend.terminate_grace)
        except ZygoteLost as exc:
            zygote = prepared.extra.get("zygote")
            if isinstance(zygote, Zygote):
                self.backend.zygotes.discard(zygote)
                prepared.extra.pop("zygote", None)
            return None, f"zygote:{exc}"
        # Whatever the step left in its group was sent SIGKILL when its main process
        # ended; report the end only once it is really gone.
        if proc.pid > 0 and not wait_group_gone(proc.pid):
            logger.warning("step %s: processes of group %d outlived it", self.spec.step_id, proc.pid)
        return outcome.returncode, outcome.stopped_because

    # -- finish -----------------------------------------------------------------------------
    def finish(
        self,
        prepared: _Prepared,
        proc: RunningProcess,
        mode: str,
        returncode: int | None,
        stopped: str | None,
    ) -> StepResult:
        """The step's result, with the reason in words when it did not succeed."""
        extra = {
            **prepared.extra_public(),
            "pid": proc.pid if proc.pid > 0 else None,
            "mode": mode,
            "sandboxed": self.sandbox is not None,
        }
        if stopped is not None and stopped.startswith("zygote:"):
            return self._result(None, f"the step's zygote process died while it ran ({stopped[7:]})", **extra)
        confine_error = getattr(proc, "confine_error", None)
        if confine_error:
            return self._result(returncode, confine_error, **extra)
        if stopped is not None:
            return self._stopped(stopped, returncode, detail=self.watch.lost_reason, **extra)
        assert returncode is not None
        if returncode != 0 and self._out_of_memory(prepared, returncode):
            return self._result(returncode, prepared.limits.memory_message(), out_of_memory=True, **extra)
        error = None if returncode == 0 else f"the step {describe_exit(returncode)}"
        return self._result(returncode, error, **extra)

    def _out_of_memory(self, prepared: _Prepared, returncode: int) -> bool:
        if prepared.limits.memory_bytes is None:
            return False
        if prepared.cgroup is not None:
            return prepared.cgroup.oom_killed()
        # RLIMIT_AS: the allocation fails inside the step, which says so in its log.
        if self.spec.log_path is None:
            return False
        try:
            with open(self.spec.log_path, "rb") as log:  # our log fd is write-only
                log.seek(max(0, os.fstat(log.fileno()).st_size - 64 * 1024))
                tail = log.read()
        except OSError:
            return False
        return any(marker in tail for marker in _ALLOCATION_FAILURES)

    # -- helpers ----------------------------------------------------------------------------
    def _result(self, exit_code: int | None, error: str | None, **extra: Any) -> StepResult:
        return StepResult(
            step_id=self.spec.step_id,
            exit_code=exit_code,
            error=error,
            started_at=self.started_at,
            finished_at=_now(),
            **extra,
        )

    def _stopped(
        self, reason: str, exit_code: int | None, *, detail: str | None = None, **extra: Any
    ) -> StepResult:
        message = _STOP_MESSAGES[reason].format(
            timeout=self.spec.timeout, detail=detail or "heartbeat failed"
        )
        return self._result(
            exit_code,
            message,
            timed_out=reason == "timed_out",
            canceled=reason in ("canceled", "lost"),
            **extra,
        )

    def _clean_up(self, prepared: _Prepared) -> None:
        zygote = prepared.extra.pop("zygote", None)
        if isinstance(zygote, Zygote):
            self.backend.zygotes.release(zygote)
        if prepared.cgroup is not None:
            prepared.cgroup.remove()
            prepared.cgroup = None
        # The scratch space holds the step's private /tmp and its environment overlay:
        # whatever it installed there goes with it (off the step's critical path).
        self.backend.discard_later(prepared.scratch)
        if prepared.owned_workdir:
            force_rmtree(prepared.workdir)


def _inside_root(path: Path, root: Path) -> str:
    """Where a host path inside a step's own root is, as the step sees it."""
    try:
        relative = Path(path).resolve().relative_to(Path(root).resolve())
    except ValueError:
        return "/"
    return "/" + relative.as_posix() if str(relative) != "." else "/"


def _release(proc: RunningProcess) -> None:
    """Let a held step run (it was waiting to be put into its cgroup)."""
    if isinstance(proc, ZygoteProcess):
        proc.go()
    elif isinstance(proc, StarterProcess):
        with contextlib.suppress(OSError):
            proc.channel.send({"op": "go"})


def _hand_over(paths: list[Path], uid: int | None, gid: int) -> None:
    """Make the step's writable trees its own (when it runs under another uid)."""
    if uid is None:
        return
    for root in paths:
        if not root.exists():
            continue
        os.lchown(root, uid, gid)
        for dirpath, dirnames, filenames in os.walk(root):
            # A step directory that is also its tenant directory holds earlier steps'
            # scratch spaces, which the trash thread may be removing right now.
            dirnames[:] = [d for d in dirnames if d != SCRATCH_DIR_NAME]
            for name in (*dirnames, *filenames):
                with contextlib.suppress(FileNotFoundError):
                    os.lchown(os.path.join(dirpath, name), uid, gid)


def force_rmtree(path: Path) -> None:
    """Remove a tree even where a step (or overlayfs) left directories without permissions."""

    def fix(function: Any, failed: str, exc_info: Any) -> None:
        if isinstance(exc_info[1], FileNotFoundError):
            return  # removed meanwhile (another cleaner got there first)
        parent = os.path.dirname(failed)
        try:
            os.chmod(parent, stat.S_IRWXU)
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, stat.S_IRWXU)
                # rmtree failed to open or list it: remove it afresh now it is readable.
                shutil.rmtree(failed, ignore_errors=True)
            else:
                os.unlink(failed)
        except OSError:
            pass

    if path.exists():
        shutil.rmtree(path, onerror=fix)
