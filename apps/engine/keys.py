"""Node keys, node kinds and run states.

Every node of a run has a key that says where it sits in the pipeline:

* the root DAG is ``root``;
* a task of a DAG node ``P`` is ``P/<task-name>``;
* a ParallelFor task is a LOOP node ``P/<task-name>`` whose iterations are ITERATION
  nodes ``P/<task-name>#<i>``; a task inside iteration ``i`` is ``P/<task-name>#<i>/<child>``.

Task names never contain ``/`` or ``#`` (the parser refuses them), so keys parse back
unambiguously. Kinds and states are plain strings (``StrEnum``) because the Django
models store exactly these values.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from functools import lru_cache
from typing import Final

ROOT_KEY: Final = "root"


class NodeKind(StrEnum):
    """What a node is."""

    ROOT = "ROOT"
    DAG = "DAG"
    LOOP = "LOOP"
    ITERATION = "ITERATION"
    CONTAINER = "CONTAINER"
    IMPORTER = "IMPORTER"


class NodeState(StrEnum):
    """KFP RuntimeState names."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"
    CANCELING = "CANCELING"
    CANCELED = "CANCELED"


TERMINAL_STATES: Final = frozenset(
    {NodeState.SUCCEEDED, NodeState.SKIPPED, NodeState.FAILED, NodeState.CANCELED}
)
STEP_KINDS: Final = frozenset({NodeKind.CONTAINER, NodeKind.IMPORTER})
GROUP_KINDS: Final = frozenset({NodeKind.ROOT, NodeKind.DAG, NodeKind.LOOP, NodeKind.ITERATION})

# The v2beta1 RuntimeState enum numbers; KFP puts them in PipelineTaskFinalStatus.error.code.
RUNTIME_STATE_NUMBERS: Final = {
    NodeState.PENDING: 1,
    NodeState.RUNNING: 2,
    NodeState.SUCCEEDED: 3,
    NodeState.SKIPPED: 4,
    NodeState.FAILED: 5,
    NodeState.CANCELING: 6,
    NodeState.CANCELED: 7,
}


def is_terminal(state: str) -> bool:
    """True once a node will not change state again (until a run retry resets it)."""
    return state in TERMINAL_STATES


def child_key(parent: str, task_name: str) -> str:
    """Key of task ``task_name`` inside the DAG node ``parent``."""
    return f"{parent}/{task_name}"


def iteration_key(loop_key: str, index: int) -> str:
    """Key of iteration ``index`` of the LOOP node ``loop_key``."""
    return f"{loop_key}#{index}"


@lru_cache(maxsize=65536)  # keys recur on every plan of a run
def parent_key(key: str) -> str | None:
    """The key of the node that contains ``key`` (None for the root)."""
    if key == ROOT_KEY:
        return None
    last = key.rsplit("/", 1)[-1]
    if "#" in last:
        # An iteration's parent is its LOOP node: strip the "#i" suffix.
        return key.rsplit("#", 1)[0]
    if "/" not in key:
        raise ValueError(f"{key!r} is not a node key")
    return key.rsplit("/", 1)[0]


@lru_cache(maxsize=65536)  # keys recur on every plan of a run
def iteration_index(key: str) -> int | None:
    """The index of the innermost iteration ``key`` is in (or is), else None."""
    for segment in reversed(key.split("/")):
        if "#" in segment:
            return int(segment.rsplit("#", 1)[1])
    return None


@lru_cache(maxsize=65536)  # keys recur on every plan of a run
def task_path(key: str) -> tuple[str, ...]:
    """The task names from the root down to ``key``, iteration indexes dropped."""
    if key == ROOT_KEY:
        return ()
    if not key.startswith(ROOT_KEY + "/"):
        raise ValueError(f"{key!r} is not a node key")
    return tuple(segment.split("#", 1)[0] for segment in key.split("/")[1:])


@lru_cache(maxsize=65536)  # keys recur on every plan of a run
def template_key(key: str) -> str:
    """``key`` with iteration indexes removed: the id of the static graph node it runs."""
    return "/".join([ROOT_KEY, *task_path(key)]) if key != ROOT_KEY else ROOT_KEY


def node_key(key: str) -> str:
    """``template_key(key)``, or "" for a key that is not a node key (stored as Task.node)."""
    try:
        return template_key(key)
    except ValueError:
        return ""


def task_uuid(run_id: str, key: str) -> str:
    """The id of node ``key`` of run ``run_id``: stable, so the engine can render
    ``{{$.pipeline_task_uuid}}`` before the service stores the row under this id."""
    try:
        namespace = uuid.UUID(run_id)
    except ValueError:
        namespace = uuid.uuid5(uuid.NAMESPACE_URL, run_id)
    return str(uuid.uuid5(namespace, key))
