"""The emulator's API server through the real ``kubernetes`` client: discovery, CRUD, errors, watch.

The controller is stopped in these tests so that nothing but the test writes
to the Workflows.
"""

from __future__ import annotations

import copy
from pathlib import Path

import kubernetes
import pytest
from kubernetes.client import ApisApi, CoreApi, CoreV1Api, CustomObjectsApi, VersionApi
from kubernetes.client.exceptions import ApiException

from apps.backends.argo.emulator import Emulator
from apps.backends.local import LocalBackend
from tests.backends.argo.emulator.conftest import (
    GROUP,
    NS,
    PLURAL,
    TOKEN,
    VERSION,
    Cluster,
    container,
    make_workflow,
    status_body,
)


@pytest.fixture
def quiet(cluster: Cluster) -> Cluster:
    """The cluster with its controller stopped."""
    cluster.emulator.stop_controller()
    return cluster


def _workflow(name: str, **labels: str) -> dict[str, object]:
    return make_workflow(name, container("main", "echo", name), labels=labels or None)


def test_discovery(quiet: Cluster) -> None:
    api = quiet.api
    assert VersionApi(api).get_code().git_version.startswith("v1.")
    assert CoreApi(api).get_api_versions().versions == ["v1"]
    groups = ApisApi(api).get_api_versions().groups
    assert [g.name for g in groups] == ["argoproj.io"]
    assert groups[0].preferred_version.group_version == "argoproj.io/v1alpha1"
    argo = CustomObjectsApi(api).get_api_resources(GROUP, VERSION)
    workflows = next(r for r in argo.resources if r.name == "workflows")
    assert workflows.kind == "Workflow" and workflows.namespaced
    assert {"create", "get", "list", "patch", "update", "delete", "watch"} <= set(workflows.verbs)
    core = {r.name for r in CoreV1Api(api).get_api_resources().resources}
    assert {"pods", "pods/log"} <= core


def test_create_and_get(quiet: Cluster) -> None:
    created = quiet.submit(_workflow("wf-a"))
    metadata = created["metadata"]
    assert metadata["name"] == "wf-a" and metadata["namespace"] == NS
    assert metadata["uid"] and metadata["creationTimestamp"].endswith("Z")
    assert metadata["generation"] == 1
    assert int(metadata["resourceVersion"]) > 0
    assert quiet.get("wf-a") == created


def test_generate_name(quiet: Cluster) -> None:
    manifest = _workflow("ignored")
    manifest["metadata"] = {"generateName": "canal-run-"}
    created = quiet.submit(manifest)
    assert created["metadata"]["name"].startswith("canal-run-")
    assert len(created["metadata"]["name"]) == len("canal-run-") + 5


def test_duplicate_create_is_409_already_exists(quiet: Cluster) -> None:
    quiet.submit(_workflow("dup"))
    with pytest.raises(ApiException) as caught:
        quiet.submit(_workflow("dup"))
    assert caught.value.status == 409
    body = status_body(caught.value)
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["reason"] == "AlreadyExists" and body["code"] == 409
    assert body["message"] == 'workflows.argoproj.io "dup" already exists'
    assert body["details"] == {"name": "dup", "group": "argoproj.io", "kind": "workflows"}


def test_missing_workflow_is_404_not_found(quiet: Cluster) -> None:
    for call in (
        lambda: quiet.get("nope"),
        lambda: quiet.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "nope"),
        lambda: quiet.custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "nope", {"spec": {}}),
    ):
        with pytest.raises(ApiException) as caught:
            call()
        assert caught.value.status == 404
        body = status_body(caught.value)
        assert body["reason"] == "NotFound"
        assert body["message"] == 'workflows.argoproj.io "nope" not found'


def test_invalid_name_is_422(quiet: Cluster) -> None:
    with pytest.raises(ApiException) as caught:
        quiet.submit(_workflow("Not_A_Name"))
    assert caught.value.status == 422
    assert status_body(caught.value)["reason"] == "Invalid"


