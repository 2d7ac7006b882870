"""Typed, frozen view of a KFP v2 PipelineSpec (the "IR"), and its validating parser.

``parse_pipeline_spec`` turns the IR dict (the first YAML document) plus the optional
platform spec (the second document) into a :class:`PipelineSpec`. Every semantic
problem raises :class:`SpecError` carrying the exact location in the IR dict as a
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

from apps.engine.cel import CelError, check_syntax
from apps.engine.durations import DurationError, parse_duration

Path = tuple[str | int, ...]

# ParameterType.ParameterTypeEnum in pipeline_spec.proto.
PARAMETER_TYPES: Final = frozenset(
    {
        "NUMBER_DOUBLE",
        "NUMBER_INTEGER",
        "STRING",
        "BOOLEAN",
        "LIST",
        "STRUCT",
        "TASK_FINAL_STATUS",
        "TASK_CONFIG",
    }
)
# The deprecated PrimitiveType ``type`` field, still accepted by KFP for old IR.
_LEGACY_PRIMITIVE_TYPES: Final = {"INT": "NUMBER_INTEGER", "DOUBLE": "NUMBER_DOUBLE", "STRING": "STRING"}

STRATEGY_ALL_SUCCEEDED: Final = "ALL_UPSTREAM_TASKS_SUCCEEDED"
STRATEGY_ALL_COMPLETED: Final = "ALL_UPSTREAM_TASKS_COMPLETED"
_STRATEGIES: Final = frozenset(
    {"TRIGGER_STRATEGY_UNSPECIFIED", STRATEGY_ALL_SUCCEEDED, STRATEGY_ALL_COMPLETED}
)

# Defaults KFP applies to retryPolicy when a field is absent (dsl.PipelineTask.set_retry).
DEFAULT_BACKOFF_FACTOR: Final = 2.0
DEFAULT_BACKOFF_MAX_SECONDS: Final = 3600.0

# Node keys use "/" between levels and "#" before an iteration index, so task names
# must not contain either (the SDK never produces them).
_BAD_TASK_NAME = re.compile(r"[/#]")


class SpecError(ValueError):
    """The IR is not a pipeline Canal can run; ``path`` locates the problem in the IR dict."""

    def __init__(self, message: str, path: Path = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path: Path = tuple(path)

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
# Parsing
# ---------------------------------------------------------------------------------------


def parse_pipeline_spec(ir: Any, platform_spec: Any = None) -> PipelineSpec:
    """Validate the IR (and optional platform spec) and return the typed PipelineSpec."""
    return _Parser(ir, platform_spec).parse()


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


def _dict(value: Any, path: Path, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(f"{what} must be a mapping, got {_kind_name(value)}", path)
    return value


def _opt_dict(parent: dict[str, Any], key: str, path: Path, what: str) -> dict[str, Any]:
    value = parent.get(key)
    if value is None:
        return {}
    return _dict(value, (*path, key), what)


def _str(value: Any, path: Path, what: str, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise SpecError(f"{what} must be a string, got {_kind_name(value)}", path)
    if required and not value:
        raise SpecError(f"{what} is empty", path)
    return value


def _bool(value: Any, path: Path, what: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise SpecError(f"{what} must be true or false, got {_kind_name(value)}", path)
    return value


def _int(value: Any, path: Path, what: str) -> int:
    if value is None:
        return 0
    # protojson writes int32 as a number, but accept the int64-as-string form too.
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{what} must be an integer, got {_kind_name(value)}", path)
    return value


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


class _Parser:
    def __init__(self, ir: Any, platform_spec: Any) -> None:
        self.ir = ir
        self.platform_raw = platform_spec

    # -- top level ------------------------------------------------------------------
    def parse(self) -> PipelineSpec:
        ir = _dict(self.ir, (), "The pipeline spec")
        if "root" not in ir:
            raise SpecError("the pipeline spec has no 'root' section (the pipeline's DAG)", ())
        info = (
            _dict(ir.get("pipelineInfo"), ("pipelineInfo",), "pipelineInfo") if "pipelineInfo" in ir else None
        )
        if info is None:
            raise SpecError("the pipeline spec has no 'pipelineInfo' section", ())
        name = info.get("name")
        if not isinstance(name, str) or not name.strip():
            raise SpecError(
                "the pipeline has no name (pipelineInfo.name is missing or empty)", ("pipelineInfo", "name")
            )

        executors_raw = _opt_dict(
            _opt_dict(ir, "deploymentSpec", (), "deploymentSpec"),
            "executors",
            ("deploymentSpec",),
            "deploymentSpec.executors",
        )
        executors = {
            label: self._executor(label, raw, ("deploymentSpec", "executors", label))
            for label, raw in executors_raw.items()
        }

        components_raw = _opt_dict(ir, "components", (), "components")
        if "root" in components_raw:
            raise SpecError("'root' is reserved for the pipeline's root component", ("components", "root"))
        components: dict[str, ComponentSpec] = {}
        for cname, craw in components_raw.items():
            components[cname] = self._component(cname, craw, ("components", cname), executors)
        root = self._component("root", ir["root"], ("root",), executors)
        if root.dag is None:
            raise SpecError("the root component must be a DAG (root.dag is missing)", ("root",))

        all_components = {**components, "root": root}
        self._check_references(all_components)
        self._check_component_recursion(all_components)
        platform = self._platform(executors)

        return PipelineSpec(
            name=name,
            display_name=_str(
                info.get("displayName"), ("pipelineInfo", "displayName"), "displayName", required=False
            )
            or name,
            description=_str(
                info.get("description"), ("pipelineInfo", "description"), "description", required=False
            ),
            sdk_version=_str(ir.get("sdkVersion"), ("sdkVersion",), "sdkVersion", required=False),
            schema_version=_str(ir.get("schemaVersion"), ("schemaVersion",), "schemaVersion", required=False),
            default_pipeline_root=_str(
                ir.get("defaultPipelineRoot"), ("defaultPipelineRoot",), "defaultPipelineRoot", required=False
            ),
            root=root,
            components=components,
            executors=executors,
            platform=platform,
        )

    # -- executors ------------------------------------------------------------------
    def _executor(self, label: str, raw: Any, path: Path) -> ExecutorSpec:
        spec = _dict(raw, path, f"executor '{label}'")
        kinds = [
            k
            for k in (EXECUTOR_CONTAINER, EXECUTOR_IMPORTER, EXECUTOR_RESOLVER, EXECUTOR_CUSTOM_JOB)
            if k in spec
        ]
        if len(kinds) != 1:
            raise SpecError(
                f"executor '{label}' must define exactly one of container, importer, resolver or customJob",
                path,
            )
        kind = kinds[0]
        if kind == EXECUTOR_CONTAINER:
            return ExecutorSpec(
                label, kind, container=self._container(spec["container"], (*path, "container")), raw=spec
            )
        if kind == EXECUTOR_IMPORTER:
            return ExecutorSpec(
                label, kind, importer=self._importer(spec["importer"], (*path, "importer")), raw=spec
            )
        return ExecutorSpec(label, kind, raw=spec)

    def _string_list(self, value: Any, path: Path, what: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise SpecError(f"{what} must be a list of strings, got {_kind_name(value)}", path)
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise SpecError(f"{what} entries must be strings, got {_kind_name(item)}", (*path, i))
            out.append(item)
        return tuple(out)

    def _container(self, raw: Any, path: Path) -> ContainerSpec:
        spec = _dict(raw, path, "container")
        image = _str(spec.get("image"), (*path, "image"), "the container image")
        command = self._string_list(spec.get("command"), (*path, "command"), "command")
        args = self._string_list(spec.get("args"), (*path, "args"), "args")
        for key, items in (("command", command), ("args", args)):
            for i, item in enumerate(items):
                _check_structured_placeholder(item, (*path, key, i))
        env: list[tuple[str, str]] = []
        env_raw = spec.get("env") or []
        if not isinstance(env_raw, list):
            raise SpecError("env must be a list of {name, value}", (*path, "env"))
        for i, item in enumerate(env_raw):
            entry = _dict(item, (*path, "env", i), "an env entry")
            env.append(
                (
                    _str(entry.get("name"), (*path, "env", i, "name"), "env name"),
                    _str(entry.get("value"), (*path, "env", i, "value"), "env value", required=False),
                )
            )
        res = _opt_dict(spec, "resources", path, "resources")
        acc = _opt_dict(res, "accelerator", (*path, "resources"), "accelerator")

        def text(*keys: str) -> str:
            # The deprecated numeric fields (cpuLimit: 1.0) and the string ones
            # (resourceCpuLimit: '1') mean the same thing; prefer the string form.
            for source, key in ((res, k) for k in keys):
                value = source.get(key)
                if value is not None and value != "":
                    return value if isinstance(value, str) else _number_text(value)
            return ""

        def acc_text(*keys: str) -> str:
            for key in keys:
                value = acc.get(key)
                if value is not None and value != "":
                    return value if isinstance(value, str) else _number_text(value)
            return ""

        resources = ResourceSpec(
            cpu_limit=text("resourceCpuLimit", "cpuLimit"),
            cpu_request=text("resourceCpuRequest", "cpuRequest"),
            memory_limit=text("resourceMemoryLimit", "memoryLimit"),
            memory_request=text("resourceMemoryRequest", "memoryRequest"),
            accelerator_type=acc_text("resourceType", "type"),
            accelerator_count=acc_text("resourceCount", "count"),
        )
        return ContainerSpec(image=image, command=command, args=args, env=tuple(env), resources=resources)

    def _importer(self, raw: Any, path: Path) -> ImporterSpec:
        spec = _dict(raw, path, "importer")
        uri = _dict(spec.get("artifactUri"), (*path, "artifactUri"), "importer artifactUri")
        constant = uri.get("constant", uri.get("constantValue"))
        if isinstance(constant, dict) and "stringValue" in constant:
            constant = constant["stringValue"]
        runtime = uri.get("runtimeParameter")
        if (constant is None) == (runtime is None):
            raise SpecError(
                "importer artifactUri must have exactly one of 'constant' or 'runtimeParameter'",
                (*path, "artifactUri"),
            )
        if constant is not None and not isinstance(constant, str):
            raise SpecError(
                "importer artifactUri constant must be a string", (*path, "artifactUri", "constant")
            )
        if runtime is not None:
            runtime = _str(runtime, (*path, "artifactUri", "runtimeParameter"), "importer runtimeParameter")
        type_schema = self._artifact_type(spec.get("typeSchema"), (*path, "typeSchema"))
        metadata = _opt_dict(spec, "metadata", path, "importer metadata")
        return ImporterSpec(
            type_schema=type_schema,
            artifact_uri_constant=constant,
            artifact_uri_runtime_parameter=runtime,
            metadata=metadata,
            reimport=_bool(spec.get("reimport"), (*path, "reimport"), "reimport"),
            download_to_workspace=_bool(
                spec.get("downloadToWorkspace"), (*path, "downloadToWorkspace"), "downloadToWorkspace"
            ),
        )

    def _artifact_type(self, raw: Any, path: Path) -> ArtifactTypeSpec:
        spec = _dict(raw, path, "artifactType")
        title = spec.get("schemaTitle")
        instance = spec.get("instanceSchema")
        if title is None and instance is None:
            if "schemaUri" in spec:
                raise SpecError("artifact types given by schemaUri are not supported", (*path, "schemaUri"))
            raise SpecError("artifactType needs a schemaTitle", path)
        return ArtifactTypeSpec(
            schema_title=_str(title, (*path, "schemaTitle"), "schemaTitle") if title is not None else "",
            schema_version=_str(
                spec.get("schemaVersion"), (*path, "schemaVersion"), "schemaVersion", required=False
            ),
            instance_schema=_str(instance, (*path, "instanceSchema"), "instanceSchema", required=False),
        )

    # -- components -----------------------------------------------------------------
    def _component(
        self, name: str, raw: Any, path: Path, executors: Mapping[str, ExecutorSpec]
    ) -> ComponentSpec:
        spec = _dict(raw, path, f"component '{name}'")
        has_dag = "dag" in spec
        label = spec.get("executorLabel")
        if has_dag and label is not None:
            raise SpecError(f"component '{name}' has both a dag and an executorLabel", path)
        if not has_dag and label is None:
            raise SpecError(f"component '{name}' has neither a dag nor an executorLabel", path)
        inputs = self._input_definitions(spec.get("inputDefinitions"), (*path, "inputDefinitions"))
        outputs = self._output_definitions(spec.get("outputDefinitions"), (*path, "outputDefinitions"))
        if label is not None:
            label = _str(label, (*path, "executorLabel"), "executorLabel")
            if label not in executors:
                raise SpecError(
                    f"component '{name}' refers to executor '{label}', "
                    "which is not in deploymentSpec.executors",
                    (*path, "executorLabel"),
                )
            return ComponentSpec(name, inputs, outputs, executor_label=label)
        dag = self._dag(spec["dag"], (*path, "dag"), name)
        return ComponentSpec(name, inputs, outputs, dag=dag)

    def _parameter_type(self, spec: dict[str, Any], path: Path) -> str:
        ptype = spec.get("parameterType")
        if ptype is None and "type" in spec:
            legacy = spec["type"]
            if legacy not in _LEGACY_PRIMITIVE_TYPES:
                raise SpecError(f"unknown parameter type {legacy!r}", (*path, "type"))
            return _LEGACY_PRIMITIVE_TYPES[legacy]
        if ptype is None:
            raise SpecError("parameter has no parameterType", path)
        if ptype not in PARAMETER_TYPES:
            raise SpecError(
                f"unknown parameter type {ptype!r}; expected one of {', '.join(sorted(PARAMETER_TYPES))}",
                (*path, "parameterType"),
            )
        return str(ptype)

    def _input_definitions(self, raw: Any, path: Path) -> InputDefinitions:
        if raw is None:
            return InputDefinitions()
        spec = _dict(raw, path, "inputDefinitions")
        params: dict[str, InputParameterDef] = {}
        for pname, praw in _opt_dict(spec, "parameters", path, "parameters").items():
            ppath = (*path, "parameters", pname)
            p = _dict(praw, ppath, f"input parameter '{pname}'")
            ptype = self._parameter_type(p, ppath)
            has_default = "defaultValue" in p
            default = normalize_parameter_value(p.get("defaultValue"), ptype) if has_default else None
            if has_default:
                _check_value_type(default, ptype, (*ppath, "defaultValue"), f"the default of '{pname}'")
            literals = p.get("literals") or []
            if not isinstance(literals, list):
                raise SpecError("literals must be a list", (*ppath, "literals"))
            params[pname] = InputParameterDef(
                name=pname,
                parameter_type=ptype,
                has_default=has_default,
                default=default,
                is_optional=_bool(p.get("isOptional"), (*ppath, "isOptional"), "isOptional"),
                description=_str(
                    p.get("description"), (*ppath, "description"), "description", required=False
                ),
                literals=tuple(normalize_parameter_value(v, ptype) for v in literals),
            )
        arts: dict[str, InputArtifactDef] = {}
        for aname, araw in _opt_dict(spec, "artifacts", path, "artifacts").items():
            apath = (*path, "artifacts", aname)
            a = _dict(araw, apath, f"input artifact '{aname}'")
            arts[aname] = InputArtifactDef(
                name=aname,
                artifact_type=self._artifact_type(a.get("artifactType"), (*apath, "artifactType")),
                is_artifact_list=_bool(a.get("isArtifactList"), (*apath, "isArtifactList"), "isArtifactList"),
                is_optional=_bool(a.get("isOptional"), (*apath, "isOptional"), "isOptional"),
                description=_str(
                    a.get("description"), (*apath, "description"), "description", required=False
                ),
            )
        return InputDefinitions(params, arts)

    def _output_definitions(self, raw: Any, path: Path) -> OutputDefinitions:
        if raw is None:
            return OutputDefinitions()
        spec = _dict(raw, path, "outputDefinitions")
        params: dict[str, OutputParameterDef] = {}
        for pname, praw in _opt_dict(spec, "parameters", path, "parameters").items():
            ppath = (*path, "parameters", pname)
            p = _dict(praw, ppath, f"output parameter '{pname}'")
            params[pname] = OutputParameterDef(
                name=pname,
                parameter_type=self._parameter_type(p, ppath),
                description=_str(
                    p.get("description"), (*ppath, "description"), "description", required=False
                ),
            )
        arts: dict[str, OutputArtifactDef] = {}
        for aname, araw in _opt_dict(spec, "artifacts", path, "artifacts").items():
            apath = (*path, "artifacts", aname)
            a = _dict(araw, apath, f"output artifact '{aname}'")
            arts[aname] = OutputArtifactDef(
                name=aname,
                artifact_type=self._artifact_type(a.get("artifactType"), (*apath, "artifactType")),
                is_artifact_list=_bool(a.get("isArtifactList"), (*apath, "isArtifactList"), "isArtifactList"),
                metadata=_opt_dict(a, "metadata", apath, "metadata"),
                description=_str(
                    a.get("description"), (*apath, "description"), "description", required=False
                ),
            )
        return OutputDefinitions(params, arts)

    # -- DAGs -----------------------------------------------------------------------
    def _dag(self, raw: Any, path: Path, component: str) -> DagSpec:
        spec = _dict(raw, path, "dag")
        tasks_raw = _opt_dict(spec, "tasks", path, "dag.tasks")
        tasks: dict[str, TaskSpec] = {}
        for tname, traw in tasks_raw.items():
            tpath = (*path, "tasks", tname)
            if not isinstance(tname, str) or not tname or _BAD_TASK_NAME.search(tname):
                raise SpecError(f"task name {tname!r} must be non-empty and contain no '/' or '#'", tpath)
            tasks[tname] = self._task(tname, traw, tpath)

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
            for pname, pin in task.parameters.items():
                if pin.producer_task:
                    kind = pin.source
                    ppath = (*tpath, "inputs", "parameters", pname, kind, "producerTask")
                    if pin.producer_task not in tasks:
                        raise SpecError(
                            f"input '{pname}' of task '{tname}' reads from task '{pin.producer_task}', "
                            "which is not a task of the same DAG",
                            ppath,
                        )
                    if pin.producer_task == tname:
                        raise SpecError(f"input '{pname}' of task '{tname}' reads its own output", ppath)
            for aname, ain in task.artifacts.items():
                if ain.producer_task:
                    apath = (*tpath, "inputs", "artifacts", aname, ARTIFACT_FROM_TASK_OUTPUT, "producerTask")
                    if ain.producer_task not in tasks:
                        raise SpecError(
                            f"input artifact '{aname}' of task '{tname}' reads from task "
                            f"'{ain.producer_task}', which is not a task of the same DAG",
                            apath,
                        )
                    if ain.producer_task == tname:
                        raise SpecError(
                            f"input artifact '{aname}' of task '{tname}' reads its own output", apath
                        )
        self._check_cycles(tasks, path)

        outputs = _opt_dict(spec, "outputs", path, "dag.outputs")
        out_params: dict[str, DagOutputParameter] = {}
        for oname, oraw in _opt_dict(
            outputs, "parameters", (*path, "outputs"), "dag output parameters"
        ).items():
            opath = (*path, "outputs", "parameters", oname)
            o = _dict(oraw, opath, f"DAG output parameter '{oname}'")
            if "valueFromParameter" in o:
                sel = self._param_selector(o["valueFromParameter"], (*opath, "valueFromParameter"), tasks)
                out_params[oname] = DagOutputParameter(oname, (sel,))
            elif "valueFromOneof" in o:
                one = _dict(o["valueFromOneof"], (*opath, "valueFromOneof"), "valueFromOneof")
                sels_raw = one.get("parameterSelectors")
                if not isinstance(sels_raw, list) or not sels_raw:
                    raise SpecError(
                        "valueFromOneof needs a non-empty list of parameterSelectors",
                        (*opath, "valueFromOneof", "parameterSelectors"),
                    )
                sels = tuple(
                    self._param_selector(s, (*opath, "valueFromOneof", "parameterSelectors", i), tasks)
                    for i, s in enumerate(sels_raw)
                )
                out_params[oname] = DagOutputParameter(oname, sels, oneof=True)
            else:
                raise SpecError(
                    f"DAG output parameter '{oname}' needs valueFromParameter or valueFromOneof", opath
                )
        out_arts: dict[str, DagOutputArtifact] = {}
        for oname, oraw in _opt_dict(
            outputs, "artifacts", (*path, "outputs"), "dag output artifacts"
        ).items():
            opath = (*path, "outputs", "artifacts", oname)
            o = _dict(oraw, opath, f"DAG output artifact '{oname}'")
            sels_raw = o.get("artifactSelectors")
            if not isinstance(sels_raw, list) or not sels_raw:
                raise SpecError(
                    f"DAG output artifact '{oname}' needs a non-empty list of artifactSelectors",
                    (*opath, "artifactSelectors"),
                )
            asels: list[ArtifactSelector] = []
            for i, sraw in enumerate(sels_raw):
                spath = (*opath, "artifactSelectors", i)
                s = _dict(sraw, spath, "an artifact selector")
                producer = _str(s.get("producerSubtask"), (*spath, "producerSubtask"), "producerSubtask")
                if producer not in tasks:
                    raise SpecError(
                        f"DAG output artifact '{oname}' selects from task '{producer}', "
                        "which is not in this DAG",
                        (*spath, "producerSubtask"),
                    )
                asels.append(
                    ArtifactSelector(
                        producer,
                        _str(s.get("outputArtifactKey"), (*spath, "outputArtifactKey"), "outputArtifactKey"),
                    )
                )
            out_arts[oname] = DagOutputArtifact(oname, tuple(asels))
        return DagSpec(tasks=tasks, output_parameters=out_params, output_artifacts=out_arts)

    def _param_selector(self, raw: Any, path: Path, tasks: Mapping[str, TaskSpec]) -> ParameterSelector:
        s = _dict(raw, path, "a parameter selector")
        producer = _str(s.get("producerSubtask"), (*path, "producerSubtask"), "producerSubtask")
        if producer not in tasks:
            raise SpecError(
                f"DAG output selects from task '{producer}', which is not in this DAG",
                (*path, "producerSubtask"),
            )
        return ParameterSelector(
            producer, _str(s.get("outputParameterKey"), (*path, "outputParameterKey"), "outputParameterKey")
        )

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

    def _task(self, name: str, raw: Any, path: Path) -> TaskSpec:
        spec = _dict(raw, path, f"task '{name}'")
        ref = _dict(spec.get("componentRef"), (*path, "componentRef"), "componentRef")
        component_ref = _str(ref.get("name"), (*path, "componentRef", "name"), "componentRef.name")
        info = _opt_dict(spec, "taskInfo", path, "taskInfo")
        display = _str(info.get("name"), (*path, "taskInfo", "name"), "taskInfo.name", required=False) or name

        inputs = _opt_dict(spec, "inputs", path, "inputs")
        params: dict[str, ParameterInputSpec] = {}
        for pname, praw in _opt_dict(inputs, "parameters", (*path, "inputs"), "input parameters").items():
            params[pname] = self._param_input(pname, praw, (*path, "inputs", "parameters", pname))
        arts: dict[str, ArtifactInputSpec] = {}
        for aname, araw in _opt_dict(inputs, "artifacts", (*path, "inputs"), "input artifacts").items():
            arts[aname] = self._artifact_input(aname, araw, (*path, "inputs", "artifacts", aname))

        deps_raw = spec.get("dependentTasks") or []
        if not isinstance(deps_raw, list):
            raise SpecError("dependentTasks must be a list of task names", (*path, "dependentTasks"))
        deps = tuple(
            _str(d, (*path, "dependentTasks", i), "a dependentTasks entry") for i, d in enumerate(deps_raw)
        )
        upstream: list[str] = list(dict.fromkeys(deps))
        for p in params.values():
            if p.producer_task and p.producer_task not in upstream:
                upstream.append(p.producer_task)
        for a in arts.values():
            if a.producer_task and a.producer_task not in upstream:
                upstream.append(a.producer_task)

        caching_raw = _opt_dict(spec, "cachingOptions", path, "cachingOptions")
        caching = CachingOptions(
            enable_cache=_bool(
                caching_raw.get("enableCache"), (*path, "cachingOptions", "enableCache"), "enableCache"
            ),
            cache_key=_str(
                caching_raw.get("cacheKey"), (*path, "cachingOptions", "cacheKey"), "cacheKey", required=False
            ),
        )

        trig_raw = _opt_dict(spec, "triggerPolicy", path, "triggerPolicy")
        condition = _str(
            trig_raw.get("condition"), (*path, "triggerPolicy", "condition"), "the condition", required=False
        )
        if condition:
            try:
                check_syntax(condition)
            except CelError as exc:
                raise SpecError(
                    f"the condition of task '{name}' is not valid CEL: {exc}",
                    (*path, "triggerPolicy", "condition"),
                ) from exc
        strategy = trig_raw.get("strategy") or STRATEGY_ALL_SUCCEEDED
        if strategy not in _STRATEGIES:
            raise SpecError(
                f"unknown trigger strategy {strategy!r}; "
                f"expected {STRATEGY_ALL_SUCCEEDED} or {STRATEGY_ALL_COMPLETED}",
                (*path, "triggerPolicy", "strategy"),
            )
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
        if "parameterIterator" in spec and "artifactIterator" in spec:
            raise SpecError(f"task '{name}' has both a parameterIterator and an artifactIterator", path)
        if "parameterIterator" in spec:
            param_iter = self._parameter_iterator(
                spec["parameterIterator"], (*path, "parameterIterator"), params
            )
        if "artifactIterator" in spec:
            art_iter = self._artifact_iterator(spec["artifactIterator"], (*path, "artifactIterator"), arts)
        iter_policy = _opt_dict(spec, "iteratorPolicy", path, "iteratorPolicy")
        limit = _int(
            iter_policy.get("parallelismLimit"),
            (*path, "iteratorPolicy", "parallelismLimit"),
            "parallelismLimit",
        )
        if limit < 0:
            raise SpecError(
                "parallelismLimit cannot be negative", (*path, "iteratorPolicy", "parallelismLimit")
            )
        if iter_policy and param_iter is None and art_iter is None:
            raise SpecError(f"task '{name}' has an iteratorPolicy but no iterator", (*path, "iteratorPolicy"))

        retry = None
        if "retryPolicy" in spec:
            retry = self._retry(spec["retryPolicy"], (*path, "retryPolicy"))

        return TaskSpec(
            name=name,
            display_name=display,
            component_ref=component_ref,
            parameters=params,
            artifacts=arts,
            dependent_tasks=deps,
            upstream_tasks=tuple(upstream),
            caching=caching,
            trigger=TriggerPolicy(condition=condition, strategy=strategy),
            parameter_iterator=param_iter,
            artifact_iterator=art_iter,
            parallelism_limit=limit,
            retry=retry,
        )

    def _param_input(self, name: str, raw: Any, path: Path) -> ParameterInputSpec:
        spec = _dict(raw, path, f"input parameter '{name}'")
        kinds = [
            k
            for k in (
                PARAM_FROM_COMPONENT_INPUT,
                PARAM_FROM_TASK_OUTPUT,
                PARAM_FROM_CONSTANT,
                PARAM_FROM_TASK_FINAL_STATUS,
            )
            if k in spec
        ]
        if len(kinds) != 1:
            raise SpecError(
                f"input parameter '{name}' must take its value from exactly one of componentInputParameter, "
                "taskOutputParameter, runtimeValue or taskFinalStatus",
                path,
            )
        kind = kinds[0]
        selector = _str(
            spec.get("parameterExpressionSelector"),
            (*path, "parameterExpressionSelector"),
            "parameterExpressionSelector",
            required=False,
        )
        if selector:
            try:
                check_syntax(selector)
            except CelError as exc:
                raise SpecError(
                    f"parameterExpressionSelector of '{name}' is not valid CEL: {exc}",
                    (*path, "parameterExpressionSelector"),
                ) from exc
        if kind == PARAM_FROM_COMPONENT_INPUT:
            return ParameterInputSpec(
                name,
                kind,
                component_input_parameter=_str(spec[kind], (*path, kind), "componentInputParameter"),
                expression_selector=selector,
            )
        if kind == PARAM_FROM_TASK_OUTPUT:
            t = _dict(spec[kind], (*path, kind), "taskOutputParameter")
            return ParameterInputSpec(
                name,
                kind,
                producer_task=_str(t.get("producerTask"), (*path, kind, "producerTask"), "producerTask"),
                output_parameter_key=_str(
                    t.get("outputParameterKey"), (*path, kind, "outputParameterKey"), "outputParameterKey"
                ),
                expression_selector=selector,
            )
        if kind == PARAM_FROM_TASK_FINAL_STATUS:
            t = _dict(spec[kind], (*path, kind), "taskFinalStatus")
            return ParameterInputSpec(
                name,
                kind,
                producer_task=_str(t.get("producerTask"), (*path, kind, "producerTask"), "producerTask"),
            )
        rv = _dict(spec[kind], (*path, kind), "runtimeValue")
        if "constant" in rv:
            constant = rv["constant"]
        elif "constantValue" in rv:
            # The deprecated typed form {intValue|doubleValue|stringValue}.
            cv = _dict(rv["constantValue"], (*path, kind, "constantValue"), "constantValue")
            if len(cv) != 1:
                raise SpecError("constantValue must hold exactly one value", (*path, kind, "constantValue"))
            constant = next(iter(cv.values()))
            if "intValue" in cv:
                constant = int(constant)
        else:
            raise SpecError("runtimeValue needs a constant", (*path, kind))
        return ParameterInputSpec(name, kind, constant=constant, expression_selector=selector)

    def _artifact_input(self, name: str, raw: Any, path: Path) -> ArtifactInputSpec:
        spec = _dict(raw, path, f"input artifact '{name}'")
        kinds = [k for k in (ARTIFACT_FROM_COMPONENT_INPUT, ARTIFACT_FROM_TASK_OUTPUT) if k in spec]
        if len(kinds) != 1:
            raise SpecError(
                f"input artifact '{name}' must come from exactly one of "
                "componentInputArtifact or taskOutputArtifact",
                path,
            )
        kind = kinds[0]
        if kind == ARTIFACT_FROM_COMPONENT_INPUT:
            return ArtifactInputSpec(
                name, kind, component_input_artifact=_str(spec[kind], (*path, kind), "componentInputArtifact")
            )
        t = _dict(spec[kind], (*path, kind), "taskOutputArtifact")
        return ArtifactInputSpec(
            name,
            kind,
            producer_task=_str(t.get("producerTask"), (*path, kind, "producerTask"), "producerTask"),
            output_artifact_key=_str(
                t.get("outputArtifactKey"), (*path, kind, "outputArtifactKey"), "outputArtifactKey"
            ),
        )

    def _parameter_iterator(
        self, raw: Any, path: Path, params: Mapping[str, ParameterInputSpec]
    ) -> ParameterIteratorSpec:
        spec = _dict(raw, path, "parameterIterator")
        item_input = _str(spec.get("itemInput"), (*path, "itemInput"), "parameterIterator.itemInput")
        items = _dict(spec.get("items"), (*path, "items"), "parameterIterator.items")
        has_raw, has_param = "raw" in items, "inputParameter" in items
        if has_raw == has_param:
            raise SpecError(
                "parameterIterator.items needs exactly one of 'raw' or 'inputParameter'", (*path, "items")
            )
        if has_raw:
            raw_items = items["raw"]
            if not isinstance(raw_items, str):
                raise SpecError("parameterIterator.items.raw must be a JSON string", (*path, "items", "raw"))
            try:
                decoded = json.loads(raw_items)
            except ValueError as exc:
                raise SpecError(
                    f"parameterIterator.items.raw is not valid JSON: {exc}", (*path, "items", "raw")
                ) from exc
            if not isinstance(decoded, list):
                raise SpecError(
                    f"parameterIterator.items.raw must be a JSON list, got {_kind_name(decoded)}",
                    (*path, "items", "raw"),
                )
            return ParameterIteratorSpec(item_input=item_input, raw=raw_items)
        source = _str(items["inputParameter"], (*path, "items", "inputParameter"), "items.inputParameter")
        if source not in params:
            raise SpecError(
                f"parameterIterator iterates over input '{source}', which the task does not pass",
                (*path, "items", "inputParameter"),
            )
        return ParameterIteratorSpec(item_input=item_input, input_parameter=source)

    def _artifact_iterator(
        self, raw: Any, path: Path, arts: Mapping[str, ArtifactInputSpec]
    ) -> ArtifactIteratorSpec:
        spec = _dict(raw, path, "artifactIterator")
        item_input = _str(spec.get("itemInput"), (*path, "itemInput"), "artifactIterator.itemInput")
        items = _dict(spec.get("items"), (*path, "items"), "artifactIterator.items")
        source = _str(items.get("inputArtifact"), (*path, "items", "inputArtifact"), "items.inputArtifact")
        if source not in arts:
            raise SpecError(
                f"artifactIterator iterates over input artifact '{source}', which the task does not pass",
                (*path, "items", "inputArtifact"),
            )
        return ArtifactIteratorSpec(item_input=item_input, input_artifact=source)

    def _retry(self, raw: Any, path: Path) -> RetryPolicy:
        spec = _dict(raw, path, "retryPolicy")
        count = _int(spec.get("maxRetryCount"), (*path, "maxRetryCount"), "maxRetryCount")
        if count < 0:
            raise SpecError("maxRetryCount cannot be negative", (*path, "maxRetryCount"))

        def duration(key: str, default: float) -> float:
            value = spec.get(key)
            if value is None or value == "":
                return default
            try:
                return parse_duration(value)
            except DurationError as exc:
                raise SpecError(f"{key}: {exc}", (*path, key)) from exc

        factor_raw = spec.get("backoffFactor")
        if factor_raw is None or factor_raw == 0:
            factor = DEFAULT_BACKOFF_FACTOR
        elif isinstance(factor_raw, int | float) and not isinstance(factor_raw, bool) and factor_raw > 0:
            factor = float(factor_raw)
        else:
            raise SpecError("backoffFactor must be a positive number", (*path, "backoffFactor"))
        max_duration = duration("backoffMaxDuration", DEFAULT_BACKOFF_MAX_SECONDS)
        if max_duration == 0:
            max_duration = DEFAULT_BACKOFF_MAX_SECONDS
        return RetryPolicy(
            max_retry_count=count,
            backoff_duration=duration("backoffDuration", 0.0),
            backoff_factor=factor,
            backoff_max_duration=max_duration,
        )

    # -- cross-component checks -----------------------------------------------------
    def _check_references(self, components: Mapping[str, ComponentSpec]) -> None:
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
                self._check_task_against_parent(comp, child, task, tpath)

    def _check_task_against_parent(
        self, parent: ComponentSpec, child: ComponentSpec, task: TaskSpec, tpath: Path
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
        if task.trigger.condition and child.executor_label:
            executor_kind = self._executor_kind(child)
            if executor_kind == EXECUTOR_IMPORTER:
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

    def _executor_kind(self, component: ComponentSpec) -> str:
        ir = self.ir
        executor = ir.get("deploymentSpec", {}).get("executors", {}).get(component.executor_label, {})
        for kind in (EXECUTOR_CONTAINER, EXECUTOR_IMPORTER, EXECUTOR_RESOLVER, EXECUTOR_CUSTOM_JOB):
            if kind in executor:
                return kind
        return ""

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
    def _platform(self, executors: Mapping[str, ExecutorSpec]) -> PlatformSpec:
        raw = self.platform_raw
        if raw is None:
            return PlatformSpec()
        spec = _dict(raw, (), "The platform spec")
        platforms = _opt_dict(spec, "platforms", (), "platforms")
        k8s = _opt_dict(platforms, "kubernetes", ("platforms",), "platforms.kubernetes")
        base: Path = ("platforms", "kubernetes")
        deploy = _opt_dict(k8s, "deploymentSpec", base, "deploymentSpec")
        execs = _opt_dict(deploy, "executors", (*base, "deploymentSpec"), "executors")
        out: dict[str, Mapping[str, Any]] = {}
        for label, cfg in execs.items():
            epath = (*base, "deploymentSpec", "executors", label)
            if label not in executors:
                raise SpecError(
                    f"the platform spec configures executor '{label}', which is not in the pipeline spec",
                    epath,
                )
            out[label] = _dict(cfg, epath, f"platform config of '{label}'")
        return PlatformSpec(
            executors=out, pipeline_config=_opt_dict(k8s, "pipelineConfig", base, "pipelineConfig")
        )


def _number_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


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
