"""Every pipeline in the shared KFP corpus, run end to end by a real worker.

The expectations (and the reason for every failure, termination or skip) are in
tests/runs/data/corpus_expectations.yaml. All runs are submitted at once so the
worker runs them concurrently; then each run's final state is checked.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from apps.backends.argo.emulator import Emulator
from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.services import namespace_ensure
from apps.importers import import_pipeline
from apps.runs.models import Run, Task
from apps.runs.services import argo_run_sync, run_advance, run_create, run_terminate
from tests.live import start_scheduler, start_worker, wait_until
from tests.paths import KFP_VALID
from tests.runs.cluster import emulated_cluster, pod_backend

pytestmark = [pytest.mark.live, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TABLE_PATH = Path(__file__).parent / "data" / "corpus_expectations.yaml"
TABLE: dict[str, dict[str, Any]] = yaml.safe_load(TABLE_PATH.read_text())
RUN_TIMEOUT = 900.0
GENERIC_ERROR = re.compile(r"(the step )?exited with code \d+")
# KFP's samples import from these external places. An importer may reference only its own
# namespace's runs unless an administrator allows a prefix, as one running KFP's samples
# would; with them allowed the samples behave as before (each fails naming the scheme
# Canal has no store for, as the expectations say).
KFP_SAMPLE_IMPORT_PREFIXES = "gs://ml-pipeline-playground/,oci://registry.domain.local/"


# What the local executor did with each pipeline that succeeded, for the Argo differential
# test at the end of this file, which reruns the local side when this is empty.
LOCAL_OUTCOMES: dict[str, dict[str, Any]] = {}


def outcome_of(run: Run) -> dict[str, Any]:
    """A run's final state, and every step's state and output parameters, by task key."""
    tasks = {}
    for task in Task.objects.filter(run=run).order_by("key"):
        params = (task.outputs or {}).get("parameters") or {}
        inputs = (task.inputs or {}).get("parameters") or {}
        tasks[task.key] = {"kind": task.kind, "state": task.state, "parameters": params, "inputs": inputs}
    return {"state": run.state, "error": run.error, "tasks": tasks}


def _corpus_files() -> list[str]:
    return sorted(
        str(p.relative_to(KFP_VALID)) for p in KFP_VALID.rglob("*") if p.suffix in (".yaml", ".zip")
    )


def test_table_lists_every_corpus_file_with_a_reason() -> None:
    assert sorted(TABLE) == _corpus_files()
    for name, entry in TABLE.items():
        assert entry["expect"] in {"SUCCEEDED", "FAILED", "CANCELED", "skip"}, name
        if entry["expect"] != "SUCCEEDED":
            assert len(entry.get("reason", "")) > 20, f"{name}: say why"
        if entry["expect"] == "FAILED":
            # The failure's own text, not just an exit code any unrelated failure would give.
            error = entry.get("error", "")
            assert error and not GENERIC_ERROR.fullmatch(error), f"{name}: name the error's own text"


def _params(entry: dict[str, Any], tmp: Path) -> dict[str, Any]:
    text = json.dumps(entry.get("params", {})).replace("{tmp}", str(tmp))
    return json.loads(text)


def _evidence(run: Run) -> str:
    """Everything a failure may be explained by: run error, step errors, step logs."""
    parts = [run.error]
    for task in Task.objects.filter(run=run, state=RuntimeState.FAILED):
        parts.append(task.error)
        if task.log_path and Path(task.log_path).exists():
            parts.append(Path(task.log_path).read_text(errors="replace")[-20000:])
    return "\n".join(parts)


def test_every_corpus_pipeline_reaches_its_expected_state(
    step_shared, live_log_dir, capsys, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.CANAL_IMPORT_ALLOWED_PREFIXES = KFP_SAMPLE_IMPORT_PREFIXES.split(",")
    # A long lease: 16 concurrent steps on SQLite make writers queue for the write lock,
    # and on a loaded 2-core machine a heartbeat can wait a while for it.
    leases = {"CANAL_TASK_LEASE_SECONDS": "60", "CANAL_IMPORT_ALLOWED_PREFIXES": KFP_SAMPLE_IMPORT_PREFIXES}
    scheduler = start_scheduler(live_log_dir, **leases)
    worker = start_worker(live_log_dir, concurrency=16, **leases)
    namespace = namespace_ensure(actor=OPERATOR)
    runs: dict[str, Any] = {}
    try:
        for name, entry in TABLE.items():
            if entry["expect"] == "skip":
                continue
            path = KFP_VALID / name
            imported = import_pipeline(path.read_bytes(), path.name)
            # Paths given as parameters (a retry counter) are shared with the steps.
            work = step_shared / name.replace("/", "__")
            work.mkdir(mode=0o777)
            work.chmod(0o777)
            runs[name] = run_create(
                namespace=namespace,
                actor=OPERATOR,
                display_name=name,
                pipeline_spec=imported.pipeline_spec,
                platform_spec=imported.platform_spec,
                parameters=_params(entry, work),
            ).pk
        for name, run_id in runs.items():
            if TABLE[name]["expect"] == "CANCELED":
                wait_until(
                    lambda run_id=run_id: Task.objects.filter(
                        run_id=run_id, kind="CONTAINER", state=RuntimeState.RUNNING
                    ).exists(),
                    timeout=RUN_TIMEOUT,
                    what=f"{name} to start a step",
                )
                run_terminate(actor=OPERATOR, run=Run.objects.get(pk=run_id))

        deadline = time.monotonic() + RUN_TIMEOUT
        while Run.objects.filter(pk__in=runs.values()).exclude(state__in=RuntimeState.terminal()).exists():
            assert time.monotonic() < deadline, "corpus runs did not finish in time"
            time.sleep(0.5)

        problems = []
        outcome: Counter[str] = Counter()
        for name, run_id in runs.items():
            entry = TABLE[name]
            run = Run.objects.get(pk=run_id)
            outcome[run.state] += 1
            if run.state != entry["expect"]:
                problems.append(
                    f"{name}: expected {entry['expect']}, got {run.state}: {_evidence(run)[-1500:]}"
                )
                continue
            if entry.get("error") and entry["error"] not in _evidence(run):
                problems.append(
                    f"{name}: ended {run.state} but not because of {entry['error']!r}: {run.error}"
                )
            for key, state in (entry.get("tasks") or {}).items():
                got = Task.objects.filter(run=run, key=key).values_list("state", flat=True).first()
                if got != state:
                    problems.append(f"{name}: task {key} expected {state}, got {got}")
        for name, run_id in runs.items():
            run = Run.objects.get(pk=run_id)
            if run.state == RuntimeState.SUCCEEDED and TABLE[name]["expect"] == "SUCCEEDED":
                LOCAL_OUTCOMES[name] = outcome_of(run)
        skipped = sum(1 for e in TABLE.values() if e["expect"] == "skip")
        with capsys.disabled():
            print(
                f"\ncorpus: {len(runs)} of {len(TABLE)} valid KFP files ran ({len(runs) / len(TABLE):.0%}), "
                f"{skipped} skipped with a written reason; outcomes: {dict(outcome)}"
            )
        assert not problems, "\n".join(problems)
    finally:
        worker.stop()
        scheduler.stop()


# --- The Argo differential -------------------------------------------------------------------
# Every pipeline that succeeded above also runs on the argo executor (compiled to a Workflow,
# submitted with the real ``kubernetes`` client to the emulated cluster, executed by its
# controller, synced back by the persistence agent), and must end the same: the run's state,
# every task's state and every output parameter. Pipelines that cannot match are listed with
# the reason in tests/runs/data/argo_differential_exceptions.yaml (at most 5).
#
# It lives in this file so that pytest-xdist's ``--dist loadfile`` runs it on the worker that
# has just run the corpus locally, and compares against those outcomes (LOCAL_OUTCOMES). In
# a file of its own it could land on the other worker, which ran the local corpus again.

EXCEPTIONS_PATH = Path(__file__).parent / "data" / "argo_differential_exceptions.yaml"
_LISTS: dict[str, dict[str, str]] = yaml.safe_load(EXCEPTIONS_PATH.read_text()) or {}
# Cannot match, with the reason (at most 5).
EXCEPTIONS: dict[str, str] = _LISTS.get("exceptions") or {}
# A step's output depends on a random draw or on where it runs: compared given the draws.
NONDETERMINISTIC: dict[str, str] = _LISTS.get("nondeterministic") or {}
ARGO_NS = "canal-differential"
AT_ONCE = 12  # Workflows running at once on the emulated cluster (2 cores)
# Where argo runs keep artifacts: the emulated cluster's repository, by key.
ARGO_ROOT = "s3://canal-differential/artifacts"


def _succeeding() -> list[str]:
    return [name for name, entry in TABLE.items() if entry["expect"] == "SUCCEEDED"]


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
        parameters=_params(TABLE[name], work),
        **kwargs,
    )


def _local_outcomes(names: list[str], shared: Path, log_dir: Path) -> dict[str, dict[str, Any]]:
    """The local side: the outcomes of the test above when it ran in this session, else run again."""
    if LOCAL_OUTCOMES:
        return dict(LOCAL_OUTCOMES)
    env = {"CANAL_TASK_LEASE_SECONDS": "60"}
    scheduler, worker = start_scheduler(log_dir, **env), start_worker(log_dir, concurrency=16, **env)
    try:
        runs = {name: _submit(name, shared / "local").pk for name in names}
        deadline = time.monotonic() + RUN_TIMEOUT
        while Run.objects.filter(pk__in=runs.values()).exclude(state__in=RuntimeState.terminal()).exists():
            assert time.monotonic() < deadline, "local corpus runs did not finish in time"
            time.sleep(0.5)
        outcomes = {name: outcome_of(Run.objects.get(pk=run_id)) for name, run_id in runs.items()}
        return {name: o for name, o in outcomes.items() if o["state"] == RuntimeState.SUCCEEDED}
    finally:
        worker.stop()
        scheduler.stop()


@pytest.fixture
def cluster(tmp_path: Path, settings: Any) -> Iterator[Emulator]:
    backend = pod_backend(Path(settings.CANAL_TASK_ENV_DIR))  # the workers' cache: built once per session
    try:
        with emulated_cluster(backend, tmp_path, settings, ARGO_NS, resync=0.2) as emulator:
            yield emulator
    finally:
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


def test_argo_exceptions_are_few_and_explained() -> None:
    assert len(EXCEPTIONS) <= 5
    assert not set(EXCEPTIONS) & set(NONDETERMINISTIC)
    for name, reason in {**EXCEPTIONS, **NONDETERMINISTIC}.items():
        assert TABLE[name]["expect"] == "SUCCEEDED", name
        assert len(reason) > 30, f"{name}: say why"


def test_every_locally_succeeding_pipeline_ends_the_same_on_argo(
    cluster: Emulator, step_shared: Path, live_log_dir: Path, capsys: Any, settings: Any
) -> None:
    settings.CANAL_IMPORT_ALLOWED_PREFIXES = KFP_SAMPLE_IMPORT_PREFIXES.split(",")
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
                argo[name] = outcome_of(run)
                del active[name]
        assert time.monotonic() < deadline, f"argo runs did not finish in time: {sorted(active)}"
        time.sleep(0.5)
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
