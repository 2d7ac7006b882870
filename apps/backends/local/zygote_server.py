"""Canal's step starter: a warm interpreter that forks one confined process per step.

Run by a task environment's own python (``python -I zygote_server.py ...``),
so it must use the standard library only and must not import Canal. Two modes:

* **Zygote** (``--control-fd N``): preload modules (``kfp.dsl.executor_main``'s
  imports under ``_KFP_RUNTIME=true``), then fork one child per step. The
  owner holds one end of a *control* socket; each step arrives on it as one
  byte plus two file descriptors (SCM_RIGHTS): a fresh *step* socket and the
  step's log file. EOF on the control socket means the owner is gone.
* **Run once** (``--run-once --step-fd N``): the same protocol on one step
  socket, but this process becomes the step itself (no fork). Used where no
  warm interpreter is wanted: building task environments, and steps whose
  zygote could not start.

On the step socket the owner sends one request frame (and later optional
``{"op": "signal"}`` / ``{"op": "go"}`` frames). The step process itself
answers ``{"event": "started", "pid": N}`` with its credentials attached
(SCM_CREDENTIALS: the kernel translates the pid into the owner's pid
namespace, so the owner learns the real pid even when the step runs in a
sandbox's own pid namespace), then ``{"event": "running"}`` once it is
confined, or ``{"event": "error", "message": ...}`` if confinement failed.
The zygote finally sends ``{"event": "exited", "returncode": R}`` (negative R:
killed by that signal). A frame is a 4-byte big-endian length followed by
that much UTF-8 JSON.

Confinement (``confine()``) is applied by the process that becomes the step,
after the fork and before any of the step's code runs, in this order: a new
user + mount namespace with a private /tmp, /dev/shm and a copy-on-write
overlay over the task environment; rlimits and CPU affinity; a Landlock
domain allowing only the step's own paths (read-only system, environment and
inputs; read-write work and outputs) and forbidding signals and abstract
sockets outside the step; then no capabilities and no_new_privs. Each part is
requested explicitly by the owner, and a part that cannot be applied fails
the step instead of running it with less protection than asked for.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import errno
import gc
import importlib
import json
import os
import platform
import resource
import selectors
import signal
import socket
import stat
import struct
import sys
import tempfile
import traceback
from typing import Any

_HEADER = struct.Struct("!I")
_MAX_FRAME = 512 * 1024 * 1024
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_CONFINE_FAILED = 71  # exit code when the sandbox could not be set up (EX_OSERR)

_libc: Any = None


def _c() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
        # Resolved here, in the zygote, so that its steps do not each look them up again.
        for name in ("prctl", "unshare", "capset", "umount2"):
            getattr(_libc, name)
        _libc.mount.argtypes = [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.c_char_p,
        ]
    return _libc


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        return int(_c().prctl(option, ctypes.c_ulong(value), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def set_parent_death_signal(sig: int) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent thread dies."""
    return _prctl(_PR_SET_PDEATHSIG, sig)


def encode_frame(message: dict[str, Any]) -> bytes:
    """One length-prefixed JSON frame."""
    body = json.dumps(message, separators=(",", ":")).encode("utf-8")
    return _HEADER.pack(len(body)) + body


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    # If the owner went away there is nobody to tell.
    with contextlib.suppress(OSError):
        sock.sendall(encode_frame(message))


def _send_with_credentials(sock: socket.socket, message: dict[str, Any]) -> None:
    """Send a frame with this process's pid/uid/gid attached (SCM_CREDENTIALS)."""
    creds = struct.pack("3i", os.getpid(), os.getuid(), os.getgid())
    data = encode_frame(message)
    with contextlib.suppress(OSError):
        sent = sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds)])
        if sent < len(data):
            sock.sendall(data[sent:])


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        data = sock.recv(size)
        if not data:
            return None
        chunks.append(data)
        size -= len(data)
    return b"".join(chunks)


def _recv_frame(sock: socket.socket) -> dict[str, Any] | None:
    header = _recv_exact(sock, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > _MAX_FRAME:
        raise ValueError("frame too large")
    body = _recv_exact(sock, size)
    if body is None:
        return None
    message = json.loads(body.decode("utf-8"))
    return message if isinstance(message, dict) else None


# --- confinement -------------------------------------------------------------------------

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_PRIVATE = 1 << 18
_MS_RDONLY = 0x1
_MS_NOEXEC = 0x8
_MS_REMOUNT = 0x20
_MS_NOATIME = 0x400
_MS_NODIRATIME = 0x800
_MS_RELATIME = 1 << 21
_MNT_DETACH = 2
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41}

