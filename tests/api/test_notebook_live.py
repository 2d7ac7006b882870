"""The example notebook, executed with nbclient against a live Canal."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.services import api_token_create
from apps.runs.models import Run
from tests.factories import UserFactory
from tests.paths import PROJECT

pytestmark = [pytest.mark.live, pytest.mark.slow]

NOTEBOOK = PROJECT / "docs" / "notebooks" / "kfp_client_quickstart.ipynb"


def _venv_kernel(root: Path) -> str:
    """A kernelspec for this interpreter, so the notebook runs in the project's venv
    whatever kernels the machine has installed."""
    kernel_dir = root / "kernels" / "canal-venv"
    kernel_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Canal venv",
        "language": "python",
    }
    (kernel_dir / "kernel.json").write_text(json.dumps(spec))
    return "canal-venv"


def test_example_notebook_runs_a_pipeline_and_prints_its_outputs(
    live_stack: Any, transactional_db: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = api_token_create(actor=OPERATOR, user=UserFactory(username="notebook-user"), name="notebook")[1]
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("KF_PIPELINES_ENDPOINT", live_stack.url)
    monkeypatch.setenv("CANAL_API_TOKEN", token)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no kfp context.json from the machine
    kernel = _venv_kernel(tmp_path / "jupyter")
    workdir = tmp_path / "work"
    workdir.mkdir()

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, timeout=900, kernel_name=kernel, resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()

    run = Run.objects.get(display_name="quickstart from a notebook")
    assert run.state == RuntimeState.SUCCEEDED, run.error
    assert run.experiment.display_name == "notebooks"
    assert (workdir / "quickstart.yaml").is_file()
    printed = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
    )
    assert "finished: SUCCEEDED" in printed
    assert "The total is **42.0**." in printed
