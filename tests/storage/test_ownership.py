"""Which storage a namespace owns (apps.storage.ownership): normalisation of URIs and
roots, and the ownership rule, with runs looked up from a plain dict (no database)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from apps.storage import build_artifact_uri
from apps.storage.ownership import (
    Location,
    LocationError,
    RunDir,
    StorageScope,
    check_pipeline_root,
    confine_path,
    owning_prefix,
    parse_location,
    run_id_candidates,
    storage_scope,
)
from apps.storage.paths import UnsafePathError

# --- normalisation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/data/artifacts", "/data/artifacts"),
        ("/data//artifacts/", "/data/artifacts"),
        ("file:///data/artifacts", "/data/artifacts"),
        ("file://localhost/data/artifacts", "/data/artifacts"),
        ("file:///data/my%20dir", "/data/my dir"),
        ("S3://bucket/prefix/", "s3://bucket/prefix"),
        ("s3://bucket", "s3://bucket"),
        ("minio://mlpipeline/v2/artifacts", "minio://mlpipeline/v2/artifacts"),
        ("gs://ml-pipeline-playground/shakespeare1.txt", "gs://ml-pipeline-playground/shakespeare1.txt"),
    ],
)
def test_locations_normalise_to_one_form(text: str, expected: str) -> None:
    assert parse_location(text, resolve_symlinks=False).uri == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "..",
        "relative/dir",
        "/data/../etc",
        "/data/./x",
        "file:///data/%2e%2e/etc",
        "file://evil.example/etc/passwd",
        "s3://bucket/a//b",
        "s3://bucket/a/../b",
        "s3:///key-without-bucket",
        "http://user:pw@host/x",
        "s3://bucket/x?versionId=1",
        "/data/x#frag",
        "/data/x\x00y",
        "/data\\x",
        "/data/line\nbreak",
    ],
)
def test_ambiguous_locations_are_refused(text: str) -> None:
    with pytest.raises(LocationError):
        parse_location(text)


def test_local_locations_resolve_symlinks(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    assert parse_location(str(tmp_path / "link" / "x")).uri == str(real.resolve() / "x")
    assert parse_location(f"file://{tmp_path}/link").uri == str(real.resolve())


def test_containment_is_segment_wise() -> None:
    root = parse_location("/data/artifacts", resolve_symlinks=False)
    assert root.contains(parse_location("/data/artifacts/p/r", resolve_symlinks=False))
    assert root.contains(root)
    assert not root.contains(parse_location("/data/artifacts2/p", resolve_symlinks=False))
    assert not root.contains(parse_location("/data", resolve_symlinks=False))
    s3 = parse_location("s3://bucket/root")
    assert s3.contains(parse_location("s3://bucket/root/x"))
    assert not s3.contains(parse_location("s3://bucket/rootx"))
    assert not s3.contains(parse_location("minio://bucket/root/x"))
    assert not s3.contains(parse_location("s3://other/root/x"))


# --- configured roots and pipeline_root -----------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "artifacts"
    path.mkdir()
    return path.resolve()


@pytest.fixture
def scope(root: Path) -> StorageScope:
    return storage_scope([str(root), "s3://canal-bucket/roots"], ["gs://public-data/sets", "/srv/shared"])


def test_configuration_is_validated() -> None:
    with pytest.raises(LocationError, match="filesystem root"):
        storage_scope(["/"])
    with pytest.raises(LocationError, match="no store for http"):
        storage_scope(["http://example.com/x"])
    with pytest.raises(LocationError, match="relative"):
        storage_scope(["/ok", "relative"])
    with pytest.raises(LocationError, match="overlaps the pipeline root"):
        storage_scope(["/data/artifacts"], ["/data"])
    with pytest.raises(LocationError, match="overlaps the pipeline root"):
        storage_scope(["/data/artifacts"], ["/data/artifacts/shared"])
    with pytest.raises(LocationError, match="whole filesystem"):
        storage_scope(["/data/artifacts"], ["/"])
    assert storage_scope(["/a", "/a/"]).roots == (Location("", "", ("a",)),)


def test_pipeline_root_must_be_a_configured_root_or_inside_one(root: Path, scope: StorageScope) -> None:
    assert check_pipeline_root(str(root), scope) == str(root)
    assert check_pipeline_root(f"{root}//team/", scope) == f"{root}/team"
    assert check_pipeline_root(f"file://{root}/team", scope) == f"{root}/team"
    assert check_pipeline_root("s3://canal-bucket/roots/team", scope) == "s3://canal-bucket/roots/team"
    for bad in [
        "/",
        "..",
        f"{root}/../x",
        "file:///",
        "http://x",
        "s3://other-bucket/roots",
        str(root.parent),
    ]:
        with pytest.raises(LocationError) as err:
            check_pipeline_root(bad, scope)
        # The message names what is allowed.
        assert str(root) in str(err.value) and "s3://canal-bucket/roots" in str(err.value), bad


def test_a_symlink_inside_a_root_cannot_make_a_root_elsewhere(
    root: Path, scope: StorageScope, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "escape").symlink_to(elsewhere)
    with pytest.raises(LocationError):
        check_pipeline_root(f"{root}/escape/sub", scope)


# --- ownership --------------------------------------------------------------------------------------


def _lookup(runs: dict[str, RunDir]):  # type: ignore[no-untyped-def]
    """A namespace's runs, as the selector looks them up: only ids asked for."""
    asked: list[Sequence[str]] = []

    def runs_of_namespace(ids: Sequence[str]) -> Iterable[RunDir]:
        asked.append(tuple(ids))
        return [runs[i] for i in ids if i in runs]

    runs_of_namespace.asked = asked  # type: ignore[attr-defined]
    return runs_of_namespace