# Landlock (include/uapi/linux/landlock.h); the syscall numbers are the same on
# every architecture that uses the generic table (x86_64, aarch64, riscv64...).
_LANDLOCK_CREATE_RULESET = 444
_LANDLOCK_ADD_RULE = 445
_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_FS_EXECUTE = 1 << 0
_FS_WRITE_FILE = 1 << 1
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_TRUNCATE = 1 << 14
_FS_IOCTL_DEV = 1 << 15
_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
_SCOPE_SIGNAL = 1 << 1
_FILE_RIGHTS = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV


class ConfineError(Exception):
    """A requested part of the sandbox could not be applied."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_landlock_abi: int | None = None


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is unavailable.

    Asked once per process (the zygote asks before it forks, so its steps inherit
    the answer instead of each asking again)."""
    global _landlock_abi
    if _landlock_abi is None:
        _landlock_abi = _ask_landlock_abi()
    return _landlock_abi


def _ask_landlock_abi() -> int:
    if not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "aarch64", "riscv64"):
        return 0
    try:
        version = int(
            _c().syscall(
                _LANDLOCK_CREATE_RULESET,
                None,
                ctypes.c_size_t(0),
                ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION),
            )
        )
    except (OSError, AttributeError):
        return 0
    return max(0, version)


def _fs_rights(abi: int) -> int:
    rights = (1 << 13) - 1  # ABI 1: EXECUTE .. MAKE_SYM
    if abi >= 2:
        rights |= 1 << 13  # REFER
    if abi >= 3:
        rights |= _FS_TRUNCATE
    if abi >= 5:
        rights |= _FS_IOCTL_DEV
    return rights


