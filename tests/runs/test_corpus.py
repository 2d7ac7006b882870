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
from pathlib import Path
from typing import Any

import pytest
import yaml

from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.services import namespace_ensure
from apps.importers import import_pipeline
from apps.runs.models import Run, Task
from apps.runs.services import run_create, run_terminate
from tests.live import start_scheduler, start_worker, wait_until
from tests.paths import KFP_VALID

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
# test (tests/runs/test_corpus_argo.py), which reruns the local side when this is empty.
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
