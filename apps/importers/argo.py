"""Argo Workflows resources: strict schema validation, reference/cycle checks, and the graph.

Kinds, and what happens to each:

* ``Workflow``, ``WorkflowTemplate``: imported as they are.
* ``ClusterWorkflowTemplate``: imported like a WorkflowTemplate (its spec is the
  same WorkflowSpec); Canal has no cluster scope, so it simply becomes a template.
* ``CronWorkflow``: its ``workflowSpec`` is imported as a ``Workflow`` (name,
  labels and annotations kept); the schedule is *not* imported, and a warning says
  so, because schedules are recurring runs in Canal, not part of a pipeline.
* anything else (``WorkflowEventBinding``, ``ConfigMap``, ...): refused, naming the kind.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from apps.engine.graph import Graph, GraphEdge, GraphNode

from .errors import Path, PipelineImportError
from .limits import DEFAULT_LIMITS, ImportLimits
from .schema_check import Locate, load_schema, make_validator, schema_error

ARGO_SCHEMA = "argo-workflows.schema.json"
_DEF = "io.argoproj.workflow.v1alpha1."
# A Kubernetes object name (a DNS subdomain) is at most 253 characters; a run keeps its
# Workflow's name as its pipeline's (a column of 255).
MAX_NAME = 253
IMPORTED_KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")
API_VERSION = "argoproj.io/v1alpha1"

# Task results that may follow a task name in a ``depends`` expression.
_DEPENDS_RESULTS = frozenset(
    {"Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned", "AnySucceeded", "AllFailed"}
)
_DEPENDS_OPERATORS = re.compile(r"&&|\|\||[!()]")

# Template bodies that run something, in the order Argo checks them.
_LEAF_TYPES = ("container", "script", "resource", "containerSet", "suspend", "http", "plugin", "data")


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Patch the published schema in memory: IntOrString may be an integer; objects are closed."""
    definitions: dict[str, Any] = schema["definitions"]
    definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {"type": ["string", "integer"]}
    for definition in definitions.values():
        if (
            isinstance(definition, dict)
            and definition.get("type") == "object"
            and "properties" in definition
            and "additionalProperties" not in definition
        ):
            definition["additionalProperties"] = False
    return schema


@functools.cache
def _strict_definitions() -> dict[str, Any]:
    return strict_schema(load_schema(ARGO_SCHEMA))


@functools.cache
def _validator(kind: str) -> Any:
    schema = _strict_definitions()
    root = {
        "$schema": schema["$schema"],
        "definitions": schema["definitions"],
        "$ref": f"#/definitions/{_DEF}{kind}",
    }
    return make_validator(root)


def looks_like_argo(doc: Mapping[str, Any]) -> bool:
    """True for anything that claims to be an Argo resource."""
    api = doc.get("apiVersion")
    return (isinstance(api, str) and api.startswith("argoproj.io/")) or doc.get("kind") in IMPORTED_KINDS


@dataclass(frozen=True)
class ArgoImport:
    """A validated Argo resource, normalised so ``workflow['spec']`` is always a WorkflowSpec."""

    workflow: dict[str, Any]
    kind: str
    warnings: tuple[str, ...] = ()


def spec_path(kind: str) -> Path:
    """Where the WorkflowSpec lives in a resource of this kind."""
    return ("spec", "workflowSpec") if kind == "CronWorkflow" else ("spec",)


