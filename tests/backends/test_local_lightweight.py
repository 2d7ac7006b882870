"""Lightweight Python components: cached task environments, the zygote, isolation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.backends import StepResult, StepSpec, StepStarted
from apps.backends.local import LocalBackend, TaskEnvManager
from apps.backends.local.zygote import Zygote, ZygoteError
from tests.backends.conftest import (
    corpus_executor,
    lightweight_argv,
    live_group_members,
    process_alive,
    read_text,
    render_args,
    wait_until,
)
from tests.paths import PROJECT

PRELUDE_IMPORTS = "\nimport kfp\nfrom kfp import dsl\nfrom kfp.dsl import *\nfrom typing import *\n\n"


def _component(body: str) -> str:
    return PRELUDE_IMPORTS + textwrap.dedent(body).lstrip() + "\n"


def _executor_input(out: Path, **params: Any) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    return {
        "inputs": {"parameterValues": params},
        "outputs": {
            "parameters": {"Output": {"outputFile": str(out / "Output")}},
            "outputFile": str(out / "executor_output.json"),
        },
    }


def _output(out: Path) -> Any:
    return json.loads((out / "executor_output.json").read_text())["parameterValues"]["Output"]


def _add_numbers_spec(tmp_path: Path, step_id: str, a: int, b: int) -> tuple[StepSpec, Path]:
    container = corpus_executor("critical/add_numbers.yaml")
    out = tmp_path / step_id
    argv = container["command"] + render_args(container["args"], _executor_input(out, a=a, b=b))
    spec = StepSpec(
        step_id=step_id,
        argv=argv,
        image=container["image"],
        log_path=tmp_path / f"{step_id}.log",
        workdir=out,
    )
    return spec, out


def test_corpus_component_builds_its_env_once_then_never_pip_installs_again(tmp_path: Path) -> None:
    envs = TaskEnvManager(tmp_path / "envs")
    backend = LocalBackend(envs=envs)
    try:
        first_spec, first_out = _add_numbers_spec(tmp_path, "first", 1, 2)
        first = backend.run(first_spec)
        assert first.succeeded, (tmp_path / "first.log").read_text()
        assert first.mode == "zygote"
        assert first.env_created
        assert _output(first_out) == 3
        assert "building task environment" in (tmp_path / "first.log").read_text()
        runs_after_build = envs.installer_runs
        assert runs_after_build >= 2  # the venv, then the prelude's `kfp==2.14.6 --no-deps`
        assert first.task_env is not None
        marker = Path(first.task_env) / "canal-ready.json"
        marker_mtime = marker.stat().st_mtime_ns
        recorded = json.loads(marker.read_text())
        assert recorded["installs"][0]["requirements"][0] == "kfp==2.14.6"

        second_spec, second_out = _add_numbers_spec(tmp_path, "second", 40, 2)
        second = backend.run(second_spec)
        assert second.succeeded
        assert not second.env_created
        assert second.task_env == first.task_env
        assert _output(second_out) == 42
        assert envs.installer_runs == runs_after_build  # no pip, no uv: nothing installed
        assert marker.stat().st_mtime_ns == marker_mtime
        log = (tmp_path / "second.log").read_text()
        assert "building task environment" not in log
        assert "Wrote executor output file" in log

        # Another worker process (a fresh manager) finds it ready too.
        other = TaskEnvManager(tmp_path / "envs")
        other_backend = LocalBackend(envs=other, use_zygote=False)
        third_spec, third_out = _add_numbers_spec(tmp_path, "third", 5, 5)
        third = other_backend.run(third_spec)
        assert third.succeeded
        assert third.mode == "subprocess"  # a cold `python -m kfp.dsl.executor_main`, still no pip
        assert other.installer_runs == 0
        assert _output(third_out) == 10
        other_backend.close()
    finally:
        backend.close()


def _pip_freeze() -> str:
    # Ask the calling interpreter (Canal's venv) what it has installed.
    return subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True
    ).stdout


def _probe_wheel(directory: Path) -> Path:
    """A tiny installable wheel, made by hand so installing it needs no network or build."""
    wheel = directory / "canal_probe-0.1-py3-none-any.whl"
    files = {
        "canal_probe/__init__.py": "VALUE = 'probe'\n",
        "canal_probe-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: canal-probe\nVersion: 0.1\n",
        "canal_probe-0.1.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{name},,\n" for name in files) + "canal_probe-0.1.dist-info/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr("canal_probe-0.1.dist-info/RECORD", record)
    return wheel


@pytest.fixture(scope="module")
def freeze_before() -> str:
    return _pip_freeze()


def test_steps_never_touch_the_callers_environment(
    backend: LocalBackend, tmp_path: Path, freeze_before: str
) -> None:
    # 1. A component whose packages_to_install is non-empty (yapf, from an index URL).
    container = corpus_executor("essential/component_with_pip_install.yaml")
    ei = {"inputs": {}, "outputs": {"outputFile": str(tmp_path / "pip" / "out.json")}}
    spec = StepSpec(
        step_id="with-packages",
        argv=container["command"] + render_args(container["args"], ei),
        log_path=tmp_path / "with-packages.log",
        workdir=tmp_path / "pip",
    )
    result = backend.run(spec)
    assert result.succeeded, (tmp_path / "with-packages.log").read_text()
    assert (
        "FormatCode" in (tmp_path / "with-packages.log").read_text()
        or "yapf" in (tmp_path / "with-packages.log").read_text()
    )

    # 2. The use_venv variant of the same component reuses that environment.
    venv_container = corpus_executor("essential/component_with_pip_install_in_venv.yaml")
    venv_spec = StepSpec(
        step_id="in-venv",
        argv=venv_container["command"] + render_args(venv_container["args"], ei),
        log_path=tmp_path / "in-venv.log",
        workdir=tmp_path / "pip",
    )
    venv_result = backend.run(venv_spec)
    assert venv_result.succeeded, (tmp_path / "in-venv.log").read_text()
    assert venv_result.task_env == result.task_env
    assert not venv_result.env_created

    # 3. A container step that runs pip itself installs into its task env, not ours.
    wheel = _probe_wheel(tmp_path)
    pip_step = backend.run(
        StepSpec(
            step_id="pip-itself",
            argv=[
                "sh",
                "-c",
                'pip install --quiet --no-index "$0" && python3 -c "import canal_probe"',
                str(wheel),
            ],
            log_path=tmp_path / "pip-itself.log",
            workdir=tmp_path,
        )
    )
    assert pip_step.succeeded, (tmp_path / "pip-itself.log").read_text()
    assert pip_step.task_env is not None
    assert (Path(pip_step.task_env) / "lib").exists()

    # 4. A plain lightweight component.
    add_spec, _ = _add_numbers_spec(tmp_path, "add", 1, 1)
    assert backend.run(add_spec).succeeded

    assert _pip_freeze() == freeze_before
    assert "canal-probe" not in _pip_freeze()


COUNT_SOURCE = _component(
    """
    def wait_for_peers(barrier: str, me: int, count: int) -> str:
        import os, time
        open(os.path.join(barrier, str(me)), "w").close()
        for _ in range(6000):
            if len(os.listdir(barrier)) >= count:
                return str(os.getppid())
            time.sleep(0.01)
        raise RuntimeError("the other steps never ran at the same time")
    """
)


def test_concurrent_lightweight_steps_through_one_zygote(backend: LocalBackend, tmp_path: Path) -> None:
    count = 5
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    results: dict[int, StepResult] = {}

    def run(i: int) -> None:
        ei = _executor_input(tmp_path / f"o{i}", barrier=str(barrier), me=i, count=count)
        spec = StepSpec(
            step_id=f"peer-{i}",
            argv=lightweight_argv(COUNT_SOURCE, "wait_for_peers", ei),
            log_path=tmp_path / f"peer-{i}.log",
            workdir=tmp_path / f"o{i}",
            # One tenant (so one zygote); a sandboxed step sees nothing else of its
            # tenant's directory but what it is given.
            tenant_dir=tmp_path,
            read_write=(barrier,),
        )
        results[i] = backend.run(spec)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(r.succeeded for r in results.values()), [
        (tmp_path / f"peer-{i}.log").read_text() for i in results
    ]
    parents = {_output(tmp_path / f"o{i}") for i in range(count)}
    assert len(parents) == 1
    assert int(parents.pop()) in backend.zygote_pids(inner=True)


ISOLATION_SOURCE = _component(
    """
    def isolated(tag: str) -> str:
        import json, os, random, sys
        import kfp
        seen = getattr(kfp, "_canal_probe", None)
        kfp._canal_probe = tag
        return json.dumps({
            "seen": seen,
            "random": random.random(),
            "cwd": os.getcwd(),
            "argv0": sys.argv[0],
            "cwd_on_path": os.getcwd() in sys.path,
            "runtime": os.environ.get("_KFP_RUNTIME"),
            "pid": os.getpid(),
            "pgid": os.getpgid(0),
            "sid": os.getsid(0),
        })
    """
)


def test_each_step_is_a_fresh_isolated_process(backend: LocalBackend, tmp_path: Path) -> None:
    outputs = []
    for tag in ("one", "two"):
        out = tmp_path / tag
        spec = StepSpec(
            step_id=f"iso-{tag}",
            argv=lightweight_argv(ISOLATION_SOURCE, "isolated", _executor_input(out, tag=tag)),
            log_path=tmp_path / f"iso-{tag}.log",
            workdir=out,
            tenant_dir=tmp_path,  # both from the same zygote
        )
        result = backend.run(spec)
        assert result.succeeded, (tmp_path / f"iso-{tag}.log").read_text()
        assert result.mode == "zygote"
        outputs.append(json.loads(_output(out)))
    one, two = outputs
    assert one["seen"] is None
    assert two["seen"] is None  # module state set by one step does not leak into the next
    assert one["random"] != two["random"]  # the random module is reseeded per fork
    assert one["cwd"] == str(tmp_path / "one")
    assert one["cwd_on_path"]  # as `python -m` sets it
    assert one["argv0"].endswith("executor_main.py")
    assert one["runtime"] == "true"
    assert one["pid"] == one["pgid"] == one["sid"]  # its own session and process group
    assert one["pid"] != two["pid"]


def test_failing_component_reports_its_traceback(backend: LocalBackend, tmp_path: Path) -> None:
    source = _component(
        """
        def boom() -> str:
            raise ValueError("component failed on purpose")
        """
    )
    spec = StepSpec(
        step_id="boom",
        argv=lightweight_argv(source, "boom", _executor_input(tmp_path / "boom")),
        log_path=tmp_path / "boom.log",
        workdir=tmp_path / "boom",
    )
    result = backend.run(spec)
    assert result.exit_code == 1
    assert result.error == "the step exited with code 1"
    log = (tmp_path / "boom.log").read_text()
    assert "Traceback" in log
    assert "ValueError: component failed on purpose" in log


SLEEP_SOURCE = _component(
    """
    def sleeper(flag: str) -> str:
        import subprocess, time
        print("started", flush=False)
        subprocess.Popen(["sleep", "300"])
        while True:
            time.sleep(1)
    """
)


def test_lightweight_log_is_live_and_terminate_kills_the_group(backend: LocalBackend, tmp_path: Path) -> None:
    spec = StepSpec(
        step_id="sleeper",
        argv=lightweight_argv(SLEEP_SOURCE, "sleeper", _executor_input(tmp_path / "s", flag="x")),
        log_path=tmp_path / "sleeper.log",
        workdir=tmp_path / "s",
    )
    results: list[StepResult] = []
    started: list[StepStarted] = []
    thread = threading.Thread(target=lambda: results.append(backend.run(spec, on_started=started.append)))
    thread.start()
    try:
        # print() without flush still shows up at once: stdout is line-buffered.
        wait_until(lambda: "started\n" in read_text(tmp_path / "sleeper.log"), what="live log line")
        wait_until(lambda: len(live_group_members(started[0].pgid)) == 2, what="the sleep grandchild")
        assert not results
        backend.terminate("sleeper")
    finally:
        thread.join(60)
    assert results[0].canceled
    assert live_group_members(started[0].pgid) == []


def test_prepare_builds_the_env_and_starts_its_zygote_ahead(tmp_path: Path) -> None:
    envs = TaskEnvManager(tmp_path / "envs")
    backend = LocalBackend(envs=envs)
    try:
        spec, out = _add_numbers_spec(tmp_path, "prepared", 3, 4)
        env = backend.prepare(spec.argv)
        assert env.ready_marker.is_file()
        assert len(backend.zygote_pids()) == 1
        runs = envs.installer_runs
        result = backend.run(spec)
        assert result.succeeded
        assert not result.env_created
        assert envs.installer_runs == runs
        assert _output(out) == 7
    finally:
        backend.close()
    assert backend.zygote_pids() == []


def test_without_a_zygote_lightweight_steps_run_cold(envs: TaskEnvManager, tmp_path: Path) -> None:
    backend = LocalBackend(envs=envs, use_zygote=False)
    try:
        spec, out = _add_numbers_spec(tmp_path, "cold", 2, 3)
        result = backend.run(spec)
        assert result.succeeded, (tmp_path / "cold.log").read_text()
        assert result.mode == "subprocess"
        assert _output(out) == 5
    finally:
        backend.close()


def test_falls_back_when_the_zygote_cannot_start(
    envs: TaskEnvManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Zygote) -> None:
        raise ZygoteError("no zygote today")

    monkeypatch.setattr(Zygote, "start", refuse)
    backend = LocalBackend(envs=envs)
    try:
        spec, out = _add_numbers_spec(tmp_path, "fallback", 20, 22)
        result = backend.run(spec)
        assert result.succeeded
        assert result.mode == "subprocess"
        assert _output(out) == 42
    finally:
        backend.close()


OWNER_SCRIPT = """
import json, sys, threading, time
from pathlib import Path
from apps.backends import StepSpec
from apps.backends.local import LocalBackend, TaskEnvManager

