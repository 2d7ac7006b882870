"""The emulator's pure parts: patches, selectors, the store's watch history, the shutdown status."""

from __future__ import annotations

from typing import Any

import pytest

from apps.backends.argo.emulator.controller import shut_down_status
from apps.backends.argo.emulator.errors import ApiError
from apps.backends.argo.emulator.patch import PatchError, json_patch, merge_patch
from apps.backends.argo.emulator.selectors import parse_field_selector, parse_label_selector
from apps.backends.argo.emulator.store import PODS, WORKFLOWS, Store


def test_merge_patch_follows_rfc_7386() -> None:
    # The examples of RFC 7386, appendix A.
    cases: list[tuple[Any, Any, Any]] = [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ]
    for target, patch, expected in cases:
        assert merge_patch(target, patch) == expected


def test_json_patch_follows_rfc_6902() -> None:
    doc = {"a": {"b": [1, 2]}, "c": "d"}
    result = json_patch(
        doc,
        [
            {"op": "add", "path": "/a/b/1", "value": 9},
            {"op": "add", "path": "/a/b/-", "value": 3},
            {"op": "remove", "path": "/c"},
            {"op": "copy", "from": "/a/b", "path": "/e"},
            {"op": "move", "from": "/e", "path": "/f"},
            {"op": "replace", "path": "/a/b/0", "value": 0},
            {"op": "test", "path": "/f", "value": [1, 9, 2, 3]},
            {"op": "add", "path": "/g~1h", "value": "slash"},
        ],
    )
    assert result == {"a": {"b": [0, 9, 2, 3]}, "f": [1, 9, 2, 3], "g/h": "slash"}
    assert doc == {"a": {"b": [1, 2]}, "c": "d"}  # untouched
    for bad in (
        [{"op": "replace", "path": "/missing", "value": 1}],
        [{"op": "remove", "path": "/a/b/7"}],
        [{"op": "test", "path": "/c", "value": "x"}],
        [{"op": "move", "from": "/a", "path": "/a/b/x"}],
        [{"op": "add", "path": "no-slash", "value": 1}],
        [{"op": "frobnicate", "path": "/a"}],
        {"op": "add"},
    ):
        with pytest.raises(PatchError):
            json_patch(doc, bad)


def _obj(**labels: str) -> dict[str, Any]:
    return {"metadata": {"name": "n", "labels": labels}, "status": {"phase": "Running"}}


def test_label_selectors() -> None:
    assert parse_label_selector("")(_obj())
    assert parse_label_selector("a=1")(_obj(a="1"))
    assert parse_label_selector("a==1")(_obj(a="1"))
    assert not parse_label_selector("a=1")(_obj(a="2"))
    assert parse_label_selector("a!=1")(_obj())
    assert parse_label_selector("workflows.argoproj.io/workflow=wf-1")(
        _obj(**{"workflows.argoproj.io/workflow": "wf-1"})
    )
    assert parse_label_selector("a in (1, 2),!b")(_obj(a="2"))
    assert not parse_label_selector("a in (1, 2),!b")(_obj(a="2", b="x"))
    assert parse_label_selector("a notin (1)")(_obj())
    for bad in ("a in (1", "=x", "a=b=c", "a b"):
        with pytest.raises(ApiError) as caught:
            parse_label_selector(bad)
        assert caught.value.code == 400


def test_field_selectors() -> None:
    supported = frozenset({"metadata.name", "status.phase"})
    assert parse_field_selector("metadata.name=n,status.phase!=Failed", supported)(_obj())
    assert not parse_field_selector("status.phase=Failed", supported)(_obj())
    with pytest.raises(ApiError) as caught:
        parse_field_selector("spec.x=1", supported)
    assert caught.value.message == 'field label not supported: "spec.x"'


def test_watch_history_expires() -> None:
    store = Store(history=3)
    start = store.revision
    for index in range(2):
        store.create(WORKFLOWS, "ns", {"metadata": {"name": f"w{index}"}})
    events = store.events_after(start)
    assert events is not None and [e.type for e in events] == ["ADDED", "ADDED"]
    for index in range(2, 5):
        store.create(WORKFLOWS, "ns", {"metadata": {"name": f"w{index}"}})
    assert store.events_after(start) is None  # forgotten: a watch from there gets 410 Gone
    assert store.events_after(store.revision) == []


def test_deleting_an_owner_deletes_or_orphans_its_pods() -> None:
    store = Store()
    for name in ("a", "b"):
        owner = store.create(WORKFLOWS, "ns", {"metadata": {"name": name}})
        ref = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "name": name,
            "uid": owner["metadata"]["uid"],
        }
        store.create(PODS, "ns", {"metadata": {"name": f"{name}-pod", "ownerReferences": [ref]}})
    store.delete(WORKFLOWS, "ns", "a")
    store.delete(WORKFLOWS, "ns", "b", propagation="Orphan")
    pods, _ = store.list(PODS, "ns")
    assert [p["metadata"]["name"] for p in pods] == ["b-pod"]
    assert pods[0]["metadata"]["ownerReferences"] == []


def test_conditional_internal_writes_conflict() -> None:
    store = Store()
    created = store.create(WORKFLOWS, "ns", {"metadata": {"name": "w"}})
    store.patch(WORKFLOWS, "ns", "w", "application/merge-patch+json", {"spec": {"shutdown": "Terminate"}})
    with pytest.raises(ApiError) as caught:
        store.modify(
            WORKFLOWS,
            "ns",
            "w",
            lambda obj: obj.update(status={"phase": "Running"}),
            resource_version=created["metadata"]["resourceVersion"],
        )
    assert caught.value.code == 409  # the controller's stale write loses; the client's shutdown stays


def test_shutdown_status_matches_argo() -> None:
    status = {
        "phase": "Running",
        "startedAt": "2024-01-01T00:00:00Z",
        "nodes": {
            "wf": {"id": "wf", "type": "Steps", "phase": "Running"},
            "wf-1": {"id": "wf-1", "type": "Pod", "phase": "Succeeded"},
            "wf-2": {"id": "wf-2", "type": "Pod", "phase": "Running"},
            "wf-3": {"id": "wf-3", "type": "Pod", "phase": "Pending"},
        },
    }
    result = shut_down_status(status, "Terminate", killed={"wf-2"})
    nodes = result["nodes"]
    assert result["phase"] == "Failed" and result["message"] == "Stopped with strategy 'Terminate'"
    assert result["finishedAt"] and result["progress"] == "3/3"
    assert nodes["wf"]["message"] == "Stopped with strategy 'Terminate'"
    assert nodes["wf-1"]["phase"] == "Succeeded" and "message" not in nodes["wf-1"]
    assert nodes["wf-2"]["message"] == "workflow shutdown with strategy:  Terminate"
    assert nodes["wf-3"]["message"] == "workflow shutdown with strategy: Terminate"
    assert status["phase"] == "Running"  # the input is not modified