def validate_argo(
    doc: dict[str, Any],
    *,
    filename: str | None,
    locate: Locate | None,
    limits: ImportLimits = DEFAULT_LIMITS,
) -> ArgoImport:
    """Validate an Argo resource strictly and check its references; raise PipelineImportError."""

    def fail(message: str, path: Path) -> PipelineImportError:
        where = locate(path) if locate else None
        return PipelineImportError(
            message, filename=filename, field_path=path, line=where[0] if where else None
        )

    kind = doc.get("kind")
    if kind not in IMPORTED_KINDS:
        shown = f"'{kind}'" if isinstance(kind, str) and kind else "(none)"
        raise fail(
            f"Argo kind {shown} is not a pipeline; Canal imports a Workflow, WorkflowTemplate, "
            "ClusterWorkflowTemplate or CronWorkflow",
            ("kind",) if "kind" in doc else (),
        )
    if "apiVersion" not in doc:
        raise fail(f"missing required field 'apiVersion' (expected '{API_VERSION}')", ())
    # Count before the schema: validating a 10k-task workflow would itself take seconds.
    spec = _get(doc, spec_path(kind))
    size = _count_tasks(spec)
    if size > limits.max_tasks:
        raise fail(
            f"the workflow has {size:,} templates, steps and DAG tasks; "
            f"at most {limits.max_tasks:,} are allowed",
            spec_path(kind),
        )
    error = schema_error(_validator(kind), doc, filename=filename, locate=locate)
    if error is not None:
        raise error
    assert isinstance(spec, dict)  # the schema requires it
    problem = check_workflow_spec(spec, kind=kind, prefix=spec_path(kind))
    if problem is not None:
        raise fail(*problem)

    warnings: list[str] = []
    metadata = doc.get("metadata") or {}
    for key in ("name", "generateName"):
        value = metadata.get(key)
        if isinstance(value, str) and len(value) > MAX_NAME:
            raise fail(
                f"metadata.{key} is {len(value):,} characters long; Kubernetes names are at most {MAX_NAME}",
                ("metadata", key),
            )
    name = metadata.get("name") or metadata.get("generateName") or "workflow"
    if kind == "CronWorkflow":
        cron = doc["spec"]
        schedules = list(cron.get("schedules") or [])
        if cron.get("schedule"):
            schedules.append(cron["schedule"])
        shown = ", ".join(f"'{s}'" for s in schedules) or "none"
        warnings.append(
            f"CronWorkflow '{name}': its workflowSpec was imported as a Workflow; its schedule ({shown}) "
            "was not. Create a recurring run to schedule it."
        )
        workflow: dict[str, Any] = {
            "apiVersion": doc["apiVersion"],
            "kind": "Workflow",
            "metadata": {k: v for k, v in metadata.items() if k in ("name", "labels", "annotations")},
            "spec": spec,
        }
    else:
        workflow = doc
    if kind == "ClusterWorkflowTemplate":
        warnings.append("ClusterWorkflowTemplate imported as a template; Canal has no cluster scope.")
    if "workflowTemplateRef" in spec:
        ref = spec["workflowTemplateRef"].get("name", "?")
        warnings.append(
            f"this workflow runs the WorkflowTemplate '{ref}', which is not part of this file; "
            "import that template too before running it"
        )
    if not spec.get("entrypoint") and "workflowTemplateRef" not in spec:
        warnings.append("no spec.entrypoint: a run must name the template to start from")
    return ArgoImport(workflow=workflow, kind=kind, warnings=tuple(warnings))


def _get(doc: Any, path: Path) -> Any:
    for part in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _count_tasks(spec: Any) -> int:
    """Templates plus steps plus DAG tasks, tolerant of malformed input."""
    if not isinstance(spec, dict):
        return 0
    total = 0
    for template in _items(spec.get("templates")):
        total += 1
        if not isinstance(template, dict):
            continue
        dag = template.get("dag")
        if isinstance(dag, dict):
            total += len(_items(dag.get("tasks")))
        for group in _items(template.get("steps")):
            total += len(_items(group))
    return total


def depends_names(expression: str) -> list[tuple[str, str]]:
    """Task names in a ``depends`` expression with their result: ``a.Failed && b`` -> (a, Failed), (b, '')."""
    out: list[tuple[str, str]] = []
    for token in _DEPENDS_OPERATORS.sub(" ", expression).split():
        name, _, result = token.rpartition(".")
        if name and result in _DEPENDS_RESULTS:
            out.append((name, result))
        else:
            out.append((token, ""))
    return out


