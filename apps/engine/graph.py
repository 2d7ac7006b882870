"""A format-neutral picture of a pipeline's DAG, for drawing.

Importers and the engine build it (from KFP IR or an Argo Workflow); the web UI
renders it with graphviz. Groups (sub-DAGs, loops, condition branches) are nodes
too: a node's ``parent`` names the group it sits in, so a renderer can draw groups
as clusters.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any

from apps.engine.keys import ROOT_KEY
from apps.engine.spec import (
    EXECUTOR_IMPORTER,
    PARAM_FROM_COMPONENT_INPUT,
    PARAM_FROM_TASK_FINAL_STATUS,
    PARAM_FROM_TASK_OUTPUT,
    STRATEGY_ALL_COMPLETED,
    ComponentSpec,
    ParameterInputSpec,
    PipelineSpec,
    TaskSpec,
)


@dataclass(frozen=True)
class GraphNode:
    """One node: a step, or a group that contains other nodes."""

    id: str
    label: str
    # "container" | "importer" | "dag" | "loop" | "condition" | "exit" | "root" | "artifact"
    kind: str
    parent: str | None = None
    component: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GraphEdge:
    """A dependency: ``target`` runs after ``source``."""

    source: str
    target: str
    label: str = ""


@dataclass
class Graph:
    """Nodes and edges; edges may point at group nodes."""

    nodes: list[GraphNode] = field(default_factory=list)
    edges: list[GraphEdge] = field(default_factory=list)

    def node(self, node_id: str) -> GraphNode | None:
        """The node with this id, if any."""
        return next((n for n in self.nodes if n.id == node_id), None)

    def children(self, parent: str | None) -> list[GraphNode]:
        """The nodes directly inside ``parent`` (None: the top level)."""
        return [n for n in self.nodes if n.parent == parent]


def graph_from_ir(spec: PipelineSpec) -> Graph:
    """The static DAG of a parsed pipeline, for drawing.

    Every task becomes a node whose id is its template key (``root/<task>/<child>...``,
    the node key with iteration indexes dropped, see ``keys.template_key``), so run
    states can be overlaid. Sub-DAGs, ParallelFor loops and condition branches are group
    nodes: their tasks name them as ``parent``. ``dependentTasks`` and data dependencies
    become edges between tasks of the same DAG. ``detail`` carries what the node panel
    shows: image, command, args, inputs, outputs and the control-flow settings.
    """
    graph = Graph()
    _add_dag(spec, spec.root, ROOT_KEY, None, graph)
    return graph


ARTIFACT_SEPARATOR = "::"


def artifact_node_id(producer_id: str, output_key: str) -> str:
    """The id of the node drawn for one output artifact of ``producer_id`` (never a task's
    template key: task names cannot contain ``::``)."""
    return f"{producer_id}{ARTIFACT_SEPARATOR}{output_key}"


_CHANNEL = re.compile(r"""inputs\.parameter_values\[\s*(['"])(?:pipelinechannel--)?(.+?)\1\s*\]""")


def condition_text(expression: str) -> str:
    """A KFP condition as people wrote it: ``inputs.parameter_values['pipelinechannel--flip-Output']
    == 'heads'`` reads ``flip-Output == 'heads'``."""
    return " ".join(_CHANNEL.sub(lambda m: m.group(2), expression).split())


def _add_dag(
    spec: PipelineSpec, component: ComponentSpec, key: str, parent: str | None, graph: Graph
) -> None:
    assert component.dag is not None
    artifacts: dict[str, GraphNode] = {}  # artifact node id -> node, one per produced output
    for task in component.dag.tasks.values():
        node_id = f"{key}/{task.name}"
        child = spec.component(task.component_ref)
        detail = _detail(spec, task, child)
        if child.dag is not None and task.name.startswith("condition-branches"):
            # dsl.If/Elif/Else: a group of mutually exclusive branches, each a condition.
            detail["branches"] = sum(1 for t in child.dag.tasks.values() if t.trigger.condition)
        graph.nodes.append(
            GraphNode(
                id=node_id,
                label=task.display_name,
                kind=_graph_kind(spec, task, child),
                parent=parent,
                component=task.component_ref,
                detail=detail,
            )
        )
        # An artifact passed between two tasks of this DAG is drawn as its own small node
        # between them (as KFP's UI does); the dependency edge then goes through it.
        through_artifact: set[str] = set()
        for ain in task.artifacts.values():
            if not ain.producer_task or ain.producer_task not in component.dag.tasks:
                continue
            producer_id = f"{key}/{ain.producer_task}"
            art_id = artifact_node_id(producer_id, ain.output_artifact_key)
            if art_id not in artifacts:
                producer = spec.component(component.dag.tasks[ain.producer_task].component_ref)
                definition = producer.output_definitions.artifacts.get(ain.output_artifact_key)
                artifacts[art_id] = GraphNode(
                    id=art_id,
                    label=ain.output_artifact_key,
                    kind="artifact",
                    parent=parent,
                    detail={
                        "artifact": ain.output_artifact_key,
                        "type": definition.artifact_type.schema_title if definition else "",
                        "producer": producer_id,
                    },
                )
                graph.nodes.append(artifacts[art_id])
                graph.edges.append(GraphEdge(source=producer_id, target=art_id))
            graph.edges.append(GraphEdge(source=art_id, target=node_id))
            through_artifact.add(ain.producer_task)
        for upstream in task.upstream_tasks:
            if upstream in through_artifact:  # the path through the artifact node says it
                continue
            label = "" if upstream in task.dependent_tasks else "data"
            graph.edges.append(GraphEdge(source=f"{key}/{upstream}", target=node_id, label=label))
        if child.dag is not None:
            _add_dag(spec, child, node_id, node_id, graph)


def _graph_kind(spec: PipelineSpec, task: TaskSpec, component: ComponentSpec) -> str:
    if task.is_loop:
        return "loop"
    if component.dag is not None:
        if task.trigger.condition or task.name.startswith("condition-"):
            return "condition"
        return "dag"
    if task.trigger.strategy == STRATEGY_ALL_COMPLETED:
        return "exit"
    executor = spec.executor_for(component)
    return "importer" if executor is not None and executor.kind == EXECUTOR_IMPORTER else "container"


def _source(pin: ParameterInputSpec) -> str:
    if pin.source == PARAM_FROM_COMPONENT_INPUT:
        text = f"input {pin.component_input_parameter}"
    elif pin.source == PARAM_FROM_TASK_OUTPUT:
        text = f"{pin.producer_task}.{pin.output_parameter_key}"
    elif pin.source == PARAM_FROM_TASK_FINAL_STATUS:
        text = f"final status of {pin.producer_task}"
    else:
        text = f"constant {json.dumps(pin.constant)}"
    if pin.expression_selector:
        text += f" | {pin.expression_selector}"
    return text


def _detail(spec: PipelineSpec, task: TaskSpec, component: ComponentSpec) -> dict[str, Any]:
    inputs = component.input_definitions
    outputs = component.output_definitions
    detail: dict[str, Any] = {
        "task": task.name,
        "component": task.component_ref,
        "inputs": {
            "parameters": {
                name: {
                    "type": inputs.parameters[name].parameter_type if name in inputs.parameters else "",
                    "from": _source(pin),
                }
                for name, pin in task.parameters.items()
            },
            "artifacts": {
                name: {
                    "type": inputs.artifacts[name].artifact_type.schema_title
                    if name in inputs.artifacts
                    else "",
                    "from": f"input {ain.component_input_artifact}"
                    if ain.component_input_artifact
                    else f"{ain.producer_task}.{ain.output_artifact_key}",
                }
                for name, ain in task.artifacts.items()
            },
        },
        "outputs": {
            "parameters": {name: d.parameter_type for name, d in outputs.parameters.items()},
            "artifacts": {name: d.artifact_type.schema_title for name, d in outputs.artifacts.items()},
        },
    }
    if task.trigger.condition:
        detail["condition"] = task.trigger.condition
        detail["condition_text"] = condition_text(task.trigger.condition)
    if task.trigger.strategy == STRATEGY_ALL_COMPLETED:
        detail["trigger"] = "runs when all upstream tasks completed, even if they failed"
    if task.parameter_iterator is not None:
        iterator = task.parameter_iterator
        detail["iterator"] = iterator.raw if iterator.raw is not None else f"input {iterator.input_parameter}"
    elif task.artifact_iterator is not None:
        detail["iterator"] = f"artifacts of input {task.artifact_iterator.input_artifact}"
    if task.parallelism_limit:
        detail["parallelism"] = task.parallelism_limit
    if task.retry is not None:
        detail["retry"] = {
            "max_retry_count": task.retry.max_retry_count,
            "backoff_duration": task.retry.backoff_duration,
            "backoff_factor": task.retry.backoff_factor,
            "backoff_max_duration": task.retry.backoff_max_duration,
        }
    detail["caching"] = task.caching.enable_cache
    executor = spec.executor_for(component)
    if executor is not None:
        detail["executor"] = executor.label
        if executor.container is not None:
            detail["image"] = executor.container.image
            detail["command"] = list(executor.container.command)
            detail["args"] = list(executor.container.args)
            if executor.container.env:
                detail["env"] = dict(executor.container.env)
            if not executor.container.resources.is_empty():
                detail["resources"] = {
                    k: v for k, v in dataclasses.asdict(executor.container.resources).items() if v
                }
        elif executor.importer is not None:
            importer = executor.importer
            detail["artifact_uri"] = (
                importer.artifact_uri_constant
                if importer.artifact_uri_constant is not None
                else f"input {importer.artifact_uri_runtime_parameter}"
            )
            detail["artifact_type"] = importer.type_schema.schema_title
    return detail
