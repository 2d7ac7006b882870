"""Container components run as host processes: argv, logs, exit codes, termination."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path

import pytest

from apps.backends import StepResult, StepSpec, StepStarted, get_backend
from apps.backends.local import LocalBackend, TaskEnvManager
from apps.storage import LogStore
from tests.backends.conftest import live_group_members, process_alive, read_text, wait_until

HOSTILE = "$(id); rm -rf / #"


def _spec(tmp_path: Path, step_id: str, argv: list[str], **kwargs: object) -> StepSpec:
    return StepSpec(
        step_id=step_id,
        argv=argv,
        image=str(kwargs.pop("image", "alpine:3.20")),
        log_path=tmp_path / f"{step_id}.log",
        workdir=tmp_path / "work",
        **kwargs,  # type: ignore[arg-type]
    )


def test_registry_gives_a_local_backend(envs: TaskEnvManager) -> None:
    backend = get_backend("local", envs=envs)
    try:
        assert isinstance(backend, LocalBackend)
        assert backend.name == "local"
    finally:
        backend.close()


def test_echo_writes_to_the_log(backend: LocalBackend, tmp_path: Path) -> None:
    result = backend.run(_spec(tmp_path, "echo", ["echo", "hello", "world"]))
    assert result.succeeded
    assert result.exit_code == 0
    assert result.error is None
    assert result.mode == "zygote"
    assert result.pid is not None
    assert result.finished_at >= result.started_at
    assert (tmp_path / "echo.log").read_text() == "hello world\n"


def test_arguments_arrive_literally(backend: LocalBackend, tmp_path: Path) -> None:
    args = [HOSTILE, "a b", "'\"quoted\"'", "*", "$HOME", "`id`", "line\nbreak"]
    # The command itself is `sh -c`, as in the corpus; the parameters are argv
    # elements and reach the script as "$@", never as shell text.
    script = 'for a in "$@"; do printf "[%s]\\n" "$a"; done'
    result = backend.run(_spec(tmp_path, "literal", ["sh", "-c", script, "sh", *args]))
    assert result.succeeded
    expected = "".join(f"[{a}]\n" for a in args)
    assert (tmp_path / "literal.log").read_text() == expected

    echo = backend.run(_spec(tmp_path, "echo-hostile", ["echo", HOSTILE]))
    assert echo.succeeded
    assert (tmp_path / "echo-hostile.log").read_text() == HOSTILE + "\n"


def test_steps_run_in_their_working_directory(backend: LocalBackend, tmp_path: Path) -> None:
    result = backend.run(_spec(tmp_path, "pwd", ["sh", "-c", "pwd; echo x > made-here.txt"]))
    assert result.succeeded
    work = tmp_path / "work"
    assert (tmp_path / "pwd.log").read_text().strip() == str(work)
    assert (work / "made-here.txt").is_file()


def test_missing_executable_says_the_host_runs_it(backend: LocalBackend, tmp_path: Path) -> None:
    result = backend.run(_spec(tmp_path, "missing", ["my_program", "--x"], image="gcr.io/acme/tool:1.2"))
    assert not result.succeeded
    assert result.exit_code is None
    assert result.error is not None
    assert "my_program" in result.error
    assert "gcr.io/acme/tool:1.2" in result.error
    assert "on the host" in result.error
    assert "not found" in result.error
    assert "my_program" in (tmp_path / "missing.log").read_text()


def test_non_zero_exit(backend: LocalBackend, tmp_path: Path) -> None:
    result = backend.run(_spec(tmp_path, "fail", ["sh", "-c", "echo oops >&2; exit 3"]))
    assert result.exit_code == 3
    assert not result.succeeded
    assert result.error == "the step exited with code 3"
    assert not result.canceled
    assert not result.timed_out
    assert (tmp_path / "fail.log").read_text() == "oops\n"


def test_killed_by_a_signal(backend: LocalBackend, tmp_path: Path) -> None:
    result = backend.run(_spec(tmp_path, "sig", ["sh", "-c", "kill -KILL $$"]))
    assert result.exit_code == -signal.SIGKILL
    assert result.error == "the step was killed by SIGKILL"


def test_log_is_readable_while_the_step_runs(backend: LocalBackend, tmp_path: Path) -> None:
    logs = LogStore(tmp_path)
    log_path = logs.path_for("run-1", "task-1", 0)
    flag = tmp_path / "go"
    script = f'echo first; while [ ! -e "{flag}" ]; do sleep 0.01; done; echo second'
    spec = StepSpec(step_id="tail", argv=["sh", "-c", script], log_path=log_path, workdir=tmp_path)
    results: list[StepResult] = []
    thread = threading.Thread(target=lambda: results.append(backend.run(spec)))
    thread.start()
    try:
        wait_until(lambda: logs.read(log_path).data == b"first\n", what="first line in the log")
        chunk = logs.read(log_path)
        assert not results  # still running: we read the log live
    finally:
        flag.touch()
        thread.join(60)
    assert results[0].succeeded
    rest = logs.read(log_path, chunk.next_offset)
    assert rest.data == b"second\n"


_Started = tuple[threading.Thread, list[StepResult], list[StepStarted]]


def _start_in_thread(backend: LocalBackend, spec: StepSpec, **kwargs: object) -> _Started:
    results: list[StepResult] = []
    started: list[StepStarted] = []
    thread = threading.Thread(
        target=lambda: results.append(backend.run(spec, on_started=started.append, **kwargs)),  # type: ignore[arg-type]
    )
    thread.start()
    return thread, results, started


def test_terminate_kills_the_whole_process_group(backend: LocalBackend, tmp_path: Path) -> None:
    # A shell with two background grandchildren, one of which ignores SIGTERM.
    script = "sleep 300 & sh -c 'trap \"\" TERM; sleep 300' & echo ready; wait"
    spec = _spec(tmp_path, "term", ["sh", "-c", script])
    thread, results, started = _start_in_thread(backend, spec)
    try:
        wait_until(lambda: "ready" in read_text(tmp_path / "term.log"))
        pgid = started[0].pgid
        wait_until(lambda: len(live_group_members(pgid)) >= 3, what="grandchildren")
        assert backend.running_steps() == ["term"]
        assert backend.terminate("term")
    finally:
        thread.join(60)
    result = results[0]
    assert result.canceled
    assert not result.succeeded
    assert result.error is not None
    assert "canceled" in result.error
    assert live_group_members(pgid) == []
    assert not backend.terminate("term")


def test_cancel_event_and_sigkill_after_grace(backend: LocalBackend, tmp_path: Path) -> None:
    cancel = threading.Event()
    spec = _spec(tmp_path, "stubborn", ["sh", "-c", "trap '' TERM; echo ready; sleep 300"])
    thread, results, started = _start_in_thread(backend, spec, cancel=cancel)
    try:
        wait_until(lambda: "ready" in read_text(tmp_path / "stubborn.log"))
        cancel.set()
    finally:
        thread.join(60)
    assert results[0].canceled
    assert results[0].exit_code == -signal.SIGKILL  # SIGTERM was ignored; SIGKILL after the grace period
    assert live_group_members(started[0].pgid) == []


def test_timeout(backend: LocalBackend, tmp_path: Path) -> None:
    started: list[StepStarted] = []
    result = backend.run(
        _spec(tmp_path, "slow", ["sh", "-c", "sleep 300 & sleep 300"], timeout=0.5), on_started=started.append
    )
    assert result.timed_out
    assert not result.canceled
    assert not result.succeeded
    assert result.error is not None
    assert "timed out after 0.5s" in result.error
    assert live_group_members(started[0].pgid) == []


def test_heartbeat_is_called_and_can_stop_the_step(backend: LocalBackend, tmp_path: Path) -> None:
    beats: list[int] = []
    flag = tmp_path / "work" / "done"  # inside the step's own directory: all a sandboxed step can see

    def beat() -> None:
        beats.append(1)
        if len(beats) == 3:
            flag.touch()

    script = f'while [ ! -e "{flag}" ]; do sleep 0.01; done'
    ok = backend.run(_spec(tmp_path, "hb", ["sh", "-c", script]), heartbeat=beat, heartbeat_interval=0.02)
    assert ok.succeeded
    assert len(beats) >= 3

    def lost() -> None:
        raise RuntimeError("lease lost")

    asked: list[StepStarted] = []
    spec = _spec(tmp_path, "hb-cancel", ["sleep", "300"])
    stop = backend.run(spec, heartbeat=lambda: False, heartbeat_interval=0.02, on_started=asked.append)
    assert stop.canceled
    assert stop.error == "canceled; the step's process group was terminated"
    assert live_group_members(asked[0].pgid) == []

    started: list[StepStarted] = []
    stopped = backend.run(
        _spec(tmp_path, "hb-lost", ["sleep", "300"]),
        heartbeat=lost,
        heartbeat_interval=0.02,
        on_started=started.append,
    )
    assert stopped.canceled
    assert stopped.error is not None
    assert "heartbeat failed" in stopped.error
    assert live_group_members(started[0].pgid) == []


def test_concurrent_steps_share_one_zygote(backend: LocalBackend, tmp_path: Path) -> None:
    count = 6
    barrier = tmp_path / "work" / "barrier"
    barrier.mkdir(parents=True)
    # Each step announces itself and waits until all have: they can only all
    # succeed if they ran at the same time.
    script = (
        'touch "$0/$1"; n=0; while [ "$(ls "$0" | wc -l)" -lt "$2" ]; do '
        'sleep 0.01; n=$((n+1)); [ "$n" -gt 6000 ] && exit 9; done; echo "$PPID"'
    )
    results: dict[int, StepResult] = {}

    def run(i: int) -> None:
        spec = _spec(tmp_path, f"c{i}", ["sh", "-c", script, str(barrier), str(i), str(count)])
        results[i] = backend.run(spec)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(results) == list(range(count))
    assert all(r.succeeded for r in results.values()), [r.error for r in results.values()]
    assert {r.mode for r in results.values()} == {"zygote"}
    parents = {(tmp_path / f"c{i}.log").read_text().strip() for i in range(count)}
    assert len(parents) == 1  # forked by the same zygote
    # (a sandboxed step sees its zygote's pid in the sandbox's own pid namespace)
    assert int(parents.pop()) in backend.zygote_pids(inner=True)


def test_environment_is_sanitised(
    backend: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CANAL_SECRET_KEY", "worker-secret-0451")
    monkeypatch.setenv("DATABASE_URL", "mysql://root:hunter2@db/canal")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-0451")
    caplog.set_level(logging.DEBUG)
    spec = _spec(tmp_path, "env", ["sh", "-c", "env; command -v python3"], env={"KFP_TOKEN": "step-secret-7"})
    assert "step-secret-7" not in repr(spec)
    result = backend.run(spec)
    assert result.succeeded
    text = (tmp_path / "env.log").read_text()
    assert "KFP_TOKEN=step-secret-7" in text  # the spec's own variables reach the step
    for secret in ("worker-secret-0451", "hunter2", "aws-secret-0451"):
        assert secret not in text
    variables = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    caller_venv = os.path.realpath(sys.prefix)
    assert all(not os.path.realpath(p).startswith(caller_venv) for p in variables["PATH"].split(":"))
    assert variables["VIRTUAL_ENV"] == result.task_env
    assert text.splitlines()[-1] == f"{result.task_env}/bin/python3"
    assert "step-secret-7" not in caplog.text
    assert "step-secret-7" not in repr(result)


def test_plain_subprocess_fallback(envs: TaskEnvManager, tmp_path: Path) -> None:
    backend = LocalBackend(envs=envs, use_zygote=False, terminate_grace=1.0)
    try:
        result = backend.run(_spec(tmp_path, "plain", ["sh", "-c", 'printf "%s" "$1"', "sh", HOSTILE]))
        assert result.succeeded
        assert result.mode == "subprocess"
        assert (tmp_path / "plain.log").read_text() == HOSTILE

        cancel = threading.Event()
        spec = _spec(tmp_path, "plain-term", ["sh", "-c", "echo ready; sleep 300 & sleep 300"])
        thread, results, started = _start_in_thread(backend, spec, cancel=cancel)
        try:
            wait_until(lambda: "ready" in read_text(tmp_path / "plain-term.log"))
            cancel.set()
        finally:
            thread.join(60)
        assert results[0].canceled
        assert results[0].mode == "subprocess"
        assert live_group_members(started[0].pgid) == []
    finally:
        backend.close()


def test_a_dead_zygote_fails_the_step_clearly_and_is_replaced(envs: TaskEnvManager, tmp_path: Path) -> None:
    backend = LocalBackend(envs=envs, terminate_grace=1.0)
    try:
        spec = _spec(tmp_path, "victim", ["sh", "-c", "sleep 300 & echo ready; wait"])
        thread, results, started = _start_in_thread(backend, spec)
        wait_until(lambda: "ready" in read_text(tmp_path / "victim.log"))
        wait_until(lambda: len(live_group_members(started[0].pgid)) == 2, what="the grandchild")
        (zygote_pid,) = backend.zygote_pids()
        os.kill(zygote_pid, signal.SIGKILL)
        thread.join(60)
        assert results[0].error is not None
        assert "zygote" in results[0].error
        # The step's process had PDEATHSIG set and died with its zygote; the
        # backend killed what was left of its group.
        assert not process_alive(started[0].pid)
        assert live_group_members(started[0].pgid) == []

        again = backend.run(_spec(tmp_path, "after", ["echo", "ok"]))
        assert again.succeeded
        assert again.mode == "zygote"
        assert backend.zygote_pids() != [zygote_pid]
    finally:
        backend.close()