cache, tmp, light_argv = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
backend = LocalBackend(envs=TaskEnvManager(cache))
lock = threading.Lock()

def report(kind):
    def on_started(info):
        with lock:
            print(json.dumps({"kind": kind, "pid": info.pid, "zygotes": backend.zygote_pids()}), flush=True)
    return on_started

def run(kind, argv):
    spec = StepSpec(step_id=kind, argv=argv, log_path=tmp / f"{kind}.log", workdir=tmp)
    backend.run(spec, on_started=report(kind))

threading.Thread(target=run, args=("container", ["sh", "-c", "sleep 300 & sleep 300"]), daemon=True).start()
threading.Thread(target=run, args=("light", light_argv), daemon=True).start()
time.sleep(600)
"""


@pytest.fixture
def owner(envs: TaskEnvManager, env_cache: Path, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    ei = _executor_input(tmp_path / "owned", flag="x")
    argv = lightweight_argv(SLEEP_SOURCE, "sleeper", ei)
    proc = subprocess.Popen(
        [sys.executable, "-c", OWNER_SCRIPT, str(env_cache), str(tmp_path), json.dumps(argv)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_zygotes_and_their_steps_die_with_their_owner(owner: subprocess.Popen[str]) -> None:
    assert owner.stdout is not None
    reports = [json.loads(owner.stdout.readline()) for _ in range(2)]
    steps = {r["kind"]: r["pid"] for r in reports}
    zygotes = set(reports[-1]["zygotes"])
    assert len(zygotes) == 2  # one per task environment (base, and kfp 2.14.6)
    for pid in steps.values():
        wait_until(lambda pid=pid: len(live_group_members(pid)) >= 2, what="each step and its child")

    owner.send_signal(signal.SIGKILL)  # the worker dies without any chance to clean up
    owner.wait()

    for pid in zygotes:
        wait_until(lambda pid=pid: not process_alive(pid), what=f"zygote {pid} to exit")
    for pid in steps.values():
        wait_until(lambda pid=pid: live_group_members(pid) == [], what=f"step group {pid} to die")


def test_idle_zygotes_beyond_the_limit_are_stopped(envs: TaskEnvManager, tmp_path: Path) -> None:
    backend = LocalBackend(envs=envs, max_zygotes=1)
    try:
        echo = backend.run(StepSpec(step_id="base", argv=["echo", "x"], log_path=tmp_path / "base.log"))
        assert echo.mode == "zygote"
        (first,) = backend.zygote_pids()
        spec, out = _add_numbers_spec(tmp_path, "other-env", 1, 1)
        assert backend.run(spec).succeeded
        assert _output(out) == 2
        (second,) = backend.zygote_pids()
        assert second != first
        wait_until(lambda: not process_alive(first), what="the evicted zygote to exit")
    finally:
        backend.close()


def test_large_executor_input_goes_through_the_zygote(backend: LocalBackend, tmp_path: Path) -> None:
    source = _component(
        """
        def size(text: str) -> int:
            return len(text)
        """
    )
    big = "x" * (8 * 1024 * 1024)
    spec = StepSpec(
        step_id="big",
        argv=lightweight_argv(source, "size", _executor_input(tmp_path / "big", text=big)),
        log_path=tmp_path / "big.log",
        workdir=tmp_path / "big",
    )
    result = backend.run(spec)
    assert result.succeeded
    assert result.mode == "zygote"
    assert _output(tmp_path / "big") == len(big)
