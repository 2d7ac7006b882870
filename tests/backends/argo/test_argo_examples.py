"""Argo's own example workflows, run by the interpreter with the sandboxed local pod runner.

Every file of the corpus either reaches the phase ``argo_examples_expected.yaml``
says, or is refused with the reason it gives. The examples run concurrently
(12 at a time, the longest first); sleeps are honoured, so the whole corpus takes
about as long as its slowest example (~100 s).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from apps.backends.argo.interpreter import pod_name_for
from apps.backends.argo.local_runner import LocalArtifactRepository, LocalPodRunner
from apps.backends.local import LocalBackend, TaskEnvManager
from tests.backends.argo.corpus import Outcome, run_corpus
from tests.paths import ARGO_EXAMPLES, missing

pytestmark = pytest.mark.slow

TABLE_PATH = Path(__file__).with_name("argo_examples_expected.yaml")
# Examples issue 10 names: they must be expected to succeed (random ones may, rarely, not).
MUST_SUCCEED = (
    "dag-diamond.yaml",
    "steps.yaml",
    "loops.yaml",
    "loops-param-result.yaml",
    "conditional-parameters.yaml",
    "conditionals-complex.yaml",
    "dag-conditional-parameters.yaml",
    "retry-backoff.yaml",
    "exit-handler-dag-level.yaml",
    "exit-handler-step-level.yaml",
    "exit-handler-with-param.yaml",
    "output-parameter.yaml",
    "artifact-passing.yaml",
    "artifact-passing-subpath.yaml",
)


def _table() -> dict[str, dict[str, Any]]:
    loaded = yaml.safe_load(TABLE_PATH.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def runner(envs: TaskEnvManager, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPodRunner]:
    base = tmp_path_factory.mktemp("argo-corpus")
    backend = LocalBackend(envs=envs, terminate_grace=1.0, work_root=base / "work")
    if not backend.sandbox.active:
        backend.close()
        pytest.skip("Argo pods need the step sandbox: " + backend.sandbox.status().summary())
    yield LocalPodRunner(
        backend, artifacts=LocalArtifactRepository(base / "artifacts"), logs_dir=base / "logs"
    )
    backend.close()


@pytest.fixture(scope="module")
def outcomes(runner: LocalPodRunner) -> dict[str, Outcome]:
    if not ARGO_EXAMPLES.is_dir():
        pytest.skip(missing(ARGO_EXAMPLES))
    return run_corpus(ARGO_EXAMPLES, _table(), runner)


def _mismatch(expected: dict[str, Any], outcome: Outcome) -> str | None:
    if outcome.error:
        return f"the run raised {outcome.error}"
    if "refused" in expected:
        if outcome.refused is None:
            return f"expected a refusal ({expected['refused']!r}), it ran to {outcome.phase}"
        if expected["refused"] not in outcome.refused:
            return f"refused for another reason: {outcome.refused}"
        return None
    if outcome.refused is not None:
        return f"expected {expected['phase']}, it was refused: {outcome.refused}"
    allowed = [expected["phase"], *(expected.get("or") or [])]
    if outcome.phase not in allowed:
        failed = [
            (n.get("displayName"), n.get("phase"), n.get("message", "")[:120])
            for n in outcome.nodes()
            if n.get("phase") in ("Failed", "Error")
        ]
        message = outcome.status.get("message", "")
        return f"expected {' or '.join(allowed)}, got {outcome.phase} ({message}) {failed[:3]}"
    wanted = expected.get("message")
    if outcome.phase == expected["phase"] and wanted and not any(wanted in m for m in outcome.messages()):
        return f"no message contains {wanted!r}: {outcome.messages()[:4]}"
    return None


def test_the_table_covers_every_example() -> None:
    if not ARGO_EXAMPLES.is_dir():
        pytest.skip(missing(ARGO_EXAMPLES))
    files = {str(p.relative_to(ARGO_EXAMPLES)) for p in ARGO_EXAMPLES.rglob("*") if p.is_file()}
    table = _table()
    assert sorted(files - set(table)) == [], "examples missing from the table"
    assert sorted(set(table) - files) == [], "table entries without an example"
    for name, entry in table.items():
        assert ("refused" in entry) != ("phase" in entry), name
    runs = [name for name, entry in table.items() if "phase" in entry]
    assert len(runs) >= 80
    for name in MUST_SUCCEED:
        assert table[name].get("phase") == "Succeeded", name


def test_every_example_reaches_its_expected_phase_or_is_refused(
    outcomes: dict[str, Outcome], capsys: pytest.CaptureFixture[str]
) -> None:
    table = _table()
    mismatches = {}
    for name, expected in sorted(table.items()):
        outcome = outcomes.get(name)
        problem = "not run" if outcome is None else _mismatch(expected, outcome)
        if problem:
            mismatches[name] = problem
    ran = [o for o in outcomes.values() if o.refused is None and not o.error]
    succeeded = [o for o in ran if o.phase == "Succeeded"]
    refused = [o for o in outcomes.values() if o.refused is not None]
    slowest = sorted(ran, key=lambda o: o.seconds, reverse=True)[:3]
    with capsys.disabled():
        print(
            f"\nArgo corpus: {len(outcomes)} files, ran {len(ran)}, succeeded {len(succeeded)}, "
            f"failed or errored as expected {len(ran) - len(succeeded)}, refused {len(refused)}; "
            "slowest: " + ", ".join(f"{o.name} {o.seconds:.0f}s" for o in slowest)
        )
    assert mismatches == {}
    assert len(ran) >= 80


def test_exit_handler_sees_the_failed_workflow(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["exit-handlers.yaml"]
    assert outcome.phase == "Failed"
    exit_node = next(n for n in outcome.nodes() if n["name"].endswith(".onExit"))
    assert exit_node["phase"] == "Succeeded"
    assert outcome.node("cry")["phase"] == "Succeeded"
    celebrate = outcome.node("celebrate")
    assert celebrate["phase"] == "Skipped"
    assert celebrate["message"] == "when 'Failed == Succeeded' evaluated false"


def test_artifacts_and_parameters_reach_the_next_step(
    outcomes: dict[str, Outcome], runner: LocalPodRunner
) -> None:
    passing = outcomes["artifact-passing.yaml"]
    produced = passing.node("generate-artifact")["outputs"]["artifacts"][0]
    key = produced["s3"]["key"]
    assert isinstance(runner.artifacts, LocalArtifactRepository)
    assert runner.artifacts.path(key).read_text() == "hello world\n"
    consumer = passing.node("consume-artifact")
    workflow = next(n["name"] for n in passing.nodes() if n["id"] == n["name"])
    pod = pod_name_for(workflow, consumer["name"], consumer["templateName"])
    assert (runner.logs_dir / f"{pod}.log").read_text() == "hello world\n"
    parameter = outcomes["output-parameter.yaml"].node("generate-parameter")["outputs"]["parameters"][0]
    assert parameter["value"] == "hello world"


def test_a_loop_over_a_script_result_expands_every_item(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["loops-param-result.yaml"]
    sleeps = sorted(n["displayName"] for n in outcome.nodes() if n["displayName"].startswith("sleep("))
    assert sleeps == sorted(f"sleep({i}:{20 + i})" for i in range(11))
    assert outcome.node("generate")["outputs"]["result"] == "[20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30]"