def _run(root: str | Path, name: str = "my-pipeline") -> RunDir:
    return RunDir(str(uuid.uuid4()), str(root), name)


def _uri(run: RunDir, task: str = "train", output: str = "model") -> str:
    return build_artifact_uri(run.pipeline_root, run.pipeline_name, run.run_id, task, output)


def test_a_namespace_owns_its_runs_directories(root: Path, scope: StorageScope) -> None:
    mine = _run(root)
    theirs = _run(root)
    lookup = _lookup({mine.run_id: mine})  # the namespace's runs: only mine
    owned = owning_prefix(_uri(mine), scope=scope, runs=lookup)
    assert owned is not None and owned.uri == f"{root}/my-pipeline/{mine.run_id}"
    assert owning_prefix(f"{root}/my-pipeline/{mine.run_id}", scope=scope, runs=lookup) == owned
    assert owning_prefix(_uri(theirs), scope=scope, runs=lookup) is None
    assert owning_prefix(f"{root}/my-pipeline/{theirs.run_id}", scope=scope, runs=lookup) is None


@pytest.mark.parametrize(
    "make",
    [
        lambda root, run: str(root),  # the artifact root itself
        lambda root, run: f"{root}/my-pipeline",  # the pipeline's directory, all its runs
        lambda root, run: f"{root}/other-pipeline/{run.run_id}/t/u/o",  # the run id under another name
        lambda root, run: f"{root}/my-pipeline/{run.run_id}/../{uuid.uuid4()}",
        lambda root, run: f"{root}/my-pipeline/{run.run_id}/%2e%2e/x",  # literal, and still inside
        lambda root, run: "/etc/passwd",
        lambda root, run: "file:///etc/passwd",
        lambda root, run: f"/tmp/{run.run_id}/x",  # a run id outside every root
        lambda root, run: f"s3://canal-bucket/roots/my-pipeline/{run.run_id}/x",  # same id, other store
        lambda root, run: "gs://public-data",  # the bucket above an allowed prefix
    ],
)
def test_nothing_else_is_owned(root: Path, scope: StorageScope, make) -> None:  # type: ignore[no-untyped-def]
    mine = _run(root)
    uri = make(root, mine)
    owned = owning_prefix(uri, scope=scope, runs=_lookup({mine.run_id: mine}))
    if "%2e%2e" in uri:
        assert owned is not None  # not a traversal: a directory literally named '%2e%2e'
    else:
        assert owned is None, uri


