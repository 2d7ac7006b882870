"""A minimal WorkflowExecutor for the emulator's own tests and demos; Canal's Argo interpreter replaces it.

It runs Workflows whose entrypoint is one container or script template, or
``steps`` or a ``dag`` of such templates, with no parameters, artifacts,
conditions, loops or retries: each Pod node's command runs as a host process
through an ``ExecutionBackend`` (Canal's sandboxed ``LocalBackend``), one
node at a time, in order. Anything else ends the Workflow in phase Error with
the reason. The status it writes has Argo's shape: node ids, names, types,
phases, messages, times, children, outputs and progress.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from apps.backends.argo.emulator.naming import NODE_FULFILLED, node_id, now_rfc3339, progress
from apps.backends.argo.emulator.protocol import PodContext, PodHost, PodOutcome, PodRequest, PodView
from apps.backends.base import ExecutionBackend, StepSpec

__all__ = ["HostExecutor", "HostPod", "Unsupported"]

# Template and step fields whose meaning this executor does not implement.
_REFUSED_TEMPLATE_FIELDS = (
    "inputs", "outputs", "retryStrategy", "sidecars", "initContainers", "daemon", "activeDeadlineSeconds",
    "timeout", "memoize", "synchronization", "podSpecPatch", "volumes", "resource", "suspend", "data",
    "http", "plugin", "containerSet", "parallelism", "failFast",
)  # fmt: skip
_REFUSED_SPEC_FIELDS = (
    "workflowTemplateRef", "onExit", "hooks", "activeDeadlineSeconds", "volumeClaimTemplates",
    "synchronization", "templateDefaults", "podSpecPatch", "suspend",
)  # fmt: skip
_STEP_FIELDS = frozenset({"name", "template"})
_TASK_FIELDS = frozenset({"name", "template", "dependencies", "depends"})
_PLAIN_DEPENDS = re.compile(r"^\s*[A-Za-z0-9_-]+(\s*&&\s*[A-Za-z0-9_-]+)*\s*$")
_HOST = "canal-emulator"


class Unsupported(Exception):
    """The Workflow needs more than this minimal executor does."""


@dataclass
class _Unit:
    """One Pod node of the plan."""

    node_id: str
    node_name: str
    display_name: str
    template: Mapping[str, Any]
    parent_id: str | None
    after: list[str] = field(default_factory=list)  # node ids this one's node is a child of


@dataclass
class _Group:
    """One step group of a ``steps`` template."""

    node_id: str
    node_name: str
    display_name: str
    units: list[str]


@dataclass
class _Plan:
    """The Pod nodes to run, in order, and the nodes around them."""

    kind: str  # Pod | Steps | DAG
    entry: str
    units: list[_Unit]
    groups: list[_Group] = field(default_factory=list)
    outbound: list[str] = field(default_factory=list)


def _pod_template(templates: Mapping[str, Any], name: Any, where: str) -> Mapping[str, Any]:
    template = templates.get(name)
    if template is None:
        raise Unsupported(f"{where} refers to template {name!r}, which the Workflow does not define")
    if "container" not in template and "script" not in template:
        raise Unsupported(f"template {name!r} is not a container or script template")
    for key in _REFUSED_TEMPLATE_FIELDS:
        if template.get(key):
            raise Unsupported(f"template {name!r} uses {key}")
    container = template.get("container") or template.get("script") or {}
    if not container.get("command"):
        raise Unsupported(
            f"template {name!r} has no command (an image's own entrypoint cannot run on the host)"
        )
    for variable in container.get("env") or []:
        if "valueFrom" in variable:
            raise Unsupported(f"template {name!r} takes env variable {variable.get('name')!r} from a source")
    text = repr(container)
    if "{{" in text:
        raise Unsupported(f"template {name!r} uses {{{{...}}}} substitution")
    return dict(template)


def _dag_order(workflow_name: str, tasks: list[Mapping[str, Any]], templates: Mapping[str, Any]) -> _Plan:
    names = [task.get("name") for task in tasks]
    needs: dict[str, list[str]] = {}
    for task in tasks:
        extra = set(task) - _TASK_FIELDS
        if extra:
            raise Unsupported(f"dag task {task.get('name')!r} uses {sorted(extra)[0]}")
        if "depends" in task:
            if not _PLAIN_DEPENDS.match(str(task["depends"])):
                raise Unsupported(f"dag task {task.get('name')!r} has a depends expression beyond 'a && b'")
            deps = [part.strip() for part in str(task["depends"]).split("&&")]
        else:
            deps = list(task.get("dependencies") or [])
        for dep in deps:
            if dep not in names:
                raise Unsupported(f"dag task {task.get('name')!r} depends on unknown task {dep!r}")
        needs[str(task["name"])] = deps
    order: list[str] = []
    while len(order) < len(tasks):
        ready = [n for n in needs if n not in order and all(d in order for d in needs[n])]
        if not ready:
            raise Unsupported("the dag has a dependency cycle")
        order.append(ready[0])
    by_name = {str(task["name"]): task for task in tasks}
    units = []
    for name in order:
        node_name = f"{workflow_name}.{name}"
        template = _pod_template(templates, by_name[name].get("template"), f"dag task {name!r}")
        parents = [node_id(workflow_name, f"{workflow_name}.{dep}") for dep in needs[name]] or [workflow_name]
        units.append(
            _Unit(node_id(workflow_name, node_name), node_name, name, template, workflow_name, parents)
        )
    depended = {dep for deps in needs.values() for dep in deps}
    outbound = [node_id(workflow_name, f"{workflow_name}.{n}") for n in order if n not in depended]
    return _Plan("DAG", "", units, outbound=outbound)


def build_plan(workflow: Mapping[str, Any]) -> _Plan:
    """What to run for ``workflow``; Unsupported when it needs more than this executor does."""
    metadata, spec = workflow.get("metadata") or {}, workflow.get("spec") or {}
    name = metadata["name"]
    arguments = spec.get("arguments") or {}
    if arguments.get("parameters") or arguments.get("artifacts"):
        raise Unsupported("the Workflow takes arguments")
    for key in _REFUSED_SPEC_FIELDS:
        if spec.get(key):
            raise Unsupported(f"the Workflow uses spec.{key}")
    templates: dict[str, Any] = {
        str(t.get("name")): t for t in spec.get("templates") or [] if isinstance(t, dict)
    }
    entry_name = str(spec.get("entrypoint") or "")
    entry = templates.get(entry_name)
    if entry is None:
        raise Unsupported(f"the entrypoint {entry_name!r} is not one of the Workflow's templates")
    if "steps" in entry:
        plan = _Plan("Steps", entry_name, [])
        for index, group in enumerate(entry.get("steps") or []):
            group_name = f"{name}[{index}]"
            current = _Group(node_id(name, group_name), group_name, f"[{index}]", [])
            for step in group or []:
                extra = set(step) - _STEP_FIELDS
                if extra:
                    raise Unsupported(f"step {step.get('name')!r} uses {sorted(extra)[0]}")
                step_name = f"{group_name}.{step.get('name')}"
                template = _pod_template(templates, step.get("template"), f"step {step.get('name')!r}")
                unit = _Unit(
                    node_id(name, step_name), step_name, str(step.get("name")), template, current.node_id
                )
                plan.units.append(unit)
                current.units.append(unit.node_id)
            if not current.units:
                raise Unsupported(f"step group {index} is empty")
            plan.groups.append(current)
        if not plan.groups:
            raise Unsupported(f"template {entry_name!r} has no steps")
        plan.outbound = list(plan.groups[-1].units)
        return plan
    if "dag" in entry:
        tasks = (entry.get("dag") or {}).get("tasks") or []
        if not tasks:
            raise Unsupported(f"template {entry_name!r} has no dag tasks")
        extra = set(entry["dag"]) - {"tasks"}
        if extra:
            raise Unsupported(f"template {entry_name!r} uses dag.{sorted(extra)[0]}")
        plan = _dag_order(name, tasks, templates)
        plan.entry = entry_name
        return plan
    template = _pod_template(templates, entry_name, "the entrypoint")
    return _Plan("Pod", entry_name, [_Unit(name, name, name, template, None)])


class HostPod:
    """A Pod node's main container run as a host process by an ExecutionBackend (a ``PodProgram``)."""

    def __init__(self, backend: ExecutionBackend, template: Mapping[str, Any]) -> None:
        self.backend = backend
        self.template = template

    def __call__(self, context: PodContext) -> PodOutcome:
        """Run the command to its end (or until ``context.cancel``) and report how it ended."""
        script = self.template.get("script")
        container: Mapping[str, Any] = script if script is not None else self.template.get("container") or {}
        argv = [str(part) for part in container.get("command") or []]
        if script is not None:
            # Argo hands a script's source to its command as a file path.
            path = context.workdir / "argo-script"
            path.write_text(str(script.get("source", "")))
            argv.append(str(path))
        argv += [str(part) for part in container.get("args") or []]
        env = {str(v["name"]): str(v.get("value", "")) for v in container.get("env") or [] if "name" in v}
        started = threading.Event()

        def on_started(event: Any) -> None:
            started.set()
            context.started(event.pid)

        result = self.backend.run(
            StepSpec(
                step_id=f"{context.namespace}/{context.name}",
                argv=argv,
                image=str(container.get("image", "")),
                env=env,
                workdir=context.workdir,
                log_path=context.log_path,
                # One shared base task environment for every namespace: building one per
                # namespace costs seconds and isolates nothing more (steps see it read-only).
                tenant="",
                tenant_dir=context.tenant_dir,
            ),
            cancel=context.cancel,
            on_started=on_started,
        )
        if not started.is_set():
            context.started(None)
        message = "" if result.exit_code is not None else result.error or ""
        outputs = {"exitCode": str(result.exit_code)} if result.exit_code is not None else None
        return PodOutcome(exit_code=result.exit_code, message=message, outputs=outputs)


