"""Filesystem artifact store: URIs are absolute local paths, as kfp.local and the kfp SDK use."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from apps.storage.base import (
    ArtifactEntry,
    ArtifactNotFound,
    ArtifactStat,
    ArtifactStore,
    StorageError,
    limited_reader,
    register_store,
    uri_scheme,
)
from apps.storage.paths import UnsafePathError, is_within, resolve_within

__all__ = ["FilesystemStore", "iter_tree_files"]


def iter_tree_files(root: Path) -> Iterator[tuple[str, Path]]:
    """Yield ``(relative posix path, path)`` for each file under ``root``, sorted.

    Symlinked files are followed only when they resolve inside ``root`` (a
    step that leaves ``out/x -> /etc/shadow`` in an output directory must not
    get that file copied or uploaded on its behalf); symlinked directories are
    not descended into.
    """
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if path.is_symlink() and not is_within(root, path):
                continue
            if not path.is_file():
                continue
            yield path.relative_to(root).as_posix(), path


def _link_or_copy(src: Path, dest: Path, link: bool) -> None:
    if link:
        try:
            if dest.exists() or dest.is_symlink():
                dest.unlink()
            os.link(src, dest, follow_symlinks=True)
            return
        except OSError:
            pass  # another filesystem, or links not allowed: copy
    shutil.copyfile(src, dest, follow_symlinks=True)


def _drop_links(root: Path) -> None:
    """Remove every symlink under ``root`` (before a step's output directory is moved into the store)."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath, name)
            if path.is_symlink():
                path.unlink()


@register_store("", "file")
class FilesystemStore(ArtifactStore):
    """Artifacts on the local filesystem; ``file://`` URIs are accepted on input."""

    def _path(self, uri: str) -> Path:
        if "\x00" in uri:
            raise StorageError("URI contains NUL")
        scheme = uri_scheme(uri)
        if scheme == "":
            if not uri.startswith("/"):
                raise StorageError(f"filesystem artifact URIs must be absolute paths: {uri!r}")
            return Path(uri)
        if scheme == "file":
            parts = urlsplit(uri)
            if parts.netloc not in ("", "localhost"):
                raise StorageError(f"file:// URI with a remote host: {uri!r}")
            return Path(unquote(parts.path))
        raise StorageError(f"not a filesystem URI: {uri!r}")

    def local_path(self, uri: str) -> Path | None:
        """The path itself."""
        return self._path(uri)

    def stat(self, uri: str) -> ArtifactStat:
        """Size of the file, or total size of the directory's files."""
        path = self._path(uri)
        if path.is_file():
            return ArtifactStat(uri=uri, size=path.stat().st_size, is_dir=False)
        if path.is_dir():
            sizes = [p.stat().st_size for _, p in iter_tree_files(path)]
            return ArtifactStat(uri=uri, size=sum(sizes), is_dir=True, file_count=len(sizes))
        raise ArtifactNotFound(uri)

    def list_files(self, uri: str) -> list[ArtifactEntry]:
        """Files of a directory artifact, or the file itself with an empty relative path."""
        path = self._path(uri)
        if path.is_file():
            return [ArtifactEntry(relative_path="", size=path.stat().st_size)]
        if path.is_dir():
            return [ArtifactEntry(rel, p.stat().st_size) for rel, p in iter_tree_files(path)]
        raise ArtifactNotFound(uri)

    def _copy(self, src: Path, dest: Path, *, link: bool = False) -> None:
        if src.exists() and dest.exists() and os.path.samefile(src, dest):
            return
        if src.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(src, dest, link)
        elif src.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            for rel, path in iter_tree_files(src):
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(path, target, link)
        else:
            raise ArtifactNotFound(str(src))

    def stage_in(self, uri: str, dest: Path) -> Path:
        """Make the artifact appear at ``dest``: hard links on the same filesystem (instant,
        no extra space), else a copy. Symlinks that leave the artifact are not followed."""
        self._copy(self._path(uri), dest, link=True)
        return dest

    def stage_out(self, src: Path, uri: str) -> None:
        """Put what a step wrote at ``src`` at the artifact's path: a rename on the same
        filesystem, else a copy. A symlink is never carried: a step must not plant a link
        to somewhere it could not read into the store."""
        dest = self._path(uri)
        if src.is_symlink():
            raise StorageError(f"output {src.name} is a symlink; artifacts must be files or directories")
        if src.is_dir():
            _drop_links(src)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            os.rename(src, dest)
        except OSError:
            self._copy(src, dest)  # another filesystem

    def open(self, uri: str, *, limit: int | None = None) -> BinaryIO:
        """Open the file for binary reading, capped at ``limit`` bytes."""
        path = self._path(uri)
        if not path.is_file():
            raise ArtifactNotFound(uri)
        raw = path.open("rb", buffering=0)
        return raw if limit is None else limited_reader(raw, limit)

    def delete(self, uri: str) -> None:
        """Remove the file or directory tree."""
        path = self._path(uri)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()

    def resolve(self, user_path: str, *, base: str | None = None) -> str:
        """Absolute path of ``user_path`` under ``base`` (default: the root), symlinks resolved."""
        if self.config.root is None:
            raise StorageError("the filesystem store has no root configured")
        root = Path(self.config.root)
        base_path = root if base is None else self._path(base)
        if not is_within(root, base_path):
            raise UnsafePathError("base is outside the store root")
        resolved = resolve_within(base_path, user_path)
        if not is_within(root, resolved):
            raise UnsafePathError("path resolves outside the store root")
        return str(resolved)

    def contains(self, uri: str) -> bool:
        """Whether ``uri`` resolves inside the configured root (False when there is none)."""
        if self.config.root is None:
            return False
        try:
            return is_within(self.config.root, self._path(uri))
        except StorageError:
            return False
