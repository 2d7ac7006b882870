"""Typed, frozen view of a KFP v2 PipelineSpec (the "IR"), and its validating parser.

``parse_pipeline_spec`` turns the IR dict (the first YAML document) plus the optional
platform spec (the second document) into a :class:`PipelineSpec`. The format is KFP's own:
the JSON is read into ``pipeline_spec_pb2`` messages (kfp-pipeline-spec) and those are
mapped to the dataclasses below; what protobuf cannot express (references, cycles, CEL)
is checked here. Every problem raises :class:`SpecError` carrying the exact location as a
tuple of keys and list indices, so the importer can point at the offending line.

The dataclasses are deliberately close to ``pipeline_spec.proto``: field names are the
proto names in snake_case, and values that KFP treats as JSON (defaults, constants,
metadata) stay plain JSON values. Integers stay integers: YAML files written by the SDK
store integer defaults as ``1.0``; those are turned back into ``int`` when the declared
type is ``NUMBER_INTEGER``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final

from kfp.pipeline_spec import pipeline_spec_pb2 as pb

from apps.engine import protojson
from apps.engine.keys import ROOT_KEY
from apps.engine.protojson import Rules, describe_value

Path = tuple[str | int, ...]

# The deprecated PrimitiveType ``type`` field, still accepted by KFP for old IR.
_LEGACY_PRIMITIVE_TYPES: Final = {"INT": "NUMBER_INTEGER", "DOUBLE": "NUMBER_DOUBLE", "STRING": "STRING"}

STRATEGY_ALL_SUCCEEDED: Final = "ALL_UPSTREAM_TASKS_SUCCEEDED"
STRATEGY_ALL_COMPLETED: Final = "ALL_UPSTREAM_TASKS_COMPLETED"

# Defaults KFP applies to retryPolicy when a field is absent (dsl.PipelineTask.set_retry).
DEFAULT_BACKOFF_FACTOR: Final = 2.0
DEFAULT_BACKOFF_MAX_SECONDS: Final = 3600.0

# Node keys use "/" between levels and "#" before an iteration index, so task names
# must not contain either (the SDK never produces them).
_BAD_TASK_NAME = re.compile(r"[/#]")


class SpecError(ValueError):
    """The IR is not a pipeline Canal can run; ``path`` locates the problem in the IR dict,
    or in the platform spec when ``in_platform_spec``."""

    def __init__(self, message: str, path: Path = (), *, in_platform_spec: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.path: Path = tuple(path)
        self.in_platform_spec = in_platform_spec

    def __str__(self) -> str:
        if not self.path:
            return self.message
        return f"{self.message} (at {format_path(self.path)})"


def format_path(path: Path) -> str:
    """Render a path as ``root.dag.tasks['train'].componentRef`` style text."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


# ---------------------------------------------------------------------------------------
# Dataclasses
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArtifactTypeSpec:
    """An artifact's type: ``schemaTitle`` (e.g. ``system.Dataset``) and ``schemaVersion``."""

    schema_title: str = "system.Artifact"
    schema_version: str = "0.0.1"
    instance_schema: str = ""

    def to_json(self) -> dict[str, str]:
        """The ArtifactTypeSchema as KFP serialises it (unset fields omitted)."""
        out: dict[str, str] = {}
        if self.instance_schema:
            out["instanceSchema"] = self.instance_schema
        else:
            out["schemaTitle"] = self.schema_title
        if self.schema_version:
            out["schemaVersion"] = self.schema_version
        return out


@dataclass(frozen=True)
class InputParameterDef:
    """A component input parameter: type, default, optionality."""

    name: str
    parameter_type: str
    has_default: bool = False
    default: Any = None
    is_optional: bool = False
    description: str = ""
    literals: tuple[Any, ...] = ()


@dataclass(frozen=True)
class InputArtifactDef:
    """A component input artifact."""

    name: str
    artifact_type: ArtifactTypeSpec
    is_artifact_list: bool = False
    is_optional: bool = False
    description: str = ""


@dataclass(frozen=True)
class OutputParameterDef:
    """A component output parameter."""

    name: str
    parameter_type: str
    description: str = ""


@dataclass(frozen=True)
class OutputArtifactDef:
    """A component output artifact."""

    name: str
    artifact_type: ArtifactTypeSpec
    is_artifact_list: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class InputDefinitions:
    """``inputDefinitions`` of a component."""

    parameters: Mapping[str, InputParameterDef] = field(default_factory=dict)
    artifacts: Mapping[str, InputArtifactDef] = field(default_factory=dict)


@dataclass(frozen=True)
class OutputDefinitions:
    """``outputDefinitions`` of a component."""

    parameters: Mapping[str, OutputParameterDef] = field(default_factory=dict)
    artifacts: Mapping[str, OutputArtifactDef] = field(default_factory=dict)


# Where a task input parameter's value comes from (the ``kind`` oneof of InputParameterSpec).
PARAM_FROM_COMPONENT_INPUT: Final = "componentInputParameter"
PARAM_FROM_TASK_OUTPUT: Final = "taskOutputParameter"
PARAM_FROM_CONSTANT: Final = "runtimeValue"
PARAM_FROM_TASK_FINAL_STATUS: Final = "taskFinalStatus"
ARTIFACT_FROM_COMPONENT_INPUT: Final = "componentInputArtifact"
ARTIFACT_FROM_TASK_OUTPUT: Final = "taskOutputArtifact"


@dataclass(frozen=True)
class ParameterInputSpec:
    """One entry of a task's ``inputs.parameters``."""

    name: str
    source: str  # one of the PARAM_FROM_* constants
    component_input_parameter: str = ""
    producer_task: str = ""
    output_parameter_key: str = ""
    constant: Any = None
    expression_selector: str = ""


@dataclass(frozen=True)
class ArtifactInputSpec:
    """One entry of a task's ``inputs.artifacts``."""

    name: str
    source: str  # one of the ARTIFACT_FROM_* constants
    component_input_artifact: str = ""
    producer_task: str = ""
    output_artifact_key: str = ""


@dataclass(frozen=True)
class CachingOptions:
    """``cachingOptions``: whether the task may be served from cache, and a custom key."""

    enable_cache: bool = False
    cache_key: str = ""


@dataclass(frozen=True)
class TriggerPolicy:
    """``triggerPolicy``: a CEL condition and the upstream strategy."""

    condition: str = ""
    strategy: str = STRATEGY_ALL_SUCCEEDED


@dataclass(frozen=True)
class RetryPolicy:
    """``retryPolicy`` with KFP's defaults applied; durations are in seconds."""

    max_retry_count: int = 0
    backoff_duration: float = 0.0
    backoff_factor: float = DEFAULT_BACKOFF_FACTOR
    backoff_max_duration: float = DEFAULT_BACKOFF_MAX_SECONDS


@dataclass(frozen=True)
class ParameterIteratorSpec:
    """``parameterIterator``: items from raw JSON or from one of the task's input parameters."""

    item_input: str
    raw: str | None = None
    input_parameter: str | None = None


