"""Canal's zygote: a warm interpreter that forks one fresh, isolated process per step.

Run by a task environment's own python (``python -I zygote_server.py ...``),
so it must use the standard library only and must not import Canal. It
preloads modules (``kfp.dsl.executor_main``'s imports under
``_KFP_RUNTIME=true``), then serves requests from its owner:

* The owner holds one end of a *control* socket. Each step arrives on it as
  one byte plus two file descriptors (SCM_RIGHTS): a fresh *step* socket and
  the step's log file. EOF on the control socket means the owner is gone.
* On the step socket the owner sends one request frame, and later optional
  ``{"op": "signal"}`` frames; the zygote answers ``{"event": "started",
  "pid": N}`` and finally ``{"event": "exited", "returncode": R}`` (negative
  R: killed by that signal) or ``{"event": "error", "message": ...}``.

A frame is a 4-byte big-endian length followed by that much UTF-8 JSON.

Each child starts a new session (its own process group), asks to be killed
if the zygote dies, chdirs, replaces its environment, sends fds 1 and 2 to
the log file, and then either execs a program or runs a module as
``__main__`` (the kfp executor) in the already-warm interpreter. When a
child exits, whatever it left in its process group is killed, as a container
runtime would. If the owner dies (PR_SET_PDEATHSIG) or closes the control
socket, every running step's process group is killed and the zygote exits.
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
import selectors
import signal
import socket
import struct
import sys
import tempfile
import traceback
from typing import Any

_HEADER = struct.Struct("!I")
_MAX_FRAME = 512 * 1024 * 1024
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, value, 0, 0, 0)) == 0
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


class _Conn:
    """One step: its socket, log fd, request buffer and child pid."""

    def __init__(self, sock: socket.socket, log_fd: int) -> None:
        self.sock = sock
        self.log_fd = log_fd
        self.buffer = bytearray()
        self.pid: int | None = None
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
            elif conn.pid is None:
                self._launch(conn, frame)

    def _launch(self, conn: _Conn, request: dict[str, Any]) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
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
                code = _run_child(request, conn.log_fd, self.my_pid)
            except BaseException:
                try:
                    traceback.print_exc()
                    sys.stderr.flush()
                except BaseException:  # noqa: S110
                    pass
            finally:
                os._exit(code)
        conn.pid = pid
        self.children[pid] = conn
        os.close(conn.log_fd)
        conn.log_fd = -1
        _send(conn.sock, {"event": "started", "pid": pid})

    def _release_in_child(self, mine: _Conn) -> None:
        """In a new child: close the zygote's descriptors (copies only; the zygote keeps its own).

        Descriptors received over SCM_RIGHTS are inheritable, and a child that
        kept another step's socket open would hide that step's EOF.
        """
        self.selector.close()
        self.control.close()
        for conn in list(self.conns.values()):
            conn.sock.close()
            if conn is not mine and conn.log_fd >= 0:
                os.close(conn.log_fd)
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


def _run_child(request: dict[str, Any], log_fd: int, zygote_pid: int) -> int:
    """In the forked child: isolate, redirect, then exec or run the module. Returns an exit code."""
    os.setsid()
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != zygote_pid:
        return 1  # the zygote died between fork and prctl
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)

    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(devnull)
    os.close(log_fd)

    env: dict[str, str] = {str(k): str(v) for k, v in request.get("env", {}).items()}
    os.chdir(request.get("cwd") or "/")
    os.environ.clear()
    os.environ.update(env)

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
            os.execve(executable, argv, env)  # noqa: S606  (argv as a list, no shell: the point)
        except OSError as exc:
            os.write(2, f"[canal] cannot execute {argv[0]!r}: {exc.strerror}\n".encode())
            return 127 if exc.errno == errno.ENOENT else 126
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


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``zygote_server.py --control-fd N --parent-pid P [--preload MOD]...``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--preload", action="append", default=[])
    options = parser.parse_args(argv)

    # SIGTERM (not SIGKILL) so that the loop can kill the running steps' groups first.
    set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != options.parent_pid:
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
    # Keep the preloaded objects out of the collector's way so forked children
    # do not dirty (copy) the pages they live on.
    gc.freeze()

    zygote = Zygote(control)
    zygote.install_signals()
    control.sendall(encode_frame({"ready": True, "pid": os.getpid(), "preload_errors": errors}))
    zygote.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
