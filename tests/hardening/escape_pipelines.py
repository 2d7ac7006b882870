"""Pipelines that try to escape the step sandbox, written with the real kfp SDK.

Each attacker step tries every attack on ``targets`` (a JSON document the test
fills in) and returns a JSON report, one entry per attack: ``"ok: ..."`` when
it got through, ``"denied: ..."`` when it did not. The same probe runs as a
lightweight Python component (forked from a warm zygote) and as a container
step (the host's ``python3``, exec'd), so both ways of starting a step are
tested. No ``from __future__ import annotations``: kfp reads the type hints.
"""

import functools
import inspect
import textwrap

from kfp import dsl

component = functools.partial(dsl.component, base_image="python:3.11")


def probe(targets: str) -> str:
    """Try each attack on ``targets``; report what got through."""
    import hashlib
    import json
    import os
    import signal
    import socket
    import time

    t = json.loads(targets)
    report = {}

    def attempt(name, action):
        try:
            report[name] = "ok: " + str(action())
        except Exception as exc:  # every failure is a refusal, whatever its kind
            report[name] = f"denied: {type(exc).__name__}: {exc}"

    def read(path):
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()

    for name, path in t["read"].items():
        attempt(f"read {name}", lambda path=path: read(path))

    def listing(path):
        return ",".join(sorted(os.listdir(path))[:5])

    for name, path in t["list"].items():
        attempt(f"list {name}", lambda path=path: listing(path))

    def connect(host, port):
        with socket.create_connection((host, port), timeout=3) as sock:
            sock.settimeout(3)
            try:
                return f"connected, got {len(sock.recv(64))} bytes"
            except TimeoutError:
                return "connected"

    for name, (host, port) in t["connect"].items():
        attempt(f"connect {name}", lambda host=host, port=port: connect(host, port))

    def environ_scan():
        marker = t["environ_marker"].encode()
        seen = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/environ", "rb") as handle:
                    if marker in handle.read():
                        return f"found the marker in /proc/{pid}/environ"
                seen += 1
            except OSError:
                continue
        raise PermissionError(f"marker not readable ({seen} environments readable)")

    attempt("read canal environ", environ_scan)

    def write(path):
        with open(path, "w") as handle:
            handle.write("escaped")
        return path

    for name, path in t["write"].items():
        attempt(f"write {name}", lambda path=path: write(path))

    def kill_victim():
        wanted = f"sleep\0{t['victim_seconds']}\0".encode()
        deadline = time.time() + 12
        while time.time() < deadline:
            victims = []
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        with open(f"/proc/{pid}/cmdline", "rb") as handle:
                            if handle.read() == wanted:
                                victims.append(int(pid))
                    except OSError:
                        pass
            for pid in victims:
                os.kill(pid, signal.SIGKILL)  # raises when refused
            if victims:
                return f"killed {len(victims)}"
            time.sleep(0.2)
        raise ProcessLookupError("the other step is not visible")

    attempt("kill other step", kill_victim)
    return json.dumps(report, sort_keys=True)


PROBE_SOURCE = textwrap.dedent(inspect.getsource(probe))


@component
def lightweight_attacker(probe_source: str, targets: str) -> str:
    namespace: dict = {}
    exec(probe_source, namespace)  # noqa: S102 (the test's own probe, passed as a parameter)
    return namespace["probe"](targets)


CONTAINER_SCRIPT = PROBE_SOURCE + (
    "\nimport sys, os\nos.makedirs(os.path.dirname(sys.argv[2]), exist_ok=True)\n"
    "open(sys.argv[2], 'w').write(probe(sys.argv[1]))\n"
)


@dsl.container_component
def container_attacker(script: str, targets: str, report: dsl.OutputPath(str)):
    return dsl.ContainerSpec(image="python:3.11", command=["python3", "-c", script, targets, report])


@dsl.container_component
def victim(seconds: str):
    return dsl.ContainerSpec(image="alpine:3", command=["sleep", seconds])


@dsl.pipeline(name="escape-lightweight")
def escape_lightweight(targets: str, victim_seconds: str):
    victim(seconds=victim_seconds).set_caching_options(False)
    lightweight_attacker(probe_source=PROBE_SOURCE, targets=targets).set_caching_options(False)


@dsl.pipeline(name="escape-container")
def escape_container(targets: str, victim_seconds: str):
    victim(seconds=victim_seconds).set_caching_options(False)
    container_attacker(script=CONTAINER_SCRIPT, targets=targets).set_caching_options(False)


@component
def write_artifact(data: dsl.Output[dsl.Dataset]):
    print("the other run's log line")
    with open(data.path, "w") as handle:
        handle.write("another namespace's data")


@dsl.pipeline(name="victim-run")
def victim_run():
    write_artifact().set_caching_options(False)