@dataclass(frozen=True)
class ArtifactIteratorSpec:
    """``artifactIterator``: iterate over the artifacts of one of the task's input artifacts."""

    item_input: str
    input_artifact: str


@dataclass(frozen=True)
class TaskSpec:
    """A task in a DAG (``PipelineTaskSpec``)."""

    name: str  # the key in ``dag.tasks``
    display_name: str  # ``taskInfo.name``
    component_ref: str
    parameters: Mapping[str, ParameterInputSpec] = field(default_factory=dict)
    artifacts: Mapping[str, ArtifactInputSpec] = field(default_factory=dict)
    dependent_tasks: tuple[str, ...] = ()
    # dependentTasks plus every producer the inputs read from, in a stable order: what the
    # engine waits for before the task can start.
    upstream_tasks: tuple[str, ...] = ()
    caching: CachingOptions = field(default_factory=CachingOptions)
    trigger: TriggerPolicy = field(default_factory=TriggerPolicy)
    parameter_iterator: ParameterIteratorSpec | None = None
    artifact_iterator: ArtifactIteratorSpec | None = None
    parallelism_limit: int = 0  # 0 = unlimited
    retry: RetryPolicy | None = None

    @property
    def is_loop(self) -> bool:
        """True for a ParallelFor task (it has an iterator)."""
        return self.parameter_iterator is not None or self.artifact_iterator is not None


@dataclass(frozen=True)
class ParameterSelector:
    """``producerSubtask`` + ``outputParameterKey``."""

    producer_subtask: str
    output_parameter_key: str


@dataclass(frozen=True)
class ArtifactSelector:
    """``producerSubtask`` + ``outputArtifactKey``."""

    producer_subtask: str
    output_artifact_key: str


@dataclass(frozen=True)
class DagOutputParameter:
    """A DAG output parameter: one selector (``valueFromParameter``) or several (``valueFromOneof``)."""

    name: str
    selectors: tuple[ParameterSelector, ...]
    oneof: bool = False


@dataclass(frozen=True)
class DagOutputArtifact:
    """A DAG output artifact (``artifactSelectors``; several selectors mean dsl.OneOf)."""

    name: str
    selectors: tuple[ArtifactSelector, ...]


@dataclass(frozen=True)
class DagSpec:
    """A DAG: its tasks (in IR order) and its outputs."""

    tasks: Mapping[str, TaskSpec] = field(default_factory=dict)
    output_parameters: Mapping[str, DagOutputParameter] = field(default_factory=dict)
    output_artifacts: Mapping[str, DagOutputArtifact] = field(default_factory=dict)

    @cached_property
    def execution_order(self) -> tuple[TaskSpec, ...]:
        """The tasks, each after every task it waits for, otherwise in IR order.

        The engine examines a DAG's tasks in this order, so one pass sees every decision
        that follows from another (a failure skipping a chain of dependents) whatever order
        the client wrote ``dag.tasks`` in. Computed once per spec (O(tasks + edges)); a
        frozen dataclass still has an instance ``__dict__`` for ``cached_property``.
        """
        order: list[TaskSpec] = []
        placed: set[str] = set()
        for start in self.tasks:
            # Iterative depth-first walk over upstream_tasks: a long chain written in
            # reverse must not hit the recursion limit.
            stack: list[tuple[str, int]] = [(start, 0)]
            on_stack = {start}
            while stack:
                name, index = stack[-1]
                if name in placed:
                    stack.pop()
                    on_stack.discard(name)
                    continue
                upstream = self.tasks[name].upstream_tasks
                if index < len(upstream):
                    stack[-1] = (name, index + 1)
                    up = upstream[index]
                    # The parser rejects cycles and unknown names; skip them anyway, so this
                    # order always holds every task exactly once.
                    if up in self.tasks and up not in placed and up not in on_stack:
                        stack.append((up, 0))
                        on_stack.add(up)
                    continue
                stack.pop()
                on_stack.discard(name)
                placed.add(name)
                order.append(self.tasks[name])
        return tuple(order)


@dataclass(frozen=True)
class ComponentSpec:
    """A component: a DAG, or a reference to an executor."""

    name: str
    input_definitions: InputDefinitions = field(default_factory=InputDefinitions)
    output_definitions: OutputDefinitions = field(default_factory=OutputDefinitions)
    dag: DagSpec | None = None
    executor_label: str = ""


@dataclass(frozen=True)
class ResourceSpec:
    """Container resources as written in the IR (strings may hold placeholders)."""

    cpu_limit: str = ""
    cpu_request: str = ""
    memory_limit: str = ""
    memory_request: str = ""
    accelerator_type: str = ""
    accelerator_count: str = ""

    def is_empty(self) -> bool:
        """True when no resource is set."""
        return not any(
            (
                self.cpu_limit,
                self.cpu_request,
                self.memory_limit,
                self.memory_request,
                self.accelerator_type,
                self.accelerator_count,
            )
        )


@dataclass(frozen=True)
class ContainerSpec:
    """A container executor: image, raw command/args (with placeholders), env, resources."""

    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    resources: ResourceSpec = field(default_factory=ResourceSpec)


@dataclass(frozen=True)
class ImporterSpec:
    """An importer executor: where the artifact is, its type and metadata."""

    type_schema: ArtifactTypeSpec
    artifact_uri_constant: str | None = None
    artifact_uri_runtime_parameter: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    reimport: bool = False
    download_to_workspace: bool = False


EXECUTOR_CONTAINER: Final = "container"
EXECUTOR_IMPORTER: Final = "importer"
EXECUTOR_RESOLVER: Final = "resolver"
EXECUTOR_CUSTOM_JOB: Final = "customJob"


@dataclass(frozen=True)
class ExecutorSpec:
    """An entry of ``deploymentSpec.executors``."""

    label: str
    kind: str  # one of the EXECUTOR_* constants
    container: ContainerSpec | None = None
    importer: ImporterSpec | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlatformSpec:
    """The Kubernetes platform spec (second YAML document), kept as raw JSON per executor."""

    executors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    pipeline_config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PipelineSpec:
    """A parsed, validated pipeline."""

    name: str
    display_name: str
    description: str
    sdk_version: str
    schema_version: str
    default_pipeline_root: str
    root: ComponentSpec
    components: Mapping[str, ComponentSpec]
    executors: Mapping[str, ExecutorSpec]
    platform: PlatformSpec = field(default_factory=PlatformSpec)

    def component(self, name: str) -> ComponentSpec:
        """The component called ``name`` (``root`` is the root component)."""
        if name == "root":
            return self.root
        return self.components[name]

    def executor_for(self, component: ComponentSpec) -> ExecutorSpec | None:
        """The executor a leaf component runs, or None for a DAG component."""
        if not component.executor_label:
            return None
        return self.executors[component.executor_label]


# ---------------------------------------------------------------------------------------
# Parsing: the JSON becomes KFP's own protobuf messages (kfp-pipeline-spec), checked with
# readable errors by apps.engine.protojson; the messages become the dataclasses above, and
# what the proto cannot say (references, cycles, CEL, loops) is checked here.
# ---------------------------------------------------------------------------------------