def _node(
    workflow_name: str, ident: str, name: str, display: str, kind: str, template: str, now: str
) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": ident,
        "name": name,
        "displayName": display,
        "type": kind,
        "templateScope": f"local/{workflow_name}",
        "phase": "Running" if kind != "Pod" else "Pending",
        "startedAt": now,
    }
    if template:
        node["templateName"] = template
    if ident != workflow_name:
        node["boundaryID"] = workflow_name
    if kind == "Pod":
        node["hostNodeName"] = _HOST
    return node


def _finish(node: dict[str, Any], phase: str, now: str, message: str = "") -> None:
    node["phase"] = phase
    node.setdefault("finishedAt", now)
    if message:
        node["message"] = message


def _adopt(node: dict[str, Any], view: PodView, now: str) -> None:
    """Bring a Pod node up to date with its pod."""
    if view.phase == "Running":
        node["phase"] = "Running"
    elif view.phase == "Succeeded":
        node["outputs"] = dict(view.outputs or {"exitCode": "0"})
        _finish(node, "Succeeded", view.finished_at or now)
    elif view.phase == "Failed":
        node["outputs"] = dict(view.outputs or {"exitCode": str(view.exit_code)})
        _finish(node, "Failed", view.finished_at or now, view.failure_message())
    node["progress"] = "1/1" if node["phase"] in NODE_FULFILLED else "0/1"


