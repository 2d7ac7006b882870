"""Recording an Argo-shaped Workflow status in Canal's rows: one recording path.

Runs of Argo Workflow YAML, whether the local Argo interpreter or a cluster's Argo
controller runs them, end up as an Argo ``status`` (``phase`` and ``nodes`` keyed
by node id). ``workflow_status_record`` mirrors it into the run's Task and
TaskAttempt rows, so the run page, the API and compare read them as they read a
KFP run. It is idempotent (the same status twice writes nothing new) and
monotonic: a task that finished never moves back, and neither does the run.

How nodes become tasks. The run's graph (``importers.argo_graph``) names each
step or DAG task by its path (``outer/inner``; ``[g]`` for a group of parallel
steps). A status node gets the task key ``root/<that path>``, with ``#<i>`` for
the i-th item of a ``withItems``/``withParam``/``withSequence`` expansion, so the
overlay of the run page finds it. ``Retry`` nodes are one task whose attempts are
their child pods; ``StepGroup``/``TaskGroup`` nodes that the graph does not draw
get no row.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.core.choices import PipelineFormat, RuntimeState, TaskKind
from apps.core.specs import graph_for_spec
from apps.engine.keys import ROOT_KEY, node_key, task_uuid
from apps.engine.model import ArtifactRef, NodeIO
from apps.engine.spec import SpecError, parse_pipeline_spec
from apps.runs.models import Run, Task, TaskAttempt
from apps.runs.services.lifecycle import state_entry
from apps.runs.services.records import bump_revision, io_to_json

# Argo node phase -> Canal state.
NODE_STATES = {
    "Pending": RuntimeState.PENDING,
    "Running": RuntimeState.RUNNING,
    "Succeeded": RuntimeState.SUCCEEDED,
    "Failed": RuntimeState.FAILED,
    "Error": RuntimeState.FAILED,
    "Skipped": RuntimeState.SKIPPED,
    "Omitted": RuntimeState.SKIPPED,
}
_EXPANSION = re.compile(r"^(?P<name>.+)\((?P<index>\d+):.*\)$")
_STOPPED = ("Stopped with strategy", "workflow shutdown with strategy", "terminated")
MAX_KEY = 512  # Task.key


@dataclass
class NodeRow:
    """One task row a status node maps to."""

    key: str
    node_id: str
    kind: str
    name: str
    display_name: str
    parent_key: str | None
    phase: str
    message: str
    started_at: datetime | None
    finished_at: datetime | None
    template: str
    outputs: Mapping[str, Any]
    iteration_index: int | None = None
    attempts: list[Mapping[str, Any]] = field(default_factory=list)  # Pod nodes, oldest first
    decoded: NodeIO | None = None  # outputs already decoded (a compiled KFP task's)
    inputs: Mapping[str, Any] | None = None  # resolved input parameters (a compiled task's driver's)
    state: str = ""  # a state decided by the mapping itself (a compiled task's driver + executor)


def _time(value: Any) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) and value else None


def workflow_rows(
    workflow: Mapping[str, Any], status: Mapping[str, Any], graph_ids: set[str]
) -> list[NodeRow]:
    """The task rows for ``status`` (pure: no database), parents before children.

    Argo links a DAG's tasks by their dependencies (``children``) and a steps
    template's through its step groups, so the drawn parent of a node is its
    ``boundaryID``: the DAG or steps node it runs inside."""
    nodes: Mapping[str, Mapping[str, Any]] = status.get("nodes") or {}
    name = str((workflow.get("metadata") or {}).get("name") or "")
    root = nodes.get(name) or next(
        (n for n in nodes.values() if not n.get("boundaryID") and n.get("type") in ("DAG", "Steps", "Pod")),
        None,
    )
    members: dict[str, list[Mapping[str, Any]]] = {}
    attempt_of: dict[str, str] = {}  # a Retry's child -> the Retry
    group_of: dict[str, Mapping[str, Any]] = {}  # a step -> its StepGroup
    for node in nodes.values():
        members.setdefault(str(node.get("boundaryID") or ""), []).append(node)
        for child in node.get("children") or []:
            if node.get("type") == "Retry":
                attempt_of[child] = str(node.get("id"))
            elif node.get("type") == "StepGroup":
                group_of[child] = node
    rows: list[NodeRow] = []
    keys: set[str] = set()

    def row(node: Mapping[str, Any], key: str, kind: str, parent: str | None, label: str) -> NodeRow:
        base, index = _split(label)
        made = NodeRow(
            key=key,
            node_id=str(node.get("id", "")),
            kind=kind,
            name=base,
            display_name=str(node.get("displayName") or label),
            parent_key=parent,
            phase=str(node.get("phase") or "Pending"),
            message=str(node.get("message") or ""),
            started_at=_time(node.get("startedAt")),
            finished_at=_time(node.get("finishedAt")),
            template=str(node.get("templateName") or ""),
            outputs=node.get("outputs") or {},
            iteration_index=index,
        )
        rows.append(made)
        keys.add(key)
        return made

    def attempts_of(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        if node.get("type") == "Pod":
            return [node]
        if node.get("type") == "Retry":
            kids = [nodes[c] for c in node.get("children") or [] if c in nodes]
            if kids and all(k.get("type") == "Pod" for k in kids):
                return kids
        return []

    def place(node: Mapping[str, Any], graph_parent: str, key_parent: str) -> None:
        kind_of = node.get("type")
        label = str(node.get("displayName") or "")
        base, index = _split(label)
        if kind_of == "TaskGroup" or str(node.get("id")) in attempt_of:
            return  # expansions and attempts are recorded through their own nodes
        if kind_of == "StepGroup":
            group_id = f"{graph_parent}/{base}" if graph_parent else base
            if group_id in graph_ids and f"{key_parent}/{base}" not in keys:
                row(node, f"{key_parent}/{base}", TaskKind.DAG, key_parent, label)
            return
        group = group_of.get(str(node.get("id")))
        if group is not None:  # a step of a group of parallel steps that the graph draws
            group_label = str(group.get("displayName") or "")
            group_id = f"{graph_parent}/{group_label}" if graph_parent else group_label
            if group_id in graph_ids:
                if f"{key_parent}/{group_label}" not in keys:
                    row(group, f"{key_parent}/{group_label}", TaskKind.DAG, key_parent, group_label)
                graph_parent, key_parent = group_id, f"{key_parent}/{group_label}"
        graph_id = f"{graph_parent}/{base}" if graph_parent else base
        key = f"{key_parent}/{base}" + (f"#{index}" if index is not None else "")
        if key in keys:
            return
        pods = attempts_of(node)
        if pods or kind_of in ("Skipped", "Suspend"):
            row(node, key, TaskKind.CONTAINER, key_parent, label).attempts = pods
            return
        row(node, key, TaskKind.DAG, key_parent, label)
        inner = node
        if kind_of == "Retry":  # a retried DAG or steps: its latest attempt holds the tasks
            kids = [nodes[c] for c in node.get("children") or [] if c in nodes]
            inner = kids[-1] if kids else node
        walk(inner, graph_id, key)

    def walk(boundary: Mapping[str, Any], graph_parent: str, key_parent: str) -> None:
        ordered = sorted(
            members.get(str(boundary.get("id")), []), key=lambda n: str(n.get("startedAt") or "")
        )
        for node in ordered:
            place(node, graph_parent, key_parent)

    if root is not None:
        made = row(root, ROOT_KEY, TaskKind.ROOT, None, name or "root")
        made.attempts = attempts_of(root)
        walk(root, "", ROOT_KEY)
    # Exit handlers and hooks run outside the root's boundary.
    for node in members.get("", []):
        if node is root:
            continue
        if str(node.get("displayName") or "").endswith("onExit"):
            place({**node, "displayName": "onExit"}, "", ROOT_KEY)
    return rows


def _param(node: Mapping[str, Any], name: str) -> str | None:
    for item in (node.get("outputs") or {}).get("parameters") or []:
        if isinstance(item, Mapping) and item.get("name") == name and "value" in item:
            return str(item["value"])
    return None


def _artifact_ref(name: str, item: Mapping[str, Any]) -> ArtifactRef:
    kind = item.get("type")
    title = kind.get("schemaTitle") if isinstance(kind, Mapping) else kind
    return ArtifactRef(
        id="",
        name=str(item.get("name") or name),
        uri=str(item.get("uri") or ""),
        schema_title=str(title or "system.Artifact"),
        metadata=item.get("metadata") or {},
    )


def compiled_rows(workflow: Mapping[str, Any], status: Mapping[str, Any]) -> list[NodeRow]:
    """The task rows of a Workflow compiled from KFP IR (``backends.argo.compiler``), keyed
    as Canal's engine keys a local run's tasks (``root/loop#0/task``), so both executors'
    runs read and compare alike. A KFP task is a driver pod plus an executor pod; its
    state is the driver's failure, else the executor's phase, else SKIPPED when the
    driver found its condition false."""
    from apps.backends.argo.compiler_outputs import OutputError, executor_outputs, template_info

    nodes: Mapping[str, Mapping[str, Any]] = status.get("nodes") or {}
    name = str((workflow.get("metadata") or {}).get("name") or "")
    members: dict[str, list[Mapping[str, Any]]] = {}
    for node in nodes.values():
        members.setdefault(str(node.get("boundaryID") or ""), []).append(node)
    rows: list[NodeRow] = []
    tasks: dict[str, dict[str, Any]] = {}  # key -> {"driver": node, "executor": node, "parent": key}

    def group(
        node: Mapping[str, Any], key: str, kind: str, parent: str | None, index: int | None = None
    ) -> None:
        phase = str(node.get("phase") or "Pending")
        rows.append(
            NodeRow(
                key=key,
                node_id=str(node.get("id", "")),
                kind=kind,
                name=key.rsplit("/", 1)[-1].split("#", 1)[0],
                display_name=key.rsplit("/", 1)[-1],
                parent_key=parent,
                phase=phase,
                message=str(node.get("message") or ""),
                started_at=_time(node.get("startedAt")),
                finished_at=_time(node.get("finishedAt")),
                template=str(node.get("templateName") or ""),
                outputs={},
                iteration_index=index,
                state=RuntimeState.SKIPPED if phase in ("Skipped", "Omitted") else "",
            )
        )

    def walk(boundary: str, key: str) -> None:
        for node in members.get(boundary, []):
            info = template_info(workflow, str(node.get("templateName") or ""))
            if info is None:
                continue
            task = info.task_key.rsplit("/", 1)[-1]
            label = str(node.get("displayName") or "")
            if info.role == "driver" or info.role == "importer":
                resolved = _param(node, "resolved")
                try:
                    runtime_key = json.loads(resolved)["key"] if resolved else f"{key}/{task}"
                except (ValueError, KeyError, TypeError):
                    runtime_key = f"{key}/{task}"
                entry = tasks.setdefault(runtime_key, {"parent": key})
                entry["driver"] = node
                try:
                    entry["inputs"] = json.loads(resolved).get("parameters") if resolved else None
                except (ValueError, AttributeError):
                    entry["inputs"] = None
                entry["importer"] = info.role == "importer"
            elif info.role == "executor":
                tasks.setdefault(f"{key}/{task}", {"parent": key})["executor"] = node
            elif info.role == "dag":
                group(node, f"{key}/{task}", TaskKind.DAG, key)
                walk(str(node.get("id")), f"{key}/{task}")
            elif info.role == "loop":
                group(node, f"{key}/{task}", TaskKind.LOOP, key)
                walk(str(node.get("id")), f"{key}/{task}")
            elif info.role == "iteration" and node.get("type") != "TaskGroup":
                _base, index = _split(label)
                if index is not None:
                    group(node, f"{key}#{index}", TaskKind.ITERATION, key, index)
                    walk(str(node.get("id")), f"{key}#{index}")

    root = nodes.get(name)
    if root is not None:
        group(root, ROOT_KEY, TaskKind.ROOT, None)
        walk(str(root.get("id")), ROOT_KEY)
    for key, entry in tasks.items():
        if key in {r.key for r in rows}:
            continue  # a group's gate driver: the group's own row says it
        drv, exe = entry.get("driver"), entry.get("executor")
        head = exe or drv
        if head is None:
            continue
        message = ""
        state = ""
        decoded: NodeIO | None = None
        if drv is not None and drv.get("phase") in ("Failed", "Error"):
            state = RuntimeState.FAILED
            message = _param(drv, "error") or str(drv.get("message") or "the driver failed")
        elif exe is not None:
            state = NODE_STATES.get(str(exe.get("phase")), RuntimeState.PENDING)
            message = str(exe.get("message") or "")
            if state == RuntimeState.SUCCEEDED:
                try:
                    out = executor_outputs(workflow, str(exe.get("templateName")), exe.get("outputs"))
                    artifacts = {
                        n: [_artifact_ref(n, a) for a in items] for n, items in out.artifacts.items()
                    }
                    decoded = NodeIO(out.parameters, artifacts)
                except OutputError as exc:
                    state, message = RuntimeState.FAILED, str(exc)
                except Exception as exc:  # a step's malformed executor output must not stall the run
                    state = RuntimeState.FAILED
                    message = f"the step's outputs cannot be read: {type(exc).__name__}: {exc}"
        elif drv is not None and drv.get("phase") == "Succeeded":
            if entry.get("importer"):
                state = RuntimeState.SUCCEEDED
            elif _param(drv, "condition") == "false":
                state, message = RuntimeState.SKIPPED, "its condition was false"
            else:
                state = RuntimeState.RUNNING
        elif drv is not None:
            state = NODE_STATES.get(str(drv.get("phase")), RuntimeState.PENDING)
        if state == RuntimeState.SKIPPED or str(head.get("phase")) in ("Omitted", "Skipped"):
            state = RuntimeState.SKIPPED
        rows.append(
            NodeRow(
                key=key,
                node_id=str(head.get("id", "")),
                kind=TaskKind.IMPORTER if entry.get("importer") else TaskKind.CONTAINER,
                name=key.rsplit("/", 1)[-1],
                display_name=key.rsplit("/", 1)[-1],
                parent_key=str(entry["parent"]),
                phase=str(head.get("phase") or "Pending"),
                message=message,
                started_at=_time((drv or head).get("startedAt")),
                finished_at=_time(head.get("finishedAt")),
                template=str(head.get("templateName") or ""),
                outputs={},
                attempts=[exe] if exe is not None and exe.get("type") == "Pod" else [],
                decoded=decoded,
                state=state,
                inputs=entry.get("inputs"),
            )
        )
    by_key = {row.key: row for row in rows}
    for key, entry in tasks.items():  # a group's gate driver resolved the group's inputs
        if key in by_key and by_key[key].kind != TaskKind.CONTAINER and entry.get("inputs") is not None:
            by_key[key].inputs = entry["inputs"]
    return rows


def group_outputs(spec: Any, rows: list[NodeRow]) -> None:
    """Fill in the outputs of a compiled run's DAG, loop and iteration rows from their
    children's, as the engine does when a group finishes (``valueFromParameter``,
    ``valueFromOneof``: the first branch that produced it; a loop collects its
    iterations' values in order)."""
    by_key = {row.key: row for row in rows}

    def component(key: str) -> Any:
        comp = spec.root
        for segment in key.split("/")[1:]:
            name = segment.split("#", 1)[0]
            task = comp.dag.tasks.get(name) if comp is not None and comp.dag is not None else None
            comp = spec.component(task.component_ref) if task is not None else None
        return comp

    def outputs(row: NodeRow) -> NodeIO:
        return row.decoded if row.decoded is not None else NodeIO()

    groups = [r for r in rows if r.kind in (TaskKind.ROOT, TaskKind.DAG, TaskKind.LOOP, TaskKind.ITERATION)]
    # Deepest first: a loop after its iterations, an iteration after what runs in it.
    for row in sorted(groups, key=lambda r: -(2 * r.key.count("/") + r.key.count("#"))):
        if row.state == RuntimeState.SKIPPED:
            continue
        comp = component(row.key)
        if comp is None or comp.dag is None:
            continue
        if row.kind == TaskKind.LOOP:
            its = sorted(
                (r for r in rows if r.kind == TaskKind.ITERATION and r.parent_key == row.key),
                key=lambda r: r.iteration_index or 0,
            )
            params = {
                name: [outputs(it).parameters[name] for it in its if name in outputs(it).parameters]
                for name in comp.dag.output_parameters
            }
            artifacts = {
                name: [a for it in its for a in outputs(it).artifacts.get(name, [])]
                for name in comp.dag.output_artifacts
            }
            row.decoded = NodeIO(params, artifacts)
            continue
        params, arts = {}, {}
        for name, out in comp.dag.output_parameters.items():
            for selector in out.selectors:
                child = by_key.get(f"{row.key}/{selector.producer_subtask}")
                if child is not None and selector.output_parameter_key in outputs(child).parameters:
                    params[name] = outputs(child).parameters[selector.output_parameter_key]
                    break
        for name, art in comp.dag.output_artifacts.items():
            for art_selector in art.selectors:
                child = by_key.get(f"{row.key}/{art_selector.producer_subtask}")
                if child is not None and art_selector.output_artifact_key in outputs(child).artifacts:
                    arts[name] = list(outputs(child).artifacts[art_selector.output_artifact_key])
                    break
        row.decoded = NodeIO(params, arts)


def _split(label: str) -> tuple[str, int | None]:
    match = _EXPANSION.match(label)
    if match:
        return match.group("name"), int(match.group("index"))
    return label, None


def _children(node: Mapping[str, Any], nodes: Mapping[str, Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for child in node.get("children") or []:
        if child in nodes:
            yield nodes[child]


def _state(phase: str, message: str, run_canceling: bool) -> str:
    state = NODE_STATES.get(phase, RuntimeState.PENDING)
    if state == RuntimeState.FAILED and run_canceling and message.startswith(_STOPPED):
        return RuntimeState.CANCELED
    return state


def _outputs(row: NodeRow, artifact_uri: Callable[[Mapping[str, Any]], str | None]) -> NodeIO:
    outputs = row.outputs
    parameters: dict[str, Any] = {}
    for item in outputs.get("parameters") or []:
        if isinstance(item, Mapping) and item.get("name") is not None and "value" in item:
            parameters[str(item["name"])] = item["value"]
    if "result" in outputs:
        parameters["result"] = outputs["result"]
    if outputs.get("exitCode") is not None:
        parameters["exitCode"] = str(outputs["exitCode"])
    artifacts: dict[str, list[ArtifactRef]] = {}
    for item in outputs.get("artifacts") or []:
        if not isinstance(item, Mapping) or not item.get("name"):
            continue
        uri = artifact_uri(item)
        if uri:
            artifacts[str(item["name"])] = [ArtifactRef(id="", name=str(item["name"]), uri=uri)]
    return NodeIO(parameters, artifacts)


def workflow_status_record(
    run: Run,
    workflow: Mapping[str, Any],
    status: Mapping[str, Any],
    *,
    log_path: Callable[[Mapping[str, Any]], str],
    artifact_uri: Callable[[Mapping[str, Any]], str | None] = lambda item: None,
) -> int:
    """Mirror ``status`` into the run's tasks (caller holds the run lock). ``log_path``
    gives the log file of a Pod node; ``artifact_uri`` the URI of an output artifact
    (None: not readable by Canal). Returns how many rows changed."""
    graph_ids: set[str] = set()
    if run.spec_format != PipelineFormat.KFP_IR:
        graph = graph_for_spec(run.spec_format, run.pipeline_spec, run.platform_spec)
        graph_ids = {node.id for node in graph.nodes}
    compiled = run.spec_format == PipelineFormat.KFP_IR
    rows = compiled_rows(workflow, status) if compiled else workflow_rows(workflow, status, graph_ids)
    if compiled:  # a spec that does not parse leaves the groups' outputs empty, not their states
        with contextlib.suppress(SpecError, ValueError, KeyError):
            group_outputs(parse_pipeline_spec(run.pipeline_spec, run.platform_spec), rows)
    existing = {t.key: t for t in Task.objects.filter(run=run)}
    canceling = run.state == RuntimeState.CANCELING
    now = timezone.now()
    revision: int | None = None
    changed = 0
    ids: dict[str, uuid.UUID] = {k: t.pk for k, t in existing.items()}
    for row in rows:
        if len(row.key) > MAX_KEY:
            continue  # nested past what a key can hold: the run's state still says how it went
        state = row.state or _state(row.phase, row.message, canceling)
        if canceling and state == RuntimeState.FAILED and row.message.startswith(_STOPPED):
            state = RuntimeState.CANCELED
        task = existing.get(row.key)
        if task is not None and task.state in RuntimeState.terminal():
            continue  # monotonic: a finished task never moves back
        if task is not None and task.state == RuntimeState.RUNNING and state == RuntimeState.PENDING:
            state = RuntimeState.RUNNING  # nor does a started one (a driver done, its pod not yet)
        if task is not None and task.state == state and task.status_message == row.message:
            _record_attempts(task, row, log_path)
            continue
        if revision is None:
            revision = bump_revision(run)
        changed += 1
        error = row.message if state == RuntimeState.FAILED else ""
        last_pod = row.attempts[-1] if row.attempts else None
        log = log_path(last_pod) if last_pod is not None else ""
        if task is None:
            # The row first, then its artifacts: MySQL checks the producer_task foreign
            # key at each insert (SQLite only at commit), and a node first seen finished
            # (a short step between two syncs) has both in this pass.
            task_id = uuid.UUID(task_uuid(str(run.pk), row.key))
            ids[row.key] = task_id
            task = Task.objects.create(
                id=task_id,
                run=run,
                namespace_id=run.namespace_id,
                parent_id=ids.get(row.parent_key) if row.parent_key else None,
                key=row.key,
                node=node_key(row.key),
                name=row.name[:255],
                display_name=row.display_name[:255],
                kind=row.kind,
                component_name=row.template[:255],
                iteration_index=row.iteration_index,
                inputs={"parameters": dict(row.inputs)} if row.inputs else {},
                state=state,
                state_history=[state_entry(state, error, now)],
                status_message=row.message,
                error=error,
                revision=revision,
                attempt=len(row.attempts),
                log_path=log,
                started_at=row.started_at or (now if state != RuntimeState.PENDING else None),
                finished_at=(row.finished_at or now) if state in RuntimeState.terminal() else None,
            )
            existing[row.key] = task
            outputs = _recorded_outputs(run, task.pk, row, state, artifact_uri)
            if outputs:
                Task.objects.filter(pk=task.pk).update(outputs=outputs)
        else:
            outputs = _recorded_outputs(run, task.pk, row, state, artifact_uri)
            Task.objects.filter(pk=task.pk).update(
                state=state,
                status_message=row.message,
                error=error,
                outputs=outputs or task.outputs,
                inputs={"parameters": dict(row.inputs)} if row.inputs else task.inputs,
                revision=revision,
                attempt=len(row.attempts),
                log_path=log or task.log_path,
                started_at=task.started_at or row.started_at or now,
                finished_at=(row.finished_at or now) if state in RuntimeState.terminal() else None,
                state_history=[*task.state_history, state_entry(state, error, now)],
            )
        _record_attempts(task, row, log_path)
    return changed


def _recorded_outputs(
    run: Run,
    task_id: uuid.UUID,
    row: NodeRow,
    state: str,
    artifact_uri: Callable[[Mapping[str, Any]], str | None],
) -> dict[str, Any]:
    """The task's outputs as stored, its artifacts recorded (the task row must exist)."""
    from apps.runs.services.local_plan import record_artifacts  # the same artifact rows as KFP runs

    if state != RuntimeState.SUCCEEDED and not row.outputs:
        return {}
    decoded = row.decoded if row.decoded is not None else _outputs(row, artifact_uri)
    return io_to_json(record_artifacts(run, task_id, decoded))


def _exit_code(value: Any) -> int | None:
    text = str(value) if isinstance(value, (int, str)) else ""
    return int(text) if text.lstrip("-").isdigit() else None


def _record_attempts(task: Task, row: NodeRow, log_path: Callable[[Mapping[str, Any]], str]) -> None:
    for number, pod in enumerate(row.attempts, start=1):
        phase = str(pod.get("phase") or "Pending")
        state = NODE_STATES.get(phase, RuntimeState.PENDING)
        exit_code = (pod.get("outputs") or {}).get("exitCode")
        values = {
            "state": state,
            "error": str(pod.get("message") or "") if state == RuntimeState.FAILED else "",
            "exit_code": _exit_code(exit_code),
            "finished_at": _time(pod.get("finishedAt")) if state in RuntimeState.terminal() else None,
            "log_path": log_path(pod),
            "worker": str(pod.get("hostNodeName") or ""),
        }
        current = TaskAttempt.objects.filter(task_id=task.pk, number=number).values(*values).first()
        if current is None:
            TaskAttempt.objects.create(task_id=task.pk, number=number, **values)
        elif current["state"] not in RuntimeState.terminal() and current != values:
            TaskAttempt.objects.filter(task_id=task.pk, number=number).update(**values)
