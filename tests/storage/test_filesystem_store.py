"""The filesystem artifact store: URIs, staging, previews and confined downloads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from apps.storage import (
    ArtifactNotFound,
    FilesystemStore,
    StorageError,
    StoreConfig,
    UnsafePathError,
    build_artifact_uri,
    get_store,
    kfp_local_path,
)


@pytest.fixture
def store(tmp_path: Path) -> FilesystemStore:
    root = tmp_path / "root"
    root.mkdir()
    store = get_store(str(root), StoreConfig(root=str(root)))
    assert isinstance(store, FilesystemStore)
    return store


def test_artifact_uri_layout_matches_kfp(tmp_path: Path) -> None:
    uri = build_artifact_uri(str(tmp_path) + "/", "my-pipe", "run-1", "train", "model", unique="u1")
    assert uri == f"{tmp_path}/my-pipe/run-1/train/u1/model"
    s3 = build_artifact_uri("s3://bucket/v2/artifacts", "p", "r", "t", "out")
    assert s3.startswith("s3://bucket/v2/artifacts/p/r/t/")
    assert s3.endswith("/out")
    # A hostile name cannot move the artifact elsewhere.
    assert build_artifact_uri("/root", "../../etc", "r", "t", "o", unique="u") == "/root/..-..-etc/r/t/u/o"


def test_plain_paths_and_file_uris(store: FilesystemStore, tmp_path: Path) -> None:
    f = tmp_path / "root" / "a b.txt"
    f.write_bytes(b"hello")
    assert store.local_path(str(f)) == f
    assert store.local_path(f"file://{tmp_path}/root/a%20b.txt") == f
    assert get_store(f"file://{f}") is not None
    assert store.stat(str(f)).size == 5
    assert not store.stat(str(f)).is_dir
    with pytest.raises(StorageError):
        store.local_path("relative/path")
    with pytest.raises(StorageError):
        store.local_path("file://otherhost/etc/passwd")
    assert kfp_local_path(str(f)) == str(f)
    assert kfp_local_path("s3://b/k/x") == "/s3/b/k/x"
    assert kfp_local_path("minio://mlpipeline/v2/a") == "/minio/mlpipeline/v2/a"


def test_directory_artifacts_stage_in_and_out(store: FilesystemStore, tmp_path: Path) -> None:
    src = tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.txt").write_text("BB")
    secret = tmp_path / "secret"
    secret.write_text("do not copy")
    (src / "leak").symlink_to(secret)

    uri = str(tmp_path / "root" / "p" / "r" / "t" / "u" / "ds")
    store.stage_out(src, uri)
    stat = store.stat(uri)
    assert stat.is_dir
    assert stat.size == 3
    assert stat.file_count == 2
    assert [e.relative_path for e in store.list_files(uri)] == ["a.txt", "sub/b.txt"]
    assert not (Path(uri) / "leak").exists()

    dest = tmp_path / "staged"
    assert store.stage_in(uri, dest) == dest
    assert (dest / "sub" / "b.txt").read_text() == "BB"
    # Staging onto itself is a no-op, not a self-copy.
    store.stage_in(uri, Path(uri))
    assert (Path(uri) / "a.txt").read_text() == "A"

    store.delete(uri)
    assert not store.exists(uri)
    with pytest.raises(ArtifactNotFound):
        store.stat(uri)


def test_open_with_limit_and_preview(store: FilesystemStore, tmp_path: Path) -> None:
    f = tmp_path / "root" / "big.bin"
    f.write_bytes(b"x" * 1000)
    with store.open(str(f), limit=10) as handle:
        assert handle.read() == b"x" * 10
    preview = store.preview(str(f), 255)
    assert preview.size == 1000
    assert len(preview.data) == 255
    assert preview.truncated
    small = tmp_path / "root" / "small.txt"
    small.write_bytes(b"hi")
    assert store.preview(str(small), 255).truncated is False
    with pytest.raises(ArtifactNotFound):
        store.open(str(tmp_path / "root" / "missing"))


def test_resolve_confines_downloads_to_the_root(store: FilesystemStore, tmp_path: Path) -> None:
    root = tmp_path / "root"
    art = root / "p" / "r" / "t" / "u" / "ds"
    art.mkdir(parents=True)
    (art / "f.txt").write_text("ok")
    (root / "evil").symlink_to("/etc")
    (art / "evil2").symlink_to(tmp_path)

    assert store.resolve("p/r/t/u/ds/f.txt") == os.path.realpath(art / "f.txt")
    assert store.resolve("f.txt", base=str(art)) == os.path.realpath(art / "f.txt")
    for hostile in ("../x", "..%2fx", "/etc/passwd", "a#b", "a\\b", "evil/passwd", "a\x00b"):
        with pytest.raises(UnsafePathError):
            store.resolve(hostile)
    with pytest.raises(UnsafePathError):
        store.resolve("evil2/secret", base=str(art))
    with pytest.raises(UnsafePathError):
        store.resolve("passwd", base="/etc")
    assert store.contains(str(art / "f.txt"))
    assert not store.contains("/etc/passwd")
    assert not store.contains(str(root / "evil" / "passwd"))


def test_resolve_needs_a_root(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        get_store(str(tmp_path), StoreConfig()).resolve("x")
