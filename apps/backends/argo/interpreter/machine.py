"""The interpreter: Argo's workflow operator as a pure, resumable state machine.

All state is the Argo-shaped ``status`` dict. Each :meth:`Interpreter.advance`
walks the template tree from the entrypoint the way Argo's ``operate`` does,
finding existing nodes by name (node ids are a hash of the name, so the same
name always gives the same id) and creating the nodes that are now due. Pods it
creates are returned as :class:`PodRequest`; their ends come back through
:meth:`Interpreter.pod_finished`. Time only enters through the ``now`` passed
in, so retries, backoffs, suspends and deadlines are testable with a fake clock.
"""

from __future__ import annotations

import copy
import json
import math
import secrets
import string
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apps.backends.pod_fields import FieldPathError, PodMetadata, field_value
from apps.engine.durations import DurationError, parse_duration

from . import exprlang
from .depends import depends_logic, evaluate_depends, task_results
from .errors import ExpressionError, InterpreterError, WorkflowRefused
from .govaluate import evaluate_when
from .items import ExpansionError, expand_sequence, item_name, item_scope, loop_index, parse_with_param
from .model import (
    FULFILLED,
    ContainerSpec,
    InputArtifact,
    OutputArtifactSpec,
    OutputParameterSpec,
    PodRequest,
    PodResult,
    Tick,
    VolumeMount,
)
from .refusals import check_template, check_workflow, volume_names
from .substitute import SubstitutionError, substitute, substitute_string, unresolved_tags

__all__ = ["Interpreter", "Limits", "fnv32a", "node_id_for", "pod_name_for"]

ABSENT = "__argo_absent_optional__"  # an argument that referred to a skipped step's missing output
_RUNNABLE_KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate")
_ACTIVE = ("Pending", "Running")
_TIMEOUT_MESSAGE = "Pod was active on the node longer than the specified deadline"
_DEADLINE_MESSAGE = "Step exceeded its deadline"
_STRFTIME = "aAbBcCdDeFgGhHIjklmMnpRrSTuUVwWxXyYzZ"
_MUST_RESOLVE = (
    "=",
    "inputs.",
    "outputs.",
    "item",
    "steps.",
    "tasks.",
    "workflow.parameters.",
    "workflow.outputs.",
    "pod.",
    "node.",
    "retries",
    "lastRetry.",
)


def fnv32a(text: str) -> int:
    """32-bit FNV-1a of ``text``'s UTF-8 bytes (Go's hash/fnv New32a)."""
    value = 0x811C9DC5
    for byte in text.encode("utf-8"):
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def node_id_for(workflow_name: str, node_name: str) -> str:
    """Argo's node id: the workflow name for the root node, else ``<workflow>-<fnv32a(name)>``."""
    if node_name == workflow_name:
        return workflow_name
    return f"{workflow_name}-{fnv32a(node_name)}"


