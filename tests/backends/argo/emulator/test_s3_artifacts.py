"""Compiled KFP runs in the emulated cluster with Argo's S3 artifact repository (moto on 127.0.0.1).

Every artifact URI that ``executor_outputs`` reads from a finished Workflow is an
object in the bucket holding the bytes the step left in its pod: what Canal's UI
reads through ``apps.storage`` is exactly what ran.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from apps.backends.argo.compiler import ArgoSettings
from apps.backends.argo.compiler_outputs import executor_outputs, template_info
from apps.backends.argo.emulator import Emulator
from apps.backends.argo.emulator.__main__ import artifact_repository, build_parser
from apps.backends.argo.s3_artifacts import S3ArtifactRepository
from apps.backends.local import LocalBackend
from apps.storage import StoreConfig, get_store
from apps.storage.filesystem import iter_tree_files
from tests.backends.argo.conftest import CREDENTIALS, REGION, s3_client
from tests.backends.argo.emulator.conftest import NS, TOKEN, Cluster, wait_until
from tests.backends.argo.helpers import compile_corpus

# A compiled pipeline installs nothing on the host, but its steps start Python with kfp and
# scikit-learn: minutes on a busy two-core machine are possible, and only the outcome is asserted.
RUN_TIMEOUT = 600.0


class RecordingRepository(S3ArtifactRepository):
    """The S3 repository, noting what each saved artifact held in the pod (key -> {relative path: bytes})."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.saved: dict[str, dict[str, bytes]] = {}
        self._record_lock = threading.Lock()

    def save(self, source: Path, key: str) -> dict[str, Any]:
        if source.is_file():
            files = {"": source.read_bytes()}
        else:
            files = {relative: path.read_bytes() for relative, path in iter_tree_files(source)}
        location = super().save(source, key)
        with self._record_lock:
            self.saved[location["s3"]["key"]] = files
        return location


@pytest.fixture
def repository(moto_endpoint: str, bucket: str) -> RecordingRepository:
    return RecordingRepository(bucket, endpoint_url=moto_endpoint, region=REGION, **CREDENTIALS)


@pytest.fixture
def emulator(backend: LocalBackend, tmp_path: Path, repository: RecordingRepository) -> Iterator[Emulator]:
    """The emulated cluster, its artifact repository the moto bucket (overrides the conftest's)."""
    if not backend.sandbox.active:
        pytest.skip("Argo pods need the step sandbox: " + backend.sandbox.status().summary())
    emulator = Emulator(
        backend=backend, artifacts=repository, token=TOKEN, work_dir=tmp_path / "cluster", resync=0.1
    )
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


def _run(cluster: Cluster, workflow: dict[str, Any]) -> dict[str, Any]:
    """Submit a compiled Workflow through the kubernetes client and wait for its end."""
    name = cluster.submit(workflow)["metadata"]["name"]

    def ended() -> dict[str, Any] | None:
        got = cluster.get(name)
        phase = (got.get("status") or {}).get("phase")
        return got if phase in ("Succeeded", "Failed", "Error") else None

    done: dict[str, Any] = wait_until(ended, f"workflow {name} to end", timeout=RUN_TIMEOUT)
    return done


def _stored_artifacts(
    workflow: dict[str, Any], repository: RecordingRepository, moto_endpoint: str
) -> dict[str, list[tuple[str, dict[str, Any], bytes | None]]]:
    """Per executor (display name), each artifact executor_outputs reports: (name, artifact, object bytes).

    Checks on the way that each URI is in the repository's bucket, inside an artifact a pod
    saved, and that the object holds exactly what the step left there (None: the step wrote
    no file, and there is no object either).
    """
    client = s3_client(moto_endpoint)
    found: dict[str, list[tuple[str, dict[str, Any], bytes | None]]] = {}
    for node in workflow["status"]["nodes"].values():
        info = template_info(workflow, node.get("templateName", ""))
        if node["type"] != "Pod" or info is None or info.role != "executor":
            continue
        assert node["phase"] == "Succeeded", node
        outputs = executor_outputs(workflow, node["templateName"], node.get("outputs"))
        entries = found.setdefault(node["displayName"], [])
        for name, items in outputs.artifacts.items():
            for artifact in items:
                parts = urlsplit(artifact["uri"])
                assert (parts.scheme, parts.netloc) == ("s3", repository.bucket), artifact
                key = parts.path.lstrip("/")
                saved = [k for k in repository.saved if key.startswith(k + "/")]
                assert len(saved) == 1, (key, sorted(repository.saved))
                wrote = repository.saved[saved[0]].get(key[len(saved[0]) + 1 :])
                listed = client.list_objects_v2(Bucket=repository.bucket, Prefix=key).get("Contents", [])
                if wrote is None:
                    assert [o["Key"] for o in listed if o["Key"] == key] == [], key
                    entries.append((name, artifact, None))
                    continue
                body = client.get_object(Bucket=repository.bucket, Key=key)["Body"].read()
                assert body == wrote, key
                entries.append((name, artifact, body))
    return found


def _bucket_is_what_the_pods_saved(repository: RecordingRepository, moto_endpoint: str) -> None:
    """The bucket holds the saved artifacts' files, each under its artifact's key, and nothing else."""
    client = s3_client(moto_endpoint)
    listed = client.list_objects_v2(Bucket=repository.bucket).get("Contents", [])
    stored = {
        o["Key"]: client.get_object(Bucket=repository.bucket, Key=o["Key"])["Body"].read() for o in listed
    }
    expected = {
        f"{key}/{relative}" if relative else key: data
        for key, files in repository.saved.items()
        for relative, data in files.items()
    }
    assert stored == expected