def check_workflow_spec(spec: Mapping[str, Any], *, kind: str, prefix: Path) -> tuple[str, Path] | None:
    """Semantic checks on a schema-valid WorkflowSpec; returns (message, path) of the first problem."""
    templates = _items(spec.get("templates"))
    names: dict[str, int] = {}
    for i, template in enumerate(templates):
        name = template.get("name")
        if name in names:
            return (
                f"duplicate template name '{name}' (also templates[{names[name]}])",
                (*prefix, "templates", i, "name"),
            )
        if isinstance(name, str):
            names[name] = i
    # With workflowTemplateRef, names may resolve in the referenced template, which
    # is not in this file: only structure local to each DAG can be checked.
    local = "workflowTemplateRef" not in spec
    known = ", ".join(sorted(names)) or "none"

    def missing(name: Any) -> str:
        return f"template '{name}' does not exist in this workflow (templates: {known})"

    if local:
        entrypoint = spec.get("entrypoint")
        if entrypoint:
            if entrypoint not in names:
                return (
                    f"entrypoint '{entrypoint}' is not a template in this workflow (templates: {known})",
                    (*prefix, "entrypoint"),
                )
        elif kind in ("Workflow", "CronWorkflow"):
            return "a Workflow needs spec.entrypoint (or spec.workflowTemplateRef)", tuple(prefix)
        on_exit = spec.get("onExit")
        if on_exit and on_exit not in names:
            return f"onExit {missing(on_exit)}", (*prefix, "onExit")
        for hook, body in (spec.get("hooks") or {}).items():
            if isinstance(body, dict) and body.get("template") and body["template"] not in names:
                return missing(body["template"]), (*prefix, "hooks", hook, "template")
    for i, template in enumerate(templates):
        problem = _check_template(template, (*prefix, "templates", i), names if local else None, missing)
        if problem is not None:
            return problem
    return None


def _check_call(
    call: Mapping[str, Any], path: Path, names: Mapping[str, int] | None, missing: Any
) -> tuple[str, Path] | None:
    """A step or DAG task must say what it runs, and a local template must exist."""
    if "inline" in call:
        return _check_template(call["inline"], (*path, "inline"), names, missing)
    if "templateRef" in call:
        return None  # lives in another WorkflowTemplate, not in this file
    template = call.get("template")
    if not template:
        return "needs 'template', 'templateRef' or 'inline'", path
    if names is not None and template not in names:
        return missing(template), (*path, "template")
    if names is not None:
        for hook, body in (call.get("hooks") or {}).items():
            if isinstance(body, dict) and body.get("template") and body["template"] not in names:
                return missing(body["template"]), (*path, "hooks", hook, "template")
        on_exit = call.get("onExit")
        if on_exit and on_exit not in names:
            return missing(on_exit), (*path, "onExit")
    return None


def _check_template(
    template: Mapping[str, Any], path: Path, names: Mapping[str, int] | None, missing: Any
) -> tuple[str, Path] | None:
    bodies = [kind for kind in (*_LEAF_TYPES, "dag", "steps") if template.get(kind) is not None]
    if len(bodies) != 1:
        found = f"it has {', '.join(bodies)}" if bodies else "it has none"
        return (
            f"a template needs exactly one of {', '.join(_LEAF_TYPES)}, dag or steps; {found}",
            path,
        )
    for g, group in enumerate(_items(template.get("steps"))):
        for s, step in enumerate(_items(group)):
            problem = _check_call(step, (*path, "steps", g, s), names, missing)
            if problem is not None:
                return problem
    dag = template.get("dag")
    if not isinstance(dag, dict):
        return None
    tasks = _items(dag.get("tasks"))
    index: dict[str, int] = {}
    for t, task in enumerate(tasks):
        name = task.get("name")
        if name in index:
            return f"duplicate task name '{name}' in this DAG", (*path, "dag", "tasks", t, "name")
        index[name] = t
    edges: dict[str, list[tuple[str, Path]]] = {}
    for t, task in enumerate(tasks):
        tpath: Path = (*path, "dag", "tasks", t)
        problem = _check_call(task, tpath, names, missing)
        if problem is not None:
            return problem
        upstream: list[tuple[str, Path]] = []
        for d, dep in enumerate(_items(task.get("dependencies"))):
            if dep not in index:
                return f"depends on task '{dep}', which is not in this DAG", (*tpath, "dependencies", d)
            upstream.append((dep, (*tpath, "dependencies", d)))
        if isinstance(task.get("depends"), str):
            for dep, _ in depends_names(task["depends"]):
                if dep not in index:
                    return f"'depends' names task '{dep}', which is not in this DAG", (*tpath, "depends")
                upstream.append((dep, (*tpath, "depends")))
        edges[task["name"]] = upstream
    target = dag.get("target")
    if isinstance(target, str):
        for name in target.split():
            # A parameterised target ({{workflow.parameters.target}}) is resolved at run time.
            if "{{" not in name and name not in index:
                return f"target task '{name}' is not in this DAG", (*path, "dag", "target")
    cycle = _find_cycle(edges)
    if cycle is not None:
        names_in_cycle, where = cycle
        return f"dependency cycle: {' -> '.join(names_in_cycle)}", where
    return None


