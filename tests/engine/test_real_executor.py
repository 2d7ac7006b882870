"""The ExecutorInput the engine builds works with the real kfp executor (kfp.dsl.executor_main)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from apps.engine.execution import ActiveExecution
from apps.engine.executor_io import build_executor_input, collect_outputs
from apps.engine.keys import NodeState
from apps.engine.model import NodeIO, RunContext, StepLaunch
from apps.engine.placeholders import render_command
from tests.engine.corpus import load_spec
from tests.engine.harness import FakeRun


def _run_lightweight(launch: StepLaunch, workdir: Path) -> NodeIO:
    uris = {name: str(workdir / "artifacts" / name) for name in launch.output_artifacts}
    files = {name: str(workdir / "parameters" / name) for name in launch.output_parameters}
    output_file = workdir / "executor_output.json"
    executor_input = build_executor_input(launch, uris, files, str(output_file))
    assert launch.container is not None
    argv = render_command(launch.container, executor_input, launch.placeholder_context)
    # The generated command first pip-installs kfp, then runs "sh -ec <program> <source> <args>";
    # kfp is already in this interpreter, so run the program part with it.
    start = argv.index("-ec")
    program = argv[start + 1].replace("python3", sys.executable)
    env = {**os.environ, "_KFP_RUNTIME": "true"}
    result = subprocess.run(
        ["sh", "-ec", program, *argv[start + 2 :]], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    executor_output: Any = json.loads(output_file.read_text()) if output_file.exists() else None
    contents = {n: Path(p).read_text() for n, p in files.items() if Path(p).exists()}
    return collect_outputs(launch, executor_output, contents, uris)


def test_lightweight_component_reads_inputs_and_writes_outputs(tmp_path: Path) -> None:
    spec = load_spec("critical/add_numbers.yaml")
    (launch,) = ActiveExecution(spec, RunContext(run_id="r", parameters={"a": 1, "b": 2}), []).plan().launches
    outputs = _run_lightweight(launch, tmp_path)
    assert outputs.parameters == {"Output": 3}
    assert type(outputs.parameters["Output"]) is int


def test_metrics_metadata_comes_back_from_the_executor(tmp_path: Path) -> None:
    spec = load_spec("essential/pipeline_with_metrics_outputs.yaml")
    plan = ActiveExecution(spec, RunContext(run_id="r"), []).plan()
    launch = next(launch for launch in plan.launches if launch.task_name == "output-metrics")
    outputs = _run_lightweight(launch, tmp_path)
    (metrics,) = outputs.artifacts["metrics"]
    assert metrics.schema_title == "system.Metrics"
    assert isinstance(metrics.metadata.get("accuracy"), int | float)
    assert metrics.uri == str(tmp_path / "artifacts" / "metrics")


def test_artifacts_flow_between_real_steps(tmp_path: Path) -> None:
    spec = load_spec("essential/lightweight_python_functions_pipeline.yaml")
    run = FakeRun(spec, RunContext(run_id="r", parameters={"message": "hello"}))
    ran: list[str] = []
    while run.outcome is None:
        run.plan()
        for key, launch in list(run.pending.items()):
            outputs = _run_lightweight(launch, tmp_path / launch.task_name)
            for name, refs in outputs.artifacts.items():
                assert Path(refs[0].uri).exists(), name
            ran.append(launch.task_name)
            run.succeed(key, outputs)
    assert run.outcome.state == NodeState.SUCCEEDED
    assert ran == ["preprocess", "train"]
