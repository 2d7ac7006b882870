"""The real ``kfp`` CLI (kfp 2.17, a subprocess of this venv) against a live Canal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from apps.core.authz import OPERATOR
from apps.core.services import api_token_create
from tests.api.kfp_pipelines import compile_to, hello_pipeline
from tests.factories import UserFactory

pytestmark = [pytest.mark.live, pytest.mark.slow]

KFP = str(Path(sys.executable).with_name("kfp"))


@pytest.fixture
def kfp_cli(live_stack: Any, transactional_db: Any, tmp_path: Path) -> Any:
    token = api_token_create(actor=OPERATOR, user=UserFactory(username="cli-user"), name="cli")[1]
    env = dict(os.environ)
    env["HOME"] = str(tmp_path / "home")  # no ~/.config/kfp/context.json from the machine
    for name in list(env):
        if name.startswith(("KFP_", "KF_PIPELINES_")):
            del env[name]

    def run(*args: str, output: str = "table") -> subprocess.CompletedProcess[str]:
        argv = [KFP, "--endpoint", live_stack.url, "--existing-token", token, "--output", output, *args]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, (
            f"kfp {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
        return done

    return run


def json_output(stdout: str) -> Any:
    """The JSON the CLI prints (the client prints a "... details: <link>" line first)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(("{", "[")))
    return json.loads("\n".join(lines[start:]))


def test_cli_pipeline_experiment_and_run_commands(kfp_cli: Any, tmp_path: Path) -> None:
    package = compile_to(hello_pipeline, tmp_path / "hello.yaml")

    created = kfp_cli("pipeline", "create", "-p", "cli-hello", str(package), output="json")
    pipeline = json_output(created.stdout)
    assert pipeline["display_name"] == "cli-hello"

    listed = kfp_cli("pipeline", "list")
    header, *rows = listed.stdout.strip().splitlines()
    assert header.split() == ["ID", "NAME", "CREATED", "AT"]
    assert any(row.split()[:2] == [pipeline["pipeline_id"], "cli-hello"] for row in rows)

    experiment = kfp_cli("experiment", "create", "cli-exp", "-d", "from the CLI")
    assert "cli-exp" in experiment.stdout and "AVAILABLE" in experiment.stdout

    run = kfp_cli(
        "run", "create", "-e", "cli-exp", "-r", "cli-run", "-f", str(package), "-w", "text=from the cli"
    )
    assert "Run is finished with state SUCCEEDED." in run.stdout
    assert "cli-run" in run.stdout

    runs = kfp_cli("run", "list")
    [line] = [row for row in runs.stdout.splitlines() if "cli-run" in row]
    assert "SUCCEEDED" in line and "AVAILABLE" in line
    as_json = json_output(kfp_cli("run", "list", output="json").stdout)
    assert [(r["display_name"], r["state"]) for r in as_json] == [("cli-run", "SUCCEEDED")]
    assert as_json[0]["runtime_config"]["parameters"] == {"text": "from the cli"}
