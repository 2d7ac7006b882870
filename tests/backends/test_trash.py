"""A finished step's scratch space is removed in the background, many at a time."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from apps.backends.local import LocalBackend, TaskEnvManager
from apps.backends.local import backend as backend_module


def _scratch(root: Path, index: int) -> Path:
    step = root / f"step-{index}"
    (step / "outputs" / "deep").mkdir(parents=True)
    (step / "outputs" / "deep" / "data.bin").write_bytes(b"x" * 1024)
    (step / "log.txt").write_text("done\n")
    return step


def test_every_discarded_directory_is_removed_batch_by_batch(
    envs: TaskEnvManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend_module, "TRASH_BATCH", 16)
    batches: list[list[Path]] = []
    real_remove = LocalBackend._remove

    def remove(paths: list[Path]) -> None:
        # The patch is on the class: another backend of this process (an earlier test's,
        # still emptying its own trash) may remove its paths through it meanwhile.
        mine = [path for path in paths if path.parent == tmp_path]
        if mine:
            batches.append(mine)
        real_remove(paths)

    monkeypatch.setattr(LocalBackend, "_remove", staticmethod(remove))
    backend = LocalBackend(envs=envs, terminate_grace=1.0, work_root=tmp_path / "work")
    steps = [_scratch(tmp_path, i) for i in range(100)]
    # One the step left unreadable and unwritable (rm copes as root; force_rmtree else).
    locked = steps[7] / "outputs" / "deep"
    os.chmod(locked, 0)
    outside = tmp_path / "kept"
    outside.mkdir()
    for step in steps:
        backend.discard_later(step)
    backend.close()
    assert [step for step in steps if step.exists()] == []
    assert outside.exists()  # nothing else went
    removed = [path for batch in batches for path in batch]
    assert sorted(removed) == sorted(steps)  # each one, once
    assert max(len(batch) for batch in batches) <= 16


def test_a_tree_rm_cannot_remove_is_removed_by_the_fallback(
    envs: TaskEnvManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = _scratch(tmp_path, 0)
    os.chmod(step / "outputs", stat.S_IRUSR)
    monkeypatch.setenv("PATH", str(tmp_path / "no-such-bin"))  # no rm to be found
    backend = LocalBackend(envs=envs, terminate_grace=1.0, work_root=tmp_path / "work")
    backend.discard_later(step)
    backend.close()
    assert not step.exists()
