"""Under pytest-xdist (``make test`` runs two workers) each worker is a test session of its
own: its own data directory (SQLite file, filesystem broker, artifacts) and its own Celery
queue, so one worker's steps never reach the other's worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.paths import PROJECT

PROBE = """
import json, os
from pathlib import Path

def _record(name):
    out = Path(os.environ["PROBE_OUT"]) / name
    out.write_text(json.dumps({k: os.environ.get(k) for k in
        ("PYTEST_XDIST_WORKER", "CANAL_DATA_DIR", "CANAL_QUEUE")}))
"""


def test_each_xdist_worker_gets_its_own_data_dir_and_queue(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a", "b"):  # two files: --dist loadfile hands one to each worker
        (tmp_path / f"test_probe_{name}.py").write_text(
            PROBE + f"\n\ndef test_{name}():\n    _record('{name}')\n"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CANAL_", "PYTEST_XDIST"))}
    env["PROBE_OUT"] = str(out)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.pytest_env",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:django",
            "-n",
            "2",
            "--dist",
            "loadfile",
            "-q",
            "--rootdir",
            str(tmp_path),
            "-c",
            os.devnull,
            str(tmp_path),
        ],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    seen = [json.loads((out / name).read_text()) for name in ("a", "b")]
    assert {s["PYTEST_XDIST_WORKER"] for s in seen} == {"gw0", "gw1"}
    assert seen[0]["CANAL_DATA_DIR"] != seen[1]["CANAL_DATA_DIR"]
    assert seen[0]["CANAL_QUEUE"] != seen[1]["CANAL_QUEUE"]
    assert all(Path(s["CANAL_DATA_DIR"]).is_dir() for s in seen)