_DEPLOYMENT = pb.PipelineDeploymentConfig
_EXECUTOR = "ml_pipelines.PipelineDeploymentConfig."
_INPUTS = "ml_pipelines.TaskInputsSpec."
_OUTPUTS = "ml_pipelines.DagOutputsSpec."

# What KFP needs beyond pipeline_spec.proto (proto3 has no required fields).
_RULES = Rules(
    required={
        "ml_pipelines.PipelineSpec": ("pipelineInfo", "root", "schemaVersion"),
        "ml_pipelines.PipelineInfo": ("name",),
        "ml_pipelines.PipelineTaskSpec": ("componentRef",),
        "ml_pipelines.ComponentRef": ("name",),
        "ml_pipelines.ComponentInputsSpec.ArtifactSpec": ("artifactType",),
        "ml_pipelines.ComponentOutputsSpec.ArtifactSpec": ("artifactType",),
        f"{_INPUTS}InputParameterSpec.TaskOutputParameterSpec": ("producerTask", "outputParameterKey"),
        f"{_INPUTS}InputParameterSpec.TaskFinalStatus": ("producerTask",),
        f"{_INPUTS}InputArtifactSpec.TaskOutputArtifactSpec": ("producerTask", "outputArtifactKey"),
        "ml_pipelines.ParameterIteratorSpec": ("items", "itemInput"),
        "ml_pipelines.ArtifactIteratorSpec": ("items", "itemInput"),
        "ml_pipelines.ArtifactIteratorSpec.ItemsSpec": ("inputArtifact",),
        f"{_OUTPUTS}ParameterSelectorSpec": ("producerSubtask", "outputParameterKey"),
        f"{_OUTPUTS}ArtifactSelectorSpec": ("producerSubtask", "outputArtifactKey"),
        f"{_EXECUTOR}PipelineContainerSpec": ("image",),
        f"{_EXECUTOR}PipelineContainerSpec.EnvVar": ("name",),
        f"{_EXECUTOR}ImporterSpec": ("artifactUri", "typeSchema"),
        "ml_pipelines.PlatformSpec": ("platforms",),
    },
    required_oneofs={
        "ml_pipelines.ComponentSpec": ("implementation",),
        f"{_EXECUTOR}ExecutorSpec": ("spec",),
        f"{_INPUTS}InputParameterSpec": ("kind",),
        f"{_INPUTS}InputArtifactSpec": ("kind",),
        "ml_pipelines.ParameterIteratorSpec.ItemsSpec": ("kind",),
        f"{_OUTPUTS}DagOutputParameterSpec": ("kind",),
        "ml_pipelines.ValueOrRuntimeParameter": ("value",),
        "ml_pipelines.Value": ("value",),
    },
    wording={
        # Also names the problem as the engine always has ("no name").
        "ml_pipelines.PipelineInfo.name": (
            "the pipeline has no name: the pipeline name must be a non-empty string"
        ),
        "ml_pipelines.ComponentRef.name": "componentRef.name must name a component",
        f"{_EXECUTOR}PipelineContainerSpec.image": "the container image must be a non-empty string",
        "ml_pipelines.ComponentSpec.implementation": (
            "a component needs exactly one of 'dag' or 'executorLabel'"
        ),
        f"{_EXECUTOR}ExecutorSpec.spec": (
            "an executor needs exactly one of 'container', 'importer', 'resolver' or 'customJob'"
        ),
        f"{_INPUTS}InputParameterSpec.kind": (
            "an input parameter takes its value from exactly one of componentInputParameter, "
            "taskOutputParameter, runtimeValue or taskFinalStatus"
        ),
        f"{_INPUTS}InputArtifactSpec.kind": (
            "an input artifact comes from exactly one of componentInputArtifact or taskOutputArtifact"
        ),
        "ml_pipelines.PipelineTaskSpec.iterator": (
            "a task can have a parameterIterator or an artifactIterator, not both"
        ),
        "ml_pipelines.ParameterIteratorSpec.ItemsSpec.kind": (
            "parameterIterator.items needs exactly one of 'raw' or 'inputParameter'"
        ),
        "ml_pipelines.Value.value": "constantValue must hold exactly one value",
    },
    # PipelineSpec.deploymentSpec is a Struct in the proto; KFP reads it as this message.
    embedded={"ml_pipelines.PipelineSpec.deploymentSpec": _DEPLOYMENT.DESCRIPTOR},
)

# A run keeps its pipeline's name (a column of 255 characters) and names its directory
# after it (one path segment).
MAX_PIPELINE_NAME = 255
# A task row keeps its task's name and display name, its component's name and its
# executor's label in columns of 255 characters, and its key (the task names from the
# root down, with "#<index>" after each loop) in one of 512. SQLite would store longer
# values; MySQL refuses them, and the run would fail when first planned. So a spec that
# cannot be stored is refused when it is read, wherever it runs.
MAX_NAME = 255
MAX_KEY = 512
# Other columns a spec's strings end in: a task's image, an artifact's type, a run's
# pipeline root.
MAX_IMAGE = 1024
MAX_SCHEMA_TITLE = 128
MAX_SCHEMA_VERSION = 32
MAX_PIPELINE_ROOT = 1024
MAX_URI = 2048  # an artifact's URI, as a step or an importer gives it at run time
# Tasks the spec declares once its DAG components are expanded where they are used (loop
# iterations not counted): a component used by k tasks at each of n levels is k**n tasks,
# each a row of every run, so a small file could declare millions.
MAX_STATIC_TASKS = 20_000
# Room kept in a key for each loop's "#<index>" (up to ten million iterations).
_ITERATION_SUFFIX = len("#9999999")
_SCHEMA_VERSION = re.compile(r"2\.[0-9]+\.[0-9]+")
_DURATION_FIELDS: Final = {
    "backoffDuration": "backoff_duration",
    "backoffMaxDuration": "backoff_max_duration",
}
_EXECUTOR_KINDS: Final = {
    "container": EXECUTOR_CONTAINER,
    "importer": EXECUTOR_IMPORTER,
    "resolver": EXECUTOR_RESOLVER,
    "custom_job": EXECUTOR_CUSTOM_JOB,
}


def parse_pipeline_spec(ir: Any, platform_spec: Any = None) -> PipelineSpec:
    """Validate the IR (and optional platform spec) and return the typed PipelineSpec."""
    try:
        message = protojson.parse(ir, pb.PipelineSpec, _RULES)
        deployment = protojson.build(ir.get("deploymentSpec") or {}, _DEPLOYMENT, ("deploymentSpec",))
    except protojson.ShapeError as exc:
        raise SpecError(exc.message, exc.path) from None
    platform = None
    if platform_spec is not None:
        try:
            platform = protojson.parse(platform_spec, pb.PlatformSpec, _RULES)
        except protojson.ShapeError as exc:
            raise SpecError(exc.message, exc.path, in_platform_spec=True) from None
    return _Parser(ir, message, deployment).parse(platform_spec, platform)


