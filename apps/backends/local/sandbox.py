"""The local backend's sandbox: what a step can reach, and how that is enforced.

Two layers, both applied to every step, lightweight or container, and to every
task-environment build:

1. **An outer sandbox** made by bubblewrap (Debian's ``bubblewrap``) around the
   process that starts steps (a zygote, or a one-off starter). It has its own
   mount, pid, IPC, UTS and network namespaces. Its filesystem holds only the
   host's programs read-only (``/usr``, ``/etc``, ``/opt``, ``/sys``, the base
   Python), the task environment read-only, and one tenant's step directory
   read-write: never ``CANAL_DATA_DIR`` (database, secret key, broker files,
   logs, other namespaces' files), never Canal's code or virtualenv, never
   ``/run`` (database and broker sockets). Canal's processes are in another pid
   namespace, so neither visible nor signalable. When Canal runs as root the
   starter drops to an unprivileged uid (``CANAL_STEP_UID``, default ``nobody``)
   before anything of the pipeline runs. The network is a user-mode stack
   (slirp4netns) with the host's loopback cut off, so the package index is
   reachable but the database, the broker and Canal's own port on 127.0.0.1 are
   not; ``CANAL_STEP_NETWORK=off`` leaves the step with loopback only.
2. **A per-step confinement** applied in the forked step process itself
   (``zygote_server.confine``): its own user + mount namespace with a private
   ``/tmp`` and ``/dev/shm`` and a throw-away overlay over the task environment
   (what a step ``pip install``s disappears with it), then a Landlock domain
   that allows reading only the system, its environment and its own inputs,
   and writing only its own work and output directories, and that forbids
   signalling or connecting to abstract sockets outside the step; then no
   capabilities and ``no_new_privs``.

``probe()`` checks, once per process, that each mechanism really works here
(by running the sandbox), and reports what is missing as warnings: Canal
never degrades silently.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import pwd
import select
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from apps.backends.local.zygote_server import __file__ as _SERVER_FILE

__all__ = [
    "SERVER_INSIDE",
    "SYSTEM_PATHS",
    "Network",
    "Sandbox",
    "SandboxConfig",
    "SandboxStatus",
    "StepPaths",
]

logger = logging.getLogger(__name__)

SERVER_SCRIPT = Path(_SERVER_FILE)
# Where the starter script is seen inside the sandbox (Canal's source tree is not).
SERVER_INSIDE = "/run/canal/zygote_server.py"
# The host's programs and configuration, read-only. /etc holds no Canal secret;
# files such as /etc/shadow stay unreadable to the unprivileged uid.
# Inside a sandbox these are fresh and private (tmpfs, or the step's own directory).
PRIVATE_TMP = "/tmp"  # noqa: S108
PRIVATE_VAR_TMP = "/var/tmp"  # noqa: S108
PRIVATE_SHM = "/dev/shm"  # noqa: S108
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/sys")
_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class SandboxConfig:
    """How steps are sandboxed (from ``CANAL_STEP_*`` settings).

    ``mode``: ``auto`` sandboxes when the host can and warns loudly when it
    cannot; ``on`` refuses to run steps without the sandbox; ``off`` runs them
    as plain processes of the worker (also warned). ``uid``/``gid`` are used
    only when Canal runs as root.
    """

    mode: str = "auto"
    network: bool = True
    uid: int | None = None
    gid: int | None = None
    bwrap: str | None = None
    slirp4netns: str | None = None
    extra_read_only: tuple[str, ...] = ()
    # Canal's own directories (data, code, virtualenv, caches): masked wherever a
    # system mount would otherwise show them to a step.
    hidden: tuple[str, ...] = ()
    # Host directories every step may read and write, like a shared volume (an
    # operator's choice: all namespaces' steps share them).
    shared: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ValueError(f"sandbox mode must be one of {_MODES}, not {self.mode!r}")


@dataclass(frozen=True)
class SandboxStatus:
    """What the sandbox can do on this host, found by trying it."""

    active: bool
    mode: str
    mechanisms: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    landlock_abi: int = 0
    network: str = "off"  # "isolated" (slirp4netns), "host" (shared, warned), "off"
    uid: int | None = None

    def summary(self) -> str:
        """One line for logs and the run page."""
        if not self.active:
            return "steps are NOT sandboxed: " + "; ".join(self.warnings)
        text = "steps are sandboxed (" + ", ".join(self.mechanisms) + ")"
        if self.warnings:
            text += "; " + "; ".join(self.warnings)
        return text


@dataclass(frozen=True)
class StepPaths:
    """The host paths one step may use; everything else is out of its reach."""

    tenant_dir: Path  # shared by one tenant's steps; the starter's only writable mount
    read_only: tuple[Path, ...] = ()  # its inputs
    read_write: tuple[Path, ...] = ()  # its work and output directories
    tmp: Path | None = None  # bound on /tmp
    overlay_dir: Path | None = None  # upper and work directories of the environment overlay
    # A container-like root (Argo pods): this directory becomes the step's ``/``, with the
    # system and its environment mounted over it and ``mounts`` (host dir, path inside).
    root: Path | None = None
    mounts: tuple[tuple[Path, str], ...] = ()


@dataclass
class Network:
    """A sandbox's user-mode network (slirp4netns), attached once the sandbox is set up.

    bubblewrap brings the sandbox's loopback up while it sets the sandbox up, and
    slirp4netns does too: started together they race (bwrap then fails with
    "loopback: Failed RTM_NEWADDR"). So the network is connected only after the
    process inside has reported that it runs, and before it is let go on.
    """

    slirp: str | None = None
    sandbox_pid: int | None = None
    process: subprocess.Popen[bytes] | None = None
    exit_fd: int = -1

    @property
    def pending(self) -> bool:
        """Whether ``connect()`` still has to be called."""
        return self.slirp is not None and self.sandbox_pid is not None and self.process is None

    def connect(self, timeout: float = 30.0) -> None:
        """Start slirp4netns for the sandbox and wait until its network is up (idempotent)."""
        if not self.pending:
            return
        assert self.slirp is not None
        ready_r, ready_w = os.pipe()
        exit_r, exit_w = os.pipe()
        try:
            self.process = subprocess.Popen(
                [
                    self.slirp,
                    "--configure",
                    "--mtu=65520",
                    "--disable-host-loopback",
                    f"--ready-fd={ready_w}",
                    f"--exit-fd={exit_r}",
                    str(self.sandbox_pid),
                    "tap0",
                ],
                pass_fds=(ready_w, exit_r),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            self.exit_fd = exit_w
        except BaseException:
            os.close(exit_w)
            raise
        finally:
            os.close(ready_w)
            os.close(exit_r)
        try:
            ready, _, _ = select.select([ready_r], [], [], timeout)
            if not ready or not os.read(ready_r, 1):
                self.close()
                raise OSError("slirp4netns did not bring the step's network up")
        finally:
            os.close(ready_r)

    def close(self) -> None:
        """Closing the exit fd makes slirp4netns exit."""
        if self.exit_fd >= 0:
            os.close(self.exit_fd)
            self.exit_fd = -1
        if self.process is not None:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.sandbox_pid = None


def _nobody() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return 65534, 65534


def _top_symlinks() -> dict[str, str]:
    out = {}
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            out[path] = os.readlink(path)
    return out


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _outermost(paths: Iterable[str]) -> list[str]:
    """The paths that are not inside another one of them."""
    unique = sorted(set(paths), key=len)
    out: list[str] = []
    for path in unique:
        if not any(_inside(path, kept) for kept in out):
            out.append(path)
    return out


@dataclass
class _Mounts:
    ro: list[str] = field(default_factory=list)
    rw: list[str] = field(default_factory=list)
    files: list[tuple[str, str]] = field(default_factory=list)  # (host file, path inside), read-only


class Sandbox:
    """Builds sandboxed command lines and the per-step confinement policy."""

    def __init__(self, config: SandboxConfig | None = None, *, python: str | None = None) -> None:
        self.config = config or SandboxConfig()
        self.is_root = os.geteuid() == 0
        default_uid, default_gid = _nobody()
        self.uid = self.config.uid if self.config.uid is not None else default_uid
        self.gid = self.config.gid if self.config.gid is not None else default_gid
        self.bwrap = self.config.bwrap or shutil.which("bwrap")
        self.slirp = self.config.slirp4netns or shutil.which("slirp4netns")
        self.setpriv = shutil.which("setpriv")
        # The interpreter task environments are made from: it must be visible inside.
        self.python = python or getattr(sys, "_base_executable", None) or sys.executable
        self._status: SandboxStatus | None = None

    # -- status ----------------------------------------------------------------
    @property
    def wanted(self) -> bool:
        """Whether the configuration asks for a sandbox at all."""
        return self.config.mode != "off"

    def status(self) -> SandboxStatus:
        """What works here (probed once, by running the sandbox)."""
        if self._status is None:
            self._status = self._probe()
        return self._status

    @property
    def active(self) -> bool:
        """Steps run sandboxed."""
        return self.status().active

    @property
    def step_uid(self) -> int | None:
        """The uid steps run as when Canal is root and the sandbox is on (None: Canal's own)."""
        return self.uid if (self.is_root and self.active) else None

    def _probe(self) -> SandboxStatus:
        mode = self.config.mode
        if mode == "off":
            return SandboxStatus(
                active=False,
                mode=mode,
                warnings=(
                    "CANAL_STEP_SANDBOX=off: steps run as plain processes of the worker, "
                    "with its user and its view of files, processes and network",
                ),
            )
        problems: list[str] = []
        if not sys.platform.startswith("linux"):
            problems.append("the step sandbox needs Linux")
        if not self.bwrap:
            problems.append("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
        if self.is_root and not self.setpriv:
            problems.append("setpriv (util-linux) is missing, so steps cannot drop root")
        result: dict[str, Any] = {}
        if not problems:
            try:
                result = self._probe_run()
            except (OSError, subprocess.SubprocessError, ValueError) as exc:
                problems.append(f"the sandbox does not start on this host: {exc}")
        if not problems and not result.get("namespaces"):
            problems.append(f"user namespaces are unavailable to steps: {result.get('error', 'unknown')}")
        if problems:
            return SandboxStatus(active=False, mode=mode, warnings=tuple(problems))
        abi = int(result.get("landlock", 0))
        mechanisms = ["bubblewrap namespaces (mount, pid, ipc, uts, net)", "per-step user namespace"]
        warnings: list[str] = []
        if abi >= 1:
            mechanisms.append(f"Landlock ABI {abi}")
            if abi < 6:
                warnings.append(
                    f"Landlock ABI {abi} cannot scope signals: steps of one namespace could signal each other"
                )
        else:
            warnings.append(
                "Landlock is unavailable: steps of one namespace can read each other's work directories"
            )
        if self.is_root:
            mechanisms.append(f"uid {self.uid}")
        network = "off"
        if self.config.network:
            if self.slirp:
                network = "isolated"
                mechanisms.append("slirp4netns network without host loopback")
            else:
                network = "host"
                warnings.append(
                    "slirp4netns is not installed, so steps share the host's network and "
                    "can reach services on 127.0.0.1: apt-get install slirp4netns"
                )
        return SandboxStatus(
            active=True,
            mode=mode,
            mechanisms=tuple(mechanisms),
            warnings=tuple(warnings),
            landlock_abi=abi,
            network=network,
            uid=self.uid if self.is_root else None,
        )

    def _probe_run(self) -> dict[str, Any]:
        """Start a real sandbox and try the per-step confinement in it."""
        code = (
            f"import json,runpy;m=runpy.run_path({SERVER_INSIDE!r});r={{'landlock':m['landlock_abi']()}}\n"
            f"try:\n m['confine']({{'namespaces':True,'tmpfs':[{PRIVATE_SHM!r}]}});r['namespaces']=True\n"
            "except Exception as e:\n r['namespaces']=False;r['error']=str(e)\n"
            "print(json.dumps(r))"
        )
        argv = self.wrap([self.python, "-I", "-c", code], mounts=_Mounts(), network=False)
        out = subprocess.run(
            argv, capture_output=True, text=True, timeout=60, env=self.base_env(), check=False
        )
        if out.returncode != 0:
            raise ValueError((out.stderr or out.stdout).strip()[-500:] or f"exit code {out.returncode}")
        parsed: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return parsed

    # -- command lines --------------------------------------------------------------
    def base_env(self) -> dict[str, str]:
        """The environment of a sandbox's starter (each step then gets its own)."""
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "HOME": "/nonexistent",
        }

    @functools.cached_property
    def _python_prefix(self) -> str:
        real = os.path.realpath(self.python)
        return str(Path(real).parent.parent)

    def _system_mounts(self) -> _Mounts:
        mounts = _Mounts()
        links = _top_symlinks()  # once, not once per path: it lstat()s every system path
        for path in (*SYSTEM_PATHS, self._python_prefix, *self.config.extra_read_only):
            if os.path.exists(path) and path not in links:
                mounts.ro.append(path)
        mounts.files.append((str(SERVER_SCRIPT), SERVER_INSIDE))
        return mounts

    def wrap(
        self,
        argv: Sequence[str],
        *,
        mounts: _Mounts,
        network: bool,
        info_fd: int | None = None,
    ) -> list[str]:
        """``argv`` run inside a new outer sandbox with ``mounts`` (plus the system's)."""
        assert self.bwrap is not None
        system = self._system_mounts()
        args: list[str] = [
            self.bwrap,
            "--die-with-parent",
            "--new-session",
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname",
            "canal-step",
        ]
        if not self.is_root:
            args.append("--unshare-user")
        if not network or self.slirp:
            args.append("--unshare-net")
        if info_fd is not None:
            args += ["--info-fd", str(info_fd)]
        # Order matters: fresh filesystems first, then the host's read-only system, then
        # masks over Canal's own directories wherever the system mounts would show them,
        # then the step's own paths (which may lie inside a mask), deepest last.
        args += [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            PRIVATE_TMP,
            "--tmpfs",
            "/run",
            "--perms",
            "0755",
            "--dir",
            "/run/canal",
            "--perms",
            "0755",
            "--dir",
            "/var",
            "--tmpfs",
            PRIVATE_VAR_TMP,
        ]
        links = _top_symlinks()
        for link, target in links.items():
            args += ["--symlink", target, link]
        # Read-only places: no directory can be made inside them (tmpfs places can).
        covered: list[str] = [*links, "/proc", "/dev"]
        made: set[str] = {"/run/canal", "/var"}
        masks: list[str] = []

        def parents(path: str) -> None:
            current = ""
            for part in Path(path).parts[1:-1]:
                current += "/" + part
                if current in made:
                    continue
                if any(_inside(current, c) for c in covered) and not any(_inside(current, m) for m in masks):
                    continue
                args.extend(["--perms", "0755", "--dir", current])
                made.add(current)

        system_ro = sorted(system.ro, key=lambda p: p.count("/"))
        for path in system_ro:
            if any(_inside(path, c) for c in covered):
                continue
            parents(path)
            args += ["--ro-bind", path, path]
            covered.append(path)
        for hidden in sorted(self.config.hidden, key=lambda p: p.count("/")):
            if os.path.isdir(hidden) and any(_inside(hidden, c) for c in covered):
                args += ["--tmpfs", hidden]
                masks.append(hidden)
        shared = [p for p in self.config.shared if os.path.isdir(p)]
        own = sorted(
            [(p, "--ro-bind") for p in mounts.ro] + [(p, "--bind") for p in (*mounts.rw, *shared)],
            key=lambda item: item[0].count("/"),
        )
        for path, flag in own:
            parents(path)
            args += [flag, path, path]
        for host_file, inside in (*system.files, *mounts.files):
            args += ["--ro-bind", host_file, inside]
        args.append("--")
        if self.is_root:
            assert self.setpriv is not None
            # Drop root before anything of the pipeline runs (capabilities go with it).
            args += [
                self.setpriv,
                f"--reuid={self.uid}",
                f"--regid={self.gid}",
                "--clear-groups",
                "--no-new-privs",
                "--",
            ]
        return [*args, *argv]

    def starter_mounts(
        self, *, read_only: Iterable[Path | str] = (), read_write: Iterable[Path | str] = ()
    ) -> _Mounts:
        """Mounts for a sandbox: extra read-only and read-write host paths."""
        return _Mounts(ro=[str(p) for p in read_only], rw=[str(p) for p in read_write])

    def start(
        self,
        argv: Sequence[str],
        *,
        mounts: _Mounts,
        network: bool | None = None,
        pass_fds: Sequence[int] = (),
        stdout: int | IO[bytes] | None = None,
        stderr: int | IO[bytes] | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> tuple[subprocess.Popen[bytes], Network]:
        """Start ``argv`` in a new outer sandbox. When its network is isolated, the caller
        must ``connect()`` the returned Network once the process reports, before it lets
        it run anything that needs the network (see Network)."""
        want_net = self.config.network if network is None else network
        isolated = want_net and self.slirp is not None
        info_r = info_w = -1
        if isolated:
            info_r, info_w = os.pipe()
        full = self.wrap(argv, mounts=mounts, network=want_net, info_fd=info_w if isolated else None)
        fds = tuple(pass_fds) + ((info_w,) if isolated else ())
        try:
            process = subprocess.Popen(
                full,
                pass_fds=fds,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=env if env is not None else self.base_env(),
                cwd=cwd or "/",
                start_new_session=True,
                close_fds=True,
            )
        finally:
            if isolated:
                os.close(info_w)
        if not isolated:
            return process, Network()
        try:
            data = b""
            while b"}" not in data:
                ready, _, _ = select.select([info_r], [], [], 30)
                chunk = os.read(info_r, 4096) if ready else b""
                if not chunk:
                    raise OSError("the sandbox did not start (see the step's log)")
                data += chunk
            pid = int(json.loads(data.decode())["child-pid"])
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            os.close(info_r)
        return process, Network(slirp=self.slirp, sandbox_pid=pid)

    # -- per-step policy --------------------------------------------------------------------
    def step_policy(self, paths: StepPaths, *, environment: Path | None) -> dict[str, Any]:
        """The confinement a step applies to itself (see ``zygote_server.confine``)."""
        status = self.status()
        binds: list[list[str]] = []
        overlays: list[dict[str, str]] = []
        if paths.tmp is not None:
            binds.append([str(paths.tmp), PRIVATE_TMP])
        if environment is not None and paths.overlay_dir is not None:
            overlays.append(
                {
                    "lower": str(environment),
                    "upper": str(paths.overlay_dir / "upper"),
                    "work": str(paths.overlay_dir / "work"),
                }
            )
        policy: dict[str, Any] = {
            "namespaces": True,
            "keep": _outermost(
                [
                    str(paths.tenant_dir),
                    *([str(environment)] if environment else []),
                    *(str(p) for p in (*paths.read_only, *paths.read_write)),
                    *self.config.shared,
                ]
            ),
            "binds": binds,
            "tmpfs": [PRIVATE_SHM],
            "overlays": overlays,
            "no_new_privs": True,
        }
        if paths.root is not None:
            policy["root"] = {
                "dir": str(paths.root),
                "links": _top_symlinks(),
                "ro": [*self._system_mounts().ro, "/proc", "/sys"],
                "rw": ["/dev", *([str(environment)] if environment else []), *self.config.shared],
                "mounts": [[str(source), inside] for source, inside in paths.mounts],
            }
            if status.landlock_abi >= 1:
                # The step's view of files is its own root (everything else is read-only
                # mounts or gone with the old root): Landlock then only adds its scopes.
                policy["landlock"] = {"ro": [], "rw": ["/"]}
            return policy
        if status.landlock_abi >= 1:
            links = _top_symlinks()
            system = [
                p
                for p in (*SYSTEM_PATHS, self._python_prefix, *self.config.extra_read_only)
                if p not in links
            ]
            read_only = [*system, "/proc", SERVER_INSIDE, *(str(p) for p in paths.read_only)]
            read_write = [
                PRIVATE_TMP,
                "/dev",
                PRIVATE_VAR_TMP,
                *(str(p) for p in paths.read_write),
                *self.config.shared,
            ]
            if environment is not None:
                # Writable through its own overlay only: the cached environment stays as built.
                (read_write if overlays else read_only).append(str(environment))
            policy["landlock"] = {"ro": read_only, "rw": read_write}
        return policy

    def visible(self, path: str) -> bool:
        """Whether a host path is part of what every sandbox shows (the system and the base Python)."""
        real = os.path.realpath(path)
        roots = [*SYSTEM_PATHS, self._python_prefix, *self.config.extra_read_only]
        if any(_inside(real, root) for root in roots if os.path.exists(root)):
            return not any(_inside(real, hidden) for hidden in self.config.hidden)
        return False

    def prepare_dirs(self, *paths: Path) -> None:
        """Create the step's directories and hand them to the step's uid."""
        for path in paths:
            path.mkdir(parents=True, exist_ok=True)
            uid = self.step_uid
            if uid is not None:
                with contextlib.suppress(OSError):
                    os.chown(path, uid, self.gid)
