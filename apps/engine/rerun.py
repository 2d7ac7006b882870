"""Build the reduced pipeline that re-runs one step of a finished run.

The reduced pipeline is ordinary KFP IR, so the normal run-creation path validates,
executes and records it. Its root DAG holds:

* the step itself, its input parameters fed from root input parameters of the same
  names whose defaults are the values the origin run recorded (so they can be edited
  as runtime parameters, and are type-checked like any run's parameters); its input
  artifacts come from importer tasks pointing at the artifacts the origin recorded;
  its condition is dropped (the user asked for it to run) and its cache is off;
* optionally the tasks of the same DAG that depend on it, directly or not. Their
  inputs from tasks outside the reduced pipeline become constants (parameters) and
  importers (artifacts) holding what the origin run recorded: nothing upstream runs
  again.

Pure: takes the origin's IR and recorded values, returns IR.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from apps.engine.keys import ROOT_KEY

IMPORT_PREFIX = "rerun-input"


class RerunError(ValueError):
    """The step cannot be re-run this way; ``field`` names what is wrong."""

    def __init__(self, message: str, field: str = "task") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class RecordedIO:
    """A task's recorded inputs or outputs: parameter values and artifact references
    (each a dict with at least ``uri`` and ``schema_title``)."""

    parameters: Mapping[str, Any] = field(default_factory=dict)
    artifacts: Mapping[str, list[Mapping[str, Any]]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> RecordedIO:
        """From a Task.inputs / Task.outputs document."""
        data = data if isinstance(data, Mapping) else {}
        params = data.get("parameters") or {}
        arts = data.get("artifacts") or {}
        return cls(
            parameters=dict(params) if isinstance(params, Mapping) else {},
            artifacts={k: list(v) for k, v in arts.items() if isinstance(v, list)}
            if isinstance(arts, Mapping)
            else {},
        )


@dataclass(frozen=True)
class RerunPlan:
    """The reduced pipeline and what it contains."""

    pipeline_spec: dict[str, Any]
    step_name: str
    tasks: tuple[str, ...]  # the origin DAG's task names it runs, the step first
    parameters: dict[str, str]  # the step's editable parameters: name -> KFP type


def task_path_of(key: str) -> list[str]:
    """The task names from the root DAG down to a task key (iteration indexes dropped):
    ``root/outer#2/inner`` -> ``["outer", "inner"]``."""
    parts = key.split("/")
    if not parts or parts[0] != ROOT_KEY or len(parts) < 2:
        raise RerunError(f"'{key}' is not the key of a task inside the pipeline")
    return [part.partition("#")[0] for part in parts[1:]]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _component(components: Mapping[str, Any], task: Mapping[str, Any]) -> dict[str, Any]:
    return _dict(components.get(str(_dict(task.get("componentRef")).get("name"))))


