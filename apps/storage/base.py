"""The ArtifactStore interface, its scheme registry, and artifact URI helpers."""

from __future__ import annotations

import io
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, TypeVar
from urllib.parse import urlsplit

from apps.storage.ownership import run_dir_uri
from apps.storage.paths import safe_segment

__all__ = [
    "ArtifactEntry",
    "ArtifactNotFound",
    "ArtifactStat",
    "ArtifactStore",
    "Preview",
    "StorageError",
    "StoreConfig",
    "build_artifact_uri",
    "get_store",
    "kfp_local_path",
    "limited_reader",
    "register_store",
    "registered_schemes",
    "uri_scheme",
]


class StorageError(Exception):
    """An artifact store operation failed."""


class ArtifactNotFound(StorageError):
    """No file or directory exists at the URI."""


@dataclass(frozen=True)
class StoreConfig:
    """Explicit configuration for artifact stores (the Django side fills it from settings).

    ``root`` confines user-supplied download paths on the filesystem store;
    ``s3_endpoint_url`` is the S3-compatible endpoint (None means AWS);
    ``minio_endpoint_url`` serves ``minio://`` URIs and defaults to the S3 one.
    Credentials and region come from boto3's usual environment/config chain
    unless ``s3_region`` is given.
    """

    root: str | None = None
    s3_endpoint_url: str | None = None
    minio_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_path_style: bool = True


@dataclass(frozen=True)
class ArtifactStat:
    """Size and kind of an artifact: a single file, or a directory (prefix) of files."""

    uri: str
    size: int
    is_dir: bool
    file_count: int = 1


@dataclass(frozen=True)
class ArtifactEntry:
    """One file of a (possibly directory) artifact: its key relative to the artifact."""

    relative_path: str
    size: int


@dataclass(frozen=True)
class Preview:
    """The first bytes of an artifact, for previews."""

    data: bytes
    size: int
    truncated: bool


class ArtifactStore(ABC):
    """Reads and writes artifacts for one family of URI schemes."""

    schemes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: StoreConfig) -> None:
        self.config = config

    @abstractmethod
    def local_path(self, uri: str) -> Path | None:
        """The local filesystem path of ``uri``, or None when it has none."""

    @abstractmethod
    def stat(self, uri: str) -> ArtifactStat:
        """Size and kind of the artifact; raises ArtifactNotFound."""

    def exists(self, uri: str) -> bool:
        """Whether a file or a non-empty directory exists at ``uri``."""
        try:
            self.stat(uri)
        except ArtifactNotFound:
            return False
        return True

    @abstractmethod
    def list_files(self, uri: str) -> list[ArtifactEntry]:
        """The files of the artifact (one entry with an empty path for a single file)."""

    @abstractmethod
    def stage_in(self, uri: str, dest: Path) -> Path:
        """Download the file or directory at ``uri`` to ``dest`` and return ``dest``."""

    @abstractmethod
    def stage_out(self, src: Path, uri: str) -> None:
        """Upload the local file or directory ``src`` to ``uri``."""

    @abstractmethod
    def open(self, uri: str, *, limit: int | None = None) -> BinaryIO:
        """Open a file artifact for reading; at most ``limit`` bytes are readable."""

    @abstractmethod
    def delete(self, uri: str) -> None:
        """Remove the file or directory at ``uri`` (missing is not an error)."""

    @abstractmethod
    def resolve(self, user_path: str, *, base: str | None = None) -> str:
        """URI of a user-supplied relative path, confined to ``base`` (default: the store root).

        Raises UnsafePathError for traversal, absolute paths, NUL, backslashes,
        fragments and (on the filesystem) symlinks that escape.
        """

    def preview(self, uri: str, limit: int) -> Preview:
        """The first ``limit`` bytes of a file artifact."""
        size = self.stat(uri).size
        with self.open(uri, limit=limit) as handle:
            data = handle.read(limit)
        return Preview(data=data, size=size, truncated=size > len(data))