class HostExecutor:
    """Runs simple Workflows' Pod nodes one at a time as host processes (a ``WorkflowExecutor``)."""

    def __init__(self, backend: ExecutionBackend) -> None:
        self.backend = backend

    def reconcile(
        self, workflow: Mapping[str, Any], status: Mapping[str, Any], pods: PodHost
    ) -> dict[str, Any]:
        """The next status: start the next Pod node when the previous one succeeded, fold results upwards."""
        result: dict[str, Any] = copy.deepcopy(dict(status))
        now = now_rfc3339()
        name = workflow["metadata"]["name"]
        if not result.get("phase"):
            result.update(phase="Running", startedAt=now)
        nodes: dict[str, dict[str, Any]] = result.setdefault("nodes", {})
        try:
            plan = build_plan(workflow)
        except Unsupported as exc:
            result.update(
                phase="Error",
                message=f"the emulator's host executor cannot run this Workflow: {exc}",
                finishedAt=now,
            )
            return result
        if plan.kind != "Pod" and name not in nodes:
            nodes[name] = _node(name, name, name, name, plan.kind, plan.entry, now)
        failed = self._advance(workflow, plan, nodes, pods, now)
        self._fold(name, plan, nodes, failed, now)
        root = nodes.get(name)
        if root is not None and root["phase"] in NODE_FULFILLED:
            # Argo's Workflow phase follows its root node: Succeeded, Failed or Error.
            result["phase"] = root["phase"] if root["phase"] in ("Succeeded", "Error") else "Failed"
            if root["phase"] != "Succeeded":
                result["message"] = root.get("message", "")
            result.setdefault("finishedAt", now)
        result["progress"] = progress(nodes)
        return result

    def _advance(
        self,
        workflow: Mapping[str, Any],
        plan: _Plan,
        nodes: dict[str, dict[str, Any]],
        pods: PodHost,
        now: str,
    ) -> str | None:
        """Move Pod nodes forward; returns the id of the node that failed, if one did."""
        name = workflow["metadata"]["name"]
        for unit in plan.units:
            node = nodes.get(unit.node_id)
            if node is None:
                template_name = str(unit.template.get("name", ""))
                container = unit.template.get("container") or unit.template.get("script") or {}
                view = pods.create_pod(
                    PodRequest(
                        node_id=unit.node_id,
                        node_name=unit.node_name,
                        template_name=template_name,
                        program=HostPod(self.backend, unit.template),
                        container=container,
                    )
                )
                node = _node(name, unit.node_id, unit.node_name, unit.display_name, "Pod", template_name, now)
                nodes[unit.node_id] = node
                _adopt(node, view, now)
                return None  # one node at a time
            if node["phase"] not in NODE_FULFILLED:
                current = pods.get_pod(unit.node_id)
                if current is None:
                    _finish(node, "Error", now, "pod deleted")
                    node["progress"] = "1/1"
                else:
                    _adopt(node, current, now)
            if node["phase"] not in NODE_FULFILLED:
                return None
            if node["phase"] != "Succeeded":
                return unit.node_id
        return None

    @staticmethod
    def _fold(name: str, plan: _Plan, nodes: dict[str, dict[str, Any]], failed: str | None, now: str) -> None:
        """Children, phases and messages of the nodes around the Pod nodes."""
        if plan.kind == "Pod":
            return
        root = nodes[name]
        existing = [unit for unit in plan.units if unit.node_id in nodes]
        if plan.kind == "Steps":
            groups = [group for group in plan.groups if any(u in nodes for u in group.units)]
            for index, group in enumerate(groups):
                node = nodes.get(group.node_id)
                if node is None:
                    node = _node(
                        name, group.node_id, group.node_name, group.display_name, "StepGroup", "", now
                    )
                    nodes[group.node_id] = node
                node["children"] = [u for u in group.units if u in nodes]
                if index + 1 < len(groups):  # Argo chains each step to the next group
                    for unit_id in group.units:
                        nodes[unit_id]["children"] = [groups[index + 1].node_id]
                member = [nodes[u] for u in node["children"]]
                bad = next(
                    (n for n in member if n["phase"] in NODE_FULFILLED and n["phase"] != "Succeeded"), None
                )
                if bad is not None:
                    _finish(node, "Failed", now, f"child '{bad['id']}' failed")
                elif len(member) == len(group.units) and all(n["phase"] == "Succeeded" for n in member):
                    _finish(node, "Succeeded", now)
                node["progress"] = progress({u: nodes[u] for u in node["children"]})
            root["children"] = [groups[0].node_id] if groups else []
            failed_child = next((g.node_id for g in groups if nodes[g.node_id]["phase"] == "Failed"), None)
        else:
            for unit in existing:
                for parent in unit.after:
                    if parent in nodes:
                        children = nodes[parent].setdefault("children", [])
                        if unit.node_id not in children:
                            children.append(unit.node_id)
            failed_child = failed
        if failed_child is not None:
            _finish(root, "Failed", now, f"child '{failed_child}' failed")
        elif len(existing) == len(plan.units) and all(
            nodes[u.node_id]["phase"] == "Succeeded" for u in plan.units
        ):
            root["outboundNodes"] = list(plan.outbound)
            _finish(root, "Succeeded", now)
        root["progress"] = progress({u.node_id: nodes[u.node_id] for u in existing})