def test_allowed_import_prefixes_are_owned_by_every_namespace(root: Path, scope: StorageScope) -> None:
    lookup = _lookup({})
    owned = owning_prefix("gs://public-data/sets/iris.csv", scope=scope, runs=lookup)
    assert owned is not None and owned.uri == "gs://public-data/sets"
    assert owning_prefix("/srv/shared/x", scope=scope, runs=lookup) is not None
    assert owning_prefix("gs://public-data/setsx", scope=scope, runs=lookup) is None
    assert lookup.asked == []  # no run lookup needed


def test_sub_path_roots_and_s3_roots(root: Path, scope: StorageScope) -> None:
    team = _run(f"{root}/team-a/nested")
    remote = _run("s3://canal-bucket/roots/x")
    lookup = _lookup({team.run_id: team, remote.run_id: remote})
    assert owning_prefix(_uri(team), scope=scope, runs=lookup) is not None
    assert owning_prefix(_uri(remote), scope=scope, runs=lookup) is not None
    # A run whose root is not configured owns nothing, even its own directory.
    stray = _run("s3://unconfigured/root")
    assert owning_prefix(_uri(stray), scope=scope, runs=_lookup({stray.run_id: stray})) is None
    legacy = _run("/")
    assert owning_prefix(_uri(legacy), scope=scope, runs=_lookup({legacy.run_id: legacy})) is None


def test_symlinks_are_resolved_before_ownership(root: Path, scope: StorageScope) -> None:
    mine, theirs = _run(root), _run(root)
    their_file = Path(_uri(theirs))
    their_file.parent.mkdir(parents=True)
    their_file.write_text("secret")
    # A link in my run's directory pointing at their artifact is their artifact.
    link = Path(_uri(mine))
    link.parent.mkdir(parents=True)
    link.symlink_to(their_file)
    assert owning_prefix(str(link), scope=scope, runs=_lookup({mine.run_id: mine})) is None
    os.unlink(link)
    link.write_text("mine")
    assert owning_prefix(str(link), scope=scope, runs=_lookup({mine.run_id: mine})) is not None


def test_only_run_id_shaped_segments_are_looked_up(root: Path, scope: StorageScope) -> None:
    mine = _run(root)
    lookup = _lookup({mine.run_id: mine})
    uri = _uri(mine)  # <root>/my-pipeline/<run id>/train/<task uuid>/model
    owning_prefix(uri, scope=scope, runs=lookup)
    assert lookup.asked == [(mine.run_id, uri.split("/")[-2])]  # one lookup, the run id first
    location = parse_location(f"{root}/{'/'.join(str(uuid.uuid4()) for _ in range(20))}")
    assert len(run_id_candidates(location)) == 8  # bounded: one query, never a flood


def test_paths_inside_an_artifact_stay_inside(root: Path) -> None:
    base = root / "p" / "r" / "dir"
    (base / "sub").mkdir(parents=True)
    (base / "sub" / "a.txt").write_text("x")
    (base / "out").symlink_to("/etc")
    location = parse_location(str(base))
    assert confine_path(location, "sub/a.txt").uri == str(base / "sub" / "a.txt")
    for bad in ["../r", "..%2f..", "/etc/passwd", "sub/../../x", "a#b", "a\\b", "out/passwd", "sub//a.txt"]:
        with pytest.raises(UnsafePathError):
            confine_path(location, bad)
    s3 = parse_location("s3://b/root/p/r/dir")
    assert confine_path(s3, "sub/a.txt").uri == "s3://b/root/p/r/dir/sub/a.txt"
    for bad in ["../x", "%2e%2e/x", "/x", "a//b"]:
        with pytest.raises(UnsafePathError):
            confine_path(s3, bad)