class _LimitedRaw(io.RawIOBase):
    """A raw stream that stops after ``limit`` bytes of the wrapped one."""

    def __init__(self, raw: BinaryIO, limit: int | None) -> None:
        super().__init__()
        self._raw = raw
        self._left = limit

    def readable(self) -> bool:
        """Always readable."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the wrapped stream, never past the limit."""
        view = memoryview(buffer).cast("B")
        want = len(view)
        if self._left is not None:
            want = min(want, self._left)
        if want <= 0:
            return 0
        data = self._raw.read(want)
        n = len(data)
        view[:n] = data
        if self._left is not None:
            self._left -= n
        return n

    def close(self) -> None:
        """Close the wrapped stream too."""
        try:
            self._raw.close()
        finally:
            super().close()


def limited_reader(raw: BinaryIO, limit: int | None) -> BinaryIO:
    """Wrap ``raw`` so that at most ``limit`` bytes can be read (None: no limit)."""
    return io.BufferedReader(_LimitedRaw(raw, limit))


_StoreT = TypeVar("_StoreT", bound=type[ArtifactStore])
_REGISTRY: dict[str, type[ArtifactStore]] = {}
_INSTANCES: dict[tuple[type[ArtifactStore], StoreConfig], ArtifactStore] = {}
_INSTANCES_LOCK = threading.Lock()


def register_store(*schemes: str) -> Callable[[_StoreT], _StoreT]:
    """Class decorator: register an ArtifactStore for URI schemes ('' is a plain path)."""

    def decorate(cls: _StoreT) -> _StoreT:
        for scheme in schemes:
            existing = _REGISTRY.get(scheme)
            if existing is not None and existing is not cls:
                raise ValueError(f"scheme {scheme!r} is already served by {existing.__name__}")
            _REGISTRY[scheme] = cls
        cls.schemes = tuple(schemes)
        return cls

    return decorate


def registered_schemes() -> list[str]:
    """The URI schemes that have a store."""
    return sorted(_REGISTRY)


def uri_scheme(uri: str) -> str:
    """The lower-cased scheme of ``uri`` ('' for a plain path)."""
    if uri.startswith("/"):
        return ""
    return urlsplit(uri).scheme.lower()


def get_store(uri: str, config: StoreConfig | None = None) -> ArtifactStore:
    """The store for ``uri``'s scheme; instances are shared per (class, config)."""
    scheme = uri_scheme(uri)
    cls = _REGISTRY.get(scheme)
    if cls is None:
        raise StorageError(f"no artifact store for scheme {scheme!r} (known: {registered_schemes()})")
    key = (cls, config or StoreConfig())
    with _INSTANCES_LOCK:
        store = _INSTANCES.get(key)
        if store is None:
            store = cls(key[1])
            _INSTANCES[key] = store
    return store


def build_artifact_uri(
    pipeline_root: str,
    pipeline_name: str,
    run_id: str,
    task_name: str,
    output_name: str,
    *,
    unique: str | None = None,
) -> str:
    """``<pipeline_root>/<pipeline_name>/<run_id>/<task_name>/<uuid>/<output_name>``, as KFP's driver does.

    Each name becomes one safe path segment, so a hostile name cannot move the
    artifact elsewhere in the store; the first three make the run's directory, which
    is what its namespace owns (see ``apps.storage.ownership``).
    """
    segments = [task_name, unique or str(uuid.uuid4()), output_name]
    return "/".join([run_dir_uri(pipeline_root, pipeline_name, run_id), *(safe_segment(s) for s in segments)])


# The mount points the kfp SDK's Artifact.path uses for remote URIs.
_KFP_MOUNTS = {"gs": "/gcs/", "minio": "/minio/", "s3": "/s3/"}


def kfp_local_path(uri: str) -> str:
    """The path the kfp SDK gives a component for ``uri`` (``s3://b/k`` -> ``/s3/b/k``)."""
    scheme = uri_scheme(uri)
    if scheme in _KFP_MOUNTS:
        return _KFP_MOUNTS[scheme] + uri[len(scheme) + 3 :]
    if scheme == "file":
        return urlsplit(uri).path
    return uri
