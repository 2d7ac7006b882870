"""The data the engine exchanges with the service layer: records in, a plan out.

The Django service loads a run's Task rows into :class:`NodeRecord` objects, builds a
:class:`RunContext`, and asks :class:`apps.engine.execution.ActiveExecution` for a
:class:`Plan`. It writes ``plan.creates`` (parents before children), then
``plan.completes``, dispatches every :class:`StepLaunch`, and records
``plan.run_outcome`` when the run has finished.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from apps.engine.keys import NodeKind, NodeState
from apps.engine.placeholders import PlaceholderContext
from apps.engine.spec import ContainerSpec, ImporterSpec, OutputArtifactDef, OutputParameterDef, RetryPolicy


@dataclass(frozen=True)
class ArtifactRef:
    """An artifact a node produced or consumes. ``id`` is opaque (the service's primary key)."""

    id: str
    name: str
    uri: str
    schema_title: str = "system.Artifact"
    schema_version: str = "0.0.1"
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def runtime_artifact(self) -> dict[str, Any]:
        """This artifact as an ExecutorInput ``RuntimeArtifact``.

        Like KFP's backend, an input artifact's ``name`` is its id: that is what makes the
        cache key tell two artifacts with the same output name apart.
        """
        return {
            "name": self.id or self.name,
            "type": {"schemaTitle": self.schema_title, "schemaVersion": self.schema_version},
            "uri": self.uri,
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True)
class NodeIO:
    """Parameter values (JSON, ints kept as ints) and artifact lists, by name."""

    parameters: Mapping[str, Any] = field(default_factory=dict)
    artifacts: Mapping[str, list[ArtifactRef]] = field(default_factory=dict)


EMPTY_IO = NodeIO()


@dataclass(frozen=True)
class NodeRecord:
    """What the service knows about one node of a run (one Task row)."""

    key: str
    kind: str  # a NodeKind value (plain strings from the database are fine)
    state: str  # a NodeState value
    inputs: NodeIO = EMPTY_IO  # as recorded at creation (NodeCreate.inputs)
    outputs: NodeIO = EMPTY_IO
    error: str | None = None
    iteration_index: int | None = None
    iteration_count: int | None = None  # LOOP nodes: how many iterations it has


@dataclass(frozen=True)
class RunContext:
    """Run-level facts the engine needs."""

    run_id: str
    run_name: str = ""  # display name: {{$.pipeline_job_name}}
    pipeline_name: str = ""
    pipeline_root: str = ""  # runtime_config.pipeline_root; empty = the IR default
    namespace: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)  # runtime parameters (JSON)
    created_at: datetime | None = None
    scheduled_at: datetime | None = None
    enable_caching: bool | None = None  # run-level override of every task's cachingOptions
    canceling: bool = False
    resource_name: str = ""  # {{$.pipeline_job_resource_name}}; defaults to run_id
    # {{$.workspace_path}}: where the run's shared workspace is (KFP mounts a PVC at
    # /kfp-workspace; a local backend gives each run a directory of its own).
    workspace_path: str = ""


@dataclass(frozen=True)
class CacheDecision:
    """Whether a step may be served from cache, and the key to look it up by."""

    enabled: bool
    fingerprint: str = ""  # the key to look up (custom-key fingerprint when cache_key is set)
    cache_key: str = ""  # the task's custom cachingOptions.cacheKey, if any
    computed_fingerprint: str = ""  # KFP's GenerateFingerPrint over the cache key, always


@dataclass(frozen=True)
class StepLaunch:
    """Everything needed to run one CONTAINER or IMPORTER step."""

    key: str
    kind: NodeKind
    run_id: str
    task_name: str  # the key in the DAG's tasks
    display_name: str  # taskInfo.name
    component_name: str
    executor_label: str
    container: ContainerSpec | None  # resources already resolved
    importer: ImporterSpec | None
    input_parameters: Mapping[str, Any]
    input_artifacts: Mapping[str, list[ArtifactRef]]
    output_parameters: Mapping[str, OutputParameterDef]
    output_artifacts: Mapping[str, OutputArtifactDef]
    caching: CacheDecision
    retry: RetryPolicy | None
    platform_config: Mapping[str, Any]  # KubernetesExecutorConfig, input references resolved
    timeout_seconds: float | None  # activeDeadlineSeconds from the platform config
    iteration_index: int | None
    pipeline_root: str
    placeholder_context: PlaceholderContext


@dataclass(frozen=True)
class NodeCreate:
    """A node to insert. SKIPPED/FAILED/CANCELED nodes are created already terminal."""

    key: str
    parent_key: str | None
    task_name: str
    display_name: str
    kind: NodeKind
    component_name: str
    executor_label: str
    iteration_index: int | None
    state: NodeState
    inputs: NodeIO = EMPTY_IO
    reason: str = ""  # why it was skipped/canceled/failed, in plain words
    error: str | None = None  # set when created FAILED
    iteration_count: int | None = None  # LOOP nodes
    launch: StepLaunch | None = None  # PENDING steps


@dataclass(frozen=True)
class NodeComplete:
    """An existing node that finished: a group whose children are done, or a canceled PENDING step."""

    key: str
    state: NodeState
    outputs: NodeIO = EMPTY_IO
    error: str | None = None


@dataclass(frozen=True)
class RunOutcome:
    """The run's final state, once the root finished."""

    state: NodeState
    error: str | None = None
    outputs: NodeIO = EMPTY_IO


@dataclass(frozen=True)
class Plan:
    """The decisions of one ``ActiveExecution.plan()`` call."""

    creates: list[NodeCreate] = field(default_factory=list)
    completes: list[NodeComplete] = field(default_factory=list)
    run_outcome: RunOutcome | None = None
    # Steps still RUNNING while the run is canceling: the service should terminate them.
    to_terminate: list[str] = field(default_factory=list)

    @property
    def launches(self) -> list[StepLaunch]:
        """The steps to dispatch, in creation order."""
        return [c.launch for c in self.creates if c.launch is not None]

    def is_empty(self) -> bool:
        """True when there is nothing to do."""
        return not (self.creates or self.completes or self.run_outcome or self.to_terminate)
