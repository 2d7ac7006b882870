"""The log store: stable paths, tailing from an offset, confinement."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.storage import LogStore, UnsafePathError


def test_paths_are_stable_and_safe(tmp_path: Path) -> None:
    logs = LogStore(tmp_path)
    path = logs.path_for("run-1", "task-a", 2)
    assert path == tmp_path / "run-1" / "task-a" / "attempt-2.log"
    assert logs.path_for("run-1", "task-a", 2) == path
    assert logs.path_for("../x", "t", 0).parent.parent == tmp_path / "..-x"
    with pytest.raises(ValueError):
        logs.path_for("r", "t", -1)


def test_tail_from_offset_while_written(tmp_path: Path) -> None:
    logs = LogStore(tmp_path)
    path = logs.create(logs.path_for("r", "t", 0))
    assert logs.read(path).data == b""
    with path.open("ab") as out:
        out.write(b"line 1\n")
        out.flush()
        first = logs.read(path, 0)
        assert first.data == b"line 1\n"
        assert first.at_end
        out.write(b"line 2\n")
        out.flush()
        second = logs.read(path, first.next_offset)
        assert second.data == b"line 2\n"
        assert second.offset == 7
    assert logs.read(path, 0, limit=4).data == b"line"
    assert not logs.read(path, 0, limit=4).at_end
    assert logs.read(path, -7).data == b"line 2\n"
    assert logs.read(path, 10_000).data == b""
    assert logs.size(path) == 14
    assert logs.read(tmp_path / "r" / "t" / "missing.log").size == 0


def test_reads_outside_the_root_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    root.mkdir()
    (tmp_path / "secret").write_text("s")
    (root / "link.log").symlink_to(tmp_path / "secret")
    logs = LogStore(root)
    for bad in (tmp_path / "secret", "../secret", root / "link.log", "/etc/passwd"):
        with pytest.raises(UnsafePathError):
            logs.read(bad)


def test_delete_run(tmp_path: Path) -> None:
    logs = LogStore(tmp_path)
    logs.create(logs.path_for("r", "t", 0))
    logs.delete_run("r")
    assert not (tmp_path / "r").exists()
