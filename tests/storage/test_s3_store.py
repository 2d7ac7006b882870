"""The S3 store against a real (moto) S3 server on 127.0.0.1, not mocks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from apps.storage import ArtifactNotFound, S3Store, StoreConfig, UnsafePathError, get_store


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[S3Store, Any]]:
    # Credentials come from boto3's normal chain; moto accepts any.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    config = StoreConfig(s3_endpoint_url=endpoint, s3_region="us-east-1")
    store = get_store("s3://artifacts/x", config)
    assert isinstance(store, S3Store)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="artifacts")
    client.create_bucket(Bucket="mlpipeline")
    try:
        yield store, client
    finally:
        for bucket in ("artifacts", "mlpipeline"):
            for obj in client.list_objects_v2(Bucket=bucket).get("Contents", []):
                client.delete_object(Bucket=bucket, Key=obj["Key"])
            client.delete_bucket(Bucket=bucket)


def test_file_round_trip(s3: tuple[S3Store, Any], tmp_path: Path) -> None:
    store, client = s3
    src = tmp_path / "model.bin"
    src.write_bytes(b"0123456789" * 100)
    uri = "s3://artifacts/p/r/t/u/model"
    store.stage_out(src, uri)
    assert client.get_object(Bucket="artifacts", Key="p/r/t/u/model")["Body"].read() == src.read_bytes()
    stat = store.stat(uri)
    assert stat.size == 1000
    assert not stat.is_dir
    assert store.local_path(uri) is None

    dest = tmp_path / "in" / "model"
    store.stage_in(uri, dest)
    assert dest.read_bytes() == src.read_bytes()

    with store.open(uri, limit=5) as handle:
        assert handle.read() == b"01234"
    with store.open(uri) as handle:
        assert len(handle.read()) == 1000
    preview = store.preview(uri, 255)
    assert len(preview.data) == 255
    assert preview.truncated
    assert preview.size == 1000


def test_directory_artifacts(s3: tuple[S3Store, Any], tmp_path: Path) -> None:
    store, _ = s3
    src = tmp_path / "ds"
    (src / "part").mkdir(parents=True)
    (src / "a.csv").write_text("a,b\n")
    (src / "part" / "0.csv").write_text("1,2\n")
    outside = tmp_path / "secret"
    outside.write_text("nope")
    (src / "leak").symlink_to(outside)
    uri = "s3://artifacts/p/r/t/u/ds"
    store.stage_out(src, uri)

    stat = store.stat(uri)
    assert stat.is_dir
    assert stat.file_count == 2
    assert stat.size == 8
    assert sorted(e.relative_path for e in store.list_files(uri)) == ["a.csv", "part/0.csv"]
    dest = tmp_path / "staged"
    store.stage_in(uri, dest)
    assert (dest / "part" / "0.csv").read_text() == "1,2\n"
    assert not (dest / "leak").exists()

    store.delete(uri)
    with pytest.raises(ArtifactNotFound):
        store.stat(uri)


def test_hostile_keys_do_not_escape_on_stage_in(s3: tuple[S3Store, Any], tmp_path: Path) -> None:
    store, client = s3
    client.put_object(Bucket="artifacts", Key="d/ok.txt", Body=b"ok")
    client.put_object(Bucket="artifacts", Key="d/../../escaped.txt", Body=b"bad")
    dest = tmp_path / "a" / "b" / "dest"
    with pytest.raises(UnsafePathError):
        store.stage_in("s3://artifacts/d", dest)
    assert not (tmp_path / "a" / "escaped.txt").exists()
    assert not (tmp_path / "escaped.txt").exists()


def test_minio_scheme_maps_to_the_configured_endpoint(s3: tuple[S3Store, Any], tmp_path: Path) -> None:
    store, client = s3
    client.put_object(Bucket="mlpipeline", Key="v2/artifacts/x.txt", Body=b"minio")
    minio_store = get_store("minio://mlpipeline/v2/artifacts/x.txt", store.config)
    assert minio_store is store
    with store.open("minio://mlpipeline/v2/artifacts/x.txt") as handle:
        assert handle.read() == b"minio"


def test_missing_and_resolve(s3: tuple[S3Store, Any]) -> None:
    store, client = s3
    client.put_object(Bucket="artifacts", Key="empty", Body=b"")
    assert store.preview("s3://artifacts/empty", 10).data == b""
    assert not store.exists("s3://artifacts/nothing/here")
    with pytest.raises(ArtifactNotFound):
        store.open("s3://artifacts/nothing")
    base = "s3://artifacts/p/r/t/u/ds"
    assert store.resolve("part/0.csv", base=base) == "s3://artifacts/p/r/t/u/ds/part/0.csv"
    for hostile in ("../other", "..%2fother", "/abs", "a#b", "a\\b", "a/../../b"):
        with pytest.raises(UnsafePathError):
            store.resolve(hostile, base=base)