def test_list_with_selectors(quiet: Cluster) -> None:
    quiet.submit(_workflow("l-one", run="1", team="a"))
    quiet.submit(_workflow("l-two", run="2", team="a"))
    quiet.submit(_workflow("l-three", team="b"))

    def names(**kwargs: str) -> list[str]:
        listed = quiet.custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, **kwargs)
        assert listed["kind"] == "WorkflowList" and int(listed["metadata"]["resourceVersion"]) > 0
        return sorted(item["metadata"]["name"] for item in listed["items"])

    assert names() == ["l-one", "l-three", "l-two"]
    assert names(label_selector="run=1") == ["l-one"]
    assert names(label_selector="team=a,run!=1") == ["l-two"]
    assert names(label_selector="run") == ["l-one", "l-two"]
    assert names(label_selector="!run") == ["l-three"]
    assert names(label_selector="run in (1,2),team=a") == ["l-one", "l-two"]
    assert names(label_selector="team notin (a)") == ["l-three"]
    assert names(field_selector="metadata.name=l-two") == ["l-two"]
    everywhere = quiet.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, label_selector="team=b")
    assert [i["metadata"]["name"] for i in everywhere["items"]] == ["l-three"]
    with pytest.raises(ApiException) as caught:
        names(label_selector="run in (1")
    assert caught.value.status == 400


def test_list_pages_with_limit_and_continue(quiet: Cluster) -> None:
    for index in range(5):
        quiet.submit(_workflow(f"page-{index}"))
    seen: list[str] = []
    token = None
    while True:
        kwargs = {"limit": 2, **({"_continue": token} if token else {})}
        page = quiet.custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, **kwargs)
        seen += [item["metadata"]["name"] for item in page["items"]]
        token = page["metadata"].get("continue")
        if token:
            assert page["metadata"]["remainingItemCount"] == 5 - len(seen)
        if not token:
            break
    assert seen == [f"page-{i}" for i in range(5)]


def test_merge_patch_shutdown(quiet: Cluster) -> None:
    created = quiet.submit(_workflow("patch-me"))
    patched = quiet.custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "patch-me", {"spec": {"shutdown": "Terminate"}}
    )
    assert patched["spec"]["shutdown"] == "Terminate"
    assert patched["spec"]["entrypoint"] == "main"  # merged, not replaced
    assert patched["metadata"]["generation"] == 2
    assert int(patched["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert patched["metadata"]["uid"] == created["metadata"]["uid"]
    # null removes a key; metadata-only changes do not bump the generation
    patched = quiet.custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        NS,
        PLURAL,
        "patch-me",
        {"metadata": {"labels": {"x": "y"}}, "spec": {"shutdown": None}},
    )
    assert "shutdown" not in patched["spec"] and patched["metadata"]["labels"] == {"x": "y"}
    assert patched["metadata"]["generation"] == 3
    relabelled = quiet.custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "patch-me", {"metadata": {"labels": {"x": "z"}}}
    )
    assert relabelled["metadata"]["generation"] == 3


def test_json_patch(quiet: Cluster) -> None:
    quiet.submit(_workflow("json-patch"))
    # The client sends merge-patch for custom objects; a JSON patch needs the header set.
    quiet.api.set_default_header("Content-Type", "application/json-patch+json")
    patched = quiet.custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        NS,
        PLURAL,
        "json-patch",
        [
            {"op": "test", "path": "/spec/entrypoint", "value": "main"},
            {"op": "add", "path": "/spec/shutdown", "value": "Terminate"},
            {"op": "add", "path": "/metadata/labels", "value": {"a/b": "1"}},
            {"op": "replace", "path": "/metadata/labels/a~1b", "value": "2"},
        ],
    )
    assert patched["spec"]["shutdown"] == "Terminate"
    assert patched["metadata"]["labels"] == {"a/b": "2"}
    with pytest.raises(ApiException) as caught:
        quiet.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            NS,
            PLURAL,
            "json-patch",
            [{"op": "test", "path": "/spec/entrypoint", "value": "x"}],
        )
    assert caught.value.status == 422
    quiet.api.set_default_header("Content-Type", "application/strategic-merge-patch+json")
    with pytest.raises(ApiException) as caught:
        quiet.custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "json-patch", {"spec": {}})
    assert caught.value.status == 415  # custom resources take no strategic merge patch
    assert status_body(caught.value)["reason"] == "UnsupportedMediaType"


def test_replace_needs_the_current_resource_version(quiet: Cluster) -> None:
    created = quiet.submit(_workflow("replace-me"))
    changed = copy.deepcopy(created)
    changed["spec"]["templates"][0]["container"]["command"] = ["echo", "changed"]
    replaced = quiet.custom.replace_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "replace-me", changed
    )
    assert replaced["spec"]["templates"][0]["container"]["command"] == ["echo", "changed"]
    assert replaced["metadata"]["generation"] == 2
    with pytest.raises(ApiException) as caught:  # stale: someone wrote since
        quiet.custom.replace_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "replace-me", changed)
    assert caught.value.status == 409 and status_body(caught.value)["reason"] == "Conflict"
    del changed["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as caught:
        quiet.custom.replace_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "replace-me", changed)
    assert caught.value.status == 422


