"""Task environments: keys, one build across concurrent builders, failures, interruption."""

from __future__ import annotations

import fcntl
import json
import os
import threading
from pathlib import Path

import pytest

from apps.backends import StepResult, StepSpec
from apps.backends.local import EnvSpec, LocalBackend, PipInstall, TaskEnvManager
from apps.backends.local.process import Watch
from apps.backends.local.taskenv import EnvBuildError, EnvInterrupted
from tests.backends.conftest import corpus_executor, read_text, wait_until
from tests.bytecode import without_bytecode

KFP = PipInstall(requirements=("kfp==2.14.6",), no_deps=True)


def test_keys_depend_on_python_packages_and_index_options(tmp_path: Path) -> None:
    envs = TaskEnvManager(tmp_path)
    base = envs.key(EnvSpec((KFP,)))
    assert base.startswith(envs.python_tag() + "-")
    reordered = EnvSpec((PipInstall(requirements=("b", "a")),))
    assert envs.key(reordered) == envs.key(EnvSpec((PipInstall(requirements=("a", "b")),)))
    assert envs.key(EnvSpec((PipInstall(("kfp==2.14.3",), no_deps=True),))) != base
    assert (
        envs.key(EnvSpec((PipInstall(("kfp==2.14.6",), no_deps=True, index_url="https://x/simple"),))) != base
    )
    assert envs.key(EnvSpec()) != base


def test_concurrent_builders_build_once(tmp_path: Path) -> None:
    # Two managers stand for two worker processes: they only share the
    # directory, and flock() conflicts between separately opened files.
    managers = [TaskEnvManager(tmp_path), TaskEnvManager(tmp_path)]
    spec = EnvSpec((KFP,))
    built: list[bool] = []
    errors: list[BaseException] = []

    def build(manager: TaskEnvManager) -> None:
        try:
            built.append(manager.ensure(spec)[1])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=build, args=(m,)) for m in managers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors
    assert sorted(built) == [False, True]
    runs = [m.installer_runs for m in managers]
    assert sorted(runs)[0] == 0  # the second builder waited and installed nothing
    env = managers[0].lookup(spec)
    assert env is not None
    assert env.python.exists()
    marker = json.loads(env.ready_marker.read_text())
    assert marker["installs"][0]["requirements"] == ["kfp==2.14.6"]
    assert (env.path / "canal-install.log").is_file()


def test_a_failed_build_leaves_nothing_and_the_step_says_why(envs: TaskEnvManager, tmp_path: Path) -> None:
    command = list(corpus_executor("critical/add_numbers.yaml")["command"])
    # An index that does not exist: fails fast and offline.
    command[2] = command[2].replace(
        "--no-warn-script-location 'kfp==2.14.6'",
        f"--no-warn-script-location --index-url file://{tmp_path}/no-index 'canal-no-such-package==0.0.1'",
    )
    backend = LocalBackend(envs=envs)
    try:
        spec = StepSpec(
            step_id="bad-env", argv=[*command, "--function_to_execute", "f"], log_path=tmp_path / "l"
        )
        plan = backend.plan(spec.argv)
        assert plan.lightweight is not None
        result = backend.run(spec)
    finally:
        backend.close()
    assert result.exit_code is None
    assert result.error is not None
    assert "building the task environment failed" in result.error
    assert "canal-no-such-package" in read_text(tmp_path / "l")
    assert envs.lookup(plan.env_spec) is None
    assert not (envs.cache_dir / envs.key(plan.env_spec)).exists()


def test_waiting_for_another_builder_can_be_canceled(tmp_path: Path) -> None:
    envs = TaskEnvManager(tmp_path)
    spec = EnvSpec((PipInstall(("kfp==2.9.0",), no_deps=True),))
    lock = os.open(tmp_path / f"{envs.key(spec)}.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)  # "another process" is building it
    try:
        cancel = threading.Event()
        cancel.set()
        with pytest.raises(EnvInterrupted) as info:
            envs.ensure(spec, watch=Watch(cancel))
        assert info.value.reason == "canceled"
        with pytest.raises(EnvInterrupted) as info:
            envs.ensure(spec, watch=Watch(threading.Event(), timeout=0.05))
        assert info.value.reason == "timed_out"
    finally:
        os.close(lock)
    assert envs.installer_runs == 0


def test_a_step_canceled_while_its_env_is_being_built_elsewhere(tmp_path: Path) -> None:
    envs = TaskEnvManager(tmp_path)
    backend = LocalBackend(envs=envs)
    key = envs.key(EnvSpec())
    lock = os.open(tmp_path / f"{key}.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)
    results: list[StepResult] = []
    try:
        spec = StepSpec(step_id="waits", argv=["echo", "hi"], log_path=tmp_path / "waits.log")
        thread = threading.Thread(target=lambda: results.append(backend.run(spec)))
        thread.start()
        wait_until(lambda: backend.running_steps() == ["waits"])
        backend.terminate("waits")
        thread.join(60)
    finally:
        os.close(lock)
        backend.close()
    assert results[0].canceled
    assert results[0].exit_code is None
    assert envs.installer_runs == 0


def test_pip_installer_builds_an_equivalent_env(tmp_path: Path) -> None:
    envs = TaskEnvManager(tmp_path, installer="pip")
    assert envs.installer == "pip"
    env, built = envs.ensure(EnvSpec((KFP,)))
    assert built
    assert (env.bin_dir / "pip").exists()  # steps that run pip themselves find the env's own
    assert json.loads(env.ready_marker.read_text())["installer"] == "pip"
    assert list(env.path.glob("lib/python*/site-packages/kfp/dsl/executor_main.py"))


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_the_env_holds_its_modules_bytecode(tmp_path: Path, installer: str) -> None:
    """A step sees its environment read-only under a throw-away overlay: every module it
    imports must already be compiled there, and valid for its source as the import system
    judges it, or each step compiles it again (about 1.5 s of CPU for scikit-learn's imports)."""
    envs = TaskEnvManager(tmp_path, installer=installer)
    env, _built = envs.ensure(EnvSpec((KFP,)))
    (site,) = env.path.glob("lib/python*/site-packages")
    sources = sorted((site / "kfp").rglob("*.py"))
    assert len(sources) > 50
    stale = [str(source.relative_to(site)) for source in without_bytecode(sources)]
    assert not stale, f"{installer}: {len(stale)} of {len(sources)} modules lack valid bytecode: {stale[:5]}"


def test_installer_choice_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        TaskEnvManager(tmp_path, installer="conda")


def test_build_errors_carry_the_installer_output(envs: TaskEnvManager, tmp_path: Path) -> None:
    spec = EnvSpec((PipInstall(("canal-no-such-package",), index_url=f"file://{tmp_path}/none"),))
    with pytest.raises(EnvBuildError) as info:
        envs.ensure(spec)
    assert "canal-no-such-package" in info.value.log
    assert envs.lookup(spec) is None