def pod_name_for(workflow_name: str, node_name: str, template_name: str) -> str:
    """Argo's v2 pod name: ``<workflow>-<template>-<fnv32a(node name)>``."""
    if workflow_name == node_name:
        return workflow_name
    prefix = f"{workflow_name}-{template_name}" if template_name else workflow_name
    prefix = prefix[: 253 - 10 - 1]
    return f"{prefix}-{fnv32a(node_name)}"


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_ts(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _duration(value: Any, what: str) -> float:
    try:
        return parse_duration(str(value).strip())
    except DurationError as exc:
        raise InterpreterError(f"{what}: {exc}") from None


def _text(value: Any) -> str:
    """A parameter value as Argo's AnyString holds it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return exprlang.format_result(value)


@dataclass(frozen=True)
class Limits:
    """Bounds on what one (possibly hostile) workflow may make the interpreter do."""

    max_items: int = 1000  # iterations one withItems / withParam / withSequence may expand to
    max_depth: int = 100  # nested template calls (recursion)
    max_nodes: int = 20_000  # nodes in the status
    max_retries: int = 100  # retryStrategy.limit is capped here
    max_parameter_bytes: int = 256 * 1024  # an output parameter or result


class _NodeError(Exception):
    """A template could not be executed; the node is marked Error with this message."""


@dataclass
class _DagCtx:
    boundary_name: str
    boundary_id: str
    tasks: dict[str, dict[str, Any]]
    template: dict[str, Any]
    scope: str
    on_exit: bool
    visited: set[str] = field(default_factory=set)
    logic: dict[str, tuple[list[str], str]] = field(default_factory=dict)


class Interpreter:
    """Runs one Argo Workflow as a state machine (see the module docstring).

    ``workflow`` is a Workflow (or WorkflowTemplate) dict as the importer returns it;
    ``parameters`` override ``spec.arguments.parameters``; ``templates`` are the
    other WorkflowTemplates of the bundle that ``templateRef`` / ``workflowTemplateRef``
    may name. ``status`` resumes a run from the status it wrote; ``running`` names
    pod nodes of that status that are still running elsewhere (re-attached): every
    other Pending/Running pod node is handed out again by the next ``advance``
    (re-run). Raises WorkflowRefused before anything runs.
    """

    def __init__(
        self,
        workflow: Mapping[str, Any],
        *,
        parameters: Mapping[str, Any] | None = None,
        templates: Sequence[Mapping[str, Any]] = (),
        status: Mapping[str, Any] | None = None,
        name: str | None = None,
        uid: str | None = None,
        namespace: str = "default",
        running: Iterable[str] = (),
        limits: Limits | None = None,
    ) -> None:
        self.limits = limits or Limits()
        wf = copy.deepcopy(dict(workflow))
        kind = wf.get("kind") or "Workflow"
        if kind not in _RUNNABLE_KINDS:
            raise WorkflowRefused("", "kind", f"a {kind} is not a workflow the interpreter can run")
        meta = wf.setdefault("metadata", {}) or {}
        wf["metadata"] = meta
        self.bundle: dict[str, dict[str, Any]] = {}
        for other in templates:
            other_meta = other.get("metadata") or {}
            if other_meta.get("name"):
                self.bundle[str(other_meta["name"])] = copy.deepcopy(dict(other))
        spec = dict(wf.get("spec") or {})
        ref = spec.get("workflowTemplateRef")
        if isinstance(ref, Mapping):
            base = self.bundle.get(str(ref.get("name")))
            if base is None:
                raise WorkflowRefused(
                    "",
                    "spec.workflowTemplateRef",
                    f"it runs WorkflowTemplate '{ref.get('name')}', which is not part of the uploaded bundle",
                )
            merged = copy.deepcopy(base.get("spec") or {})
            for key, value in spec.items():
                if key == "workflowTemplateRef":
                    continue
                if key == "arguments":
                    merged["arguments"] = _merge_arguments(merged.get("arguments") or {}, value or {})
                else:
                    merged[key] = value
            spec = merged
        self.spec = spec
        self.workflow = wf
        self.name = (
            name
            or str(meta.get("name") or "")
            or _generate_name(str(meta.get("generateName") or "workflow-"))
        )
        self.uid = uid or str(meta.get("uid") or "") or str(uuid.uuid4())
        self.namespace = str(meta.get("namespace") or namespace)
        self.created = meta.get("creationTimestamp")
        self._apply_parameters(parameters or {})
        if not spec.get("entrypoint"):
            raise WorkflowRefused("", "spec.entrypoint", "the workflow has no entrypoint")
        check_workflow(self.spec, self._lookup)
        self._volume_names = volume_names(self.spec)
        self._checked: set[tuple[str, str]] = set()
        self._exit_globals: dict[str, str] = {}
        self._globals_cache: dict[str, Any] | None = None
        self.status: dict[str, Any] = copy.deepcopy(dict(status)) if status else {}
        self.status.setdefault("nodes", {})
        self._attached = set(running)
        # Indexes kept in step with the status, so parallelism checks do not scan every node.
        self._active_pod_ids = {
            n["id"]
            for n in self.status["nodes"].values()
            if n.get("type") == "Pod" and n.get("phase") in _ACTIVE
        }
        self._by_boundary: dict[str, list[str]] = {}
        for n in self.status["nodes"].values():
            self._by_boundary.setdefault(str(n.get("boundaryID") or ""), []).append(n["id"])
        self._requests: dict[str, PodRequest] = {}  # pod node id -> request handed out or attached
        self._handed: set[str] = set()
        self._templates_by_node: dict[str, dict[str, Any]] = {}
        self._shutdown: str = str(spec.get("shutdown") or "")
        self._now = datetime.now(UTC)
        self._start: list[PodRequest] = []
        self._stop: list[str] = []
        self._wake: datetime | None = None
        self._depth = 0

    # ------------------------------------------------------------------ public
    @property
    def done(self) -> bool:
        """The workflow has reached a final phase."""
        return self.status.get("phase") in ("Succeeded", "Failed", "Error")

    @property
    def phase(self) -> str:
        """The workflow's phase ('' before the first advance)."""
        return str(self.status.get("phase") or "")

    def terminate(self) -> None:
        """Stop everything now, exit handlers included (Argo's ``shutdown: Terminate``)."""
        self._shutdown = "Terminate"

    def stop(self) -> None:
        """Stop, but still run the exit handlers (Argo's ``shutdown: Stop``)."""
        if self._shutdown != "Terminate":
            self._shutdown = "Stop"

    def abort(self, message: str, now: datetime) -> None:
        """End the workflow in phase Error with ``message`` (a driver found it stuck)."""
        self._now = now
        if not self.done:
            self._finish("Error", message)

    def pod_request(self, node_id: str) -> PodRequest | None:
        """The request of a pod node handed out (or attached) by this interpreter."""
        return self._requests.get(node_id)

    def running_pods(self) -> list[str]:
        """Pod nodes that are Pending or Running."""
        return [
            n["id"]
            for n in self.status["nodes"].values()
            if n.get("type") == "Pod" and n.get("phase") in _ACTIVE
        ]

    def pod_started(self, node_id: str, now: datetime) -> None:
        """The pod of ``node_id`` is running."""
        node = self.status["nodes"].get(node_id)
        if node is not None and node.get("phase") == "Pending":
            node["phase"] = "Running"

    def pod_finished(self, node_id: str, result: PodResult, now: datetime) -> None:
        """Record how the pod of ``node_id`` ended (ignored if the node is already final)."""
        node = self.status["nodes"].get(node_id)
        if node is None or node.get("phase") in FULFILLED:
            return
        request = self._requests.get(node_id)
        self._now = now
        outputs: dict[str, Any] = {}
        phase, message = "Succeeded", ""
        if result.exit_code is not None:
            outputs["exitCode"] = str(result.exit_code)
        if result.canceled and not result.timed_out:
            phase = "Failed"
            message = result.message or f"workflow shutdown with strategy:  {self._shutdown or 'Terminate'}"
        elif result.timed_out:
            phase, message = "Failed", _TIMEOUT_MESSAGE
        elif result.error or result.exit_code is None:
            phase, message = "Error", result.message or "the pod could not run"
        elif result.exit_code != 0:
            phase = "Failed"
            message = result.message if result.message else f"Error (exit code {result.exit_code})"
            if not message.startswith("Error (exit code"):
                message = f"Error (exit code {result.exit_code}): {message}"
        if request is not None and phase == "Succeeded":
            try:
                params, arts = self._collect_outputs(request, result)
            except _NodeError as exc:
                phase, message = "Error", str(exc)
                params, arts = [], []
            if params:
                outputs["parameters"] = params
            if arts:
                outputs["artifacts"] = arts
        elif request is not None:
            # A failed pod still reports the outputs it wrote (Argo saves what it can).
            params = []
            template = self._templates_by_node.get(node_id) or {}
            for spec in (template.get("outputs") or {}).get("parameters") or []:
                value = result.parameters.get(str(spec.get("name")))
                if value is not None:
                    params.append(self._output_param(spec, value))
            if params:
                outputs["parameters"] = params
        if request is not None and request.capture_result and phase in ("Succeeded", "Failed"):
            out = result.stdout
            if out.endswith("\n"):
                out = out[:-1]
            limit = self.limits.max_parameter_bytes
            outputs["result"] = out[-limit:] if len(out) > limit else out
        if outputs:
            node["outputs"] = outputs
        started = result.started_at
        if started is not None and node.get("phase") == "Pending":
            node["phase"] = "Running"
        self._mark(node, phase, message)
        if result.finished_at is not None:
            node["finishedAt"] = _ts(result.finished_at)
        if phase == "Succeeded":
            self._add_outputs_to_global(node.get("outputs"))

    def advance(self, now: datetime) -> Tick:
        """Walk the workflow once at time ``now``; returns the pods to start and stop."""
        self._now = now
        self._start, self._stop, self._wake = [], [], None
        self._globals_cache = None
        if self.done:
            return Tick(done=True)
        st = self.status
        if not st.get("phase"):
            st["phase"] = "Running"
            st["startedAt"] = _ts(now)
            if not self.created:
                self.created = _ts(now)
        try:
            self._operate()
        except WorkflowRefused:
            raise
        except InterpreterError as exc:
            self._finish("Error", str(exc))
        return Tick(start=tuple(self._start), stop=tuple(self._stop), wake_at=self._wake, done=self.done)

    def next_wakeup(self) -> datetime | None:
        """When the last advance asked to be called again (a backoff, a suspend, a deadline)."""
        return self._wake

    # ------------------------------------------------------------ templates
    def _lookup(self, holder: Mapping[str, Any], scope: str) -> tuple[Mapping[str, Any], str] | None:
        ref = holder.get("templateRef")
        if isinstance(ref, Mapping):
            owner = self.bundle.get(str(ref.get("name")))
            if owner is None:
                return None
            for template in (owner.get("spec") or {}).get("templates") or []:
                if template.get("name") == ref.get("template"):
                    cluster = bool(ref.get("clusterScope")) or owner.get("kind") == "ClusterWorkflowTemplate"
                    return template, ("cluster/" if cluster else "namespaced/") + str(ref.get("name"))
            return None
        name = holder.get("template")
        templates = self._scope_templates(scope)
        for template in templates:
            if template.get("name") == name:
                return template, scope
        return None

    def _scope_templates(self, scope: str) -> list[dict[str, Any]]:
        if not scope:
            return list(self.spec.get("templates") or [])
        owner = self.bundle.get(scope.split("/", 1)[1], {})
        return list((owner.get("spec") or {}).get("templates") or [])

    def _resolve(self, holder: Mapping[str, Any], scope: str) -> tuple[dict[str, Any], str]:
        if isinstance(holder.get("inline"), Mapping):
            template = copy.deepcopy(dict(holder["inline"]))
            found_scope = scope
        else:
            found = self._lookup(holder, scope)
            if found is None:
                ref = holder.get("templateRef")
                if isinstance(ref, Mapping):
                    raise _NodeError(
                        f"template '{ref.get('template')}' of WorkflowTemplate '{ref.get('name')}' "
                        "was not found"
                    )
                raise _NodeError(f"template '{holder.get('template')}' was not found")
            template, found_scope = copy.deepcopy(dict(found[0])), found[1]
        defaults = self.spec.get("templateDefaults")
        if isinstance(defaults, Mapping):
            template = _deep_merge(copy.deepcopy(dict(defaults)), template)
        # Templates chosen at run time (a templated name, an inline template) were not seen
        # by the check before the run: refuse them here, on their node.
        key = (found_scope, str(template.get("name") or ""))
        if key not in self._checked:
            try:
                check_template(str(template.get("name") or "inline"), template, self._volume_names, "")
            except WorkflowRefused as exc:
                raise _NodeError(str(exc)) from None
            if template.get("name"):
                self._checked.add(key)
        return template, found_scope

    # --------------------------------------------------------------- scopes
    def _globals(self) -> dict[str, Any]:
        if self._globals_cache is None:
            self._globals_cache = self._compute_globals()
        return self._globals_cache

    def _compute_globals(self) -> dict[str, Any]:
        meta = self.workflow.get("metadata") or {}
        created = _parse_ts(self.created) if isinstance(self.created, str) else None
        created = created or _parse_ts(self.status.get("startedAt")) or self._now
        out: dict[str, Any] = {
            "workflow.name": self.name,
            "workflow.namespace": self.namespace,
            "workflow.uid": self.uid,
            "workflow.mainEntrypoint": str(self.spec.get("entrypoint") or ""),
            "workflow.serviceAccountName": str(self.spec.get("serviceAccountName") or ""),
            "workflow.creationTimestamp": _ts(created),
            "workflow.creationTimestamp.RFC3339": _ts(created),
            "workflow.creationTimestamp.s": str(int(created.timestamp())),
            "workflow.status": str(self.status.get("phase") or "Running"),
        }
        for char in _STRFTIME:
            try:
                out[f"workflow.creationTimestamp.{char}"] = created.strftime("%" + char)
            except ValueError:
                continue
        if self.spec.get("priority") is not None:
            out["workflow.priority"] = str(self.spec["priority"])
        started = _parse_ts(self.status.get("startedAt"))
        if started is not None:
            end = _parse_ts(self.status.get("finishedAt")) or self._now
            out["workflow.duration"] = f"{(end - started).total_seconds():.6f}"
        params = ((self.spec.get("arguments") or {}).get("parameters")) or []
        listed = json.dumps(params, separators=(",", ":"), ensure_ascii=False)
        out["workflow.parameters"] = listed
        out["workflow.parameters.json"] = listed
        for param in params:
            if "value" in param:
                out[f"workflow.parameters.{param['name']}"] = _text(param["value"])
        for kind in ("annotations", "labels"):
            values = dict(meta.get(kind) or {})
            values.update(((self.spec.get("workflowMetadata") or {}).get(kind)) or {})
            text = json.dumps(values, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
            out[f"workflow.{kind}"] = text
            out[f"workflow.{kind}.json"] = text
            for key, value in values.items():
                out[f"workflow.{kind}.{key}"] = str(value)
        for param in ((self.status.get("outputs") or {}).get("parameters")) or []:
            if param.get("value") is not None:
                out[f"workflow.outputs.parameters.{param['name']}"] = str(param["value"])
        out.update(self._exit_globals)
        return out

    def _template_scope(self, template: Mapping[str, Any]) -> dict[str, Any]:
        scope: dict[str, Any] = {}
        inputs = template.get("inputs") or {}
        for param in inputs.get("parameters") or []:
            if "value" in param:
                scope[f"inputs.parameters.{param['name']}"] = _text(param["value"])
        for art in inputs.get("artifacts") or []:
            scope[f"inputs.artifacts.{art['name']}"] = dict(art)
        for param in ((self.status.get("outputs") or {}).get("parameters")) or []:
            if param.get("value") is not None:
                scope[f"workflow.outputs.parameters.{param['name']}"] = str(param["value"])
        for art in ((self.status.get("outputs") or {}).get("artifacts")) or []:
            scope[f"workflow.outputs.artifacts.{art['name']}"] = dict(art)
        return scope

    # ---------------------------------------------------------------- nodes
    def _id(self, name: str) -> str:
        return node_id_for(self.name, name)

    def _by_name(self, name: str) -> dict[str, Any] | None:
        node: dict[str, Any] | None = self.status["nodes"].get(self._id(name))
        return node

    def _node(self, node_id: str) -> dict[str, Any]:
        node: dict[str, Any] = self.status["nodes"][node_id]
        return node

    def _init_node(
        self,
        name: str,
        node_type: str,
        holder: Mapping[str, Any] | None,
        boundary_id: str,
        phase: str,
        *,
        scope: str = "",
        message: str = "",
        flag: Mapping[str, bool] | None = None,
        template: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        nodes = self.status["nodes"]
        if len(nodes) >= self.limits.max_nodes:
            raise InterpreterError(
                f"the workflow has reached {self.limits.max_nodes:,} nodes, the most one run may have"
            )
        node_id = self._id(name)
        if node_id in nodes:
            raise InterpreterError(f"node {name} already initialized")
        node: dict[str, Any] = {"id": node_id, "name": name}
        boundary = nodes.get(boundary_id) if boundary_id else None
        if boundary is not None:
            display = name[len(boundary["name"]) :] if name.startswith(boundary["name"]) else name
            if display.startswith("."):
                display = display[1:]
            elif display.startswith("[") and "]." in display and display[1 : display.index("]")].isdigit():
                display = display[display.index("].") + 2 :]
            node["displayName"] = display
        else:
            node["displayName"] = name
        node["type"] = node_type
        holder = holder or {}
        if isinstance(holder.get("templateRef"), Mapping):
            node["templateRef"] = {
                k: v for k, v in holder["templateRef"].items() if k in ("name", "template", "clusterScope")
            }
        elif holder.get("template"):
            node["templateName"] = str(holder["template"])
        node["templateScope"] = scope or "local/"
        node["phase"] = phase
        if boundary_id:
            node["boundaryID"] = boundary_id
        node["startedAt"] = _ts(self._now)
        if phase in FULFILLED:
            node["finishedAt"] = node["startedAt"]
        if message:
            node["message"] = message
        if flag:
            node["nodeFlag"] = dict(flag)
        if template is not None:
            inputs = template.get("inputs") or {}
            if inputs.get("parameters") or inputs.get("artifacts"):
                node["inputs"] = _node_inputs(inputs)
        nodes[node_id] = node
        self._by_boundary.setdefault(boundary_id, []).append(node_id)
        if node_type == "Pod" and phase in _ACTIVE:
            self._active_pod_ids.add(node_id)
        return node

    def _mark(self, node: dict[str, Any], phase: str, message: str | None = None) -> dict[str, Any]:
        node["phase"] = phase
        if node.get("type") == "Pod":
            if phase in _ACTIVE:
                self._active_pod_ids.add(node["id"])
            else:
                self._active_pod_ids.discard(node["id"])
        if message is not None and message != node.get("message", ""):
            if message:
                node["message"] = message
            else:
                node.pop("message", None)
        if phase in FULFILLED and not node.get("finishedAt"):
            node["finishedAt"] = _ts(self._now)
        return node

    def _mark_name(self, name: str, phase: str, message: str | None = None) -> dict[str, Any]:
        node = self._by_name(name)
        if node is None:
            raise InterpreterError(f"no node named {name}")
        return self._mark(node, phase, message)

    def _mark_error(self, name: str, message: str) -> dict[str, Any]:
        return self._mark_name(name, "Error", message)

    def _add_child(self, parent: str, child: str) -> None:
        node = self._by_name(parent)
        if node is None:
            raise InterpreterError(f"no node named {parent}")
        child_id = self._id(child)
        children = node.setdefault("children", [])
        if child_id not in children:
            children.append(child_id)

    def _error_node(
        self,
        node: dict[str, Any] | None,
        name: str,
        holder: Mapping[str, Any],
        boundary_id: str,
        flag: Mapping[str, bool] | None,
        message: str,
        scope: str,
    ) -> dict[str, Any]:
        if node is not None:
            return self._mark(node, "Error", message)
        return self._init_node(
            name, "Skipped", holder, boundary_id, "Error", scope=scope, message=message, flag=flag
        )

    def _children_fulfilled(self, node: Mapping[str, Any], seen: set[str] | None = None) -> bool:
        seen = seen if seen is not None else set()
        for child_id in node.get("children") or []:
            if child_id in seen:
                continue
            seen.add(child_id)
            child = self.status["nodes"].get(child_id)
            if child is None or child.get("phase") not in FULFILLED:
                return False
            if not self._children_fulfilled(child, seen):
                return False
        return True

    def _outbound(self, node_id: str) -> list[str]:
        node = self._node(node_id)
        kind = node.get("type")
        if kind in ("Skipped", "Suspend", "Pod"):
            return [node_id]
        if kind == "TaskGroup":
            if not node.get("children"):
                return [node_id]
            out: list[str] = []
            for child in node["children"]:
                out.extend(self._outbound(child))
            return out
        if kind == "Retry":
            attempts = [c for c in node.get("children") or [] if not self._hooked(c)]
            return [attempts[-1]] if attempts else []
        result: list[str] = []
        for child in node.get("outboundNodes") or []:
            result.extend(self._outbound(child))
        return result

    def _hooked(self, node_id: str) -> bool:
        node = self.status["nodes"].get(node_id) or {}
        return bool((node.get("nodeFlag") or {}).get("hooked"))

    def _last_attempt(self, node: Mapping[str, Any]) -> dict[str, Any] | None:
        if node.get("type") != "Retry":
            return None
        for child_id in reversed(node.get("children") or []):
            child: dict[str, Any] | None = self.status["nodes"].get(child_id)
            if child is not None and not (child.get("nodeFlag") or {}).get("hooked"):
                return child
        return None

    def _attempts(self, node: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [
            self._node(c)
            for c in node.get("children") or []
            if c in self.status["nodes"] and not (self._node(c).get("nodeFlag") or {}).get("hooked")
        ]

    # ----------------------------------------------------------- operate
    def _operate(self) -> None:
        spec = self.spec
        deadline = self._workflow_deadline()
        if deadline is not None:
            self._wake_by(deadline)
        self._apply_execution_control(deadline)
        root = self._execute(
            self.name, {"template": spec["entrypoint"]}, spec.get("arguments") or {}, "", "", on_exit=False
        )
        if root is None or root.get("phase") not in FULFILLED:
            return
        wf_phase = {
            "Succeeded": "Succeeded",
            "Skipped": "Succeeded",
            "Omitted": "Succeeded",
            "Failed": "Failed",
            "Error": "Error",
        }[root["phase"]]
        failures = [
            {
                "displayName": n.get("displayName", ""),
                "message": n.get("message", ""),
                "templateName": n.get("templateName") or (n.get("templateRef") or {}).get("template", ""),
                "phase": n["phase"],
                "podName": pod_name_for(
                    self.name,
                    n["name"],
                    n.get("templateName") or (n.get("templateRef") or {}).get("template", ""),
                ),
                "finishedAt": n.get("finishedAt"),
            }
            for n in self.status["nodes"].values()
            if n.get("phase") in ("Failed", "Error")
        ]
        self._globals_cache = None
        self._exit_globals = {
            "workflow.status": wf_phase,
            # Argo quotes the JSON once more (strconv.Quote): consumers decode twice.
            "workflow.failures": json.dumps(
                json.dumps(failures or None, separators=(",", ":"), ensure_ascii=False), ensure_ascii=False
            ),
        }
        exit_hook = self._workflow_exit_hook()
        exit_node: dict[str, Any] | None = None
        if exit_hook is not None:
            exit_name = f"{self.name}.onExit"
            exit_node = self._by_name(exit_name)
            if exit_node is not None or self._shutdown != "Terminate":
                holder = {k: exit_hook[k] for k in ("template", "templateRef") if exit_hook.get(k)}
                exit_node = self._execute(
                    exit_name,
                    holder,
                    exit_hook.get("arguments") or spec.get("arguments") or {},
                    "",
                    "",
                    on_exit=True,
                    flag={"hooked": True},
                )
                if exit_node is None or exit_node.get("phase") not in FULFILLED:
                    return
        message = root.get("message", "")
        if root["phase"] in ("Failed", "Error") and self._shutdown:
            message = f"Stopped with strategy '{self._shutdown}'"
        if (
            wf_phase == "Succeeded"
            and exit_node is not None
            and exit_node.get("phase") in ("Failed", "Error")
        ):
            wf_phase = "Failed" if exit_node["phase"] == "Failed" else "Error"
            message = exit_node.get("message", "")
        self._finish(wf_phase, message)

    def _finish(self, phase: str, message: str) -> None:
        self.status["phase"] = phase
        self.status["finishedAt"] = _ts(self._now)
        if message:
            self.status["message"] = message
        else:
            self.status.pop("message", None)
        # Nothing may stay active once the workflow is over.
        for node in self.status["nodes"].values():
            if node.get("phase") in _ACTIVE:
                if node.get("type") == "Pod":
                    self._stop.append(node["id"])
                self._mark(node, "Failed" if phase != "Error" else "Error", node.get("message") or message)

    def _workflow_exit_hook(self) -> dict[str, Any] | None:
        spec = self.spec
        if spec.get("onExit"):
            return {"template": spec["onExit"]}
        hook = (spec.get("hooks") or {}).get("exit")
        if isinstance(hook, Mapping):
            return dict(hook)
        return None

    def _workflow_deadline(self) -> datetime | None:
        seconds = self.spec.get("activeDeadlineSeconds")
        started = _parse_ts(self.status.get("startedAt"))
        if seconds is None or started is None:
            return None
        return started + timedelta(seconds=int(seconds))

    def _wake_by(self, moment: datetime) -> None:
        if self._wake is None or moment < self._wake:
            self._wake = moment

    def _exit_handler_nodes(self) -> set[str]:
        """Ids of nodes run by (or under) an exit handler."""
        nodes = self.status["nodes"]
        out: set[str] = set()
        stack = [n["id"] for n in nodes.values() if (n.get("nodeFlag") or {}).get("hooked")]
        while stack:
            nid = stack.pop()
            if nid in out or nid not in nodes:
                continue
            out.add(nid)
            stack.extend(nodes[nid].get("children") or [])
            stack.extend(n["id"] for n in nodes.values() if n.get("boundaryID") == nid and n["id"] not in out)
        return out

    def _apply_execution_control(self, deadline: datetime | None) -> None:
        """Kill what a shutdown or the workflow deadline ends (Argo's applyExecutionControl)."""
        past_deadline = deadline is not None and self._now >= deadline
        if not self._shutdown and not past_deadline:
            return
        exit_nodes = self._exit_handler_nodes()
        for node in list(self.status["nodes"].values()):
            if node.get("phase") not in _ACTIVE:
                continue
            in_exit = node["id"] in exit_nodes
            if self._shutdown and not (self._shutdown == "Stop" and in_exit):
                if node.get("type") == "Pod":
                    self._stop.append(node["id"])
                    self._mark(node, "Failed", f"workflow shutdown with strategy:  {self._shutdown}")
                elif node.get("type") == "Suspend":
                    self._mark(node, "Failed", f"Stopped with strategy '{self._shutdown}'")
                continue
            if past_deadline and not in_exit and node.get("type") in ("Pod", "Suspend"):
                if node.get("type") == "Pod":
                    self._stop.append(node["id"])
                self._mark(node, "Failed", _DEADLINE_MESSAGE)

    # ------------------------------------------------------- executeTemplate
    def _execute(
        self,
        node_name: str,
        holder: Mapping[str, Any],
        args: Mapping[str, Any],
        scope: str,
        boundary_id: str,
        *,
        on_exit: bool,
        flag: Mapping[str, bool] | None = None,
        execution_deadline: datetime | None = None,
    ) -> dict[str, Any] | None:
        node = self._by_name(node_name)
        if node is not None and node.get("phase") in FULFILLED:
            # Nothing about a finished node changes again; skip re-processing its template
            # (each advance walks the whole tree, so this keeps large loops cheap).
            return node
        self._depth += 1
        try:
            if self._depth > self.limits.max_depth:
                return self._error_node(
                    node,
                    node_name,
                    holder,
                    boundary_id,
                    flag,
                    f"Maximum recursion depth exceeded ({self.limits.max_depth} nested templates)",
                    scope,
                )
            try:
                template, new_scope = self._resolve(holder, scope)
            except _NodeError as exc:
                return self._error_node(node, node_name, holder, boundary_id, flag, str(exc), scope)
            kind = _template_kind(template)
            local: dict[str, str] = {}
            has_retry = (
                template.get("retryStrategy") is not None or self.spec.get("retryStrategy") is not None
            )
            if kind in ("container", "script") and not has_retry:
                local["pod.name"] = pod_name_for(self.name, node_name, _holder_template_name(holder))
            if "depends" in holder or "dependencies" in holder or holder.get("_dag_task"):
                local["tasks.name"] = str(holder.get("name", ""))
            elif holder.get("_step"):
                local["steps.name"] = str(holder.get("name", ""))
            local["node.name"] = node_name
            try:
                processed = self._process_args(template, args, local)
            except (_NodeError, InterpreterError) as exc:
                return self._error_node(node, node_name, holder, boundary_id, flag, str(exc), scope)
            if node is not None and node.get("phase") in FULFILLED:
                return node
            # A template timeout also ends a node that never got its pod (still Pending).
            if node is not None and node.get("phase") == "Pending" and processed.get("timeout"):
                try:
                    limit = _duration(processed["timeout"], "timeout")
                except InterpreterError as exc:
                    return self._mark(node, "Error", str(exc))
                started = _parse_ts(node.get("startedAt")) or self._now
                if self._now > started + timedelta(seconds=limit):
                    self._stop.append(node["id"])
                    return self._mark(node, "Failed", f"{node_name} exceeded its deadline")
            if not self._check_parallelism(processed, node, boundary_id):
                return node
            retry_name = ""
            attempt = 0
            retry = processed.get("retryStrategy")
            if retry is None:
                retry = self.spec.get("retryStrategy")
            if retry is not None:
                retry_name = node_name
                retry_node = node or self._init_node(
                    node_name,
                    "Retry",
                    holder,
                    boundary_id,
                    "Running",
                    scope=scope,
                    flag=flag,
                    template=processed,
                )
                attempt_flag = dict(flag or {})
                attempt_flag["retried"] = True
                flag = attempt_flag
                try:
                    proceed, execution_deadline = self._process_retries(retry_node, retry, execution_deadline)
                except InterpreterError as exc:
                    return self._mark(retry_node, "Error", str(exc))
                attempts = self._attempts(retry_node)
                last = attempts[-1] if attempts else None
                if retry_node.get("phase") in FULFILLED and self._children_fulfilled(retry_node):
                    if last is not None and last.get("outputs") is not None:
                        retry_node["outputs"] = copy.deepcopy(last["outputs"])
                    return retry_node
                if not proceed:
                    return retry_node
                if last is not None and last.get("phase") not in FULFILLED:
                    node_name = last["name"]
                    node = last
                    attempt = len(attempts) - 1
                else:
                    attempt = len(attempts)
                    node_name = f"{retry_name}({attempt})"
                    self._add_child(retry_name, node_name)
                    node = None
                retry_local: dict[str, str] = {}
                if kind in ("container", "script"):
                    retry_local["pod.name"] = pod_name_for(
                        self.name, node_name, _holder_template_name(holder)
                    )
                retry_local["retries"] = str(attempt)
                exit_code, duration, status, message = "0", "0", "", ""
                if last is not None:
                    exit_code = (
                        str((last.get("outputs") or {}).get("exitCode", "0")) if last.get("outputs") else "0"
                    )
                    status = str(last.get("phase", ""))
                    duration = _node_duration(last)
                    message = str(last.get("message", ""))
                retry_local.update(
                    {
                        "lastRetry.exitCode": exit_code,
                        "lastRetry.duration": duration,
                        "lastRetry.status": status,
                        "lastRetry.message": message,
                    }
                )
                try:
                    processed = substitute(
                        processed, {**self._globals(), **retry_local}, skip_keys=("steps", "dag")
                    )
                except SubstitutionError as exc:
                    return self._error_node(node, node_name, holder, boundary_id, flag, str(exc), scope)
            try:
                if kind in ("container", "script"):
                    node = self._execute_pod(
                        node_name,
                        processed,
                        holder,
                        new_scope,
                        boundary_id,
                        node,
                        flag,
                        on_exit,
                        execution_deadline,
                    )
                elif kind == "steps":
                    node = self._execute_steps(
                        node_name, processed, holder, new_scope, boundary_id, node, flag, on_exit
                    )
                elif kind == "dag":
                    node = self._execute_dag(
                        node_name, processed, holder, new_scope, boundary_id, node, flag, on_exit
                    )
                elif kind == "suspend":
                    node = self._execute_suspend(
                        node_name, processed, holder, new_scope, boundary_id, node, flag
                    )
                else:
                    raise _NodeError(f"Template '{template.get('name')}' missing specification")
            except (_NodeError, SubstitutionError, ExpressionError, ExpansionError) as exc:
                existing = self._by_name(node_name)
                node = self._error_node(existing, node_name, holder, boundary_id, flag, str(exc), scope)
            if retry_name:
                found_retry = self._by_name(retry_name)
                assert found_retry is not None
                retry_node = found_retry
                if (
                    retry_node.get("phase") not in FULFILLED
                    and node is not None
                    and node.get("phase") in FULFILLED
                ):
                    self._depth -= 1
                    try:
                        again = self._execute(
                            retry_name,
                            holder,
                            args,
                            scope,
                            boundary_id,
                            on_exit=on_exit,
                            flag={k: v for k, v in (flag or {}).items() if k != "retried"} or None,
                            execution_deadline=execution_deadline,
                        )
                    finally:
                        self._depth += 1
                    return again
                return retry_node
            return node
        finally:
            self._depth -= 1

    def _process_args(
        self, template: dict[str, Any], args: Mapping[str, Any], local: Mapping[str, str]
    ) -> dict[str, Any]:
        """Argo's ProcessArgs: inputs from arguments or defaults, then substitution."""
        tmpl = copy.deepcopy(template)
        inputs = tmpl.setdefault("inputs", {}) if template.get("inputs") is not None else {}
        arg_params = {str(p.get("name")): p for p in (args.get("parameters") or [])}
        for param in inputs.get("parameters") or []:
            name = str(param.get("name"))
            if param.get("value") is None and param.get("default") is not None:
                param["value"] = _text(param["default"])
            arg = arg_params.get(name)
            if arg is not None and arg.get("value") is not None and _text(arg["value"]) == ABSENT:
                if param.get("value") is None:
                    raise _NodeError(
                        f"inputs.parameters.{name}: argument references an absent optional "
                        "(skipped/omitted node output with no default)"
                    )
            elif arg is not None:
                if arg.get("value") is not None:
                    param["value"] = _text(arg["value"])
                elif arg.get("valueFrom") is not None:
                    param["valueFrom"] = arg["valueFrom"]
                    param.pop("value", None)
            if param.get("value") is None:
                supplied = (param.get("valueFrom") or {}).get("supplied") is not None
                if not supplied:
                    raise _NodeError(f"inputs.parameters.{name} was not supplied")
            else:
                param["value"] = _text(param["value"])
            enum = param.get("enum")
            if enum and param.get("value") is not None and param["value"] not in [_text(e) for e in enum]:
                allowed = [_text(e) for e in enum]
                raise _NodeError(
                    f"inputs.parameters.{name}: value '{param['value']}' is not one of {allowed}"
                )
        arg_arts = {str(a.get("name")): a for a in (args.get("artifacts") or [])}
        for i, art in enumerate(inputs.get("artifacts") or []):
            name = str(art.get("name"))
            given = arg_arts.get(name)
            if given is None:
                if not art.get("optional") and not _has_location(art):
                    raise _NodeError(f"inputs.artifacts.{name} was not supplied")
                continue
            merged = copy.deepcopy(dict(given))
            for key in ("path", "mode", "recurseMode"):
                if key in art:
                    merged[key] = art[key]
                else:
                    merged.pop(key, None)
            if art.get("optional"):
                merged["optional"] = True
            inputs["artifacts"][i] = merged
        return self._substitute_params(tmpl, local)

    def _substitute_params(self, tmpl: dict[str, Any], local: Mapping[str, str]) -> dict[str, Any]:
        """Argo's SubstituteParams: globals and locals first, then inputs and output paths."""
        scope: dict[str, Any] = {**self._globals(), **local}
        # steps/dag bodies keep their {{steps.*}}, {{tasks.*}} and {{item}} for later; they
        # still get globals and inputs, which is what Argo's text substitution does too.
        tmpl = substitute(tmpl, scope, lenient_expressions=True)
        inputs = tmpl.get("inputs") or {}
        for param in inputs.get("parameters") or []:
            if param.get("value") is not None:
                scope[f"inputs.parameters.{param['name']}"] = _text(param["value"])
        scope["inputs.parameters"] = json.dumps(
            inputs.get("parameters") or [], separators=(",", ":"), ensure_ascii=False
        )
        for art in inputs.get("artifacts") or []:
            if art.get("path"):
                scope[f"inputs.artifacts.{art['name']}.path"] = str(art["path"])
        outputs = tmpl.get("outputs") or {}
        for art in outputs.get("artifacts") or []:
            if art.get("path"):
                scope[f"outputs.artifacts.{art['name']}.path"] = str(art["path"])
        for param in outputs.get("parameters") or []:
            path = (param.get("valueFrom") or {}).get("path")
            if path:
                scope[f"outputs.parameters.{param['name']}.path"] = str(path)
        result: dict[str, Any] = substitute(tmpl, scope, lenient_expressions=True)
        return result

    # ------------------------------------------------------------ retries
    def _process_retries(
        self, node: dict[str, Any], retry: Mapping[str, Any], execution_deadline: datetime | None
    ) -> tuple[bool, datetime | None]:
        """Argo's processNodeRetries: (whether to go on with an attempt, its execution deadline)."""
        if node.get("phase") in FULFILLED:
            return True, execution_deadline
        attempts = self._attempts(node)
        if not attempts:
            return True, execution_deadline
        last = attempts[-1]
        if last.get("phase") not in FULFILLED:
            return True, execution_deadline
        if last["phase"] == "Succeeded" or last["phase"] in ("Skipped", "Omitted"):
            if last.get("outputs") is not None:
                node["outputs"] = copy.deepcopy(last["outputs"])
            self._mark(node, "Succeeded")
            return True, execution_deadline
        deadline = self._workflow_deadline()
        if self._shutdown or (deadline is not None and self._now > deadline):
            message = (
                f"Stopped with strategy '{self._shutdown}'"
                if self._shutdown
                else f"retry exceeded workflow deadline {_ts(deadline) if deadline else ''}"
            )
            self._mark(node, last["phase"], message)
            return True, execution_deadline
        limit_value = retry.get("limit")
        limit: int | None = None
        if limit_value is not None:
            try:
                limit = min(int(str(limit_value)), self.limits.max_retries)
            except ValueError:
                raise InterpreterError(
                    f"retryStrategy.limit must be an integer, not {limit_value!r}"
                ) from None
        else:
            limit = None
        backoff = retry.get("backoff")
        if isinstance(backoff, Mapping):
            max_deadline: datetime | None = None
            if backoff.get("maxDuration"):
                max_duration = _duration(backoff["maxDuration"], "retryStrategy.backoff.maxDuration")
                first_start = _parse_ts(attempts[0].get("startedAt")) or self._now
                max_deadline = first_start + timedelta(seconds=max_duration)
                if self._now > max_deadline:
                    self._mark(node, last["phase"], "Max duration limit exceeded")
                    return True, execution_deadline
            if not backoff.get("duration"):
                raise InterpreterError("no base duration specified for retryStrategy")
            base = _duration(backoff["duration"], "retryStrategy.backoff.duration")
            wait = base
            factor_value = backoff.get("factor")
            if factor_value is not None and str(factor_value).strip():
                try:
                    factor = float(str(factor_value))
                except ValueError:
                    raise InterpreterError(
                        f"retryStrategy.backoff.factor must be a number, not {factor_value!r}"
                    ) from None
                if factor > 0:
                    exponent = len(attempts) - 1
                    try:
                        wait = base * math.pow(factor, exponent)
                    except OverflowError:
                        wait = math.inf
            if backoff.get("cap"):
                wait = min(wait, _duration(backoff["cap"], "retryStrategy.backoff.cap"))
            wait = min(wait, 10 * 365 * 86400.0)
            finished = _parse_ts(last.get("finishedAt")) or self._now
            waiting_until = finished + timedelta(seconds=wait)
            if max_deadline is not None and waiting_until > max_deadline:
                self._mark(node, last["phase"], "Backoff would exceed max duration limit")
                return True, execution_deadline
            if self._now < waiting_until and limit is not None and len(attempts) <= limit:
                self._wake_by(waiting_until)
                self._mark(node, node["phase"], f"Backoff for {_humanize(wait)}")
                return False, execution_deadline
            execution_deadline = max_deadline
            self._mark(node, node["phase"], "")
        policy = str(retry.get("retryPolicy") or ("Always" if retry.get("expression") else "OnFailure"))
        if policy == "Always":
            on_failed = on_error = True
        elif policy == "OnError":
            on_failed, on_error = False, True
        elif policy == "OnFailure":
            on_failed, on_error = True, False
        elif policy == "OnTransientError":
            transient = _is_transient(str(last.get("message", "")))
            on_failed = on_error = transient
        else:
            raise InterpreterError(f"{policy} is not a valid RetryPolicy")
        if (last["phase"] == "Failed" and not on_failed) or (last["phase"] == "Error" and not on_error):
            self._mark(node, last["phase"], last.get("message", ""))
            return True, execution_deadline
        # Argo retries without end when there is no limit; a hostile workflow may not.
        if len(attempts) > (self.limits.max_retries if limit is None else limit):
            self._mark(node, last["phase"], "No more retries left")
            return True, execution_deadline
        if retry.get("expression"):
            env = exprlang.expand_env(
                {
                    "retries": str(len(attempts) - 1),
                    "lastRetry.exitCode": str((last.get("outputs") or {}).get("exitCode", "-1")),
                    "lastRetry.status": str(last.get("phase", "")),
                    "lastRetry.duration": _node_duration(last),
                    "lastRetry.message": str(last.get("message", "")),
                }
            )
            try:
                go_on = exprlang.evaluate(str(retry["expression"]), env)
            except ExpressionError as exc:
                raise InterpreterError(f"retryStrategy.expression: {exc}") from None
            if go_on is not True:
                self._mark(node, last["phase"], "retryStrategy.expression evaluated to false")
                return True, execution_deadline
        return True, execution_deadline

    # ----------------------------------------------------------- parallelism
    def _count_active_pods(self, boundary_id: str = "") -> int:
        if not boundary_id:
            return len(self._active_pod_ids)
        nodes = self.status["nodes"]
        return sum(1 for nid in self._active_pod_ids if nodes[nid].get("boundaryID") == boundary_id)

    def _boundary_nodes(self, boundary_id: str) -> list[dict[str, Any]]:
        nodes = self.status["nodes"]
        return [nodes[nid] for nid in self._by_boundary.get(boundary_id, ())]

    def _count_children(self, boundary_id: str, phases: tuple[str, ...]) -> int:
        nodes = self.status["nodes"]
        return sum(
            1
            for nid in self._by_boundary.get(boundary_id, ())
            if nodes[nid].get("type") in ("Pod", "Steps", "DAG") and nodes[nid].get("phase") in phases
        )

    def _check_parallelism(
        self, template: Mapping[str, Any], node: dict[str, Any] | None, boundary_id: str
    ) -> bool:
        limit = self.spec.get("parallelism")
        if limit is not None and self._count_active_pods() >= int(limit):
            return False
        kind = _template_kind(template)
        if node is not None and kind in ("steps", "dag"):
            if template.get("failFast") and self._count_children(node["id"], ("Failed", "Error")) > 0:
                if self._count_active_pods(node["id"]) == 0:
                    self._fail_fast(node, kind)
                return False
            own = template.get("parallelism")
            if own and self._count_active_pods(node["id"]) >= int(own):
                return False
        if boundary_id and (node is None or node.get("phase") not in _ACTIVE):
            boundary_template = self._templates_by_node.get(boundary_id)
            boundary = self.status["nodes"].get(boundary_id)
            if boundary_template is not None and boundary is not None:
                if (
                    boundary_template.get("failFast")
                    and self._count_children(boundary_id, ("Failed", "Error")) > 0
                ):
                    if self._count_active_pods(boundary_id) == 0:
                        self._fail_fast(boundary, _template_kind(boundary_template))
                    return False
                own = boundary_template.get("parallelism")
                if own and self._count_children(boundary_id, _ACTIVE) >= int(own):
                    return False
        return True

    def _fail_fast(self, node: dict[str, Any], kind: str) -> None:
        message = "template has failed or errored children and failFast enabled"
        if kind == "steps":
            leaf = None
            stack = [node["id"]]
            seen: set[str] = set()
            while stack:
                nid = stack.pop()
                if nid in seen:
                    continue
                seen.add(nid)
                current = self._node(nid)
                if current.get("type") == "StepGroup":
                    leaf = current
                stack.extend(reversed(current.get("children") or []))
            if leaf is not None:
                self._mark(leaf, "Failed", message)
        self._mark(node, "Failed", message)

    # ---------------------------------------------------------------- pods
    def _execute_pod(
        self,
        node_name: str,
        template: dict[str, Any],
        holder: Mapping[str, Any],
        scope: str,
        boundary_id: str,
        node: dict[str, Any] | None,
        flag: Mapping[str, bool] | None,
        on_exit: bool,
        execution_deadline: datetime | None,
    ) -> dict[str, Any]:
        if node is None:
            node = self._init_node(
                node_name, "Pod", holder, boundary_id, "Pending", scope=scope, flag=flag, template=template
            )
            if self._shutdown and not (self._shutdown == "Stop" and on_exit):
                return self._mark(node, "Failed", f"workflow shutdown with strategy: {self._shutdown}")
            deadline = self._workflow_deadline()
            if deadline is not None and self._now >= deadline and not on_exit:
                return self._mark(node, "Failed", _DEADLINE_MESSAGE)
        self._templates_by_node[node["id"]] = template
        if node.get("phase") in _ACTIVE and node["id"] not in self._requests:
            try:
                request = self._pod_request(node, template, holder, boundary_id, on_exit, execution_deadline)
            except (_NodeError, InterpreterError) as exc:
                return self._mark(node, "Error", str(exc))
            self._requests[node["id"]] = request
            if node["id"] not in self._attached and node["id"] not in self._handed:
                self._handed.add(node["id"])
                self._start.append(request)
            elif node["id"] in self._attached:
                self._handed.add(node["id"])
        deadline_at = self._pod_deadline_at(node, template, on_exit, execution_deadline)
        if deadline_at is not None and node.get("phase") in _ACTIVE:
            self._wake_by(deadline_at)
        return node

    def _pod_deadline_at(
        self,
        node: Mapping[str, Any],
        template: Mapping[str, Any],
        on_exit: bool,
        execution_deadline: datetime | None,
    ) -> datetime | None:
        started = _parse_ts(node.get("startedAt")) or self._now
        candidates: list[datetime] = []
        ads = template.get("activeDeadlineSeconds")
        if ads is not None and str(ads).strip():
            candidates.append(started + timedelta(seconds=_duration(ads, "activeDeadlineSeconds")))
        if template.get("timeout"):
            candidates.append(started + timedelta(seconds=_duration(template["timeout"], "timeout")))
        if execution_deadline is not None:
            candidates.append(execution_deadline)
        if not on_exit:
            deadline = self._workflow_deadline()
            if deadline is not None:
                candidates.append(deadline)
        return min(candidates) if candidates else None

    def _pod_request(
        self,
        node: Mapping[str, Any],
        template: Mapping[str, Any],
        holder: Mapping[str, Any],
        boundary_id: str,
        on_exit: bool,
        execution_deadline: datetime | None,
    ) -> PodRequest:
        kind = _template_kind(template)
        body = template.get(kind) or {}
        # Argo's validation refuses references to inputs, parameters and outputs that do not
        # exist; other unknown tags ({{workflow.scheduledTime}} outside a cron run) stay as text.
        leftovers = [
            tag
            for tag in unresolved_tags(
                {
                    k: v
                    for k, v in template.items()
                    if k not in ("outputs", "metadata", "podSpecPatch", "metrics")
                }
            )
            if tag.startswith(_MUST_RESOLVE)
        ]
        if leftovers:
            raise _NodeError(f"failed to resolve {{{{{leftovers[0]}}}}}")
        volumes_spec = [*(self.spec.get("volumes") or []), *(template.get("volumes") or [])]
        volumes = tuple(dict.fromkeys(str(v.get("name")) for v in volumes_spec if "emptyDir" in v))
        pod_name = pod_name_for(self.name, node["name"], _holder_template_name(holder))
        pod = self._pod_metadata(pod_name, template)
        main = _container(body, "main", pod)
        script_source: str | None = None
        if kind == "script":
            script_source = str(body.get("source") or "")
            if script_source:
                main = ContainerSpec(
                    name=main.name,
                    image=main.image,
                    argv=(*main.argv, "/argo/staging/script"),
                    env=main.env,
                    working_dir=main.working_dir,
                    volume_mounts=main.volume_mounts,
                    has_command=main.has_command,
                )
        inits = []
        for i, init in enumerate(template.get("initContainers") or []):
            spec = _container(init, str(init.get("name") or f"init-{i}"), pod)
            if init.get("mirrorVolumeMounts"):
                spec = ContainerSpec(
                    name=spec.name,
                    image=spec.image,
                    argv=spec.argv,
                    env=spec.env,
                    working_dir=spec.working_dir,
                    volume_mounts=(*spec.volume_mounts, *main.volume_mounts),
                    has_command=spec.has_command,
                )
            inits.append(spec)
        inputs = []
        for art in (template.get("inputs") or {}).get("artifacts") or []:
            location = {k: v for k, v in art.items() if k in ("raw", "s3", "_local")}
            if not art.get("path"):
                raise _NodeError(f"inputs.artifacts.{art.get('name')} has no path")
            if not location:
                if art.get("optional"):
                    continue
                raise _NodeError(f"inputs.artifacts.{art.get('name')} missing location information")
            mode = art.get("mode")
            inputs.append(
                InputArtifact(
                    name=str(art.get("name")),
                    path=str(art["path"]),
                    location=location,
                    optional=bool(art.get("optional")),
                    mode=int(mode) if mode is not None else None,
                )
            )
        outputs = template.get("outputs") or {}
        out_params = tuple(
            OutputParameterSpec(name=str(p.get("name")), path=str(p["valueFrom"]["path"]))
            for p in outputs.get("parameters") or []
            if (p.get("valueFrom") or {}).get("path")
        )
        out_arts = tuple(
            OutputArtifactSpec(
                name=str(a.get("name")),
                path=str(a.get("path") or ""),
                optional=bool(a.get("optional")),
                key=str((a.get("s3") or {}).get("key") or f"{self.name}/{pod_name}/{a.get('name')}"),
            )
            for a in outputs.get("artifacts") or []
            if a.get("path")
        )
        deadline_at = self._pod_deadline_at(node, template, on_exit, execution_deadline)
        deadline = None
        if deadline_at is not None:
            deadline = max(1.0, (deadline_at - self._now).total_seconds())
        return PodRequest(
            node_id=str(node["id"]),
            node_name=str(node["name"]),
            pod_name=pod_name,
            workflow_name=self.name,
            template_name=str(template.get("name") or _holder_template_name(holder)),
            kind="script" if kind == "script" else "container",
            main=main,
            init_containers=tuple(inits),
            script_source=script_source,
            volumes=volumes,
            input_artifacts=tuple(inputs),
            output_parameters=out_params,
            output_artifacts=out_arts,
            deadline_seconds=deadline,
            capture_result=self._include_result(str(node["name"]), boundary_id),
            on_exit=on_exit,
        )

    def _pod_metadata(self, pod_name: str, template: Mapping[str, Any]) -> PodMetadata:
        """The pod's name, namespace, labels and annotations (the workflow's ``podMetadata``
        under the template's ``metadata``), which its ``fieldRef`` variables read."""
        merged: dict[str, dict[str, str]] = {"labels": {}, "annotations": {}}
        for source in (self.spec.get("podMetadata"), template.get("metadata")):
            for kind, values in merged.items():
                items = (source or {}).get(kind) if isinstance(source, Mapping) else None
                if isinstance(items, Mapping):
                    values.update({str(k): str(v) for k, v in items.items()})
        labels, annotations = merged["labels"], merged["annotations"]
        return PodMetadata(name=pod_name, namespace=self.namespace, labels=labels, annotations=annotations)

    def _include_result(self, node_name: str, boundary_id: str) -> bool:
        """Argo captures stdout only when the parent template reads ``<name>.outputs.result``."""
        if not boundary_id:
            return False
        parent = self._templates_by_node.get(boundary_id)
        if parent is None:
            return False
        name = _step_or_task_name(node_name)
        text = json.dumps(parent)
        prefix = "tasks" if "dag" in parent else "steps"
        return f"{prefix}.{name}.outputs.result" in text or (
            f"{prefix}['{name}'].outputs.result" in text or f'{prefix}[\\"{name}\\"].outputs.result' in text
        )

    def _output_param(self, spec: Mapping[str, Any], value: str) -> dict[str, Any]:
        out: dict[str, Any] = {"name": spec.get("name"), "value": value}
        if spec.get("valueFrom") is not None:
            out["valueFrom"] = copy.deepcopy(spec["valueFrom"])
        if spec.get("globalName"):
            out["globalName"] = spec["globalName"]
        return out

    def _collect_outputs(
        self, request: PodRequest, result: PodResult
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        template = self._templates_by_node.get(request.node_id) or {}
        outputs = template.get("outputs") or {}
        params: list[dict[str, Any]] = []
        for spec in outputs.get("parameters") or []:
            name = str(spec.get("name"))
            source = spec.get("valueFrom") or {}
            value = result.parameters.get(name)
            if value is None:
                if source.get("default") is not None:
                    value = _text(source["default"])
                elif source.get("path"):
                    raise _NodeError(f"open {source['path']}: no such file or directory")
                elif source.get("supplied") is not None:
                    continue
                else:
                    continue
            else:
                if value.endswith("\n"):
                    value = value[:-1]
                if len(value.encode()) > self.limits.max_parameter_bytes:
                    raise _NodeError(
                        f"output parameter '{name}' is larger than {self.limits.max_parameter_bytes:,} bytes"
                    )
            params.append(self._output_param(spec, value))
        arts: list[dict[str, Any]] = []
        for spec in outputs.get("artifacts") or []:
            name = str(spec.get("name"))
            location = result.artifacts.get(name)
            if location is None:
                if spec.get("optional"):
                    continue
                raise _NodeError(f"failed to save outputs: {spec.get('path')}: no such file or directory")
            art: dict[str, Any] = {"name": name, "path": spec.get("path")}
            if spec.get("globalName"):
                art["globalName"] = spec["globalName"]
            art.update(copy.deepcopy(dict(location)))
            arts.append(art)
        return params, arts

    def _add_outputs_to_global(self, outputs: Mapping[str, Any] | None) -> None:
        if not outputs:
            return
        self._globals_cache = None
        for param in outputs.get("parameters") or []:
            if not param.get("globalName") or param.get("value") is None:
                continue
            target = self.status.setdefault("outputs", {}).setdefault("parameters", [])
            entry = {"name": param["globalName"], "value": param["value"]}
            for existing in target:
                if existing.get("name") == entry["name"]:
                    existing["value"] = entry["value"]
                    break
            else:
                target.append(entry)
        for art in outputs.get("artifacts") or []:
            if not art.get("globalName"):
                continue
            target = self.status.setdefault("outputs", {}).setdefault("artifacts", [])
            entry = {k: copy.deepcopy(v) for k, v in art.items() if k not in ("globalName", "path")}
            entry["name"] = art["globalName"]
            for i, existing in enumerate(target):
                if existing.get("name") == entry["name"]:
                    target[i] = entry
                    break
            else:
                target.append(entry)

    # ------------------------------------------------------------- suspend
    def _execute_suspend(
        self,
        node_name: str,
        template: dict[str, Any],
        holder: Mapping[str, Any],
        scope: str,
        boundary_id: str,
        node: dict[str, Any] | None,
        flag: Mapping[str, bool] | None,
    ) -> dict[str, Any]:
        if node is None:
            node = self._init_node(
                node_name,
                "Suspend",
                holder,
                boundary_id,
                "Pending",
                scope=scope,
                flag=flag,
                template=template,
            )
            params = []
            for param in (template.get("outputs") or {}).get("parameters") or []:
                source = param.get("valueFrom") or {}
                if source.get("supplied") is not None:
                    default = source.get("default")
                    if default is None:
                        for inp in (template.get("inputs") or {}).get("parameters") or []:
                            if inp.get("name") == param.get("name") and inp.get("default") is not None:
                                default = inp["default"]
                    entry = {"name": param.get("name"), "valueFrom": copy.deepcopy(source)}
                    if default is not None:
                        entry["valueFrom"]["default"] = _text(default)
                    params.append(entry)
            if params:
                node["outputs"] = {"parameters": params}
        duration = _duration((template.get("suspend") or {}).get("duration"), "suspend.duration")
        started = _parse_ts(node.get("startedAt")) or self._now
        until = started + timedelta(seconds=duration)
        if self._now >= until:
            for param in (node.get("outputs") or {}).get("parameters") or []:
                default = (param.get("valueFrom") or {}).get("default")
                if default is not None:
                    param["value"] = _text(default)
            return self._mark(node, "Succeeded")
        self._wake_by(until)
        return self._mark(node, "Running")

    # --------------------------------------------------------------- scope
    def _build_local_scope(
        self, scope: dict[str, Any], prefix: str, name: str, node: Mapping[str, Any]
    ) -> None:
        last = self._last_attempt(node)
        if last is not None:
            node = last
        base = f"{prefix}.{name}"
        scope[f"{base}.id"] = node.get("id", "")
        if node.get("startedAt"):
            scope[f"{base}.startedAt"] = node["startedAt"]
        if node.get("finishedAt"):
            scope[f"{base}.finishedAt"] = node["finishedAt"]
        if node.get("phase"):
            scope[f"{base}.status"] = node["phase"]
        outputs = node.get("outputs") or {}
        if outputs.get("result") is not None:
            scope[f"{base}.outputs.result"] = outputs["result"]
        if outputs.get("exitCode") is not None:
            scope[f"{base}.exitCode"] = outputs["exitCode"]
        for param in outputs.get("parameters") or []:
            if param.get("value") is not None:
                scope[f"{base}.outputs.parameters.{param['name']}"] = str(param["value"])
        for art in outputs.get("artifacts") or []:
            scope[f"{base}.outputs.artifacts.{art['name']}"] = dict(art)

    def _add_skipped_outputs(
        self,
        scope: dict[str, Any],
        prefix: str,
        name: str,
        node: Mapping[str, Any],
        holder: Mapping[str, Any],
        tscope: str,
        include_artifacts: bool,
    ) -> None:
        if node.get("outputs") is not None or node.get("phase") not in ("Skipped", "Omitted"):
            return
        try:
            template, _ = self._resolve(holder, tscope)
        except _NodeError:
            return
        outputs = template.get("outputs") or {}
        for param in outputs.get("parameters") or []:
            source = param.get("valueFrom") or {}
            key = f"{prefix}.{name}.outputs.parameters.{param['name']}"
            scope[key] = _text(source["default"]) if source.get("default") is not None else None
        if include_artifacts:
            for art in outputs.get("artifacts") or []:
                scope[f"{prefix}.{name}.outputs.artifacts.{art['name']}"] = {}

    def _aggregate(
        self, scope: dict[str, Any], prefix: str, name: str, children: list[dict[str, Any]]
    ) -> None:
        kept = [
            c
            for c in children
            if not (c.get("nodeFlag") or {}).get("hooked") and not (c.get("nodeFlag") or {}).get("retried")
        ]
        if not kept:
            return
        kept.sort(key=lambda n: loop_index(str(n["name"])))
        param_list: list[dict[str, str]] = []
        per_name: dict[str, list[str]] = {}
        results: list[Any] = []
        for child in kept:
            outputs = child.get("outputs")
            if not outputs or child.get("phase") != "Succeeded":
                continue
            if outputs.get("parameters"):
                entry = {}
                for p in outputs["parameters"]:
                    value = "" if p.get("value") is None else str(p["value"])
                    entry[str(p["name"])] = value
                    per_name.setdefault(str(p["name"]), []).append(value)
                param_list.append(entry)
            if outputs.get("result") is not None:
                try:
                    results.append(json.loads(outputs["result"]))
                except json.JSONDecodeError:
                    results.append(outputs["result"])
        compact = {"separators": (",", ":"), "ensure_ascii": False}
        scope[f"{prefix}.{name}.outputs.result"] = json.dumps(results, **compact)  # type: ignore[arg-type]
        scope[f"{prefix}.{name}.outputs.parameters"] = json.dumps(param_list, **compact)  # type: ignore[arg-type]
        for pname, values in per_name.items():
            decoded: list[Any] = []
            for value in values:
                try:
                    item = json.loads(value)
                except json.JSONDecodeError:
                    decoded = []
                    break
                if not isinstance(item, list | dict):
                    decoded = []
                    break
                decoded.append(item)
            chosen: list[Any] = decoded if len(decoded) == len(values) and values else list(values)
            scope[f"{prefix}.{name}.outputs.parameters.{pname}"] = json.dumps(chosen, **compact)  # type: ignore[arg-type]

    def _outputs_from_scope(
        self, template: Mapping[str, Any], scope: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        outputs = template.get("outputs") or {}
        if not outputs.get("parameters") and not outputs.get("artifacts"):
            return None
        result: dict[str, Any] = {}
        if outputs.get("parameters"):
            params = []
            for param in outputs["parameters"]:
                source = param.get("valueFrom")
                if source is None:
                    raise _NodeError("output parameters must have a valueFrom specified")
                value: Any
                skipped = False
                try:
                    value, skipped = self._resolve_parameter(source, scope)
                except (_NodeError, ExpressionError) as exc:
                    if source.get("default") is None:
                        raise _NodeError(str(exc)) from None
                    value = _text(source["default"])
                else:
                    if skipped and source.get("default") is not None:
                        value = _text(source["default"])
                if value is None:
                    raise _NodeError(
                        f'output parameter "{param.get("name")}": "{source.get("parameter")}" is an absent '
                        "optional (skipped/omitted node output with no default)"
                    )
                entry = {k: copy.deepcopy(v) for k, v in param.items() if k != "valueFrom"}
                entry["value"] = _text(value)
                params.append(entry)
            result["parameters"] = params
        if outputs.get("artifacts"):
            arts = []
            for art in outputs["artifacts"]:
                try:
                    resolved = self._resolve_artifact(art, scope)
                except _NodeError as exc:
                    if art.get("optional"):
                        continue
                    raise _NodeError(f"unable to resolve outputs from scope: {exc}") from None
                if resolved is None:
                    continue
                resolved = dict(resolved)
                resolved["name"] = art["name"]
                if art.get("globalName"):
                    resolved["globalName"] = art["globalName"]
                arts.append(resolved)
            result["artifacts"] = arts
        return result

    def _resolve_parameter(self, source: Mapping[str, Any], scope: Mapping[str, Any]) -> tuple[Any, bool]:
        if source.get("expression"):
            env = exprlang.expand_env({k: v for k, v in scope.items() if v is None or isinstance(v, str)})
            value = exprlang.evaluate(str(source["expression"]), env)
            if value is None:
                raise _NodeError(f"failed to evaluate expression {source['expression']!r}")
            return value, False
        ref = str(source.get("parameter") or "")
        if not ref:
            if source.get("supplied") is not None:
                return None, False
            return "", False
        key = _strip_tag(ref)
        if key not in scope:
            raise _NodeError(f"Unable to resolve: {ref}")
        value = scope[key]
        return value, value is None

    def _resolve_artifact(self, art: Mapping[str, Any], scope: Mapping[str, Any]) -> Mapping[str, Any] | None:
        ref = str(art.get("from") or "")
        if not ref:
            return None
        key = _strip_tag(ref)
        value = scope.get(key)
        if not isinstance(value, Mapping):
            raise _NodeError(f"Unable to resolve: {ref}")
        out = copy.deepcopy(dict(value))
        if art.get("subPath"):
            sub = substitute_string(str(art["subPath"]), scope).strip("/")
            s3 = out.get("s3")
            if not isinstance(s3, Mapping) or not s3.get("key"):
                raise _NodeError(f"artifact {ref} has no key to take subPath '{sub}' of")
            out["s3"] = {**s3, "key": f"{str(s3['key']).rstrip('/')}/{sub}"}
        return out

    def _resolve_call(
        self, call: Mapping[str, Any], scope: Mapping[str, Any], strict: tuple[str, ...]
    ) -> dict[str, Any]:
        """Argo's resolveReferences for one step or task: when first, then everything."""
        merged = {**self._globals(), **scope}
        hooks = call.get("hooks")
        body = {k: v for k, v in call.items() if k != "hooks"}
        if body.get("when"):
            when = substitute_string(str(body["when"]), merged, strict=strict)
            try:
                proceed = evaluate_when(when)
            except ExpressionError:
                if not _should_expand(body):
                    raise
            else:
                if not proceed:
                    out = dict(body)
                    out["when"] = when
                    if hooks is not None:
                        out["hooks"] = hooks
                    return out
        args = body.get("arguments") or {}
        if args.get("parameters"):
            params = []
            for p in args["parameters"]:
                value = p.get("value")
                if isinstance(value, str) and value.startswith("{{") and value.endswith("}}"):
                    key = value[2:-2].strip()
                    if key in scope and scope[key] is None:
                        p = {**p, "value": ABSENT}
                params.append(p)
            body = {**body, "arguments": {**args, "parameters": params}}
        resolved: dict[str, Any] = substitute(body, merged, strict=strict)
        arts = []
        for art in (resolved.get("arguments") or {}).get("artifacts") or []:
            if not art.get("from"):
                arts.append(art)
                continue
            try:
                found = self._resolve_artifact(art, {**scope})
            except _NodeError as exc:
                if art.get("optional"):
                    continue
                raise _NodeError(f"unable to resolve references: {exc}") from None
            if found is None:
                continue
            entry = dict(found)
            entry["name"] = art["name"]
            entry.pop("globalName", None)
            if not _has_location(entry) and art.get("optional"):
                continue
            arts.append(entry)
        if (resolved.get("arguments") or {}).get("artifacts") is not None:
            resolved["arguments"]["artifacts"] = arts
        if hooks is not None:
            resolved["hooks"] = hooks
        return resolved

    def _expand(self, call: dict[str, Any], scope: Mapping[str, Any]) -> list[dict[str, Any]]:
        """withItems / withParam / withSequence (Argo's expandStep / expandTask)."""
        if not _should_expand(call):
            return [call]
        when = str(call.get("when") or "")
        limit = self.limits.max_items

        def must_run() -> bool:
            try:
                return evaluate_when(when)
            except ExpressionError:
                return True

        items: list[Any]
        if call.get("withItems"):
            items = list(call["withItems"])
            if len(items) > limit:
                raise ExpansionError(f"withItems has {len(items):,} items; at most {limit:,} are allowed")
        elif call.get("withParam") not in (None, ""):
            try:
                items = parse_with_param(call["withParam"], limit=limit)
            except ExpansionError:
                if must_run():
                    raise
                items = []
        else:
            try:
                items = list(expand_sequence(call["withSequence"], limit=limit))
            except ExpansionError:
                if must_run():
                    raise
                items = []
        base = {k: v for k, v in call.items() if k not in ("withItems", "withParam", "withSequence")}
        merged = {**self._globals(), **scope}
        out = []
        for index, item in enumerate(items):
            values = item_scope(item)
            expanded = substitute(base, {**merged, **values}, skip_keys=("hooks",))
            expanded["name"] = item_name(str(call["name"]), index, item)
            expanded["template"] = call.get("template")
            if expanded["template"] is None:
                expanded.pop("template")
            out.append(expanded)
        return out

    # -------------------------------------------------------------- steps
    def _execute_steps(
        self,
        node_name: str,
        template: dict[str, Any],
        holder: Mapping[str, Any],
        scope: str,
        boundary_id: str,
        node: dict[str, Any] | None,
        flag: Mapping[str, bool] | None,
        on_exit: bool,
    ) -> dict[str, Any]:
        if node is None:
            node = self._init_node(
                node_name, "Steps", holder, boundary_id, "Running", scope=scope, flag=flag, template=template
            )
        self._templates_by_node[node["id"]] = template
        local = self._template_scope(template)
        groups = template.get("steps") or []
        for i, group in enumerate(groups):
            sg_name = f"{node_name}[{i}]"
            sg = self._by_name(sg_name)
            if sg is None:
                sg = self._init_node(sg_name, "StepGroup", {}, node["id"], "Running", scope=scope)
            elif sg.get("phase") not in FULFILLED:
                self._mark(sg, "Running")
            if i == 0:
                self._add_child(node_name, sg_name)
            else:
                prev = self._by_name(f"{node_name}[{i - 1}]")
                assert prev is not None
                if not prev.get("children"):
                    self._add_child(prev["name"], sg_name)
                else:
                    for child in prev["children"]:
                        for out in self._outbound(child):
                            self._add_child(self._node(out)["name"], sg_name)
            steps = [{**s, "_step": True} for s in group or []]
            try:
                sg = self._execute_step_group(steps, sg_name, local, node["id"], scope, on_exit)
            except (_NodeError, SubstitutionError, ExpressionError, ExpansionError) as exc:
                return self._mark(node, "Error", str(exc))
            if sg.get("phase") not in FULFILLED:
                return node
            if sg["phase"] in ("Failed", "Error"):
                self._update_steps_outbound(node, len(groups))
                return self._mark(node, "Failed", sg.get("message", ""))
            for step in steps:
                child_name = f"{sg_name}.{step['name']}"
                child = self._by_name(child_name)
                if child is None:
                    expanded = [
                        n
                        for n in self._boundary_nodes(node["id"])
                        if str(n["name"]).startswith(child_name + "(") and n.get("type") != "Skipped"
                    ]
                    if expanded:
                        self._aggregate(local, "steps", str(step["name"]), expanded)
                    self._build_local_scope(local, "steps", str(step["name"]), sg)
                else:
                    self._build_local_scope(local, "steps", str(step["name"]), child)
                    self._add_skipped_outputs(local, "steps", str(step["name"]), child, step, scope, True)
        self._update_steps_outbound(node, len(groups))
        try:
            outputs = self._outputs_from_scope(template, local)
        except (_NodeError, ExpressionError) as exc:
            return self._mark(node, "Error", str(exc))
        if outputs is not None:
            node["outputs"] = outputs
            self._add_outputs_to_global(outputs)
        return self._mark(node, "Succeeded")

    def _update_steps_outbound(self, node: dict[str, Any], count: int) -> None:
        last = None
        for i in range(count - 1, -1, -1):
            last = self._by_name(f"{node['name']}[{i}]")
            if last is not None:
                break
        if last is None:
            return
        outbound: list[str] = []
        for child in last.get("children") or []:
            outbound.extend(self._outbound(child))
        node["outboundNodes"] = outbound

    def _execute_step_group(
        self,
        group: list[dict[str, Any]],
        sg_name: str,
        scope: dict[str, Any],
        boundary_id: str,
        tscope: str,
        on_exit: bool,
    ) -> dict[str, Any]:
        sg = self._by_name(sg_name)
        assert sg is not None
        if sg.get("phase") in FULFILLED and self._children_fulfilled(sg):
            return sg
        try:
            resolved = [self._resolve_call(step, scope, ("steps", "tasks")) for step in group]
        except (SubstitutionError, _NodeError, ExpressionError) as exc:
            return self._mark(sg, "Error", str(exc))
        expanded: list[dict[str, Any]] = []
        try:
            for step in resolved:
                items = self._expand(step, scope)
                if _should_expand(step) and not items:
                    child_name = f"{sg_name}.{step['name']}"
                    if self._by_name(child_name) is None:
                        self._init_node(
                            child_name,
                            "Skipped",
                            step,
                            boundary_id,
                            "Skipped",
                            scope=tscope,
                            message="Skipped, empty params",
                        )
                        self._add_child(sg_name, child_name)
                expanded.extend(items)
        except (ExpansionError, SubstitutionError, ExpressionError) as exc:
            return self._mark(sg, "Error", str(exc))
        steps_by_child: dict[str, dict[str, Any]] = {}
        for step in expanded:
            child_name = f"{sg_name}.{step['name']}"
            try:
                proceed = evaluate_when(str(step.get("when") or ""))
            except ExpressionError as exc:
                if self._by_name(child_name) is None:
                    self._init_node(
                        child_name, "Skipped", step, boundary_id, "Error", scope=tscope, message=str(exc)
                    )
                self._add_child(sg_name, child_name)
                return self._mark(sg, "Error", str(exc))
            if not proceed:
                if self._by_name(child_name) is None:
                    self._init_node(
                        child_name,
                        "Skipped",
                        step,
                        boundary_id,
                        "Skipped",
                        scope=tscope,
                        message=f"when '{step.get('when')}' evaluated false",
                    )
                    self._add_child(sg_name, child_name)
                continue
            child = self._execute(
                child_name, step, step.get("arguments") or {}, tscope, boundary_id, on_exit=on_exit
            )
            if child is not None:
                steps_by_child[child_name] = step
                self._add_child(sg_name, child_name)
        completed = True
        for child_id in list(sg.get("children") or []):
            child = self._node(child_id)
            called = steps_by_child.get(child["name"])
            scope[f"steps.{child.get('displayName', '')}.status"] = child.get("phase", "")
            if child.get("phase") not in FULFILLED:
                completed = False
            elif child["phase"] in ("Succeeded", "Failed", "Error") and called is not None:
                has, exit_node = self._run_on_exit(
                    called, child, boundary_id, tscope, "steps", str(called["name"]), scope
                )
                if has and (exit_node is None or exit_node.get("phase") not in FULFILLED):
                    completed = False
        if not completed:
            if sg.get("phase") in FULFILLED:
                sg["phase"] = "Running"
                sg.pop("finishedAt", None)
            return sg
        for child_id in sg.get("children") or []:
            child = self._node(child_id)
            if child.get("phase") in ("Failed", "Error") and not _continues(
                steps_by_child.get(child["name"]), child["phase"]
            ):
                return self._mark(sg, "Failed", f"child '{child_id}' failed")
        return self._mark(sg, "Succeeded")

    # ------------------------------------------------------------- exit hooks
    def _run_on_exit(
        self,
        call: Mapping[str, Any],
        parent: Mapping[str, Any],
        boundary_id: str,
        tscope: str,
        prefix: str,
        name: str,
        scope: Mapping[str, Any],
    ) -> tuple[bool, dict[str, Any] | None]:
        hook: dict[str, Any] | None = None
        if call.get("onExit"):
            hook = {"template": call["onExit"]}
        elif isinstance((call.get("hooks") or {}).get("exit"), Mapping):
            hook = dict(call["hooks"]["exit"])
        if hook is None or self._shutdown == "Terminate":
            return False, None
        if hook.get("expression"):
            env = exprlang.expand_env(
                {k: v for k, v in {**self._globals(), **scope}.items() if v is None or isinstance(v, str)}
            )
            if exprlang.evaluate(str(hook["expression"]), env) is not True:
                return False, None
        outputs = parent.get("outputs")
        last = self._last_attempt(parent)
        if last is not None:
            outputs = last.get("outputs")
        args = hook.get("arguments") or self.spec.get("arguments") or {}
        if hook.get("arguments"):
            local = dict(scope)
            for param in (outputs or {}).get("parameters") or []:
                local[f"{prefix}.{name}.outputs.parameters.{param['name']}"] = str(param.get("value") or "")
            for art in (outputs or {}).get("artifacts") or []:
                local[f"{prefix}.{name}.outputs.artifacts.{art['name']}"] = dict(art)
            args = self._resolve_call({"name": name, "arguments": hook["arguments"]}, local, ())["arguments"]
        exit_name = f"{parent['name']}.onExit"
        holder = {k: hook[k] for k in ("template", "templateRef") if hook.get(k)}
        node = self._execute(
            exit_name, holder, args, tscope, boundary_id, on_exit=True, flag={"hooked": True}
        )
        self._add_child(str(parent["name"]), exit_name)
        return True, node

    # ---------------------------------------------------------------- DAG
    def _execute_dag(
        self,
        node_name: str,
        template: dict[str, Any],
        holder: Mapping[str, Any],
        scope: str,
        boundary_id: str,
        node: dict[str, Any] | None,
        flag: Mapping[str, bool] | None,
        on_exit: bool,
    ) -> dict[str, Any]:
        if node is None:
            node = self._init_node(
                node_name, "DAG", holder, boundary_id, "Running", scope=scope, flag=flag, template=template
            )
        self._templates_by_node[node["id"]] = template
        dag = template.get("dag") or {}
        tasks = {str(t["name"]): {**t, "_dag_task": True} for t in dag.get("tasks") or []}
        ctx = _DagCtx(node_name, node["id"], tasks, template, scope, on_exit)
        try:
            for name in tasks:
                self._logic(ctx, name)
        except ExpressionError as exc:
            return self._mark(node, "Error", str(exc))
        target = str(dag.get("target") or "").strip()
        if target:
            targets = target.split()
            for name in targets:
                if name not in tasks:
                    return self._mark(node, "Error", f"target task '{name}' is not in this DAG")
        else:
            depended = {d for name in tasks for d in self._logic(ctx, name)[0]}
            targets = sorted(name for name in tasks if name not in depended)
        exit_done = True
        for name in targets:
            self._execute_dag_task(ctx, name)
            task_node = self._by_name(f"{node_name}.{name}")
            if task_node is not None and task_node.get("phase") in ("Succeeded", "Failed", "Error"):
                exit_node = self._by_name(f"{task_node['name']}.onExit")
                if exit_node is not None and exit_node.get("phase") not in FULFILLED:
                    exit_done = False
        phase = self._assess_dag(ctx, targets, bool(self._shutdown) and exit_done and not on_exit)
        if phase == "Running":
            return node
        if phase in ("Failed", "Error"):
            self._dag_outbound(ctx, targets, node)
            return self._mark(node, phase)
        local = self._template_scope(template)
        for name, task in tasks.items():
            task_node = self._by_name(f"{node_name}.{name}")
            if task_node is None:
                continue
            if task_node.get("type") == "TaskGroup":
                children = [self._node(c) for c in task_node.get("children") or []]
                self._aggregate(local, "tasks", name, children)
            self._build_local_scope(local, "tasks", name, task_node)
            self._add_skipped_outputs(local, "tasks", name, task_node, task, scope, False)
            self._add_outputs_to_global(task_node.get("outputs"))
        try:
            outputs = self._outputs_from_scope(template, local)
        except (_NodeError, ExpressionError) as exc:
            return self._mark(node, "Error", str(exc))
        if outputs is not None:
            node["outputs"] = outputs
        self._dag_outbound(ctx, targets, node)
        return self._mark(node, "Succeeded")

    def _logic(self, ctx: _DagCtx, name: str) -> tuple[list[str], str]:
        if name not in ctx.logic:
            ctx.logic[name] = depends_logic(ctx.tasks[name], ctx.tasks)
        return ctx.logic[name]

    def _dag_outbound(self, ctx: _DagCtx, targets: list[str], node: dict[str, Any]) -> None:
        outbound: list[str] = []
        for name in targets:
            task_node = self._by_name(f"{ctx.boundary_name}.{name}")
            if task_node is not None:
                outbound.extend(self._outbound(task_node["id"]))
        node["outboundNodes"] = outbound

    def _assess_dag(self, ctx: _DagCtx, targets: list[str], shutdown: bool) -> str:
        if shutdown:
            return "Failed"
        nodes = self.status["nodes"]
        target_phase = {self._id(f"{ctx.boundary_name}.{t}"): "" for t in targets}
        boundary = self._node(ctx.boundary_id)
        queue: list[tuple[str, str]] = [(c, "Succeeded") for c in boundary.get("children") or []]
        seen: set[str] = set()
        while queue:
            nid, branch = queue.pop(0)
            if nid in seen:
                continue
            seen.add(nid)
            current = nodes.get(nid)
            if current is None:
                return "Running"
            if current.get("phase") not in FULFILLED:
                group_phase = self._completable_group(current)
                if group_phase is None:
                    return "Running"
                self._mark(current, group_phase)
                branch = group_phase
            elif current["phase"] in ("Succeeded", "Failed", "Error"):
                branch = current["phase"]
            if nid in target_phase and target_phase[nid] not in ("Failed", "Error"):
                target_phase[nid] = branch
            if current.get("type") == "Retry":
                children: list[str] = []
                for child_id in reversed(current.get("children") or []):
                    child = nodes.get(child_id) or {}
                    if (child.get("nodeFlag") or {}).get("hooked"):
                        children.append(child_id)
                    else:
                        children.extend(child.get("children") or [])
                queue.extend((c, branch) for c in children)
            else:
                queue.extend((c, branch) for c in current.get("children") or [])
        fail_fast = (ctx.template.get("dag") or {}).get("failFast")
        fail_fast = True if fail_fast is None else bool(fail_fast)
        result = "Succeeded"
        for name in targets:
            branch = target_phase[self._id(f"{ctx.boundary_name}.{name}")]
            if branch == "":
                result = "Running"
                if not fail_fast:
                    break
            elif branch in ("Failed", "Error"):
                if _continues(ctx.tasks.get(name), branch):
                    continue
                result = branch
                if fail_fast:
                    break
        return result

    def _completable_group(self, node: Mapping[str, Any]) -> str | None:
        if node.get("type") != "TaskGroup" or not node.get("children"):
            return None
        phase = "Succeeded"
        for child_id in node["children"]:
            child = self.status["nodes"].get(child_id)
            if child is None or child.get("phase") not in FULFILLED:
                return None
            if child["phase"] in ("Failed", "Error"):
                phase = child["phase"]
        return phase

    def _task_scope(self, ctx: _DagCtx, name: str) -> dict[str, Any]:
        """Argo's buildLocalScopeFromTask: the outputs of every ancestor of ``name``."""
        scope = self._template_scope(ctx.template)
        ancestors: dict[str, None] = {}
        stack = list(self._logic(ctx, name)[0])
        while stack:
            dep = stack.pop()
            if dep in ancestors or dep not in ctx.tasks:
                continue
            ancestors[dep] = None
            stack.extend(self._logic(ctx, dep)[0])

        def finished(dep: str) -> str:
            n = self._by_name(f"{ctx.boundary_name}.{dep}") or {}
            return str(n.get("finishedAt") or n.get("startedAt") or "")

        for dep in sorted(ancestors, key=finished):
            dep_node = self._by_name(f"{ctx.boundary_name}.{dep}")
            if dep_node is None:
                continue
            if dep_node.get("type") == "TaskGroup":
                children = [
                    n
                    for n in self._boundary_nodes(ctx.boundary_id)
                    if str(n["name"]).startswith(dep_node["name"] + "(")
                ]
                self._aggregate(scope, "tasks", dep, children)
            self._build_local_scope(scope, "tasks", dep, dep_node)
            self._add_skipped_outputs(scope, "tasks", dep, dep_node, ctx.tasks[dep], ctx.scope, False)
        return scope

    def _execute_dag_task(self, ctx: _DagCtx, name: str) -> None:
        if name in ctx.visited:
            return
        ctx.visited.add(name)
        node_name = f"{ctx.boundary_name}.{name}"
        node = self._by_name(node_name)
        task = ctx.tasks[name]
        if node is not None and node.get("phase") in FULFILLED:
            if node["phase"] in ("Succeeded", "Failed", "Error"):
                scope = self._task_scope(ctx, name)
                scope[f"tasks.{name}.status"] = node["phase"]
                self._run_on_exit(task, node, ctx.boundary_id, ctx.scope, "tasks", name, scope)
            return
        deps, logic = self._logic(ctx, name)
        group = node if node is not None and node.get("type") == "TaskGroup" else None

        def connect(child_name: str) -> None:
            if not deps or group is not None:
                self._add_child(group["name"] if group is not None else ctx.boundary_name, child_name)
                return
            for dep in deps:
                dep_node = self._by_name(f"{ctx.boundary_name}.{dep}")
                if dep_node is None:
                    continue
                for out in self._outbound(dep_node["id"]):
                    self._add_child(self._node(out)["name"], child_name)

        def skip_node(phase: str, message: str, child_name: str = node_name) -> None:
            self._init_node(
                child_name, "Skipped", task, ctx.boundary_id, phase, scope=ctx.scope, message=message
            )

        if logic:
            for dep in deps:
                self._execute_dag_task(ctx, dep)
            try:
                execute, proceed = self._evaluate_depends(ctx, name, node)
            except ExpressionError as exc:
                if node is None:
                    skip_node("Error", str(exc))
                    connect(node_name)
                return
            if not proceed:
                return
            if not execute:
                if node is None:
                    skip_node("Omitted", "omitted: depends condition not met")
                    connect(node_name)
                return
        try:
            scope = self._task_scope(ctx, name)
            new_task = self._resolve_call(task, scope, ("tasks", "steps"))
            expanded = self._expand(new_task, scope)
        except (SubstitutionError, _NodeError, ExpressionError, ExpansionError) as exc:
            if node is None:
                skip_node("Error", str(exc))
                connect(node_name)
            return
        if _should_expand(task):
            if not expanded:
                if node is None:
                    skip_node("Skipped", "Skipped, empty params")
                    connect(node_name)
            elif group is None:
                connect(node_name)
                group = self._init_node(
                    node_name, "TaskGroup", task, ctx.boundary_id, "Running", scope=ctx.scope
                )
        for item_task in expanded:
            child_name = f"{ctx.boundary_name}.{item_task['name']}"
            child = self._by_name(child_name)
            if child is None:
                connect(child_name)
                try:
                    proceed = evaluate_when(str(item_task.get("when") or ""))
                except ExpressionError as exc:
                    skip_node("Error", str(exc), child_name)
                    continue
                if not proceed:
                    skip_node("Skipped", f"when '{item_task.get('when')}' evaluated false", child_name)
                    continue
            child = self._execute(
                child_name,
                item_task,
                item_task.get("arguments") or {},
                ctx.scope,
                ctx.boundary_id,
                on_exit=ctx.on_exit,
            )
            if child is None:
                return
            if child.get("phase") in ("Succeeded", "Failed", "Error"):
                scope = self._task_scope(ctx, name)
                scope[f"tasks.{name}.status"] = child["phase"]
                has, exit_node = self._run_on_exit(
                    task, child, ctx.boundary_id, ctx.scope, "tasks", name, scope
                )
                if has and (exit_node is None or exit_node.get("phase") not in FULFILLED):
                    return
        if group is not None:
            phase = "Succeeded"
            for item_task in expanded:
                child = self._by_name(f"{ctx.boundary_name}.{item_task['name']}")
                if child is None or child.get("phase") not in FULFILLED:
                    return
                if child["phase"] in ("Failed", "Error"):
                    phase = child["phase"]
            self._mark(group, phase)

    def _evaluate_depends(self, ctx: _DagCtx, name: str, node: Mapping[str, Any] | None) -> tuple[bool, bool]:
        if node is not None:
            return True, True
        deps, logic = self._logic(ctx, name)
        results: dict[str, dict[str, bool]] = {}
        for dep in deps:
            dep_node = self._by_name(f"{ctx.boundary_name}.{dep}")
            if dep_node is None or dep_node.get("phase") not in FULFILLED:
                return False, False
            for child_id in dep_node.get("children") or []:
                child = self.status["nodes"].get(child_id) or {}
                if (child.get("nodeFlag") or {}).get("hooked") and child.get("phase") not in FULFILLED:
                    return False, False
            child_phases = [
                str((self.status["nodes"].get(c) or {}).get("phase", ""))
                for c in dep_node.get("children") or []
            ]
            results[dep] = task_results(
                str(dep_node["phase"]),
                task_group=dep_node.get("type") == "TaskGroup",
                child_phases=child_phases,
            )
        return evaluate_depends(logic, results), True

    def _apply_parameters(self, overrides: Mapping[str, Any]) -> None:
        args = self.spec.setdefault("arguments", {}) or {}
        self.spec["arguments"] = args
        params = args.setdefault("parameters", []) or []
        args["parameters"] = params
        by_name = {str(p.get("name")): p for p in params}
        for key, value in overrides.items():
            if key not in by_name:
                known = ", ".join(sorted(by_name)) or "none"
                raise InterpreterError(f"the workflow has no parameter '{key}' (parameters: {known})")
            by_name[key]["value"] = _text(value)
            by_name[key].pop("valueFrom", None)
        for param in params:
            name = param.get("name")
            if param.get("value") is None and param.get("default") is not None:
                param["value"] = _text(param["default"])
            if param.get("value") is None and not param.get("valueFrom"):
                raise InterpreterError(f"workflow parameter '{name}' has no value")
            if param.get("value") is not None:
                param["value"] = _text(param["value"])
            enum = param.get("enum")
            if enum and param.get("value") is not None and param["value"] not in [_text(e) for e in enum]:
                allowed = [_text(e) for e in enum]
                raise InterpreterError(
                    f"workflow parameter '{name}': value '{param['value']}' is not one of {allowed}"
                )


# ------------------------------------------------------------------- helpers


def _generate_name(prefix: str) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(5))


def _merge_arguments(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("parameters", "artifacts"):
        merged = {str(p.get("name")): copy.deepcopy(dict(p)) for p in base.get(key) or []}
        for p in override.get(key) or []:
            merged[str(p.get("name"))] = {**merged.get(str(p.get("name")), {}), **copy.deepcopy(dict(p))}
        if merged:
            out[key] = list(merged.values())
    return out


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            base[key] = _deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _template_kind(template: Mapping[str, Any]) -> str:
    for kind in (
        "container",
        "script",
        "steps",
        "dag",
        "suspend",
        "resource",
        "containerSet",
        "http",
        "plugin",
        "data",
    ):
        if template.get(kind) is not None:
            return kind
    return ""


def _holder_template_name(holder: Mapping[str, Any]) -> str:
    ref = holder.get("templateRef")
    if isinstance(ref, Mapping):
        return str(ref.get("template") or "")
    return str(holder.get("template") or "")


def _should_expand(call: Mapping[str, Any]) -> bool:
    return (
        bool(call.get("withItems"))
        or call.get("withParam") not in (None, "")
        or call.get("withSequence") is not None
    )


def _continues(call: Mapping[str, Any] | None, phase: str) -> bool:
    cont = (call or {}).get("continueOn") or {}
    return (phase == "Error" and bool(cont.get("error"))) or (phase == "Failed" and bool(cont.get("failed")))


def _has_location(art: Mapping[str, Any]) -> bool:
    return any(
        art.get(k)
        for k in ("raw", "s3", "_local", "gcs", "git", "http", "oss", "hdfs", "azure", "artifactory")
    )


def _strip_tag(ref: str) -> str:
    text = ref.strip()
    if text.startswith("{{") and text.endswith("}}"):
        text = text[2:-2]
    return text.strip()


def _node_inputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if inputs.get("parameters"):
        out["parameters"] = [
            {
                k: copy.deepcopy(v)
                for k, v in p.items()
                if k in ("name", "value", "default", "enum", "description", "globalName")
            }
            for p in inputs["parameters"]
        ]
    if inputs.get("artifacts"):
        out["artifacts"] = [copy.deepcopy(dict(a)) for a in inputs["artifacts"]]
    return out


def _container(body: Mapping[str, Any], name: str, pod: PodMetadata) -> ContainerSpec:
    command = [str(c) for c in body.get("command") or []]
    args = [str(a) for a in body.get("args") or []]
    env: dict[str, str] = {}
    for e in body.get("env") or []:
        field_ref = (e.get("valueFrom") or {}).get("fieldRef")
        if isinstance(field_ref, Mapping):
            # The pod's own fields (refusals.py refuses any other kind of valueFrom).
            try:
                env[str(e.get("name"))] = field_value(str(field_ref.get("fieldPath") or ""), pod)
            except FieldPathError as exc:
                raise _NodeError(f"environment variable '{e.get('name')}': {exc}") from None
        elif "valueFrom" not in e:
            env[str(e.get("name"))] = str(e.get("value", ""))
    mounts = tuple(
        VolumeMount(
            name=str(m.get("name")),
            mount_path=str(m.get("mountPath")),
            read_only=bool(m.get("readOnly")),
            sub_path=str(m.get("subPath") or ""),
        )
        for m in body.get("volumeMounts") or []
    )
    return ContainerSpec(
        name=name,
        image=str(body.get("image") or ""),
        argv=tuple(command + args) if command else tuple(args),
        env=env,
        working_dir=str(body.get("workingDir") or ""),
        volume_mounts=mounts,
        has_command=bool(command),
    )


def _step_or_task_name(node_name: str) -> str:
    """Argo's getStepOrDAGTaskName: ``a[0].fan(0:1)(0)`` -> ``fan``."""
    name = node_name
    opener = ""
    for i in range(len(name) - 1, -1, -1):
        ch = name[i]
        if ch == opener:
            opener = ""
        elif opener:
            continue
        elif ch == ")":
            opener = "("
        elif ch == "]":
            opener = "["
        else:
            name = name[: i + 1]
            break
    return name.rsplit(".", 1)[-1]


def _node_duration(node: Mapping[str, Any]) -> str:
    start = _parse_ts(node.get("startedAt"))
    end = _parse_ts(node.get("finishedAt"))
    if start is None or end is None:
        return "0"
    return exprlang.format_result((end - start).total_seconds())


def _humanize(seconds: float) -> str:
    if seconds < 60:
        return f"{int(seconds)} seconds"
    if seconds < 3600:
        return f"{int(seconds // 60)} minutes"
    return f"{int(seconds // 3600)} hours"


_TRANSIENT = (
    "exceeded quota",
    "connection reset",
    "connection refused",
    "i/o timeout",
    "timeout",
    "TLS handshake",
)


def _is_transient(message: str) -> bool:
    lowered = message.lower()
    return any(marker.lower() in lowered for marker in _TRANSIENT)
