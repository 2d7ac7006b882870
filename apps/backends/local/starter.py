"""Start one step (or one installer) with a cold starter process, in the sandbox when there is one.

The warm path is a zygote's fork; this is the other way in, used to build
task environments and for steps whose zygote could not start. Both end in
``zygote_server.run_step``, so a step is confined the same way whichever
started it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from apps.backends.local.process import StarterProcess, StepChannel
from apps.backends.local.sandbox import SERVER_INSIDE, SERVER_SCRIPT, Sandbox

__all__ = ["start_once"]


def start_once(
    request: Mapping[str, Any],
    *,
    python: str | os.PathLike[str],
    log_fd: int,
    env: Mapping[str, str],
    sandbox: Sandbox | None,
    read_only: Sequence[str | os.PathLike[str]] = (),
    read_write: Sequence[str | os.PathLike[str]] = (),
    network: bool | None = None,
    start_timeout: float = 120.0,
) -> StarterProcess:
    """Start a process that becomes the step described by ``request``; returns once it reported."""
    ours, theirs = StepChannel.pair()
    channel = StepChannel(ours)
    server = SERVER_INSIDE if sandbox is not None else str(SERVER_SCRIPT)
    argv = [str(python), "-I", server, "--run-once", "--step-fd", str(theirs.fileno())]
    close_network = None
    pending_network = None
    request = dict(request)
    held = bool(request.get("hold"))  # the caller releases it itself (after its cgroup)
    try:
        if sandbox is None:
            popen: subprocess.Popen[bytes] = subprocess.Popen(
                argv,
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                env=dict(env),
                cwd="/",
                start_new_session=True,
                close_fds=True,
            )
        else:
            popen, net = sandbox.start(
                argv,
                mounts=sandbox.starter_mounts(
                    read_only=[Path(p) for p in read_only], read_write=[Path(p) for p in read_write]
                ),
                network=network,
                pass_fds=(theirs.fileno(),),
                stdout=log_fd,
                stderr=log_fd,
                env=dict(env),
            )
            close_network = net.close
            if net.pending:
                pending_network = net
                # The step waits for "go": its network is connected in between.
                request["hold"] = True
    except BaseException:
        channel.close()
        raise
    finally:
        theirs.close()
    proc = StarterProcess(popen, channel, on_close=close_network)
    try:
        channel.send(request)
        proc.started(start_timeout)
        if pending_network is not None:
            pending_network.connect()
            if not held:
                channel.send({"op": "go"})
    except BaseException:
        proc.signal_group(9)
        popen.kill()
        popen.wait()
        proc.close()
        raise
    return proc
