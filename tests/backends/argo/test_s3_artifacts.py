"""S3ArtifactRepository against a real S3 service (moto's server on 127.0.0.1), not mocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.backends.argo.local_runner import ArtifactError
from apps.backends.argo.s3_artifacts import S3ArtifactRepository
from apps.storage import StoreConfig, get_store
from tests.backends.argo.conftest import CREDENTIALS, REGION, s3_client


def _objects(endpoint: str, bucket: str) -> dict[str, bytes]:
    client = s3_client(endpoint)
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_file_is_one_object_at_its_key_and_comes_back(
    s3_repository: S3ArtifactRepository, moto_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(bytes(range(256)) * 40)
    location = s3_repository.save(source, "wf/wf-pod/model")
    host = moto_endpoint.removeprefix("http://")
    # Argo's S3 artifact as its executor reports it: the repository relocated onto the key.
    assert location == {
        "s3": {
            "endpoint": host,
            "bucket": bucket,
            "insecure": True,
            "region": REGION,
            "key": "wf/wf-pod/model",
        }
    }
    assert _objects(moto_endpoint, bucket) == {"wf/wf-pod/model": source.read_bytes()}

    target = tmp_path / "pod" / "tmp" / "in.bin"
    s3_repository.load(location, target)
    assert target.read_bytes() == source.read_bytes()
    # A key-only location (what a template's own `s3: {key: ...}` gives) reads the repository's bucket.
    again = tmp_path / "again.bin"
    s3_repository.load({"s3": {"key": "wf/wf-pod/model"}}, again)
    assert again.read_bytes() == source.read_bytes()


def test_a_directory_is_one_object_per_file_under_key_slash(
    s3_repository: S3ArtifactRepository,
    moto_endpoint: str,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outputs = tmp_path / "outputs"
    (outputs / "sub" / "deeper").mkdir(parents=True)
    (outputs / "empty").mkdir()
    (outputs / "a.txt").write_text("alpha")
    (outputs / "sub" / "b.json").write_text('{"b": 1}')
    (outputs / "sub" / "deeper" / "c.bin").write_bytes(b"\x00\x01")
    (outputs / "zero").write_bytes(b"")
    secret = tmp_path / "host-secret"
    secret.write_text("not the pod's")
    (outputs / "leak").symlink_to(secret)  # leaves the artifact: not uploaded
    (outputs / "alias").symlink_to(outputs / "a.txt")  # inside it: uploaded as the file it names

    location = s3_repository.save(outputs, "root/p/run/task/k1/")
    assert location["s3"]["key"] == "root/p/run/task/k1"
    assert _objects(moto_endpoint, bucket) == {
        "root/p/run/task/k1/a.txt": b"alpha",
        "root/p/run/task/k1/alias": b"alpha",
        "root/p/run/task/k1/sub/b.json": b'{"b": 1}',
        "root/p/run/task/k1/sub/deeper/c.bin": b"\x00\x01",
        "root/p/run/task/k1/zero": b"",
    }

    target = tmp_path / "pod" / "canal" / "inputs" / "s0"
    s3_repository.load(location, target)
    assert _tree(target) == {
        "a.txt": b"alpha",
        "alias": b"alpha",
        "sub/b.json": b'{"b": 1}',
        "sub/deeper/c.bin": b"\x00\x01",
        "zero": b"",
    }
    # A prefix is a directory only up to a '/': k1 is not k10.
    other = tmp_path / "k10"
    other.mkdir()
    (other / "x").write_text("x")
    s3_repository.save(other, "root/p/run/task/k10")
    fresh = tmp_path / "fresh"
    s3_repository.load(location, fresh)
    assert sorted(_tree(fresh)) == ["a.txt", "alias", "sub/b.json", "sub/deeper/c.bin", "zero"]

    # Canal's S3 store (what the UI reads through) sees the directory and each output in it.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    store = get_store(f"s3://{bucket}/root", StoreConfig(s3_endpoint_url=moto_endpoint, s3_region=REGION))
    uri = f"s3://{bucket}/root/p/run/task/k1"
    assert store.stat(uri).is_dir
    assert sorted(e.relative_path for e in store.list_files(uri)) == [
        "a.txt",
        "alias",
        "sub/b.json",
        "sub/deeper/c.bin",
        "zero",
    ]
    with store.open(f"{uri}/sub/b.json") as handle:
        assert handle.read() == b'{"b": 1}'


def test_raw_artifacts_and_locations_in_another_bucket(
    s3_repository: S3ArtifactRepository, moto_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    target = tmp_path / "raw" / "in.txt"
    s3_repository.load({"raw": {"data": "inline text\n"}}, target)
    assert target.read_text() == "inline text\n"

    # An imported object may be in any bucket: the location's own bucket is read, and its
    # endpoint and credential Secrets (a cluster's) are not what this repository uses.
    client = s3_client(moto_endpoint)
    client.create_bucket(Bucket=f"{bucket}-imports")
    client.put_object(Bucket=f"{bucket}-imports", Key="data/set.csv", Body=b"a,b\n1,2\n")
    location = {
        "s3": {
            "endpoint": "minio-service.kubeflow:9000",
            "bucket": f"{bucket}-imports",
            "insecure": True,
            "accessKeySecret": {"name": "mlpipeline-minio-artifact", "key": "accesskey"},
            "key": "data/set.csv",
        }
    }
    s3_repository.load(location, tmp_path / "set.csv")
    assert (tmp_path / "set.csv").read_bytes() == b"a,b\n1,2\n"


def test_missing_artifacts_and_foreign_locations_are_errors(
    s3_repository: S3ArtifactRepository, moto_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    with pytest.raises(ArtifactError, match=f"artifact 'wf/none' does not exist in s3://{bucket}"):
        s3_repository.load({"s3": {"key": "wf/none"}}, tmp_path / "x")
    with pytest.raises(ArtifactError, match="does not exist"):
        s3_repository.load({"s3": {"bucket": bucket, "key": "wf/none/"}}, tmp_path / "x")
    with pytest.raises(ArtifactError, match="could not be downloaded"):
        s3_repository.load({"s3": {"bucket": f"{bucket}-nowhere", "key": "k"}}, tmp_path / "x")
    with pytest.raises(ArtifactError, match="not in an S3 repository"):
        s3_repository.load({"gcs": {"bucket": "b", "key": "k"}}, tmp_path / "x")
    with pytest.raises(ArtifactError, match="not in an S3 repository"):
        s3_repository.load({"s3": {"bucket": bucket}}, tmp_path / "x")
    assert not (tmp_path / "x").exists()

    missing = S3ArtifactRepository(f"{bucket}-nowhere", endpoint_url=moto_endpoint, **CREDENTIALS)
    (tmp_path / "f").write_text("f")
    with pytest.raises(ArtifactError, match="could not be uploaded"):
        missing.save(tmp_path / "f", "k")
    with pytest.raises(ArtifactError, match="nowhere"):
        missing.check()
    s3_repository.check()
    with pytest.raises(ArtifactError, match="not a file or a directory"):
        s3_repository.save(tmp_path / "absent", "k")


@pytest.mark.parametrize(
    "key", ["", "/abs/key", "../up", "a/../../b", "a/./b", "a//b", "a\\b", "a\x00b", "..%2fup", "a/b?c"]
)
def test_unsafe_keys_are_refused_both_ways(
    s3_repository: S3ArtifactRepository, moto_endpoint: str, bucket: str, tmp_path: Path, key: str
) -> None:
    (tmp_path / "f").write_text("f")
    with pytest.raises(ArtifactError, match="is not usable"):
        s3_repository.save(tmp_path / "f", key)
    with pytest.raises(ArtifactError, match="is not usable"):
        s3_repository.load({"s3": {"key": key}}, tmp_path / "in")
    assert _objects(moto_endpoint, bucket) == {}


def test_objects_listed_under_a_prefix_stay_inside_the_target(
    s3_repository: S3ArtifactRepository, moto_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    # Whoever wrote the bucket chose these keys; none of them may place a file outside.
    s3_client(moto_endpoint).put_object(Bucket=bucket, Key="d/x/../../../escaped", Body=b"evil")
    target = tmp_path / "deep" / "target"
    with pytest.raises(ArtifactError, match="cannot be placed"):
        s3_repository.load({"s3": {"key": "d"}}, target)
    assert [p.name for p in tmp_path.rglob("escaped")] == []


def test_sizes_are_bounded_both_ways(moto_endpoint: str, bucket: str, tmp_path: Path) -> None:
    small = S3ArtifactRepository(bucket, endpoint_url=moto_endpoint, max_bytes=10, **CREDENTIALS)
    big = tmp_path / "big"
    big.mkdir()
    (big / "a").write_bytes(b"x" * 6)
    (big / "b").write_bytes(b"y" * 6)
    with pytest.raises(ArtifactError, match="12 bytes; at most 10"):
        small.save(big, "wf/big")
    assert _objects(moto_endpoint, bucket) == {}
    roomy = S3ArtifactRepository(bucket, endpoint_url=moto_endpoint, **CREDENTIALS)
    location = roomy.save(big, "wf/big")
    with pytest.raises(ArtifactError, match="12 bytes; at most 10 are fetched"):
        small.load(location, tmp_path / "in")
    with pytest.raises(ArtifactError, match="6 bytes; at most 5 are fetched"):
        S3ArtifactRepository(bucket, endpoint_url=moto_endpoint, max_bytes=5, **CREDENTIALS).load(
            {"s3": {"key": "wf/big/a"}}, tmp_path / "a"
        )


def test_configuration_like_argos_s3_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    monkeypatch.delenv("AWS_REGION", raising=False)
    aws = S3ArtifactRepository("models")
    assert aws.location("k") == {
        "s3": {"endpoint": "s3.amazonaws.com", "bucket": "models", "region": "eu-west-3", "key": "k"}
    }
    tls = S3ArtifactRepository("models", endpoint_url="https://minio.example:9000", region="r1")
    assert tls.location("k", "other") == {
        "s3": {"endpoint": "minio.example:9000", "bucket": "other", "region": "r1", "key": "k"}
    }
    for bad in ("minio:9000", "ftp://host"):
        with pytest.raises(ValueError, match="not an http"):
            S3ArtifactRepository("models", endpoint_url=bad)
    with pytest.raises(ValueError, match="not a bucket name"):
        S3ArtifactRepository("a/b")
