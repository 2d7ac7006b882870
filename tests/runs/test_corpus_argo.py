"""The differential test: every corpus pipeline that succeeds on the local executor also
runs on the argo executor (compiled to a Workflow, submitted with the real ``kubernetes``
client to the emulated cluster, executed by its controller, synced back by the
persistence agent), and must end the same: the run's state, every task's state and
every output parameter. Pipelines that cannot match are listed with the reason in
tests/runs/data/argo_differential_exceptions.yaml (at most 5)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from apps.backends.argo.emulator import Emulator
from apps.backends.local import LocalBackend, TaskEnvManager
from apps.backends.local.sandbox import SandboxConfig
from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.services import namespace_ensure
from apps.importers import import_pipeline
from apps.runs.models import Run
from apps.runs.services import argo_run_sync, run_advance, run_create
from tests.live import start_scheduler, start_worker
from tests.paths import KFP_VALID
from tests.runs import test_corpus as corpus

pytestmark = [pytest.mark.live, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EXCEPTIONS_PATH = Path(__file__).parent / "data" / "argo_differential_exceptions.yaml"
_LISTS: dict[str, dict[str, str]] = yaml.safe_load(EXCEPTIONS_PATH.read_text()) or {}
# Cannot match, with the reason (at most 5).
EXCEPTIONS: dict[str, str] = _LISTS.get("exceptions") or {}
# A step's output depends on a random draw or on where it runs: compared given the draws.
NONDETERMINISTIC: dict[str, str] = _LISTS.get("nondeterministic") or {}
NS = "canal-differential"
RUN_TIMEOUT = 900.0
AT_ONCE = 12
# Where argo runs keep artifacts: the emulated cluster's repository, by key.
ARGO_ROOT = "s3://canal-differential/artifacts"  # Workflows running at once on the emulated cluster (2 cores)


def _succeeding() -> list[str]:
    return [name for name, entry in corpus.TABLE.items() if entry["expect"] == "SUCCEEDED"]


def _submit(name: str, work_root: Path, **kwargs: Any) -> Any:
    path = KFP_VALID / name
    imported = import_pipeline(path.read_bytes(), path.name)
    work = work_root / name.replace("/", "__")
    work.mkdir(mode=0o777, parents=True, exist_ok=True)
    for directory in (work_root, work):
        directory.chmod(0o777)
    return run_create(
        namespace=namespace_ensure(actor=OPERATOR),
        actor=OPERATOR,
        display_name=name,
        pipeline_spec=imported.pipeline_spec,
        platform_spec=imported.platform_spec,
        parameters=corpus._params(corpus.TABLE[name], work),
        **kwargs,
    )


def _local_outcomes(names: list[str], shared: Path, log_dir: Path) -> dict[str, dict[str, Any]]:
    """The local side, when test_corpus.py did not run in this session."""
    if corpus.LOCAL_OUTCOMES:
        return dict(corpus.LOCAL_OUTCOMES)
    env = {"CANAL_TASK_LEASE_SECONDS": "60"}
    scheduler, worker = start_scheduler(log_dir, **env), start_worker(log_dir, concurrency=16, **env)
    try:
        runs = {name: _submit(name, shared / "local").pk for name in names}
        deadline = time.monotonic() + RUN_TIMEOUT
        while Run.objects.filter(pk__in=runs.values()).exclude(state__in=RuntimeState.terminal()).exists():
            assert time.monotonic() < deadline, "local corpus runs did not finish in time"
            time.sleep(0.5)
        outcomes = {name: corpus.outcome_of(Run.objects.get(pk=run_id)) for name, run_id in runs.items()}
        return {name: o for name, o in outcomes.items() if o["state"] == RuntimeState.SUCCEEDED}
    finally:
        worker.stop()
        scheduler.stop()


@pytest.fixture
def cluster(tmp_path: Path, settings: Any) -> Iterator[Emulator]:
    envs = TaskEnvManager(settings.CANAL_TASK_ENV_DIR)  # the workers' cache: built once per session
    shared = tuple(os.environ["CANAL_STEP_SHARED_PATHS"].split(","))
    backend = LocalBackend(envs=envs, terminate_grace=1.0, sandbox=SandboxConfig(shared=shared))
    emulator = Emulator(backend=backend, work_dir=tmp_path / "cluster", resync=0.2).start()
    settings.CANAL_KUBECONFIG = str(emulator.write_kubeconfig(tmp_path / "kubeconfig", "default"))
    settings.CANAL_ARGO_NAMESPACE = NS
    try:
        yield emulator
    finally:
        emulator.stop()
        backend.close()


def _given_the_draws(local: dict[str, Any], argo: dict[str, Any]) -> tuple[list[str], int]:
    """Differences of a nondeterministic pipeline, given each side's draws: a task is compared
    only if it and all its parents got the same inputs on both sides; a step that got the
    same inputs may produce a different output (that is the draw), nothing else may differ.
    Returns the differences and how many tasks were compared."""
    from apps.engine.keys import parent_key

    out: list[str] = []
    if local["state"] != argo["state"]:
        out.append(f"run {local['state']} locally, {argo['state']} on argo: {argo['error'][:300]}")
    comparable: dict[str, bool] = {}

    def same_inputs(key: str) -> bool:
        if key in comparable:
            return comparable[key]
        parent = parent_key(key)
        ok = parent is None or same_inputs(parent)
        mine, theirs = local["tasks"].get(key), argo["tasks"].get(key)
        if ok and mine is not None and theirs is not None and theirs["inputs"]:
            ok = mine["inputs"] == theirs["inputs"]
        comparable[key] = ok
        return ok

    compared = 0
    for key in sorted(set(local["tasks"]) | set(argo["tasks"])):
        parent = parent_key(key)
        if parent is not None and not same_inputs(parent):
            continue  # inside a group whose inputs came from a different draw
        mine, theirs = local["tasks"].get(key), argo["tasks"].get(key)
        if mine is None or theirs is None:
            out.append(f"task {key}: {'only on argo' if mine is None else 'missing on argo'}")
            continue
        if not same_inputs(key):
            continue  # its inputs came from a different draw
        compared += 1
        if mine["state"] != theirs["state"]:
            out.append(f"task {key}: {mine['state']} locally, {theirs['state']} on argo (same inputs)")
    return out, compared


def _differences(local: dict[str, Any], argo: dict[str, Any]) -> list[str]:
    out = []
    if local["state"] != argo["state"]:
        out.append(f"run {local['state']} locally, {argo['state']} on argo: {argo['error'][:300]}")
    for key in sorted(set(local["tasks"]) | set(argo["tasks"])):
        mine, theirs = local["tasks"].get(key), argo["tasks"].get(key)
        if mine is None or theirs is None:
            out.append(f"task {key}: {'only on argo' if mine is None else 'missing on argo'}")
            continue
        if mine["state"] != theirs["state"]:
            out.append(f"task {key}: {mine['state']} locally, {theirs['state']} on argo")
        if mine["parameters"] != theirs["parameters"]:
            out.append(
                f"task {key}: outputs {json.dumps(mine['parameters'])[:200]} locally, "
                f"{json.dumps(theirs['parameters'])[:200]} on argo"
            )
    return out


def test_exceptions_are_few_and_explained() -> None:
    assert len(EXCEPTIONS) <= 5
    assert not set(EXCEPTIONS) & set(NONDETERMINISTIC)
    for name, reason in {**EXCEPTIONS, **NONDETERMINISTIC}.items():
        assert corpus.TABLE[name]["expect"] == "SUCCEEDED", name
        assert len(reason) > 30, f"{name}: say why"


def test_every_locally_succeeding_pipeline_ends_the_same_on_argo(
    cluster: Emulator, step_shared: Path, live_log_dir: Path, capsys: Any, settings: Any
) -> None:
    settings.CANAL_IMPORT_ALLOWED_PREFIXES = corpus.KFP_SAMPLE_IMPORT_PREFIXES.split(",")
    settings.CANAL_PIPELINE_ROOTS = [*settings.CANAL_PIPELINE_ROOTS, ARGO_ROOT]
    local = _local_outcomes(_succeeding(), step_shared, live_log_dir)
    assert len(local) >= 100, f"only {len(local)} corpus pipelines succeeded locally"
    pending = sorted(local)
    active: dict[str, Any] = {}
    argo: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + RUN_TIMEOUT
    while pending or active:
        while pending and len(active) < AT_ONCE:
            name = pending.pop(0)
            run = _submit(name, step_shared / "argo", executor="argo", pipeline_root=ARGO_ROOT)
            run_advance(run_id=run.pk)  # submits the Workflow
            active[name] = run.pk
        for name, run_id in list(active.items()):
            argo_run_sync(run_id=run_id)  # the persistence agent's pass
            run = Run.objects.get(pk=run_id)
            if run.state in RuntimeState.terminal():
                argo[name] = corpus.outcome_of(run)
                del active[name]
        assert time.monotonic() < deadline, f"argo runs did not finish in time: {sorted(active)}"
        time.sleep(0.2)
    table, mismatched = [], {}
    given_draws: dict[str, int] = {}
    for name in sorted(local):
        if name in NONDETERMINISTIC:
            diffs, given_draws[name] = _given_the_draws(local[name], argo[name])
        else:
            diffs = _differences(local[name], argo[name])
        if diffs:
            mismatched[name] = diffs
        table.append(
            f"{name:70} {local[name]['state']:10} {argo[name]['state']:10} "
            + (
                "DIFFERENT"
                if diffs
                else "same"
                if name not in given_draws
                else f"same given the draws ({given_draws[name]} tasks compared)"
            )
        )
    with capsys.disabled():
        print(
            f"\nargo differential: {len(local)} pipelines that succeed locally, run on the emulated cluster"
        )
        print(f"{'pipeline':70} {'local':10} {'argo':10}")
        print("\n".join(table))
        print(
            f"{len(local) - len(mismatched)} match; {len(mismatched)} differ "
            f"({len(EXCEPTIONS)} listed as exceptions)"
        )
    unexplained = {n: d for n, d in mismatched.items() if n not in EXCEPTIONS}
    assert not unexplained, "\n".join(f"{n}:\n  " + "\n  ".join(d[:8]) for n, d in unexplained.items())
    stale = [n for n in EXCEPTIONS if n in local and n not in mismatched]
    assert not stale, f"listed as exceptions but they match now: {stale}"
    # A pipeline listed as nondeterministic must really be: not everything matched exactly.
    steady = [n for n in NONDETERMINISTIC if n in local and not _differences(local[n], argo[n])]
    assert len(steady) < len(NONDETERMINISTIC) or not NONDETERMINISTIC, f"never differ: {steady}"