def _read_as_the_ui_does(uri: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """An artifact's bytes through Canal's S3 store (credentials from AWS_*, as the web app has them)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    store = get_store(uri, StoreConfig(s3_endpoint_url=moto_endpoint, s3_region=REGION))
    assert not store.stat(uri).is_dir
    with store.open(uri) as handle:
        return handle.read()


def test_artifacts_simple_leaves_every_reported_artifact_in_the_bucket(
    cluster: Cluster,
    repository: RecordingRepository,
    moto_endpoint: str,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workflow = compile_corpus(
        "artifacts_simple.yaml",
        pipeline_root=f"s3://{bucket}/root",
        namespace=NS,
        settings=ArgoSettings(s3_bucket=bucket),  # key-only locations: the repository's bucket
    )
    done = _run(cluster, workflow)
    assert done["status"]["phase"] == "Succeeded", done["status"].get("message")
    found = _stored_artifacts(done, repository, moto_endpoint)
    values = {task: sorted((name, body) for name, _, body in items) for task, items in found.items()}
    # Three doubles in a loop; 'add' and 'add-container' read the loop's outputs back from S3
    # (one prefix, downloaded as a directory) and sum them.
    assert values == {
        "double": [("out_dataset", b"2"), ("out_dataset", b"4"), ("out_dataset", b"6")],
        "add": [("out_dataset", b"12")],
        "add-container": [("out_dataset", b"12")],
    }
    _bucket_is_what_the_pods_saved(repository, moto_endpoint)
    [(_, artifact, _)] = found["add"]
    assert _read_as_the_ui_does(artifact["uri"], moto_endpoint, monkeypatch) == b"12"


def test_markdown_html_and_metrics_outputs_are_objects_where_reported(
    cluster: Cluster,
    repository: RecordingRepository,
    moto_endpoint: str,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workflow = compile_corpus(
        "metrics_visualization_v2.yaml",
        pipeline_root=f"s3://{bucket}/root",
        namespace=NS,
        settings=ArgoSettings(s3_bucket=bucket),
    )
    done = _run(cluster, workflow)
    assert done["status"]["phase"] == "Succeeded", done["status"].get("message")
    found = _stored_artifacts(done, repository, moto_endpoint)
    shown = {
        task: [(name, artifact["type"]["schemaTitle"], body) for name, artifact, body in items]
        for task, items in found.items()
    }
    # Markdown and HTML are files, read by the UI from their URI; the kfp SDK writes no file
    # for metrics (their values are the artifact's metadata), so there is no object either.
    assert shown == {
        "markdown-visualization": [
            ("markdown_artifact", "system.Markdown", b"## Hello world \n\n Markdown content")
        ],
        "html-visualization": [
            (
                "html_artifact",
                "system.HTML",
                b"<!DOCTYPE html><html><body><h1>Hello world</h1></body></html>",
            )
        ],
        "digit-classification": [("metrics", "system.Metrics", None)],
        "iris-sgdclassifier": [("metrics", "system.ClassificationMetrics", None)],
        "wine-classification": [("metrics", "system.ClassificationMetrics", None)],
    }
    [(_, digits, _)] = found["digit-classification"]
    assert set(digits["metadata"]) == {"accuracy"}
    [(_, iris, _)] = found["iris-sgdclassifier"]
    assert "confusionMatrix" in iris["metadata"]
    _bucket_is_what_the_pods_saved(repository, moto_endpoint)
    [(_, html, _)] = found["html-visualization"]
    assert _read_as_the_ui_does(html["uri"], moto_endpoint, monkeypatch).startswith(b"<!DOCTYPE html>")


def test_the_command_line_keeps_artifacts_in_the_bucket_it_names(
    moto_endpoint: str, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    # Credentials and region come from the AWS_* variables, as for any boto3 program.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    parser = build_parser()

    def repository_for(*argv: str) -> Any:
        return artifact_repository(parser, parser.parse_args(list(argv)))

    assert repository_for() is None  # the local repository under the emulator's directory
    chosen = repository_for("--s3-endpoint", moto_endpoint, "--s3-bucket", bucket)
    assert isinstance(chosen, S3ArtifactRepository)
    (tmp_path / "f").write_text("via the CLI")
    location = chosen.save(tmp_path / "f", "cli/f")
    assert location["s3"]["bucket"] == bucket and location["s3"]["region"] == REGION
    assert s3_client(moto_endpoint).get_object(Bucket=bucket, Key="cli/f")["Body"].read() == b"via the CLI"

    for argv, message in [
        (["--s3-endpoint", moto_endpoint], "--s3-endpoint needs --s3-bucket"),
        (["--s3-endpoint", moto_endpoint, "--s3-bucket", f"{bucket}-nowhere"], f"'{bucket}-nowhere'"),
        (["--s3-endpoint", "minio:9000", "--s3-bucket", bucket], "is not an http(s):// URL"),
    ]:
        with pytest.raises(SystemExit) as exited:
            repository_for(*argv)
        assert exited.value.code == 2
        assert message in capsys.readouterr().err