def _locate(spec: Mapping[str, Any], path: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The DAG task map holding the task at ``path``, and that task's spec."""
    components = _dict(spec.get("components"))
    dag_tasks = _dict(_dict(_dict(spec.get("root")).get("dag")).get("tasks"))
    for depth, name in enumerate(path):
        task = _dict(dag_tasks.get(name))
        if not task:
            raise RerunError(f"the pipeline has no task '{'/'.join(path[: depth + 1])}'")
        if depth == len(path) - 1:
            return dag_tasks, task
        component = _component(components, task)
        dag_tasks = _dict(_dict(component.get("dag")).get("tasks"))
    raise RerunError("empty task path")  # pragma: no cover (task_path_of never returns [])


def task_spec_for_key(spec: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    """The IR task spec of the task at ``key`` (None if the spec has no such task)."""
    try:
        return _locate(spec, task_path_of(key))[1]
    except RerunError:
        return None


def _upstream(task: Mapping[str, Any]) -> set[str]:
    names = {str(n) for n in task.get("dependentTasks") or []}
    inputs = _dict(task.get("inputs"))
    for kind, ref in (("parameters", "taskOutputParameter"), ("artifacts", "taskOutputArtifact")):
        for spec in _dict(inputs.get(kind)).values():
            producer = _dict(_dict(spec).get(ref)).get("producerTask")
            if producer:
                names.add(str(producer))
    return names


def _downstream(dag_tasks: Mapping[str, Any], start: str) -> list[str]:
    """Tasks of the DAG that depend on ``start``, directly or not, in a stable order."""
    found: set[str] = {start}
    changed = True
    while changed:
        changed = False
        for name, task in dag_tasks.items():
            if name not in found and _upstream(_dict(task)) & found:
                found.add(name)
                changed = True
    return sorted(found - {start})


class _Builder:
    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.components: dict[str, Any] = copy.deepcopy(_dict(spec.get("components")))
        self.executors: dict[str, Any] = copy.deepcopy(
            _dict(_dict(spec.get("deploymentSpec")).get("executors"))
        )
        self.tasks: dict[str, Any] = {}
        self._import_count = 0

    def importer(self, ref: Mapping[str, Any], type_schema: Mapping[str, Any], what: str) -> str:
        """Add an importer task for one recorded artifact; return its task name."""
        uri = ref.get("uri")
        if not isinstance(uri, str) or not uri:
            raise RerunError(f"{what} has no recorded URI, so it cannot be fed to the re-run")
        self._import_count += 1
        name = f"{IMPORT_PREFIX}-{self._import_count}"
        schema = dict(type_schema) or {
            "schemaTitle": str(ref.get("schema_title") or "system.Artifact"),
            "schemaVersion": str(ref.get("schema_version") or "0.0.1"),
        }
        importer: dict[str, Any] = {"artifactUri": {"constant": uri}, "typeSchema": schema}
        metadata = ref.get("metadata")
        if isinstance(metadata, Mapping) and metadata:
            importer["metadata"] = dict(metadata)
        self.components[f"comp-{name}"] = {
            "executorLabel": f"exec-{name}",
            "outputDefinitions": {"artifacts": {"artifact": {"artifactType": schema}}},
        }
        self.executors[f"exec-{name}"] = {"importer": importer}
        self.tasks[name] = {"componentRef": {"name": f"comp-{name}"}, "taskInfo": {"name": name}}
        return name


def _single(refs: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(refs, list) or len(refs) != 1 or not isinstance(refs[0], Mapping):
        count = len(refs) if isinstance(refs, list) else 0
        raise RerunError(
            f"{what} was recorded as {count} artifacts; only a single artifact can be fed to a re-run"
        )
    return refs[0]


def _artifact_type(component: Mapping[str, Any], name: str) -> dict[str, Any]:
    definition = _dict(_dict(_dict(component.get("inputDefinitions")).get("artifacts")).get(name))
    return dict(_dict(definition.get("artifactType")))


def build_rerun_spec(
    spec: Mapping[str, Any],
    *,
    task_key: str,
    step_inputs: RecordedIO,
    include_downstream: bool = False,
    sibling_outputs: Mapping[str, RecordedIO] | None = None,
    parent_inputs: RecordedIO | None = None,
) -> RerunPlan:
    """The reduced pipeline re-running the task at ``task_key`` with ``step_inputs``
    (what the origin recorded for it). ``sibling_outputs`` (task name -> outputs of the
    tasks of the same DAG instance) and ``parent_inputs`` (the enclosing DAG's recorded
    inputs) feed the downstream tasks' other inputs when ``include_downstream``."""
    path = task_path_of(task_key)
    dag_tasks, step = _locate(spec, path)
    step_name = path[-1]
    builder = _Builder(spec)
    component = _component(builder.components, step)
    if "dag" in component or step.get("parameterIterator") or step.get("artifactIterator"):
        raise RerunError(f"'{step_name}' is a group of tasks, not a step: choose one of its steps")
    if "executorLabel" not in component:
        raise RerunError(f"'{step_name}' has no executor to run")
    param_defs = _dict(_dict(component.get("inputDefinitions")).get("parameters"))
    root_params: dict[str, Any] = {}
    editable: dict[str, str] = {}
    step_params: dict[str, Any] = {}
    for name, definition in param_defs.items():
        ptype = str(_dict(definition).get("parameterType") or "STRING")
        root_def: dict[str, Any] = {"parameterType": ptype}
        if name in step_inputs.parameters:
            root_def["defaultValue"] = step_inputs.parameters[name]
        elif _dict(definition).get("isOptional") or "defaultValue" in _dict(definition):
            continue  # not recorded: the component's own default applies again
        else:
            raise RerunError(f"the origin run recorded no value for input '{name}' of '{step_name}'")
        root_params[name] = root_def
        editable[name] = ptype
        step_params[name] = {"componentInputParameter": name}
    step_artifacts: dict[str, Any] = {}
    deps: list[str] = []
    for name, refs in sorted(step_inputs.artifacts.items()):
        what = f"input artifact '{name}' of '{step_name}'"
        importer = builder.importer(_single(refs, what), _artifact_type(component, name), what)
        step_artifacts[name] = {
            "taskOutputArtifact": {"producerTask": importer, "outputArtifactKey": "artifact"}
        }
        deps.append(importer)
    new_step: dict[str, Any] = {
        key: copy.deepcopy(value)
        for key, value in step.items()
        if key not in ("inputs", "dependentTasks", "triggerPolicy", "cachingOptions", "iteratorPolicy")
    }
    new_step["cachingOptions"] = {"enableCache": False}
    inputs: dict[str, Any] = {}
    if step_params:
        inputs["parameters"] = step_params
    if step_artifacts:
        inputs["artifacts"] = step_artifacts
    if inputs:
        new_step["inputs"] = inputs
    if deps:
        new_step["dependentTasks"] = deps
    builder.tasks[step_name] = new_step
    included = [step_name]
    if include_downstream:
        names = _downstream(dag_tasks, step_name)
        keep = {step_name, *names}
        for name in names:
            builder.tasks[name] = _rewire(
                builder,
                name,
                _dict(dag_tasks[name]),
                keep,
                sibling_outputs or {},
                parent_inputs or RecordedIO(),
            )
            included.append(name)
    reduced: dict[str, Any] = {
        key: copy.deepcopy(value)
        for key, value in spec.items()
        if key not in ("root", "components", "deploymentSpec")
    }
    root: dict[str, Any] = {"dag": {"tasks": builder.tasks}}
    if root_params:
        root["inputDefinitions"] = {"parameters": root_params}
    reduced["components"] = builder.components
    reduced["deploymentSpec"] = {
        **copy.deepcopy(_dict(spec.get("deploymentSpec"))),
        "executors": builder.executors,
    }
    reduced["root"] = root
    return RerunPlan(pipeline_spec=reduced, step_name=step_name, tasks=tuple(included), parameters=editable)


def _rewire(
    builder: _Builder,
    name: str,
    task: Mapping[str, Any],
    keep: set[str],
    outputs: Mapping[str, RecordedIO],
    parent: RecordedIO,
) -> dict[str, Any]:
    """A downstream task whose inputs from outside the reduced pipeline become the
    origin's recorded values."""
    new = copy.deepcopy(dict(task))
    component = _component(builder.components, task)
    inputs = _dict(new.get("inputs"))
    deps = [d for d in new.get("dependentTasks") or [] if d in keep]
    for pname, raw_pspec in list(_dict(inputs.get("parameters")).items()):
        pspec = _dict(raw_pspec)
        what = f"input '{pname}' of downstream task '{name}'"
        if "componentInputParameter" in pspec:
            source = str(pspec["componentInputParameter"])
            if source not in parent.parameters:
                raise RerunError(f"{what}: the origin run recorded no value for '{source}'")
            inputs["parameters"][pname] = {"runtimeValue": {"constant": parent.parameters[source]}}
        elif "taskOutputParameter" in pspec:
            source_ref = _dict(pspec["taskOutputParameter"])
            producer = str(source_ref.get("producerTask"))
            key = str(source_ref.get("outputParameterKey"))
            if producer in keep:
                continue
            recorded = outputs.get(producer, RecordedIO()).parameters
            if key not in recorded:
                raise RerunError(f"{what}: the origin's task '{producer}' recorded no output '{key}'")
            inputs["parameters"][pname] = {"runtimeValue": {"constant": recorded[key]}}
        elif "taskFinalStatus" in pspec:
            raise RerunError(f"{what}: an exit handler's final status cannot be replayed")
    for aname, raw_aspec in list(_dict(inputs.get("artifacts")).items()):
        aspec = _dict(raw_aspec)
        what = f"input artifact '{aname}' of downstream task '{name}'"
        ref: Mapping[str, Any] | None = None
        if "componentInputArtifact" in aspec:
            ref = _single(parent.artifacts.get(str(aspec["componentInputArtifact"])), what)
        elif "taskOutputArtifact" in aspec:
            out = _dict(aspec["taskOutputArtifact"])
            producer = str(out.get("producerTask"))
            if producer in keep:
                continue
            ref = _single(
                outputs.get(producer, RecordedIO()).artifacts.get(str(out.get("outputArtifactKey"))), what
            )
        if ref is not None:
            importer = builder.importer(ref, _artifact_type(component, aname), what)
            inputs["artifacts"][aname] = {
                "taskOutputArtifact": {"producerTask": importer, "outputArtifactKey": "artifact"}
            }
            deps.append(importer)
    if deps:
        new["dependentTasks"] = deps
    else:
        new.pop("dependentTasks", None)
    return new
