"""S3-compatible artifact store (boto3) for ``s3://`` and ``minio://`` URIs."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

from apps.storage.base import (
    ArtifactEntry,
    ArtifactNotFound,
    ArtifactStat,
    ArtifactStore,
    StorageError,
    StoreConfig,
    limited_reader,
    register_store,
    uri_scheme,
)
from apps.storage.filesystem import iter_tree_files
from apps.storage.paths import check_relative, join_key, resolve_within

__all__ = ["S3Store"]


@register_store("s3", "minio")
class S3Store(ArtifactStore):
    """Objects in an S3-compatible service; a "directory" artifact is a key prefix.

    ``minio://bucket/key`` is served by ``config.minio_endpoint_url`` (default:
    the S3 endpoint), as KFP's launcher maps it to its in-cluster MinIO.
    """

    def __init__(self, config: StoreConfig) -> None:
        super().__init__(config)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _client(self, scheme: str) -> Any:
        # boto3 clients are thread-safe once made, but making them is not
        # (and costs tens of milliseconds), so make one per endpoint, once.
        with self._lock:
            client = self._clients.get(scheme)
            if client is None:
                import boto3
                from botocore.config import Config

                endpoint = self.config.s3_endpoint_url
                if scheme == "minio":
                    endpoint = self.config.minio_endpoint_url or endpoint
                style = "path" if self.config.s3_path_style else "auto"
                client = boto3.session.Session().client(
                    "s3",
                    endpoint_url=endpoint or None,
                    region_name=self.config.s3_region,
                    config=Config(s3={"addressing_style": style}, retries={"max_attempts": 5}),
                )
                self._clients[scheme] = client
            return client

    @staticmethod
    def _split(uri: str) -> tuple[str, str, str]:
        scheme = uri_scheme(uri)
        if scheme not in ("s3", "minio"):
            raise StorageError(f"not an S3 URI: {uri!r}")
        parts = urlsplit(uri)
        bucket = parts.netloc
        key = parts.path.lstrip("/")
        if not bucket or "\x00" in uri:
            raise StorageError(f"malformed S3 URI: {uri!r}")
        return scheme, bucket, key

    def _head(self, client: Any, bucket: str, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        if not key or key.endswith("/"):
            return None
        try:
            return cast(dict[str, Any], client.head_object(Bucket=bucket, Key=key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StorageError(f"cannot stat s3://{bucket}/{key}: {exc}") from exc

    def _list(self, client: Any, bucket: str, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of every object under ``prefix/``."""
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        found: list[tuple[str, int]] = []
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                found.append((cast(str, obj["Key"]), int(obj["Size"])))
        return found

    def local_path(self, uri: str) -> Path | None:
        """S3 objects have no local path."""
        return None

    def stat(self, uri: str) -> ArtifactStat:
        """Size of the object, or total size of the objects under the prefix."""
        scheme, bucket, key = self._split(uri)
        client = self._client(scheme)
        head = self._head(client, bucket, key)
        if head is not None:
            return ArtifactStat(uri=uri, size=int(head["ContentLength"]), is_dir=False)
        objects = self._list(client, bucket, key)
        if not objects:
            raise ArtifactNotFound(uri)
        return ArtifactStat(uri=uri, size=sum(s for _, s in objects), is_dir=True, file_count=len(objects))

    def list_files(self, uri: str) -> list[ArtifactEntry]:
        """Objects under the prefix, relative to it; the object itself for a file."""
        scheme, bucket, key = self._split(uri)
        client = self._client(scheme)
        head = self._head(client, bucket, key)
        if head is not None:
            return [ArtifactEntry(relative_path="", size=int(head["ContentLength"]))]
        prefix = key.rstrip("/") + "/" if key else ""
        objects = self._list(client, bucket, key)
        if not objects:
            raise ArtifactNotFound(uri)
        return [ArtifactEntry(k[len(prefix) :], size) for k, size in objects]

    def stage_in(self, uri: str, dest: Path) -> Path:
        """Download the object, or every object under the prefix into the directory ``dest``."""
        scheme, bucket, key = self._split(uri)
        client = self._client(scheme)
        if self._head(client, bucket, key) is not None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, key, str(dest))
            return dest
        prefix = key.rstrip("/") + "/" if key else ""
        objects = self._list(client, bucket, key)
        if not objects:
            raise ArtifactNotFound(uri)
        dest.mkdir(parents=True, exist_ok=True)
        for obj_key, _ in objects:
            rel = obj_key[len(prefix) :]
            if rel == "" or rel.endswith("/"):
                continue  # a "folder marker" object made by some S3 consoles
            # Keys are chosen by whoever wrote the bucket: confine each one to
            # dest so a key like "x/../../etc/cron.d/job" writes nothing outside.
            target = resolve_within(dest, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, obj_key, str(target))
        return dest

    def stage_out(self, src: Path, uri: str) -> None:
        """Upload a file to the key, or a directory's files under the prefix."""
        scheme, bucket, key = self._split(uri)
        client = self._client(scheme)
        if src.is_file():
            client.upload_file(str(src), bucket, key)
        elif src.is_dir():
            for rel, path in iter_tree_files(src):
                client.upload_file(str(path), bucket, join_key(key, rel))
        else:
            raise ArtifactNotFound(str(src))

    def open(self, uri: str, *, limit: int | None = None) -> BinaryIO:
        """Stream the object; with ``limit`` only that many bytes are even requested."""
        from botocore.exceptions import ClientError

        scheme, bucket, key = self._split(uri)
        client = self._client(scheme)
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if limit is not None:
            if limit <= 0:
                return io.BytesIO(b"")
            kwargs["Range"] = f"bytes=0-{limit - 1}"
        try:
            response = client.get_object(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("404", "NoSuchKey", "NotFound"):
                raise ArtifactNotFound(uri) from exc
            if code == "InvalidRange":  # an empty object has no byte 0
                return io.BytesIO(b"")
            raise StorageError(f"cannot read {uri}: {exc}") from exc
        return limited_reader(cast(BinaryIO, response["Body"]), limit)

    def delete(self, uri: str) -> None:
        """Delete the object, or every object under the prefix."""
        scheme, bucket, key = self._split(uri)
        client = self._client(scheme)
        keys = [key] if self._head(client, bucket, key) is not None else []
        keys += [k for k, _ in self._list(client, bucket, key)]
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})

    def resolve(self, user_path: str, *, base: str | None = None) -> str:
        """URI of ``user_path`` under ``base`` (required: S3 has no configured root)."""
        if base is None:
            raise StorageError("S3 paths are resolved relative to an artifact or pipeline-root URI")
        scheme, bucket, key = self._split(base)
        segments = check_relative(user_path)
        return f"{scheme}://{bucket}/{join_key(key, *segments)}"
