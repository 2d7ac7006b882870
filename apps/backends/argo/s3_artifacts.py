"""Argo's S3 artifact repository for the pods Canal runs itself (``LocalPodRunner``, the emulator).

``S3ArtifactRepository`` stores and fetches artifacts as Argo's executor does
with an S3 artifact repository (``s3:`` in the ``artifact-repositories``
ConfigMap: endpoint, bucket, region, credentials), so that a compiled run's
artifacts end up as real objects exactly where ``compiler_outputs`` says they
are, and Canal's S3 store (``apps.storage``) reads them as the UI does.

What Argo does, and this does too (``workflow/artifacts/s3`` in Argo):

- **Save** (an output with ``archive: none``, which is what the compiler asks
  for): a file becomes the object ``key``; a directory becomes one object per
  file under ``key/`` (``key/a.txt``, ``key/sub/b.bin``), with no object for
  the directory itself and nothing for empty directories. Existing objects
  under the key are left alone. Argo's default ``tar.gz`` archive is not made:
  the interpreter hands the runner no archive setting, and every artifact is
  stored as with ``archive: none`` (save and load agree, so runs still work).
  Symlinks that point outside the artifact are not uploaded.
- **Load**: the object ``key`` when it exists, else every object under
  ``key/`` into the target directory, else "not found". A location's own
  ``bucket`` is honoured; its ``endpoint`` and credential Secrets are not
  (this repository has one S3 service and one set of credentials).
  ``raw`` artifacts carry their data inline.
- The location returned (what the node's ``outputs.artifacts`` show) is
  ``{"s3": {"endpoint": "host:port", "bucket": ..., "insecure": ..., "key": ...}}``
  (plus ``region`` when configured), the repository's fields relocated onto
  the artifact as Argo's executor reports them.

Keys are checked as Canal checks artifact paths (no ``..``, ``.`` or empty
segments, not absolute, no NUL or backslash), and objects listed under a
prefix are confined to the target directory. ``max_bytes`` bounds what one
artifact may hold, both ways.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from apps.storage.filesystem import iter_tree_files
from apps.storage.paths import UnsafePathError, check_relative, join_key, resolve_within

from .local_runner import ArtifactError, write_raw

__all__ = ["S3ArtifactRepository"]

_NOT_FOUND = ("404", "NoSuchKey", "NotFound")
_AWS_ENDPOINT = "s3.amazonaws.com"  # Argo's endpoint for AWS S3


def _s3_errors() -> tuple[type[Exception], ...]:
    """What boto3 raises when S3 answers with an error or cannot be reached."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError, Boto3Error)


def _clean_key(key: str) -> str:
    """The key without surrounding slashes; refuses keys that could be read as paths elsewhere."""
    if not isinstance(key, str):
        raise ArtifactError(f"artifact key {key!r} is not a string")
    try:
        check_relative(key)
    except UnsafePathError as exc:
        raise ArtifactError(f"artifact key {key!r} is not usable: {exc}") from None
    return key.rstrip("/")


