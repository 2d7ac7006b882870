"""``manage.py compile_argo``: prints a strictly valid Workflow; bad input is one line, exit 1."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

from apps.importers.argo import validate_argo
from tests.paths import ARGO_EXAMPLES, KFP_VALID, PROJECT, missing

corpus = pytest.mark.skipif(not KFP_VALID.is_dir(), reason=missing(KFP_VALID))


@corpus
def test_prints_the_workflow_with_the_given_parameters() -> None:
    out = io.StringIO()
    call_command(
        "compile_argo",
        str(KFP_VALID / "critical" / "add_numbers.yaml"),
        "--param",
        "a=1",
        "-p",
        "b=2",
        "--run-id",
        "run-1",
        stdout=out,
    )
    workflow = yaml.safe_load(out.getvalue())
    validate_argo(workflow, filename=None, locate=None)
    assert workflow["metadata"]["name"] == "canal-run-1"
    drivers = [t for t in workflow["spec"]["templates"] if t.get("script")]
    config = next(e["value"] for e in drivers[0]["script"]["env"] if e["name"] == "CANAL_CONFIG")
    assert '"a":["c",1]' in config and '"b":["c",2]' in config


@corpus
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["critical/add_numbers.yaml", "-p", "a=1", "-p", "b=two"], "b: expects an integer"),
        (["critical/add_numbers.yaml", "-p", "a"], "expected NAME=VALUE"),
        (["critical/add_numbers.yaml", "-p", "a=1"], "b: is required"),
        (["no-such-file.yaml"], "cannot read"),
    ],
)
def test_bad_input_is_a_command_error_naming_it(args: list[str], message: str) -> None:
    path = KFP_VALID / args[0]
    with pytest.raises(CommandError, match=message):
        call_command("compile_argo", str(path), *args[1:], stdout=io.StringIO())


@pytest.mark.skipif(not ARGO_EXAMPLES.is_dir(), reason=missing(ARGO_EXAMPLES))
def test_an_argo_workflow_is_not_compiled_again() -> None:
    with pytest.raises(CommandError, match="already an Argo Workflow"):
        call_command("compile_argo", str(ARGO_EXAMPLES / "hello-world.yaml"), stdout=io.StringIO())


def test_the_command_line_exits_1_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("pipelineInfo: {name: x}\nroot: {dag: {tasks: {t: {componentRef: {name: nope}}}}}\n")
    done = subprocess.run(
        [sys.executable, "manage.py", "compile_argo", str(bad)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "broken.yaml" in done.stderr