def _find_cycle(edges: Mapping[str, list[tuple[str, Path]]]) -> tuple[list[str], Path] | None:
    """Iterative DFS over task -> upstream edges; returns the cycle and the path of the closing edge."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for start in edges:
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        trail: list[str] = [start]
        state[start] = 1
        while stack:
            node, i = stack[-1]
            upstream = edges.get(node, [])
            if i >= len(upstream):
                stack.pop()
                trail.pop()
                state[node] = 2
                continue
            stack[-1] = (node, i + 1)
            nxt, where = upstream[i]
            if state.get(nxt) == 1:
                loop = [*trail[trail.index(nxt) :], nxt]
                # Edges point upstream; show the order in which things would run.
                return list(reversed(loop)), where
            if not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, 0))
                trail.append(nxt)
    return None


# ---------------------------------------------------------------------------------------
# Graph
# ---------------------------------------------------------------------------------------


@dataclass
class _GraphBuilder:
    templates: Mapping[str, Mapping[str, Any]]
    max_nodes: int
    graph: Graph = field(default_factory=Graph)
    used: set[str] = field(default_factory=set)
    truncated: bool = False

    def _id(self, parent: str | None, name: str) -> str:
        base = f"{parent}/{name}" if parent else name
        candidate, n = base, 1
        while candidate in self.used:
            n += 1
            candidate = f"{base}#{n}"
        self.used.add(candidate)
        return candidate

    def _full(self) -> bool:
        if len(self.graph.nodes) >= self.max_nodes:
            self.truncated = True
            return True
        return False

    def add(self, node: GraphNode) -> None:
        self.graph.nodes.append(node)

    def invoke(
        self, name: str, call: Mapping[str, Any], parent: str | None, stack: tuple[str, ...], kind: str = ""
    ) -> str | None:
        """Add the node for a step/task (or entrypoint) and expand its template; returns its id."""
        if self._full():
            return None
        node_id = self._id(parent, name)
        detail: dict[str, Any] = {}
        for key in ("when", "withItems", "withParam", "withSequence", "continueOn"):
            if key in call:
                detail[key] = call[key]
        template_name = call.get("template")
        if template_name:
            detail["template"] = template_name
        if "templateRef" in call:
            detail.update(type="templateRef", templateRef=call["templateRef"])
            self.add(GraphNode(node_id, name, kind or "container", parent, None, detail))
            return node_id
        template = call.get("inline") if "inline" in call else self.templates.get(str(template_name))
        if not isinstance(template, Mapping):
            detail["type"] = "unknown"
            self.add(GraphNode(node_id, name, kind or "container", parent, template_name, detail))
            return node_id
        if "dag" in template or "steps" in template:
            recursive = template_name in stack
            collapsed = recursive or len(self.graph.nodes) + 1 >= self.max_nodes
            detail["type"] = "dag" if "dag" in template else "steps"
            if collapsed:
                detail["collapsed"] = True
                if recursive:
                    detail["recursive"] = True
                else:
                    self.truncated = True
            self.add(GraphNode(node_id, name, kind or "dag", parent, template_name, detail))
            if not collapsed:
                self.expand(template, node_id, (*stack, str(template_name)))
            return node_id
        detail.update(leaf_detail(template))
        self.add(GraphNode(node_id, name, kind or "container", parent, template_name, detail))
        return node_id

    def expand(self, template: Mapping[str, Any], parent: str | None, stack: tuple[str, ...]) -> None:
        """Add the children of a DAG or steps template under ``parent``."""
        dag = template.get("dag")
        if isinstance(dag, Mapping):
            ids: dict[str, str] = {}
            tasks = [t for t in _items(dag.get("tasks")) if isinstance(t, Mapping)]
            for task in tasks:
                node_id = self.invoke(str(task.get("name")), task, parent, stack)
                if node_id is not None:
                    ids[str(task.get("name"))] = node_id
            for task in tasks:
                target = ids.get(str(task.get("name")))
                if target is None:
                    continue
                for dep in _items(task.get("dependencies")):
                    if dep in ids:
                        self.graph.edges.append(GraphEdge(ids[dep], target))
                if isinstance(task.get("depends"), str):
                    for dep, result in depends_names(task["depends"]):
                        if dep in ids:
                            self.graph.edges.append(GraphEdge(ids[dep], target, result))
            return
        previous: str | None = None
        for g, group in enumerate(_items(template.get("steps"))):
            steps = [s for s in _items(group) if isinstance(s, Mapping)]
            if not steps:
                continue
            if len(steps) == 1:
                unit = self.invoke(str(steps[0].get("name")), steps[0], parent, stack)
            else:
                # Parallel steps are drawn as one group; groups run one after another.
                if self._full():
                    return
                unit = self._id(parent, f"[{g}]")
                self.add(GraphNode(unit, f"step {g + 1}", "dag", parent, None, {"type": "parallel-steps"}))
                for step in steps:
                    self.invoke(str(step.get("name")), step, unit, stack)
            if unit is None:
                return
            if previous is not None:
                self.graph.edges.append(GraphEdge(previous, unit))
            previous = unit


def leaf_detail(template: Mapping[str, Any]) -> dict[str, Any]:
    """What a leaf template runs: its type plus image/command/args where it has them."""
    for kind in _LEAF_TYPES:
        body = template.get(kind)
        if body is None:
            continue
        detail: dict[str, Any] = {"type": kind}
        if kind in ("container", "script") and isinstance(body, Mapping):
            for key in ("image", "command", "args", "source"):
                if key in body:
                    # Copied: the drawing must not share lists with the spec it came from.
                    detail[key] = copy.deepcopy(body[key])
        elif kind == "containerSet" and isinstance(body, Mapping):
            detail["containers"] = [
                {k: c[k] for k in ("name", "image", "command", "args") if k in c}
                for c in _items(body.get("containers"))
                if isinstance(c, Mapping)
            ]
        elif kind == "resource" and isinstance(body, Mapping):
            detail["action"] = body.get("action")
        elif kind == "http" and isinstance(body, Mapping):
            detail.update({k: body[k] for k in ("method", "url") if k in body})
        return detail
    return {"type": "unknown"}


def workflow_spec(workflow: Mapping[str, Any]) -> Mapping[str, Any]:
    """The WorkflowSpec of any imported kind (CronWorkflow's is nested)."""
    spec = workflow.get("spec") or {}
    if workflow.get("kind") == "CronWorkflow":
        spec = spec.get("workflowSpec") or {}
    return spec if isinstance(spec, Mapping) else {}


def argo_graph(workflow: Mapping[str, Any], *, max_nodes: int = DEFAULT_LIMITS.max_graph_nodes) -> Graph:
    """Draw an Argo resource: DAG tasks with their dependencies, steps as sequential groups.

    Nested DAG/steps templates become group nodes holding their own tasks;
    recursive templates and anything past ``max_nodes`` are drawn collapsed.
    """
    graph, _ = graph_with_warnings(workflow, max_nodes)
    return graph


def graph_with_warnings(workflow: Mapping[str, Any], max_nodes: int) -> tuple[Graph, tuple[str, ...]]:
    """:func:`argo_graph`, plus a warning when the drawing had to be cut."""
    spec = workflow_spec(workflow)
    templates = {
        str(t["name"]): t for t in _items(spec.get("templates")) if isinstance(t, Mapping) and "name" in t
    }
    builder = _GraphBuilder(templates, max_nodes)
    entrypoint = spec.get("entrypoint")
    if isinstance(entrypoint, str) and entrypoint in templates:
        template = templates[entrypoint]
        if "dag" in template or "steps" in template:
            builder.expand(template, None, (entrypoint,))
        else:
            builder.invoke(entrypoint, {"template": entrypoint}, None, ())
    elif isinstance(spec.get("workflowTemplateRef"), Mapping):
        ref = spec["workflowTemplateRef"]
        builder.add(
            GraphNode(
                "workflowTemplateRef",
                str(ref.get("name", "workflowTemplateRef")),
                "root",
                detail={"type": "workflowTemplateRef", "workflowTemplateRef": dict(ref)},
            )
        )
    else:
        # A template library (no entrypoint): show each template on its own.
        for name in templates:
            builder.invoke(name, {"template": name}, None, ())
    on_exit = spec.get("onExit")
    if isinstance(on_exit, str) and on_exit in templates:
        builder.invoke("onExit", {"template": on_exit}, None, (), kind="exit")
    if builder.truncated:
        return builder.graph, (
            f"the graph was cut at {max_nodes:,} nodes; deeper templates are drawn collapsed",
        )
    return builder.graph, ()
