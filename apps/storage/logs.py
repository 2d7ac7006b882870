"""Step logs on the filesystem: one file per (run, task, attempt), tailed while it grows."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from apps.storage.paths import UnsafePathError, is_within, safe_segment

__all__ = ["LogChunk", "LogStore"]


@dataclass(frozen=True)
class LogChunk:
    """Bytes read from a log: ``data`` starts at ``offset``; continue from ``next_offset``."""

    data: bytes
    offset: int
    next_offset: int
    size: int

    @property
    def at_end(self) -> bool:
        """Whether this chunk reached the end of what has been written so far."""
        return self.next_offset >= self.size


class LogStore:
    """Logs under ``root``; a step's process writes straight into its file.

    The files are plain files outside any worker's lifetime, so logs stay
    readable after the worker that ran the step is gone (KFP #7617).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path_for(self, run_id: str, task_id: str, attempt: int) -> Path:
        """The stable log path of one attempt: ``<root>/<run_id>/<task_id>/attempt-<n>.log``."""
        if attempt < 0:
            raise ValueError("attempt must be >= 0")
        return self.root / safe_segment(run_id) / safe_segment(task_id) / f"attempt-{int(attempt)}.log"

    def create(self, path: str | os.PathLike[str]) -> Path:
        """Make sure the log file exists (empty) so readers can tail it from the start."""
        checked = self._checked(path)
        checked.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(checked, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        os.close(fd)
        return checked

    def _checked(self, path: str | os.PathLike[str]) -> Path:
        # Paths come back from the database and the API: refuse any that would
        # read outside the log root, even through a symlink.
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = self.root / candidate
        if "\x00" in str(candidate) or not is_within(self.root, candidate):
            raise UnsafePathError("log path is outside the log root")
        return candidate

    def size(self, path: str | os.PathLike[str]) -> int:
        """Bytes written so far (0 when the file does not exist yet)."""
        try:
            return self._checked(path).stat().st_size
        except FileNotFoundError:
            return 0

    def read(self, path: str | os.PathLike[str], offset: int = 0, limit: int = 64 * 1024) -> LogChunk:
        """Up to ``limit`` bytes from ``offset``; a negative offset counts from the end."""
        checked = self._checked(path)
        try:
            with checked.open("rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                start = max(0, size + offset) if offset < 0 else min(offset, size)
                handle.seek(start)
                data = handle.read(max(0, limit))
        except FileNotFoundError:
            return LogChunk(data=b"", offset=0, next_offset=0, size=0)
        end = start + len(data)
        return LogChunk(data=data, offset=start, next_offset=end, size=max(size, end))

    def delete_run(self, run_id: str) -> None:
        """Remove every log of a run."""
        target = self._checked(self.root / safe_segment(run_id))
        if target.is_dir():
            shutil.rmtree(target)