def _kind_name(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def normalize_parameter_value(value: Any, parameter_type: str) -> Any:
    """Coerce a JSON value to the declared parameter type where KFP would accept it.

    Integral floats become ints for NUMBER_INTEGER (YAML writes ``1.0``), ints become
    floats for NUMBER_DOUBLE. Anything else is returned unchanged.
    """
    if parameter_type == "NUMBER_INTEGER" and isinstance(value, float) and value.is_integer():
        return int(value)
    if parameter_type == "NUMBER_DOUBLE" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _check_name(what: str, value: str, path: Path) -> None:
    _check_length(what, value, MAX_NAME, path)


def _check_length(what: str, value: str, limit: int, path: Path) -> None:
    if len(value) > limit:
        raise SpecError(f"{what} is {len(value):,} characters long; at most {limit} are allowed", path)


def _check_expanded_size(components: Mapping[str, ComponentSpec]) -> None:
    """Refuse a spec that declares more than ``MAX_STATIC_TASKS`` tasks once its DAG
    components are expanded where they are used (counted once per component, after the
    recursion check: linear in the spec, whatever it expands to)."""
    size: dict[str, int] = {}

    def tasks_in(name: str) -> int:
        if name not in size:
            dag = components[name].dag
            tasks = dag.tasks.values() if dag is not None else ()
            size[name] = sum(1 + tasks_in(task.component_ref) for task in tasks)
        return size[name]

    total = tasks_in("root")
    if total > MAX_STATIC_TASKS:
        raise SpecError(
            f"the pipeline declares {total:,} tasks once its DAG components are expanded where "
            f"they are used; at most {MAX_STATIC_TASKS:,} are allowed",
            ("root",),
        )


def _check_key_lengths(components: Mapping[str, ComponentSpec]) -> None:
    """Refuse a spec whose deepest task would get a key longer than ``MAX_KEY``. Each
    component's longest key below it is computed once (components are shared), after
    the recursion check, so this is linear in the spec."""
    Trail = tuple[tuple[str, bool], ...]  # (task name, is a loop) from the top down
    longest: dict[str, tuple[int, Trail]] = {}

    def below(name: str) -> tuple[int, Trail]:
        # The longest key suffix under component ``name``, and the tasks along it.
        if name not in longest:
            best: tuple[int, Trail] = (0, ())
            dag = components[name].dag
            for tname, task in (dag.tasks if dag is not None else {}).items():
                looped = task.parameter_iterator is not None or task.artifact_iterator is not None
                inner, trail = below(task.component_ref)
                length = _key_part(tname, looped) + inner
                if length > best[0]:
                    best = (length, ((tname, looped), *trail))
            longest[name] = best
        return longest[name]

    length, trail = below("root")
    if len(ROOT_KEY) + length <= MAX_KEY:
        return
    shown = "/".join([ROOT_KEY, *(tname + ("#N" if looped else "") for tname, looped in trail)])
    # Point at the first task along the longest key whose own key no longer fits.
    component, used = "root", len(ROOT_KEY)
    for tname, looped in trail:
        used += _key_part(tname, looped)
        if used > MAX_KEY:
            base: Path = ("root",) if component == "root" else ("components", component)
            raise SpecError(
                f"task '{tname}' is nested too deeply under names too long: the key {shown} takes up "
                f"to {len(ROOT_KEY) + length:,} characters (a loop's #N counted as {_ITERATION_SUFFIX}); "
                f"at most {MAX_KEY} are allowed. Shorten the task names along it",
                (*base, "dag", "tasks", tname),
            )
        dag = components[component].dag
        assert dag is not None
        component = dag.tasks[tname].component_ref
    raise AssertionError("the longest key was measured longer than its parts")  # pragma: no cover


def _key_part(task_name: str, looped: bool) -> int:
    """What a task adds to the keys below it: "/name", and "#<index>" if it loops."""
    return 1 + len(task_name) + (_ITERATION_SUFFIX if looped else 0)


def _keys(raw: Any, *keys: str) -> list[str]:
    """The keys of ``raw[keys[0]][keys[1]]...`` in document order (protobuf maps have none)."""
    for key in keys:
        raw = raw.get(key) or {}
    return list(raw)


class _Parser:
    """Maps the messages to the dataclasses. The raw JSON is read only for the order of map
    entries and for JSON values (defaults, constants, metadata), which protobuf's Value
    would turn into floats."""

    def __init__(self, ir: dict[str, Any], message: pb.PipelineSpec, deployment: Any) -> None:
        self.ir = ir
        self.message = message
        self.deployment = deployment

    # -- top level ------------------------------------------------------------------
    def parse(self, platform_raw: Any, platform: pb.PlatformSpec | None) -> PipelineSpec:
        ir, info = self.message, self.message.pipeline_info
        if not info.name.strip():
            raise SpecError("the pipeline has no name (pipelineInfo.name is blank)", ("pipelineInfo", "name"))
        if len(info.name) > MAX_PIPELINE_NAME:
            raise SpecError(
                f"pipelineInfo.name is {len(info.name):,} characters long; at most {MAX_PIPELINE_NAME} are "
                "allowed (KFP's compiler allows 128)",
                ("pipelineInfo", "name"),
            )
        _check_name("pipelineInfo.displayName", info.display_name, ("pipelineInfo", "displayName"))
        _check_length(
            "defaultPipelineRoot", ir.default_pipeline_root, MAX_PIPELINE_ROOT, ("defaultPipelineRoot",)
        )
        if not _SCHEMA_VERSION.fullmatch(ir.schema_version):
            raise SpecError(
                "unsupported schemaVersion: Canal reads KFP v2 pipeline specs (schemaVersion 2.x.y), "
                f"got {describe_value(ir.schema_version)}",
                ("schemaVersion",),
            )
        raw_executors = (self.ir.get("deploymentSpec") or {}).get("executors") or {}
        for label in raw_executors:
            _check_name("executor label", label, ("deploymentSpec", "executors", label))
        raw_components = self.ir.get("components") or {}
        for name in raw_components:
            _check_name("component name", name, ("components", name))
        executors = {
            label: self._executor(
                label,
                self.deployment.executors[label],
                raw_executors[label],
                ("deploymentSpec", "executors", label),
            )
            for label in raw_executors
        }
        if "root" in ir.components:
            raise SpecError("'root' is reserved for the pipeline's root component", ("components", "root"))
        components = {
            name: self._component(
                name, ir.components[name], raw_components[name], ("components", name), executors
            )
            for name in raw_components
        }
        root = self._component("root", ir.root, self.ir["root"], ("root",), executors)
        if root.dag is None:
            raise SpecError("the root component must be a DAG (root.dag is missing)", ("root",))

        all_components = {**components, "root": root}
        self._check_references(all_components, executors)
        self._check_component_recursion(all_components)
        _check_key_lengths(all_components)
        _check_expanded_size(all_components)
        return PipelineSpec(
            name=info.name,
            display_name=info.display_name or info.name,
            description=info.description,
            sdk_version=ir.sdk_version,
            schema_version=ir.schema_version,
            default_pipeline_root=ir.default_pipeline_root,
            root=root,
            components=components,
            executors=executors,
            platform=self._platform(platform_raw, platform, executors),
        )

    # -- executors ------------------------------------------------------------------
    def _executor(self, label: str, spec: Any, raw: dict[str, Any], path: Path) -> ExecutorSpec:
        kind = _EXECUTOR_KINDS[spec.WhichOneof("spec")]
        if kind == EXECUTOR_CONTAINER:
            container = self._container(spec.container, (*path, "container"))
            return ExecutorSpec(label, kind, container=container, raw=raw)
        if kind == EXECUTOR_IMPORTER:
            importer = self._importer(spec.importer, raw["importer"], (*path, "importer"))
            return ExecutorSpec(label, kind, importer=importer, raw=raw)
        return ExecutorSpec(label, kind, raw=raw)

    def _container(self, spec: Any, path: Path) -> ContainerSpec:
        for key in ("command", "args"):
            for i, item in enumerate(getattr(spec, key)):
                _check_structured_placeholder(item, (*path, key, i))
        res, acc = spec.resources, spec.resources.accelerator
        # The deprecated numeric fields (cpuLimit: 1.0) and the string ones
        # (resourceCpuLimit: '1') mean the same thing; the string form wins.
        resources = ResourceSpec(
            cpu_limit=res.resource_cpu_limit or _number_text(res.cpu_limit),
            cpu_request=res.resource_cpu_request or _number_text(res.cpu_request),
            memory_limit=res.resource_memory_limit or _number_text(res.memory_limit),
            memory_request=res.resource_memory_request or _number_text(res.memory_request),
            accelerator_type=acc.resource_type or acc.type,
            accelerator_count=acc.resource_count or _number_text(acc.count),
        )
        _check_length("image", spec.image, MAX_IMAGE, (*path, "image"))
        return ContainerSpec(
            image=spec.image,
            command=tuple(spec.command),
            args=tuple(spec.args),
            env=tuple((e.name, e.value) for e in spec.env),
            resources=resources,
        )

    def _importer(self, spec: Any, raw: dict[str, Any], path: Path) -> ImporterSpec:
        uri, upath = spec.artifact_uri, (*path, "artifactUri")
        kind = uri.WhichOneof("value")
        constant = runtime = None
        if kind == "runtime_parameter":
            runtime = uri.runtime_parameter
            if not runtime:
                raise SpecError("importer runtimeParameter is empty", (*upath, "runtimeParameter"))
        elif kind == "constant_value" and uri.constant_value.WhichOneof("value") == "string_value":
            constant = uri.constant_value.string_value
        elif kind == "constant" and uri.constant.WhichOneof("kind") == "string_value":
            constant = uri.constant.string_value
        else:
            raise SpecError("importer artifactUri constant must be a string", (*upath, "constant"))
        return ImporterSpec(
            type_schema=self._artifact_type(spec.type_schema, (*path, "typeSchema")),
            artifact_uri_constant=constant,
            artifact_uri_runtime_parameter=runtime,
            metadata=raw.get("metadata") or {},
            reimport=spec.reimport,
            download_to_workspace=spec.download_to_workspace,
        )

    def _artifact_type(self, spec: Any, path: Path) -> ArtifactTypeSpec:
        kind = spec.WhichOneof("kind")
        if kind == "schema_uri":
            raise SpecError("artifact types given by schemaUri are not supported", (*path, "schemaUri"))
        if kind is None or (kind == "schema_title" and not spec.schema_title):
            raise SpecError("artifactType needs a schemaTitle", path)
        _check_length("schemaTitle", spec.schema_title, MAX_SCHEMA_TITLE, (*path, "schemaTitle"))
        _check_length("schemaVersion", spec.schema_version, MAX_SCHEMA_VERSION, (*path, "schemaVersion"))
        return ArtifactTypeSpec(spec.schema_title, spec.schema_version, spec.instance_schema)

    # -- components -----------------------------------------------------------------
    def _component(
        self, name: str, spec: Any, raw: dict[str, Any], path: Path, executors: Mapping[str, ExecutorSpec]
    ) -> ComponentSpec:
        inputs = self._input_definitions(
            spec.input_definitions, raw.get("inputDefinitions") or {}, (*path, "inputDefinitions")
        )
        outputs = self._output_definitions(
            spec.output_definitions, raw.get("outputDefinitions") or {}, (*path, "outputDefinitions")
        )
        if spec.WhichOneof("implementation") == "executor_label":
            label = spec.executor_label
            if label not in executors:
                raise SpecError(
                    f"component '{name}' refers to executor '{label}', "
                    "which is not in deploymentSpec.executors",
                    (*path, "executorLabel"),
                )
            return ComponentSpec(name, inputs, outputs, executor_label=label)
        dag = self._dag(spec.dag, raw["dag"], (*path, "dag"))
        return ComponentSpec(name, inputs, outputs, dag=dag)

    def _parameter_type(self, spec: Any, path: Path) -> str:
        if spec.parameter_type:
            return str(pb.ParameterType.ParameterTypeEnum.Name(spec.parameter_type))
        legacy = pb.PrimitiveType.PrimitiveTypeEnum.Name(spec.type)
        if legacy in _LEGACY_PRIMITIVE_TYPES:
            return _LEGACY_PRIMITIVE_TYPES[legacy]
        raise SpecError("parameter has no parameterType", path)

    def _input_definitions(self, spec: Any, raw: dict[str, Any], path: Path) -> InputDefinitions:
        params: dict[str, InputParameterDef] = {}
        for pname in _keys(raw, "parameters"):
            p, praw, ppath = spec.parameters[pname], raw["parameters"][pname], (*path, "parameters", pname)
            ptype = self._parameter_type(p, ppath)
            has_default = "defaultValue" in praw
            default = normalize_parameter_value(praw.get("defaultValue"), ptype)
            if has_default:
                _check_value_type(default, ptype, (*ppath, "defaultValue"), f"the default of '{pname}'")
            params[pname] = InputParameterDef(
                name=pname,
                parameter_type=ptype,
                has_default=has_default,
                default=default,
                is_optional=p.is_optional,
                description=p.description,
                literals=tuple(normalize_parameter_value(v, ptype) for v in praw.get("literals") or []),
            )
        arts: dict[str, InputArtifactDef] = {}
        for aname in _keys(raw, "artifacts"):
            a = spec.artifacts[aname]
            arts[aname] = InputArtifactDef(
                name=aname,
                artifact_type=self._artifact_type(
                    a.artifact_type, (*path, "artifacts", aname, "artifactType")
                ),
                is_artifact_list=a.is_artifact_list,
                is_optional=a.is_optional,
                description=a.description,
            )
        return InputDefinitions(params, arts)

    def _output_definitions(self, spec: Any, raw: dict[str, Any], path: Path) -> OutputDefinitions:
        params = {
            pname: OutputParameterDef(
                name=pname,
                parameter_type=self._parameter_type(spec.parameters[pname], (*path, "parameters", pname)),
                description=spec.parameters[pname].description,
            )
            for pname in _keys(raw, "parameters")
        }
        arts: dict[str, OutputArtifactDef] = {}
        for aname in _keys(raw, "artifacts"):
            a = spec.artifacts[aname]
            _check_name("output artifact name", aname, (*path, "artifacts", aname))
            arts[aname] = OutputArtifactDef(
                name=aname,
                artifact_type=self._artifact_type(
                    a.artifact_type, (*path, "artifacts", aname, "artifactType")
                ),
                is_artifact_list=a.is_artifact_list,
                metadata=raw["artifacts"][aname].get("metadata") or {},
                description=a.description,
            )
        return OutputDefinitions(params, arts)

    # -- DAGs -----------------------------------------------------------------------
    def _dag(self, spec: Any, raw: dict[str, Any], path: Path) -> DagSpec:
        tasks: dict[str, TaskSpec] = {}
        for tname in _keys(raw, "tasks"):
            tpath = (*path, "tasks", tname)
            if _BAD_TASK_NAME.search(tname):
                raise SpecError(f"task name {tname!r} must be non-empty and contain no '/' or '#'", tpath)
            _check_name("task name", tname, tpath)
            tasks[tname] = self._task(tname, spec.tasks[tname], raw["tasks"][tname], tpath)

        # Every reference to a sibling task must resolve inside this DAG.
        for tname, task in tasks.items():
            tpath = (*path, "tasks", tname)
            for i, dep in enumerate(task.dependent_tasks):
                if dep == tname:
                    raise SpecError(f"task '{tname}' depends on itself", (*tpath, "dependentTasks", i))
                if dep not in tasks:
                    raise SpecError(
                        f"task '{tname}' depends on '{dep}', which is not a task of the same DAG",
                        (*tpath, "dependentTasks", i),
                    )
            inputs = [
                ("input", "parameters", p.name, p.source, p.producer_task) for p in task.parameters.values()
            ]
            inputs += [
                ("input artifact", "artifacts", a.name, a.source, a.producer_task)
                for a in task.artifacts.values()
            ]
            for what, group, iname, source, producer in inputs:
                ppath = (*tpath, "inputs", group, iname, source, "producerTask")
                if producer and producer not in tasks:
                    raise SpecError(
                        f"{what} '{iname}' of task '{tname}' reads from task '{producer}', "
                        "which is not a task of the same DAG",
                        ppath,
                    )
                if producer == tname:
                    raise SpecError(f"{what} '{iname}' of task '{tname}' reads its own output", ppath)
        self._check_cycles(tasks, path)

        outputs, opath = spec.outputs, (*path, "outputs")
        out_params: dict[str, DagOutputParameter] = {}
        for oname in _keys(raw, "outputs", "parameters"):
            o, ppath = outputs.parameters[oname], (*opath, "parameters", oname)
            if o.WhichOneof("kind") == "value_from_parameter":
                sel = self._selector(o.value_from_parameter, (*ppath, "valueFromParameter"), tasks)
                out_params[oname] = DagOutputParameter(oname, (sel,))
                continue
            selectors = o.value_from_oneof.parameter_selectors
            if not selectors:
                raise SpecError(
                    "valueFromOneof needs a non-empty list of parameterSelectors",
                    (*ppath, "valueFromOneof", "parameterSelectors"),
                )
            sels = tuple(
                self._selector(s, (*ppath, "valueFromOneof", "parameterSelectors", i), tasks)
                for i, s in enumerate(selectors)
            )
            out_params[oname] = DagOutputParameter(oname, sels, oneof=True)
        out_arts: dict[str, DagOutputArtifact] = {}
        for oname in _keys(raw, "outputs", "artifacts"):
            apath = (*opath, "artifacts", oname, "artifactSelectors")
            selectors = outputs.artifacts[oname].artifact_selectors
            if not selectors:
                raise SpecError(
                    f"DAG output artifact '{oname}' needs a non-empty list of artifactSelectors", apath
                )
            asels: list[ArtifactSelector] = []
            for i, s in enumerate(selectors):
                _check_producer(s.producer_subtask, (*apath, i), tasks)
                asels.append(ArtifactSelector(s.producer_subtask, s.output_artifact_key))
            out_arts[oname] = DagOutputArtifact(oname, tuple(asels))
        return DagSpec(tasks=tasks, output_parameters=out_params, output_artifacts=out_arts)

    @staticmethod
    def _selector(spec: Any, path: Path, tasks: Mapping[str, TaskSpec]) -> ParameterSelector:
        _check_producer(spec.producer_subtask, path, tasks)
        return ParameterSelector(spec.producer_subtask, spec.output_parameter_key)

    def _check_cycles(self, tasks: Mapping[str, TaskSpec], path: Path) -> None:
        # Iterative DFS with colours; report the first cycle found, naming its tasks in order.
        white, grey, black = 0, 1, 2
        colour = dict.fromkeys(tasks, white)
        for start in tasks:
            if colour[start] != white:
                continue
            stack: list[tuple[str, int]] = [(start, 0)]
            trail: list[str] = [start]
            colour[start] = grey
            while stack:
                node, idx = stack[-1]
                ups = tasks[node].upstream_tasks
                if idx < len(ups):
                    stack[-1] = (node, idx + 1)
                    nxt = ups[idx]
                    if colour[nxt] == grey:
                        cycle = [*trail[trail.index(nxt) :], nxt]
                        raise SpecError(
                            "dependency cycle between tasks: " + " -> ".join(reversed(cycle)),
                            (*path, "tasks", node, "dependentTasks"),
                        )
                    if colour[nxt] == white:
                        colour[nxt] = grey
                        stack.append((nxt, 0))
                        trail.append(nxt)
                else:
                    colour[node] = black
                    stack.pop()
                    trail.pop()

    def _task(self, name: str, spec: Any, raw: dict[str, Any], path: Path) -> TaskSpec:
        raw_inputs = raw.get("inputs") or {}
        params = {
            pname: self._param_input(
                pname,
                spec.inputs.parameters[pname],
                raw_inputs["parameters"][pname],
                (*path, "inputs", "parameters", pname),
            )
            for pname in _keys(raw_inputs, "parameters")
        }
        arts = {
            aname: self._artifact_input(aname, spec.inputs.artifacts[aname])
            for aname in _keys(raw_inputs, "artifacts")
        }
        deps = tuple(spec.dependent_tasks)
        upstream = list(
            dict.fromkeys(
                [
                    *deps,
                    *(p.producer_task for p in params.values()),
                    *(a.producer_task for a in arts.values()),
                ]
            )
        )
        upstream = [u for u in upstream if u]

        condition = spec.trigger_policy.condition
        if condition:
            _check_cel(condition, f"the condition of task '{name}'", (*path, "triggerPolicy", "condition"))
        strategy = pb.PipelineTaskSpec.TriggerPolicy.TriggerStrategy.Name(spec.trigger_policy.strategy)
        if strategy == "TRIGGER_STRATEGY_UNSPECIFIED":
            strategy = STRATEGY_ALL_SUCCEEDED
        if strategy == STRATEGY_ALL_COMPLETED and not deps:
            raise SpecError(
                f"task '{name}' runs when all upstream tasks completed but has no dependentTasks",
                (*path, "triggerPolicy", "strategy"),
            )
        for pname, p in params.items():
            if p.source == PARAM_FROM_TASK_FINAL_STATUS and p.producer_task not in deps:
                raise SpecError(
                    f"input '{pname}' reads the final status of '{p.producer_task}', which must also be "
                    "listed in dependentTasks",
                    (*path, "inputs", "parameters", pname, PARAM_FROM_TASK_FINAL_STATUS, "producerTask"),
                )

        param_iter: ParameterIteratorSpec | None = None
        art_iter: ArtifactIteratorSpec | None = None
        iterator = spec.WhichOneof("iterator")
        if iterator == "parameter_iterator":
            param_iter = self._parameter_iterator(
                spec.parameter_iterator, (*path, "parameterIterator"), params
            )
        elif iterator == "artifact_iterator":
            it, ipath = spec.artifact_iterator, (*path, "artifactIterator", "items", "inputArtifact")
            if it.items.input_artifact not in arts:
                raise SpecError(
                    f"artifactIterator iterates over input artifact '{it.items.input_artifact}', "
                    "which the task does not pass",
                    ipath,
                )
            art_iter = ArtifactIteratorSpec(item_input=it.item_input, input_artifact=it.items.input_artifact)
        limit = spec.iterator_policy.parallelism_limit
        if limit < 0:
            raise SpecError(
                "parallelismLimit cannot be negative", (*path, "iteratorPolicy", "parallelismLimit")
            )
        if raw.get("iteratorPolicy") and iterator is None:
            raise SpecError(f"task '{name}' has an iteratorPolicy but no iterator", (*path, "iteratorPolicy"))

        _check_name("taskInfo.name", spec.task_info.name, (*path, "taskInfo", "name"))
        return TaskSpec(
            name=name,
            display_name=spec.task_info.name or name,
            component_ref=spec.component_ref.name,
            parameters=params,
            artifacts=arts,
            dependent_tasks=deps,
            upstream_tasks=tuple(upstream),
            caching=CachingOptions(spec.caching_options.enable_cache, spec.caching_options.cache_key),
            trigger=TriggerPolicy(condition=condition, strategy=strategy),
            parameter_iterator=param_iter,
            artifact_iterator=art_iter,
            parallelism_limit=limit,
            retry=self._retry(spec.retry_policy, (*path, "retryPolicy"))
            if spec.HasField("retry_policy")
            else None,
        )

    def _param_input(self, name: str, spec: Any, raw: dict[str, Any], path: Path) -> ParameterInputSpec:
        selector = spec.parameter_expression_selector
        if selector:
            _check_cel(
                selector, f"parameterExpressionSelector of '{name}'", (*path, "parameterExpressionSelector")
            )
        kind = spec.WhichOneof("kind")
        if kind == "component_input_parameter":
            return ParameterInputSpec(
                name,
                PARAM_FROM_COMPONENT_INPUT,
                component_input_parameter=spec.component_input_parameter,
                expression_selector=selector,
            )
        if kind == "task_output_parameter":
            t = spec.task_output_parameter
            return ParameterInputSpec(
                name,
                PARAM_FROM_TASK_OUTPUT,
                producer_task=t.producer_task,
                output_parameter_key=t.output_parameter_key,
                expression_selector=selector,
            )
        if kind == "task_final_status":
            return ParameterInputSpec(
                name, PARAM_FROM_TASK_FINAL_STATUS, producer_task=spec.task_final_status.producer_task
            )
        value = spec.runtime_value
        if value.WhichOneof("value") == "constant":
            # From the JSON: protobuf's Value would make every integer a float.
            constant = raw[PARAM_FROM_CONSTANT]["constant"]
        elif value.WhichOneof("value") == "constant_value":
            # The deprecated typed form {intValue|doubleValue|stringValue}.
            constant = getattr(value.constant_value, value.constant_value.WhichOneof("value"))
        else:
            raise SpecError("runtimeValue needs a constant", (*path, PARAM_FROM_CONSTANT))
        return ParameterInputSpec(name, PARAM_FROM_CONSTANT, constant=constant, expression_selector=selector)

    @staticmethod
    def _artifact_input(name: str, spec: Any) -> ArtifactInputSpec:
        if spec.WhichOneof("kind") == "component_input_artifact":
            return ArtifactInputSpec(
                name, ARTIFACT_FROM_COMPONENT_INPUT, component_input_artifact=spec.component_input_artifact
            )
        t = spec.task_output_artifact
        return ArtifactInputSpec(
            name,
            ARTIFACT_FROM_TASK_OUTPUT,
            producer_task=t.producer_task,
            output_artifact_key=t.output_artifact_key,
        )

    def _parameter_iterator(
        self, spec: Any, path: Path, params: Mapping[str, ParameterInputSpec]
    ) -> ParameterIteratorSpec:
        items = spec.items
        if items.WhichOneof("kind") == "raw":
            rpath = (*path, "items", "raw")
            try:
                decoded = json.loads(items.raw)
            except ValueError as exc:
                raise SpecError(f"parameterIterator.items.raw is not valid JSON: {exc}", rpath) from exc
            if not isinstance(decoded, list):
                raise SpecError(
                    f"parameterIterator.items.raw must be a JSON list, got {_kind_name(decoded)}", rpath
                )
            return ParameterIteratorSpec(item_input=spec.item_input, raw=items.raw)
        if items.input_parameter not in params:
            raise SpecError(
                f"parameterIterator iterates over input '{items.input_parameter}', "
                "which the task does not pass",
                (*path, "items", "inputParameter"),
            )
        return ParameterIteratorSpec(item_input=spec.item_input, input_parameter=items.input_parameter)

    def _retry(self, spec: Any, path: Path) -> RetryPolicy:
        if spec.max_retry_count < 0:
            raise SpecError("maxRetryCount cannot be negative", (*path, "maxRetryCount"))
        factor = spec.backoff_factor or DEFAULT_BACKOFF_FACTOR
        if not factor > 0:  # also NaN
            raise SpecError("backoffFactor must be a positive number", (*path, "backoffFactor"))

        def seconds(key: str, default: float) -> float:
            field = _DURATION_FIELDS[key]
            value = getattr(spec, field)
            total = value.seconds + value.nanos / 1e9 if spec.HasField(field) else 0.0
            if total < 0:
                raise SpecError(f"{key} cannot be negative", (*path, key))
            return total or default

        return RetryPolicy(
            max_retry_count=spec.max_retry_count,
            backoff_duration=seconds("backoffDuration", 0.0),
            backoff_factor=factor,
            backoff_max_duration=seconds("backoffMaxDuration", DEFAULT_BACKOFF_MAX_SECONDS),
        )

    # -- cross-component checks -----------------------------------------------------
    def _check_references(
        self, components: Mapping[str, ComponentSpec], executors: Mapping[str, ExecutorSpec]
    ) -> None:
        for cname, comp in components.items():
            if comp.dag is None:
                continue
            base: Path = ("root", "dag") if cname == "root" else ("components", cname, "dag")
            for tname, task in comp.dag.tasks.items():
                tpath = (*base, "tasks", tname)
                if task.component_ref == "root" or task.component_ref not in components:
                    raise SpecError(
                        f"task '{tname}' uses component '{task.component_ref}', "
                        "which is not defined in components",
                        (*tpath, "componentRef", "name"),
                    )
                child = components[task.component_ref]
                self._check_task_against_parent(comp, child, task, tpath, executors)

    def _check_task_against_parent(
        self,
        parent: ComponentSpec,
        child: ComponentSpec,
        task: TaskSpec,
        tpath: Path,
        executors: Mapping[str, ExecutorSpec],
    ) -> None:
        parent_params = parent.input_definitions.parameters
        parent_arts = parent.input_definitions.artifacts
        for pname, p in task.parameters.items():
            if p.source == PARAM_FROM_COMPONENT_INPUT and p.component_input_parameter not in parent_params:
                raise SpecError(
                    f"input '{pname}' of task '{task.name}' reads the DAG input "
                    f"'{p.component_input_parameter}', "
                    f"which component '{parent.name}' does not declare",
                    (*tpath, "inputs", "parameters", pname, PARAM_FROM_COMPONENT_INPUT),
                )
        for aname, a in task.artifacts.items():
            if a.source == ARTIFACT_FROM_COMPONENT_INPUT and a.component_input_artifact not in parent_arts:
                raise SpecError(
                    f"input artifact '{aname}' of task '{task.name}' reads the DAG input artifact "
                    f"'{a.component_input_artifact}', which component '{parent.name}' does not declare",
                    (*tpath, "inputs", "artifacts", aname, ARTIFACT_FROM_COMPONENT_INPUT),
                )
        importer = bool(child.executor_label) and executors[child.executor_label].kind == EXECUTOR_IMPORTER
        if task.trigger.condition and importer:
            raise SpecError(
                f"task '{task.name}' is an importer and importers cannot have a condition",
                (*tpath, "triggerPolicy", "condition"),
            )
        if task.is_loop:
            if child.dag is None:
                raise SpecError(
                    f"ParallelFor task '{task.name}' must use a DAG component, "
                    f"but '{child.name}' is not a DAG",
                    (*tpath, "componentRef", "name"),
                )
            if task.parameter_iterator is not None:
                item = task.parameter_iterator.item_input
                if item not in child.input_definitions.parameters:
                    raise SpecError(
                        f"the loop item '{item}' is not an input parameter of component '{child.name}'",
                        (*tpath, "parameterIterator", "itemInput"),
                    )
            if task.artifact_iterator is not None:
                item = task.artifact_iterator.item_input
                if item not in child.input_definitions.artifacts:
                    raise SpecError(
                        f"the loop item '{item}' is not an input artifact of component '{child.name}'",
                        (*tpath, "artifactIterator", "itemInput"),
                    )

    def _check_component_recursion(self, components: Mapping[str, ComponentSpec]) -> None:
        # A component whose DAG (transitively) uses itself would nest forever.
        state: dict[str, int] = {}

        def visit(name: str, trail: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = [*trail[trail.index(name) :], name]
                base: Path = ("root",) if cycle[0] == "root" else ("components", cycle[0])
                raise SpecError("components use each other recursively: " + " -> ".join(cycle), base)
            state[name] = 1
            comp = components[name]
            if comp.dag is not None:
                for task in comp.dag.tasks.values():
                    visit(task.component_ref, [*trail, name])
            state[name] = 2

        visit("root", [])
        for name in components:
            visit(name, [])

    # -- platform spec --------------------------------------------------------------
    @staticmethod
    def _platform(
        raw: Any, spec: pb.PlatformSpec | None, executors: Mapping[str, ExecutorSpec]
    ) -> PlatformSpec:
        # The executor configs stay JSON: kfp-kubernetes' KubernetesExecutorConfig is not a
        # dependency, and the pipeline spec proto types them as Struct.
        if spec is None or "kubernetes" not in spec.platforms:
            return PlatformSpec()
        k8s = raw["platforms"]["kubernetes"]
        base: Path = ("platforms", "kubernetes", "deploymentSpec", "executors")
        for label in _keys(k8s, "deploymentSpec", "executors"):
            if label not in executors:
                raise SpecError(
                    f"the platform spec configures executor '{label}', which is not in the pipeline spec",
                    (*base, label),
                    in_platform_spec=True,
                )
        return PlatformSpec(
            executors=dict((k8s.get("deploymentSpec") or {}).get("executors") or {}),
            pipeline_config=k8s.get("pipelineConfig") or {},
        )


def _check_producer(producer: str, path: Path, tasks: Mapping[str, TaskSpec]) -> None:
    if producer not in tasks:
        raise SpecError(
            f"DAG output selects from task '{producer}', which is not in this DAG", (*path, "producerSubtask")
        )


def _check_cel(expression: str, what: str, path: Path) -> None:
    # CEL (celpy and lark, about 45 ms to import) loads with the first pipeline that has
    # a condition or a selector, not in every process that parses IR.
    from apps.engine.cel import CelError, check_syntax

    try:
        check_syntax(expression)
    except CelError as exc:
        raise SpecError(f"{what} is not valid CEL: {exc}", path) from exc


def _number_text(value: float) -> str:
    """A deprecated numeric resource as text; 0 means unset."""
    if not value:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


_STRUCTURED_PREFIX = re.compile(r'^\s*\{\s*"(Concat|IfPresent)"\s*:')


def _check_structured_placeholder(arg: str, path: Path) -> None:
    # A structured placeholder is a whole argument holding JSON; a broken one would
    # otherwise be passed to the program verbatim.
    if not _STRUCTURED_PREFIX.match(arg):
        return
    try:
        decoded = json.loads(arg)
    except ValueError as exc:
        raise SpecError(f"structured placeholder is not valid JSON: {exc}", path) from exc
    _check_structure(decoded, path)


def _check_structure(node: Any, path: Path) -> None:
    if isinstance(node, str):
        return
    if isinstance(node, list):
        for item in node:
            _check_structure(item, path)
        return
    if not isinstance(node, dict) or len(node) != 1:
        raise SpecError('a structured placeholder must be {"Concat": [...]} or {"IfPresent": {...}}', path)
    key, body = next(iter(node.items()))
    if key == "Concat":
        if not isinstance(body, list):
            raise SpecError("Concat needs a list", path)
        for item in body:
            _check_structure(item, path)
    elif key == "IfPresent":
        if not isinstance(body, dict) or not isinstance(body.get("InputName"), str):
            raise SpecError("IfPresent needs an InputName", path)
        for branch in ("Then", "Else"):
            if branch in body and body[branch] is not None:
                _check_structure(body[branch], path)
    else:
        raise SpecError(f"unknown structured placeholder {key!r}", path)


def _check_value_type(value: Any, ptype: str, path: Path, what: str) -> None:
    if value is None:
        return
    ok = {
        "STRING": lambda v: isinstance(v, str),
        "NUMBER_INTEGER": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "NUMBER_DOUBLE": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "BOOLEAN": lambda v: isinstance(v, bool),
        "LIST": lambda v: isinstance(v, list),
        "STRUCT": lambda v: isinstance(v, dict),
    }.get(ptype)
    if ok is not None and not ok(value):
        raise SpecError(f"{what} is {_kind_name(value)}, which does not match its type {ptype}", path)