class S3ArtifactRepository:
    """Artifacts as objects in one S3-compatible bucket (see the module docstring).

    ``bucket`` is the repository's bucket (where every output goes);
    ``endpoint_url`` the service's URL (``http://127.0.0.1:9000``; ``None`` is
    AWS S3), its scheme giving Argo's ``insecure``; ``region`` (default
    ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else ``us-east-1``);
    ``access_key_id`` / ``secret_access_key`` / ``session_token`` (default:
    boto3's usual chain, the ``AWS_*`` variables first). Requests are
    path-style on any endpoint but AWS's, as Argo's MinIO client makes them.
    ``client`` replaces the boto3 client (tests).
    """

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        max_bytes: int = 1024**3,
        client: Any = None,
    ) -> None:
        if not bucket or "/" in bucket:
            raise ValueError(f"{bucket!r} is not a bucket name")
        self.bucket = bucket
        self.endpoint_url = endpoint_url or None
        self.region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
        self.max_bytes = max_bytes
        parts = urlsplit(self.endpoint_url or "")
        if self.endpoint_url is not None and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise ValueError(f"the S3 endpoint {endpoint_url!r} is not an http(s):// URL")
        # Argo's S3 fields: endpoint is host:port, insecure says plain HTTP.
        self.endpoint = parts.netloc or _AWS_ENDPOINT
        self.insecure = parts.scheme == "http"
        self._credentials = (access_key_id, secret_access_key, session_token)
        self._client = client
        self._lock = threading.Lock()

    # -- the client ---------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The boto3 S3 client (made once; boto3 clients are thread-safe once made)."""
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                access, secret, token = self._credentials
                aws = self.endpoint_url is None or self.endpoint.endswith(".amazonaws.com")
                self._client = boto3.session.Session().client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    region_name=self.region or "us-east-1",
                    aws_access_key_id=access,
                    aws_secret_access_key=secret,
                    aws_session_token=token,
                    config=Config(
                        s3={"addressing_style": "auto" if aws else "path"},
                        retries={"max_attempts": 5, "mode": "standard"},
                    ),
                )
            return self._client

    def location(self, key: str, bucket: str | None = None) -> dict[str, Any]:
        """The Argo artifact location of ``key`` in ``bucket`` (default: the repository's)."""
        s3: dict[str, Any] = {"endpoint": self.endpoint, "bucket": bucket or self.bucket}
        if self.insecure:
            s3["insecure"] = True
        if self.region:
            s3["region"] = self.region
        s3["key"] = key
        return {"s3": s3}

    def check(self) -> None:
        """Raise ArtifactError unless the bucket can be reached (``HeadBucket``)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except _s3_errors() as exc:
            raise ArtifactError(f"the artifact bucket '{self.bucket}' at {self._where()}: {exc}") from None

    def _where(self) -> str:
        return self.endpoint_url or _AWS_ENDPOINT

    # -- the repository -------------------------------------------------------------------
    def save(self, source: Path, key: str) -> dict[str, Any]:
        """Upload a file as the object ``key``, or a directory's files under ``key/``."""
        clean = _clean_key(key)
        if source.is_symlink() or not (source.is_file() or source.is_dir()):
            raise ArtifactError(f"artifact '{key}': {source} is not a file or a directory")
        files = [("", source)] if source.is_file() else list(iter_tree_files(source))
        total = 0
        for _, path in files:
            total += path.stat().st_size
        if total > self.max_bytes:
            raise ArtifactError(f"the artifact is {total:,} bytes; at most {self.max_bytes:,} are kept")
        failures: tuple[type[Exception], ...] = (*_s3_errors(), OSError)
        try:
            for relative, path in files:
                self.client.upload_file(str(path), self.bucket, join_key(clean, relative))
        except failures as exc:
            raise ArtifactError(
                f"artifact '{key}' could not be uploaded to s3://{self.bucket} at {self._where()}: {exc}"
            ) from None
        return self.location(clean)

    def load(self, location: Mapping[str, Any], target: Path) -> None:
        """Download the artifact at ``location`` to ``target``: the object, or the objects under ``key/``."""
        if write_raw(location, target):
            return
        s3 = location.get("s3")
        if not isinstance(s3, Mapping) or s3.get("key") is None:
            raise ArtifactError(f"the artifact location {dict(location)!r} is not in an S3 repository")
        bucket = str(s3.get("bucket") or self.bucket)
        clean = _clean_key(str(s3["key"]))
        try:
            size = self._object_size(bucket, clean)
            if size is not None:
                self._check_size(size, bucket, clean)
                target.parent.mkdir(parents=True, exist_ok=True)
                self.client.download_file(bucket, clean, str(target))
                return
            objects = self._list(bucket, clean + "/")
            if not objects:
                raise ArtifactError(f"artifact '{clean}' does not exist in s3://{bucket} at {self._where()}")
            self._check_size(sum(size for _, size in objects), bucket, clean)
            target.mkdir(parents=True, exist_ok=True)
            for object_key, _ in objects:
                relative = object_key[len(clean) + 1 :]
                if not relative or relative.endswith("/"):
                    continue  # a "folder" marker some tools make
                # Whoever wrote the bucket chose the keys: each file stays inside target.
                try:
                    path = resolve_within(target, relative)
                except UnsafePathError as exc:
                    raise ArtifactError(
                        f"object '{object_key}' cannot be placed in {target}: {exc}"
                    ) from None
                path.parent.mkdir(parents=True, exist_ok=True)
                self.client.download_file(bucket, object_key, str(path))
        except _s3_errors() as exc:
            raise ArtifactError(
                f"artifact '{clean}' could not be downloaded from s3://{bucket} at {self._where()}: {exc}"
            ) from None

    def _check_size(self, size: int, bucket: str, key: str) -> None:
        if size > self.max_bytes:
            raise ArtifactError(
                f"artifact s3://{bucket}/{key} is {size:,} bytes; at most {self.max_bytes:,} are fetched"
            )

    def _object_size(self, bucket: str, key: str) -> int | None:
        """The object's size, None when there is no object at exactly ``key``."""
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _NOT_FOUND:
                return None
            raise
        return int(cast(Mapping[str, Any], head)["ContentLength"])

    def _list(self, bucket: str, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of every object under ``prefix``."""
        found: list[tuple[str, int]] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                found.append((str(item["Key"]), int(item["Size"])))
        return found
