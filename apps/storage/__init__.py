"""Artifact and log storage: pure Python (no Django). A filesystem store is the
default; an S3-compatible store is chosen by the ``s3://``/``minio://`` scheme."""

from apps.storage.base import (
    ArtifactEntry,
    ArtifactNotFound,
    ArtifactStat,
    ArtifactStore,
    Preview,
    StorageError,
    StoreConfig,
    build_artifact_uri,
    get_store,
    kfp_local_path,
    register_store,
    registered_schemes,
    uri_scheme,
)

# Importing the stores registers them for their schemes.
from apps.storage.filesystem import FilesystemStore
from apps.storage.logs import LogChunk, LogStore
from apps.storage.paths import UnsafePathError, check_relative, resolve_within
from apps.storage.s3 import S3Store

__all__ = [
    "ArtifactEntry",
    "ArtifactNotFound",
    "ArtifactStat",
    "ArtifactStore",
    "FilesystemStore",
    "LogChunk",
    "LogStore",
    "Preview",
    "S3Store",
    "StorageError",
    "StoreConfig",
    "UnsafePathError",
    "build_artifact_uri",
    "check_relative",
    "get_store",
    "kfp_local_path",
    "register_store",
    "registered_schemes",
    "resolve_within",
    "uri_scheme",
]