def _landlock(read_only: list[str], read_write: list[str]) -> None:
    """Allow only these hierarchies; no signals or abstract sockets leave the domain."""
    abi = landlock_abi()
    if abi < 1:
        raise ConfineError("Landlock is not available in this kernel")
    libc = _c()
    handled = _fs_rights(abi)
    attr = _RulesetAttr(handled_access_fs=handled, handled_access_net=0, scoped=0)
    size = 8
    if abi >= 6:
        attr.scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL
        size = ctypes.sizeof(_RulesetAttr)
    ruleset = int(
        libc.syscall(_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    )
    if ruleset < 0:
        raise ConfineError(f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}")
    try:
        read = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
        for paths, access in ((read_only, read), (read_write, handled)):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue  # nothing there to allow
                except OSError as exc:
                    raise ConfineError(f"landlock: cannot open {path}: {exc.strerror}") from None
                try:
                    # The opened descriptor, not the path again: one lookup per rule.
                    is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
                    allowed = access if is_dir else access & _FILE_RIGHTS
                    rule = _PathBeneathAttr(allowed_access=allowed & handled, parent_fd=fd)
                    if (
                        int(
                            libc.syscall(
                                _LANDLOCK_ADD_RULE,
                                ruleset,
                                _LANDLOCK_RULE_PATH_BENEATH,
                                ctypes.byref(rule),
                                ctypes.c_uint32(0),
                            )
                        )
                        != 0
                    ):
                        raise ConfineError(f"landlock_add_rule {path}: {os.strerror(ctypes.get_errno())}")
                finally:
                    os.close(fd)
        if not _prctl(_PR_SET_NO_NEW_PRIVS, 1):
            raise ConfineError("prctl(PR_SET_NO_NEW_PRIVS) failed")
        if int(libc.syscall(_LANDLOCK_RESTRICT_SELF, ruleset, ctypes.c_uint32(0))) != 0:
            raise ConfineError(f"landlock_restrict_self: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(ruleset)


def _write(path: str, text: str) -> None:
    # os.open/os.write, not open(): no buffered text stack for a one-line /proc write.
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    rc = _c().mount(
        None if source is None else source.encode(),
        target.encode(),
        None if fstype is None else fstype.encode(),
        ctypes.c_ulong(flags),
        None if data is None else data.encode(),
    )
    if rc != 0:
        what = fstype or ("bind" if flags & _MS_BIND else "propagation")
        raise ConfineError(f"mount {what} on {target}: {os.strerror(ctypes.get_errno())}")


def _own_namespaces(policy: dict[str, Any]) -> None:
    """A user + mount namespace of the step's own, then its private mounts."""
    uid, gid = os.getuid(), os.getgid()
    if _c().unshare(_CLONE_NEWUSER | _CLONE_NEWNS) != 0:
        raise ConfineError(f"unshare(user, mount): {os.strerror(ctypes.get_errno())}")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    binds = [(str(source), str(target)) for source, target in policy.get("binds", [])]
    tmpfs = [str(target) for target in policy.get("tmpfs", [])]
    # Paths the step needs that the new /tmp (or /dev/shm) would hide (a data directory
    # under /tmp): keep a detached copy of their mounts, and put it back on top.
    covered = [target for _, target in binds] + tmpfs
    kept = [
        (path, _clone_tree(path)) for path in policy.get("keep", []) if any(_under(path, c) for c in covered)
    ]
    for source, target in binds:
        _mount(source, target, None, _MS_BIND | _MS_REC)
    for target in tmpfs:
        _mount("tmpfs", target, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=1777")
    for path, tree in kept:
        os.makedirs(path, exist_ok=True)
        _move_tree(tree, path)
    for overlay in policy.get("overlays", []):
        lower, upper, work = str(overlay["lower"]), str(overlay["upper"]), str(overlay["work"])
        if any(c in p for p in (lower, upper, work) for c in ",:\\"):
            raise ConfineError(f"overlay paths must not contain ',', ':' or '\\': {lower}")
        _mount("overlay", lower, "overlay", 0, f"lowerdir={lower},upperdir={upper},workdir={work},userxattr")
    root = policy.get("root")
    if root:
        _enter_root(root)


def _remount_read_only(target: str) -> None:
    """Make one bind mount read-only, keeping the flags a user namespace may not drop."""
    flags = os.statvfs(target).f_flag
    if flags & os.ST_RDONLY:
        return
    new = _MS_REMOUNT | _MS_BIND | _MS_RDONLY
    for st_flag, ms_flag in (
        (os.ST_NOSUID, _MS_NOSUID),
        (os.ST_NODEV, _MS_NODEV),
        (os.ST_NOEXEC, _MS_NOEXEC),
        (os.ST_NOATIME, _MS_NOATIME),
        (os.ST_NODIRATIME, _MS_NODIRATIME),
        (os.ST_RELATIME, _MS_RELATIME),
    ):
        if flags & st_flag:
            new |= ms_flag
    _mount(None, target, None, new)


def _enter_root(root: dict[str, Any]) -> None:
    """Make ``root["dir"]`` this process's ``/``, as a container's root filesystem.

    The host's system directories (``ro``) are bound read-only at their own paths,
    ``rw`` paths (``/dev``, the task environment's overlay) writable, and each
    ``mounts`` pair (host directory, path inside) at its path; then the old root
    is detached, so nothing else of the sandbox (other steps' directories) stays
    reachable. Every other file the step writes lands in ``root["dir"]``.
    """
    new = os.path.realpath(str(root["dir"]))
    if new == "/" or not os.path.isdir(new):
        raise ConfineError(f"root directory {new!r} is not usable")
    _mount(new, new, None, _MS_BIND | _MS_REC)
    for link, target in (root.get("links") or {}).items():
        path = new + str(link)
        if not os.path.lexists(path):
            os.symlink(str(target), path)

    def bind(source: str, inside: str, read_only: bool) -> None:
        target = os.path.normpath(new + "/" + inside.lstrip("/"))
        if target != new and not target.startswith(new + "/"):
            raise ConfineError(f"mount path {inside!r} leaves the root")
        if os.path.isdir(source):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not os.path.lexists(target):
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))
        # A mount point may not lead back out of the new root (a link planted by a step).
        real = os.path.realpath(target)
        if real != new and not real.startswith(new + "/"):
            raise ConfineError(f"mount path {inside!r} resolves outside the root")
        _mount(source, real, None, _MS_BIND | _MS_REC)
        if read_only:
            _remount_read_only(real)

    for path in root.get("ro") or []:
        if os.path.exists(str(path)):
            bind(str(path), str(path), True)
    for path in root.get("rw") or []:
        if os.path.exists(str(path)):
            bind(str(path), str(path), False)
    for source, inside in root.get("mounts") or []:
        bind(str(source), str(inside), False)
    number = _PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise ConfineError(f"pivot_root is not known on {platform.machine()}")
    os.chdir(new)
    if int(_c().syscall(number, b".", b".")) != 0:
        raise ConfineError(f"pivot_root: {os.strerror(ctypes.get_errno())}")
    if int(_c().umount2(b".", _MNT_DETACH)) != 0:
        raise ConfineError(f"umount2 of the old root: {os.strerror(ctypes.get_errno())}")
    os.chdir("/")


_OPEN_TREE = 428
_MOVE_MOUNT = 429
_OPEN_TREE_CLONE = 1
_AT_RECURSIVE = 0x8000
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_AT_FDCWD = -100


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _clone_tree(path: str) -> int:
    fd = int(
        _c().syscall(
            _OPEN_TREE,
            _AT_FDCWD,
            path.encode(),
            ctypes.c_uint(_OPEN_TREE_CLONE | _AT_RECURSIVE | os.O_CLOEXEC),
        )
    )
    if fd < 0:
        raise ConfineError(f"open_tree {path}: {os.strerror(ctypes.get_errno())}")
    return fd


def _move_tree(fd: int, target: str) -> None:
    try:
        rc = int(
            _c().syscall(
                _MOVE_MOUNT, fd, b"", _AT_FDCWD, target.encode(), ctypes.c_uint(_MOVE_MOUNT_F_EMPTY_PATH)
            )
        )
        if rc != 0:
            raise ConfineError(f"move_mount {target}: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


# Made once in the zygote (a ctypes class made per step cost a step about 0.15 ms).
_CapDataPair = _CapData * 2


def _drop_capabilities() -> None:
    """No capabilities left, and none to gain (in the step's own user namespace it had all)."""
    # (The bounding set is left alone: with no_new_privs an exec cannot gain
    # capabilities, and dropping 64 bits one prctl at a time costs a quarter of a
    # millisecond per step.)
    libc = _c()
    _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = _CapDataPair()
    if libc.capset(ctypes.byref(header), data) != 0:
        raise ConfineError(f"capset: {os.strerror(ctypes.get_errno())}")


def _address_space_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def confine(policy: dict[str, Any]) -> None:
    """Apply ``policy`` to this process (see the module docstring); raises ConfineError."""
    try:
        if policy.get("namespaces"):
            _own_namespaces(policy)
        limit = policy.get("rlimit_as")
        if limit:
            # The cap counts address space, so it is the step's allowance on top of
            # what the (forked, warm) interpreter already maps.
            cap = _address_space_bytes() + int(limit)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        cpus = policy.get("cpu_count")
        if cpus:
            allowed = sorted(os.sched_getaffinity(0))
            os.sched_setaffinity(0, allowed[: max(1, int(cpus))])
        rules = policy.get("landlock")
        if rules is not None:
            _landlock([str(p) for p in rules.get("ro", [])], [str(p) for p in rules.get("rw", [])])
        if policy.get("namespaces"):
            _drop_capabilities()
        if policy.get("no_new_privs") and not _prctl(_PR_SET_NO_NEW_PRIVS, 1):
            raise ConfineError("prctl(PR_SET_NO_NEW_PRIVS) failed")
    except ConfineError:
        raise
    except OSError as exc:
        raise ConfineError(f"{exc.strerror or exc} ({exc.filename or 'sandbox setup'})") from None


# --- the zygote ----------------------------------------------------------------------------


class _Conn:
    """One step: its socket, log fd, request buffer, child pid and hold pipe."""

    def __init__(self, sock: socket.socket, log_fd: int) -> None:
        self.sock = sock
        self.log_fd = log_fd
        self.buffer = bytearray()
        self.pid: int | None = None
        self.go_fd = -1  # write end of the pipe a held child waits on
        self.closed = False

    def frames(self) -> list[dict[str, Any]]:
        """Complete frames received so far."""
        out: list[dict[str, Any]] = []
        while len(self.buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self.buffer)
            if size > _MAX_FRAME:
                raise ValueError("frame too large")
            if len(self.buffer) < _HEADER.size + size:
                break
            body = bytes(self.buffer[_HEADER.size : _HEADER.size + size])
            del self.buffer[: _HEADER.size + size]
            out.append(json.loads(body.decode("utf-8")))
        return out


class Zygote:
    """The server loop: accept steps, fork children, reap them, report."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.selector = selectors.DefaultSelector()
        self.conns: dict[int, _Conn] = {}  # by socket fd
        self.children: dict[int, _Conn] = {}  # by pid
        self.stopping = False
        self.my_pid = os.getpid()
        rfd, wfd = os.pipe()
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        self.wakeup_r, self.wakeup_w = rfd, wfd

    # -- signals ---------------------------------------------------------
    def _on_stop_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    def install_signals(self) -> None:
        """SIGCHLD and stop signals wake the loop through a pipe."""
        signal.set_wakeup_fd(self.wakeup_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_stop_signal)

    # -- loop ------------------------------------------------------------
    def serve(self) -> None:
        """Run until the owner goes away or asks to stop."""
        self.selector.register(self.control, selectors.EVENT_READ, "control")
        self.selector.register(self.wakeup_r, selectors.EVENT_READ, "wakeup")
        while not self.stopping:
            for key, _ in self.selector.select(timeout=5.0):
                if key.data == "control":
                    self._on_control()
                elif key.data == "wakeup":
                    try:
                        while os.read(self.wakeup_r, 512):
                            pass
                    except BlockingIOError:
                        pass
                else:
                    self._on_step_readable(key.data)
            self._reap()
        self.shutdown()

    def _on_control(self) -> None:
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.control, 1, 2)
        except OSError:
            data, fds = b"", []
        if not data:
            for fd in fds:
                os.close(fd)
            self.stopping = True
            return
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            return
        for fd in fds:
            os.set_inheritable(fd, False)
        sock = socket.socket(fileno=fds[0])
        sock.setblocking(True)
        conn = _Conn(sock, fds[1])
        self.conns[sock.fileno()] = conn
        self.selector.register(sock, selectors.EVENT_READ, conn)

    def _on_step_readable(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(1 << 20)
        except OSError:
            data = b""
        if not data:
            # The owner's thread dropped this step: a step nobody waits for
            # must not run on unsupervised.
            if conn.pid is not None:
                self._kill_group(conn.pid, signal.SIGKILL)
            self._close(conn)
            return
        conn.buffer += data
        try:
            frames = conn.frames()
        except (ValueError, UnicodeDecodeError):
            _send(conn.sock, {"event": "error", "message": "malformed request"})
            self._close(conn)
            return
        for frame in frames:
            if frame.get("op") == "signal":
                if conn.pid is not None:
                    self._kill_group(conn.pid, int(frame.get("signal", signal.SIGTERM)))
            elif frame.get("op") == "go":
                self._release_hold(conn)
            elif conn.pid is None:
                self._launch(conn, frame)

    def _release_hold(self, conn: _Conn) -> None:
        if conn.go_fd >= 0:
            with contextlib.suppress(OSError):
                os.write(conn.go_fd, b"g")
            os.close(conn.go_fd)
            conn.go_fd = -1

    def _launch(self, conn: _Conn, request: dict[str, Any]) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        hold_r = -1
        if request.get("hold"):
            hold_r, conn.go_fd = os.pipe()
        try:
            pid = os.fork()
        except OSError as exc:
            _send(conn.sock, {"event": "error", "message": f"fork failed: {exc}"})
            self._close(conn)
            return
        if pid == 0:
            code = 70
            try:
                self._release_in_child(conn)
                code = run_step(
                    request, conn.sock, log_fd=conn.log_fd, hold_fd=hold_r, parent_pid=self.my_pid
                )
            except BaseException:
                try:
                    traceback.print_exc()
                    sys.stderr.flush()
                except BaseException:  # noqa: S110
                    pass
            finally:
                os._exit(code)
        if hold_r >= 0:
            os.close(hold_r)
        conn.pid = pid
        self.children[pid] = conn
        os.close(conn.log_fd)
        conn.log_fd = -1

    def _release_in_child(self, mine: _Conn) -> None:
        """In a new child: close the zygote's descriptors (copies only; the zygote keeps its own).

        Descriptors received over SCM_RIGHTS are inheritable, and a child that
        kept another step's socket open would hide that step's EOF. The
        child keeps its own step socket until it has reported ``started``.
        """
        self.selector.close()
        self.control.close()
        for conn in list(self.conns.values()):
            if conn is not mine:
                conn.sock.close()
                if conn.log_fd >= 0:
                    os.close(conn.log_fd)
            if conn.go_fd >= 0:
                os.close(conn.go_fd)
        os.close(self.wakeup_r)
        os.close(self.wakeup_w)

    def _kill_group(self, pid: int, sig: int) -> None:
        # Only for children not reaped yet, so the group id cannot have been
        # reused by an unrelated process.
        if pid not in self.children:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)

    def _reap(self) -> None:
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid == 0:
                return
            pid = info.si_pid
            if pid not in self.children:
                # An orphaned grandchild reparented to us (we are a subreaper):
                # just reap it so no zombie is left behind.
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
                continue
            # The step's main process ended: like a container, nothing it left
            # behind in its group keeps running. Kill before reaping so the
            # group id is still ours.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            conn = self.children.pop(pid, None)
            if conn is not None:
                _send(conn.sock, {"event": "exited", "returncode": os.waitstatus_to_exitcode(status)})
                self._close(conn)

    def _close(self, conn: _Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        if conn.log_fd >= 0:
            os.close(conn.log_fd)
            conn.log_fd = -1
        if conn.go_fd >= 0:
            os.close(conn.go_fd)
            conn.go_fd = -1
        self.conns.pop(conn.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn.sock)
        conn.sock.close()

    def shutdown(self) -> None:
        """Kill every running step's process group, reap, exit."""
        for pid in list(self.children):
            self._kill_group(pid, signal.SIGKILL)
        for pid in list(self.children):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            conn = self.children.pop(pid)
            self._close(conn)


# --- becoming the step ---------------------------------------------------------------------


def run_step(
    request: dict[str, Any],
    sock: socket.socket,
    *,
    log_fd: int | None,
    hold_fd: int = -1,
    parent_pid: int | None = None,
    wait_go_on_socket: bool = False,
) -> int:
    """In the process that becomes the step: report, wait, confine, redirect, then exec or
    run the module. Returns an exit code (an exec that succeeds never returns)."""
    if os.getsid(0) != os.getpid():  # a one-off starter already leads its own session
        os.setsid()
    if parent_pid is not None:
        set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != parent_pid:
            return 1  # the zygote died between fork and prctl
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)

    if log_fd is not None:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(devnull)
        os.close(log_fd)

    _send_with_credentials(sock, {"event": "started", "pid": os.getpid()})
    if hold_fd >= 0:
        # The owner is putting this process into its resource group (cgroup):
        # nothing of the step may run before that is done.
        got = os.read(hold_fd, 1)
        os.close(hold_fd)
        if not got:
            return 1
    elif wait_go_on_socket:
        frame = _recv_frame(sock)
        if not frame or frame.get("op") != "go":
            return 1
    policy = request.get("confine") or {}
    try:
        confine(policy)
    except ConfineError as exc:
        _send(sock, {"event": "error", "message": f"the step's sandbox could not be set up: {exc}"})
        os.write(2, f"[canal] the step's sandbox could not be set up: {exc}\n".encode())
        return _CONFINE_FAILED
    _send(sock, {"event": "running"})
    sock.close()

    env: dict[str, str] = {str(k): str(v) for k, v in request.get("env", {}).items()}
    try:
        os.chdir(request.get("cwd") or "/")
    except OSError as exc:
        os.write(2, f"[canal] cannot enter the step's directory: {exc.strerror}\n".encode())
        return 126
    if request.get("mode") == "exec":
        argv = [str(a) for a in request["argv"]]
        executable = str(request.get("executable") or argv[0])
        # The interpreter ignores SIGPIPE; a program we exec must not inherit that.
        for sig_name in ("SIGPIPE", "SIGXFSZ"):
            pipe_sig = getattr(signal, sig_name, None)
            if pipe_sig is not None:
                signal.signal(pipe_sig, signal.SIG_DFL)
        # Nothing but stdio crosses into the program (the interpreter's own
        # descriptors are close-on-exec already; this also catches strays).
        os.closerange(3, _max_fd())
        try:
            # The step's environment goes to execve as it is: this interpreter's own
            # os.environ need not be rebuilt for a program that replaces it.
            os.execve(executable, argv, env)  # noqa: S606  (argv as a list, no shell: the point)
        except OSError as exc:
            os.write(2, f"[canal] cannot execute {argv[0]!r}: {exc.strerror}\n".encode())
            return 127 if exc.errno == errno.ENOENT else 126
    os.environ.clear()
    os.environ.update(env)
    return _run_module(request)


def _run_module(request: dict[str, Any]) -> int:
    """Run ``request['module']`` as ``__main__``, as ``python3 -m module args`` would."""
    import runpy

    # Line-buffer stdio so the log shows output as it happens (live tailing).
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError):
                reconfigure(line_buffering=True)
    tempfile.tempdir = None  # recomputed from the step's TMPDIR
    args = [str(a) for a in request.get("args", [])]
    source = request.get("source")
    program_dir: str | None = None
    if source is not None:
        # As the kfp command does: the component source goes to a module file
        # in a fresh temporary directory, passed as --component_module_path.
        program_dir = tempfile.mkdtemp()
        module_path = os.path.join(program_dir, str(request.get("source_name", "ephemeral_component.py")))
        with open(module_path, "w", encoding="utf-8") as handle:
            handle.write(str(source))
        args = ["--component_module_path", module_path, *args]

    module = str(request["module"])
    # `python -m` puts the working directory first on sys.path, then PYTHONPATH.
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:0] = [os.getcwd(), *extra]
    # The preloaded copy of the main module would make runpy warn and share
    # state; run a fresh one (its imports stay warm).
    sys.modules.pop(module, None)
    sys.argv = [module, *args]
    code = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except MemoryError:
        traceback.print_exc()
        code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    if program_dir is not None:
        import shutil

        shutil.rmtree(program_dir, ignore_errors=True)
    return code


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _max_fd() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (ValueError, OSError):
        return 65536


