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
from apps.storage.ownership import (
    Location,
    LocationError,
    RunDir,
    StorageScope,
    check_pipeline_root,
    confine_path,
    owning_prefix,
    parse_location,
    run_dir_uri,
    storage_scope,
)
from apps.storage.paths import UnsafePathError, check_relative, resolve_within
from apps.storage.s3 import S3Store

__all__ = [
    "ArtifactEntry",
    "ArtifactNotFound",
    "ArtifactStat",
    "ArtifactStore",
    "FilesystemStore",
    "Location",
    "LocationError",
    "LogChunk",
    "LogStore",
    "Preview",
    "RunDir",
    "S3Store",
    "StorageError",
    "StorageScope",
    "StoreConfig",
    "UnsafePathError",
    "build_artifact_uri",
    "check_pipeline_root",
    "check_relative",
    "confine_path",
    "get_store",
    "kfp_local_path",
    "owning_prefix",
    "parse_location",
    "register_store",
    "registered_schemes",
    "resolve_within",
    "run_dir_uri",
    "storage_scope",
    "uri_scheme",
]
