"""Conformance: every corpus IR file compiles to a Workflow that passes Argo's strict schema,
or is refused with the reason the committed table gives; and the Workflows have the
shape of what KFP's own Go compiler emits for the same files (compiled-workflows/).
"""

from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from apps.backends.argo.compiler import CompileError
from apps.importers import PipelineImportError
from apps.importers.argo import validate_argo
from tests.backends.argo.helpers import GOLDEN, compile_corpus, corpus_names, local_expectation, templates
from tests.paths import KFP_VALID, missing

pytestmark = pytest.mark.skipif(not KFP_VALID.is_dir(), reason=missing(KFP_VALID))

REFUSALS: dict[str, str] = yaml.safe_load(
    (Path(__file__).parent / "data" / "conformance_refusals.yaml").read_text()
)


@cache
def outcomes() -> dict[str, tuple[str, Any]]:
    """name -> ("compiled", workflow) | ("refused", message) | ("invalid", schema error)."""
    out: dict[str, tuple[str, Any]] = {}
    for name in corpus_names():
        try:
            workflow = compile_corpus(name)
        except CompileError as exc:
            out[name] = ("refused", str(exc))
            continue
        try:
            validate_argo(workflow, filename=None, locate=None)
        except PipelineImportError as exc:
            out[name] = ("invalid", str(exc))
            continue
        out[name] = ("compiled", workflow)
    return out


def test_every_corpus_file_compiles_to_a_strictly_valid_workflow_or_is_refused_as_listed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    results = outcomes()
    invalid = {name: detail for name, (kind, detail) in results.items() if kind == "invalid"}
    assert not invalid, "Workflows that fail Argo's strict schema:\n" + "\n".join(
        f"{n}: {d}" for n, d in invalid.items()
    )
    refused = {name: detail for name, (kind, detail) in results.items() if kind == "refused"}
    assert sorted(refused) == sorted(REFUSALS), "refusals differ from tests/backends/argo/data"
    for name, message in refused.items():
        assert REFUSALS[name] in message, f"{name}: refused for another reason: {message}"
    counts = Counter(kind for kind, _ in results.values())
    with capsys.disabled():
        print(
            f"\nArgo conformance: {counts['compiled']} of {len(results)} corpus files compiled to strictly "
            f"valid Workflows, {counts['refused']} refused (listed with reasons)"
        )


def test_every_pipeline_the_local_backend_runs_compiles() -> None:
    # The refusals are exactly pipelines the local backend cannot run either.
    for name in REFUSALS:
        assert local_expectation(name) == "FAILED", name
    runnable = [n for n in corpus_names() if local_expectation(n) == "SUCCEEDED"]
    assert len(runnable) > 100
    for name in runnable:
        assert outcomes()[name][0] == "compiled", name


def test_the_driver_source_is_valid_python_in_every_workflow() -> None:
    workflow = outcomes()["hello_world.yaml"][1]
    source = workflow["spec"]["arguments"]["parameters"][0]["value"]
    compile(source, "canal_driver.py", "exec")
    assert "{" + "{" not in source


# -- golden comparisons with KFP's own Argo compiler --------------------------------------


def _facts(workflow: dict[str, Any], *, golden: bool) -> dict[str, Any]:
    """What both compilers must agree on, whatever their runtimes do."""
    by_name = templates(workflow)
    root = by_name["root"]["dag"]["tasks"]
    suffix = "-driver" if golden else "-drv"
    names = {t["name"] for t in root if not t["name"].endswith(suffix) and t["name"] != "canal-check"}
    if golden:
        # KFP runs exit tasks as exit hooks (exit-hook-root-<task>); Canal as DAG tasks.
        names |= {n.removeprefix("exit-hook-root-") for n in by_name if n.startswith("exit-hook-root-")}
    return {
        "root tasks": sorted(names),
        "parallelism": sorted(t["parallelism"] for t in by_name.values() if t.get("parallelism")),
        "retried templates": sum(1 for t in by_name.values() if t.get("retryStrategy")),
        "conditional tasks": sum(
            1
            for t in by_name.values()
            for task in (t.get("dag") or {}).get("tasks", [])
            if "condition" in task.get("when", "")
        ),
    }


def test_root_tasks_loops_retries_and_conditions_match_kfps_compiled_workflows() -> None:
    compared = 0
    differences = []
    for name, (kind, workflow) in outcomes().items():
        golden_path = GOLDEN / Path(name).with_suffix(".yaml").name
        if kind != "compiled" or not golden_path.exists():
            continue
        golden = _facts(yaml.safe_load(golden_path.read_text()), golden=True)
        ours = _facts(workflow, golden=False)
        compared += 1
        if golden != ours:
            differences.append(f"{name}:\n  KFP:   {golden}\n  Canal: {ours}")
    assert compared > 120
    assert not differences, "\n".join(differences)