def test_delete(quiet: Cluster) -> None:
    created = quiet.submit(_workflow("delete-me"))
    answer = quiet.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "delete-me")
    assert answer["kind"] == "Status" and answer["status"] == "Success"
    assert answer["details"]["uid"] == created["metadata"]["uid"]
    with pytest.raises(ApiException) as caught:
        quiet.get("delete-me")
    assert caught.value.status == 404


def test_status_is_no_subresource_by_default(quiet: Cluster) -> None:
    # Stock Argo's CRD declares no status subresource: a real cluster answers 404 there.
    quiet.submit(_workflow("no-status"))
    with pytest.raises(ApiException) as caught:
        quiet.custom.get_namespaced_custom_object_status(GROUP, VERSION, NS, PLURAL, "no-status")
    assert caught.value.status == 404
    # ... and status is written through the object itself.
    patched = quiet.custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "no-status", {"status": {"phase": "Running"}}
    )
    assert patched["status"] == {"phase": "Running"}


def test_status_subresource_when_asked(backend: LocalBackend, tmp_path: Path) -> None:
    with Emulator(
        backend=backend,
        token=TOKEN,
        work_dir=tmp_path,
        status_subresource=True,
    ) as emulator:
        emulator.stop_controller()
        path = emulator.write_kubeconfig(tmp_path / "config", NS)
        with kubernetes.config.new_client_from_config(config_file=str(path)) as api:
            custom = CustomObjectsApi(api)
            custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, _workflow("with-status"))
            ignored = custom.patch_namespaced_custom_object(
                GROUP, VERSION, NS, PLURAL, "with-status", {"status": {"phase": "Running"}}
            )
            assert "status" not in ignored  # the main resource does not write status
            patched = custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, NS, PLURAL, "with-status", {"status": {"phase": "Running"}, "spec": {"x": 1}}
            )
            assert patched["status"] == {"phase": "Running"} and "x" not in patched["spec"]
            assert patched["metadata"]["generation"] == 1
            got = custom.get_namespaced_custom_object_status(GROUP, VERSION, NS, PLURAL, "with-status")
            assert got["status"] == {"phase": "Running"}


def test_wrong_or_missing_token_is_401(quiet: Cluster, kubeconfig: Path, tmp_path: Path) -> None:
    config = kubeconfig.read_text().replace(TOKEN, "wrong-token")
    (tmp_path / "bad").write_text(config)
    bad_client = kubernetes.config.new_client_from_config(config_file=str(tmp_path / "bad"))
    with bad_client as api, pytest.raises(ApiException) as caught:
        CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
    assert caught.value.status == 401
    assert status_body(caught.value)["reason"] == "Unauthorized"
    configuration = kubernetes.client.Configuration()
    configuration.host = quiet.emulator.url
    with kubernetes.client.ApiClient(configuration) as anonymous, pytest.raises(ApiException) as caught:
        VersionApi(anonymous).get_code()
    assert caught.value.status == 401


def test_watch_reports_changes_from_a_resource_version(quiet: Cluster) -> None:
    start = quiet.custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)["metadata"][
        "resourceVersion"
    ]
    quiet.submit(_workflow("watched", run="w"))
    quiet.submit(_workflow("unwatched"))
    quiet.custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "watched", {"spec": {"shutdown": "Stop"}}
    )
    quiet.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "watched")
    watch = kubernetes.watch.Watch()
    events = [
        (event["type"], event["object"]["metadata"]["name"])
        for event in watch.stream(
            quiet.custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            NS,
            PLURAL,
            label_selector="run=w",
            resource_version=start,
            timeout_seconds=1,
        )
    ]
    assert events == [("ADDED", "watched"), ("MODIFIED", "watched"), ("DELETED", "watched")]


def test_pods_api_verbs(quiet: Cluster) -> None:
    with pytest.raises(ApiException) as caught:
        quiet.core.read_namespaced_pod("nope", NS)
    assert caught.value.status == 404
    assert status_body(caught.value)["message"] == 'pods "nope" not found'
    with pytest.raises(ApiException) as caught:
        quiet.core.read_namespaced_pod_log("nope", NS, container="main")
    assert caught.value.status == 404
    assert quiet.core.list_namespaced_pod(NS).items == []
