"""The tests find the shared corpus through tests/paths.py, which honours CANAL_SHARED_DIR,
and a CI run without the corpus fails instead of skipping."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import paths

# A fast corpus test: it reads two corpus files through tests/backends/conftest.py.
CORPUS_TEST = "tests/backends/test_prelude.py::test_add_numbers_from_the_corpus"
USED = ("critical/add_numbers.yaml",)


def _pytest(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """One corpus test in a fresh pytest, with ``env`` over this process's environment."""
    child = {k: v for k, v in os.environ.items() if k not in ("CI", "CANAL_SHARED_DIR")}
    child.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", CORPUS_TEST],
        cwd=paths.PROJECT,
        env=child,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _mini_corpus(root: Path, files: tuple[str, ...]) -> Path:
    """A corpus at ``root`` with every required directory and only ``files`` of valid/."""
    layout = {
        paths.KFP_VALID: root / "corpus/kfp/sdk_compiled_pipelines/valid",
        paths.KFP_INVALID: root / "corpus/kfp/sdk_compiled_pipelines/invalid",
        paths.KFP_GOLDEN: root / "corpus/kfp/compiled-workflows",
        paths.ARGO_EXAMPLES: root / "corpus/argo/examples",
    }
    for target in layout.values():
        target.mkdir(parents=True)
    (root / "corpus/argo/schema").mkdir(parents=True)
    (root / "corpus/argo/schema/schema.json").write_text("{}")
    for name in files:
        (layout[paths.KFP_VALID] / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(paths.KFP_VALID / name, layout[paths.KFP_VALID] / name)
    return root


def test_shared_dir_is_canal_shared_dir_when_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CANAL_SHARED_DIR", str(tmp_path / "elsewhere"))
    assert paths.shared_dir() == tmp_path / "elsewhere"
    monkeypatch.setenv("CANAL_SHARED_DIR", "")
    assert paths.shared_dir() == paths.PROJECT.parent / "shared"
    monkeypatch.delenv("CANAL_SHARED_DIR")
    assert paths.shared_dir() == paths.PROJECT.parent / "shared"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", False), ("0", False), ("false", False), ("FALSE", False), ("true", True), ("1", True), ("y", True)],
)
def test_in_ci(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("CI", value)
    assert paths.in_ci() is expected


def test_corpus_problem_names_each_missing_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    absent = tmp_path / "nowhere"
    monkeypatch.setattr(paths, "REQUIRED", (absent / "a", paths.KFP_VALID, absent / "b"))
    problem = paths.corpus_problem()
    assert str(absent / "a") in problem and str(absent / "b") in problem
    assert str(paths.KFP_VALID) not in problem
    monkeypatch.setattr(paths, "REQUIRED", (paths.KFP_VALID,))
    assert paths.corpus_problem() == ""


@pytest.mark.skipif(not (paths.KFP_VALID / USED[0]).is_file(), reason=paths.missing(paths.KFP_VALID))
def test_a_corpus_test_reads_the_corpus_canal_shared_dir_names(tmp_path: Path) -> None:
    elsewhere = _mini_corpus(tmp_path / "elsewhere", USED)
    result = _pytest(tmp_path, CANAL_SHARED_DIR=str(elsewhere), CI="true")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout and "skipped" not in result.stdout
    # The same test without its file there: it skips naming the path it looked at.
    (elsewhere / "corpus/kfp/sdk_compiled_pipelines/valid" / USED[0]).unlink()
    result = _pytest(tmp_path, CANAL_SHARED_DIR=str(elsewhere))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout
    assert str(elsewhere / "corpus/kfp/sdk_compiled_pipelines/valid" / USED[0]) in result.stdout


def test_a_ci_run_without_the_corpus_fails_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-shared-here"
    result = _pytest(tmp_path, CANAL_SHARED_DIR=str(missing), CI="true")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"missing {missing}/corpus/kfp/sdk_compiled_pipelines/valid" in output
    assert "passed" not in output and "skipped" not in output
    # Outside CI the same run skips, naming the path.
    result = _pytest(tmp_path, CANAL_SHARED_DIR=str(missing), CI="0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout and str(missing) in result.stdout