def _run_once(step_fd: int) -> int:
    """``--run-once``: read one request from the step socket and become that step."""
    sock = socket.socket(fileno=step_fd)
    sock.setblocking(True)
    os.set_inheritable(step_fd, False)
    request = _recv_frame(sock)
    if request is None:
        return 1
    return run_step(request, sock, log_fd=None, wait_go_on_socket=bool(request.get("hold")))


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``--control-fd N [--parent-pid P] [--preload MOD]...`` or ``--run-once --step-fd N``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--control-fd", type=int)
    parser.add_argument("--parent-pid", type=int, default=0)
    parser.add_argument("--preload", action="append", default=[])
    parser.add_argument("--run-once", action="store_true")
    parser.add_argument("--step-fd", type=int)
    parser.add_argument("--landlock-abi", action="store_true", help="print the Landlock ABI and exit")
    options = parser.parse_args(argv)
    if options.landlock_abi:
        print(landlock_abi())
        return 0
    if options.run_once:
        return _run_once(options.step_fd)

    # SIGTERM (not SIGKILL) so that the loop can kill the running steps' groups first.
    set_parent_death_signal(signal.SIGTERM)
    # In a sandbox the parent is the sandbox's own init, in another pid namespace:
    # the owner passes 0 and relies on the sandbox dying with it instead.
    if options.parent_pid and os.getppid() != options.parent_pid:
        return 0  # the owner is already gone
    # Orphans of steps are reparented to us rather than to init, which in a
    # container may never reap them.
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    control = socket.socket(fileno=options.control_fd)
    control.setblocking(True)

    os.environ["_KFP_RUNTIME"] = "true"
    errors: dict[str, str] = {}
    for name in options.preload:
        try:
            importlib.import_module(name)
        except BaseException as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
    landlock_abi()  # asked once here; every step forked from this process inherits the answer
    # Keep the preloaded objects out of the collector's way so forked children
    # do not dirty (copy) the pages they live on.
    gc.freeze()

    zygote = Zygote(control)
    zygote.install_signals()
    # With credentials attached, so the owner learns this process's real pid too.
    _send_with_credentials(control, {"ready": True, "pid": os.getpid(), "preload_errors": errors})
    zygote.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
