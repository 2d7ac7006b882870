"""Names, labels and phases exactly as Argo Workflows spells them.

Node ids and pod names follow ``Workflow.NodeID`` and ``GeneratePodName``
(pod name format v2, Argo's default since 3.4) from argoproj/argo-workflows,
so what a client sees here is what it would see on a real cluster.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = [
    "ANNOTATION_NODE_ID",
    "ANNOTATION_NODE_NAME",
    "ANNOTATION_OUTPUTS",
    "LABEL_COMPLETED",
    "LABEL_PHASE",
    "LABEL_WORKFLOW",
    "NODE_FULFILLED",
    "WORKFLOW_FINISHED",
    "fnv32a",
    "node_id",
    "now_rfc3339",
    "pod_name",
    "progress",
]

LABEL_WORKFLOW = "workflows.argoproj.io/workflow"
LABEL_COMPLETED = "workflows.argoproj.io/completed"
LABEL_PHASE = "workflows.argoproj.io/phase"
ANNOTATION_NODE_NAME = "workflows.argoproj.io/node-name"
ANNOTATION_NODE_ID = "workflows.argoproj.io/node-id"
# Where the emulator's kubelet records what a pod's "wait" container would report
# (Argo before 3.4 used this very annotation; later versions use WorkflowTaskResults).
ANNOTATION_OUTPUTS = "workflows.argoproj.io/outputs"

WORKFLOW_FINISHED = frozenset({"Succeeded", "Failed", "Error"})
NODE_FULFILLED = frozenset({"Succeeded", "Failed", "Error", "Skipped", "Omitted"})

_MAX_NAME = 253
_HASH_LENGTH = 10


def fnv32a(text: str) -> int:
    """The 32-bit FNV-1a hash of ``text``'s UTF-8 bytes (Go's ``hash/fnv.New32a``)."""
    value = 0x811C9DC5
    for byte in text.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def node_id(workflow_name: str, node_name: str) -> str:
    """Argo's node id: the workflow's name for its root node, else ``<wf>-<fnv32a(node name)>``."""
    if node_name == workflow_name:
        return workflow_name
    return f"{workflow_name}-{fnv32a(node_name)}"


def pod_name(workflow_name: str, node_name: str, template_name: str) -> str:
    """Argo's v2 pod name: ``<wf>-<template>-<fnv32a(node name)>``, the prefix cut to fit 253."""
    if node_name == workflow_name:
        return workflow_name
    prefix = f"{workflow_name}-{template_name}" if template_name else workflow_name
    prefix = prefix[: _MAX_NAME - _HASH_LENGTH - 1]
    return f"{prefix}-{fnv32a(node_name)}"


def now_rfc3339() -> str:
    """The current UTC time as Kubernetes writes ``metav1.Time`` (seconds, ``Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def progress(nodes: dict[str, dict[str, object]]) -> str:
    """Argo's ``N/M`` progress: fulfilled Pod nodes over all Pod nodes."""
    pods = [node for node in nodes.values() if node.get("type") == "Pod"]
    done = sum(1 for node in pods if node.get("phase") in NODE_FULFILLED)
    return f"{done}/{len(pods)}"
