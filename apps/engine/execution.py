"""The run state machine: records in, decisions out, no I/O.

Modelled on Dagster's ``ActiveExecution``: the service builds an
:class:`ActiveExecution` from the spec, the run context and the run's node records,
and :meth:`ActiveExecution.plan` returns every decision that can be taken now, computed
to a fixpoint (finishing a sub-DAG in the same call unblocks its siblings, which are
created in the same plan).

Semantics, following KFP's backend (driver + Argo) rather than kfp.local where they
differ:

* A task starts once every upstream task (``dependentTasks`` plus the producers its
  inputs read from) is terminal. With the default strategy it runs only if all of them
  SUCCEEDED, and is otherwise SKIPPED with the reason ("upstream 'x' failed"). With
  ``ALL_UPSTREAM_TASKS_COMPLETED`` (ExitHandler exit tasks, ``ignore_upstream_failure``)
  it runs whatever their outcome.
* Inputs are resolved when the task starts; a resolution error creates the task FAILED
  with the reason. Then the CEL condition is evaluated on the resolved inputs: false
  means SKIPPED ("condition false: <expr>"), an evaluation error means FAILED.
* A group (ROOT, DAG, LOOP, ITERATION) finishes when all its children are terminal: FAILED
  if any child FAILED, else CANCELED if any child was CANCELED, else SUCCEEDED. Skipped
  children do not fail a group. The run ends in the root's state, so an exit handler
  that succeeds does not hide the failure it handled (``failing/pipeline_with_exit_handler``
  ends FAILED, as in KFP and kfp.local), and neither does ``ignore_upstream_failure``.
* A ParallelFor creates iterations in index order, at most ``parallelismLimit``
  unfinished at a time; an empty list finishes the loop SUCCEEDED with empty collected
  outputs. A loop's outputs are collected over iterations in index order (dsl.Collected);
  a parameter collected from a nested loop is a list of lists, artifacts are flattened.
* While the run is canceling nothing new is launched: tasks that have not started are
  created CANCELED, PENDING steps become CANCELED, RUNNING steps are listed in
  ``Plan.to_terminate``, groups finish once their children are terminal, and the root
  (the run) ends CANCELED.

Settling: one ``plan()`` takes every decision that needs no I/O, until nothing more
changes. A DAG's tasks are examined upstream first (``DagSpec.execution_order``), so a
task created SKIPPED or FAILED is seen by its dependents in the same pass, whatever
order the IR lists them in; a group that finishes queues its parent again. Only what
needs I/O ends a plan: steps to run, and the service's inline cache hits and importers,
after which it plans again.

Cost: one ``plan()`` is linear in the number of records plus the tasks of the running
groups; a group is re-examined only when one of its children finished in the same call.
"""

from __future__ import annotations

import copy
import json
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from apps.engine.cache import build_cache_key, custom_key_fingerprint, fingerprint
from apps.engine.keys import (
    GROUP_KINDS,
    ROOT_KEY,
    RUNTIME_STATE_NUMBERS,
    STEP_KINDS,
    NodeKind,
    NodeState,
    child_key,
    is_terminal,
    iteration_index,
    iteration_key,
    parent_key,
    task_uuid,
)
from apps.engine.model import (
    EMPTY_IO,
    ArtifactRef,
    CacheDecision,
    NodeComplete,
    NodeCreate,
    NodeIO,
    NodeRecord,
    Plan,
    RunContext,
    RunOutcome,
    StepLaunch,
)
from apps.engine.placeholders import PlaceholderContext, render_resources, render_string
from apps.engine.spec import (
    ARTIFACT_FROM_COMPONENT_INPUT,
    EXECUTOR_CONTAINER,
    EXECUTOR_IMPORTER,
    MAX_NAME,
    PARAM_FROM_COMPONENT_INPUT,
    PARAM_FROM_CONSTANT,
    PARAM_FROM_TASK_FINAL_STATUS,
    PARAM_FROM_TASK_OUTPUT,
    STRATEGY_ALL_COMPLETED,
    ComponentSpec,
    InputParameterDef,
    ParameterInputSpec,
    PipelineSpec,
    TaskSpec,
    normalize_parameter_value,
)
from apps.engine.values import go_json_dumps, is_number, json_type_name, value_to_text

# How KFP's driver names a producer's state in PipelineTaskFinalStatus.state.
FINAL_STATUS_NAMES: dict[str, str] = {
    NodeState.SUCCEEDED: "COMPLETE",
    NodeState.SKIPPED: "COMPLETE",
    NodeState.FAILED: "FAILED",
    NodeState.CANCELED: "CANCELED",
}


class EngineError(RuntimeError):
    """The records do not fit the spec (a bug or a spec/record mismatch, not a task failure)."""


class InputError(ValueError):
    """A task's inputs cannot be resolved; the task fails with this message."""


_STATE_WORDS = {
    NodeState.FAILED: "failed",
    NodeState.SKIPPED: "was skipped",
    NodeState.CANCELED: "was canceled",
    NodeState.SUCCEEDED: "succeeded",
}


@dataclass
class _Node:
    """The working view of one node during a plan() call."""

    key: str
    kind: NodeKind
    state: NodeState
    task: TaskSpec | None  # None for the root
    component: ComponentSpec
    inputs: NodeIO = EMPTY_IO
    outputs: NodeIO = EMPTY_IO
    error: str | None = None
    iteration_count: int | None = None
    children: dict[str, _Node] = field(default_factory=dict)  # DAG-like groups: by task name
    iterations: dict[int, _Node] = field(default_factory=dict)  # LOOP nodes: by index
    items: list[Any] | None = None  # LOOP nodes: the items, computed once
    # Kept up to date by ActiveExecution so that a visit never rescans a group's children.
    parent: _Node | None = field(default=None, repr=False, compare=False)
    order: tuple[int, ...] = ()  # position path from the root: sorting by (depth, order) is BFS order
    attached: int = 0  # how many children were attached (the next child's position)
    materialized: bool = False  # children built from the records (or created by the engine)
    child_states: dict[NodeState, int] = field(default_factory=dict)  # children per state
    active: int = 0  # children not terminal
    next_index: int = 0  # LOOP nodes: every iteration below this index exists

    @property
    def label(self) -> str:
        if self.kind == NodeKind.ITERATION:
            return f"iteration {iteration_index(self.key)}"
        if self.task is None:
            return "the pipeline"
        return f"task '{self.task.display_name}'"


def effective_pipeline_root(spec: PipelineSpec, ctx: RunContext) -> str:
    """runtime_config.pipeline_root, else the IR's defaultPipelineRoot (else empty: the service's default)."""
    return ctx.pipeline_root or spec.default_pipeline_root


def _utc_text(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class EngineOperations:
    """What the engine touched, for tests that prove the cost of an event.

    ``visited`` counts nodes examined to take decisions (records built into nodes, group
    visits, a DAG's tasks looked at, loop indexes stepped over, children read when a
    group finishes). ``collected`` counts the iterations read to gather a finished loop's
    outputs (dsl.Collected), which is the size of those outputs.
    """

    visited: int = 0
    collected: int = 0


_KINDS = {kind.value: kind for kind in NodeKind}
_STATES = {state.value: state for state in NodeState}


class ActiveExecution:
    """Decides what happens next in one run.

    Two ways to use it:

    * once: ``ActiveExecution(spec, ctx, records).plan()`` (build, then plan);
    * kept for the life of the run: build it once, call :meth:`advance` for each plan,
      apply that plan to the store, and feed it what changed outside the engine (a step
      started or ended: :meth:`apply`; the run started canceling: :meth:`set_context`).
      The engine assumes each plan it returned was applied. It keeps, per group, the
      number of children in each state and, per loop, the first index not created yet,
      and a visit examines only the groups whose children changed (and the groups those
      finish), so the cost of an event does not grow with the size of the run. Its
      plans are the ones a new instance built from the same records would return.
      Records are never deleted from it: after a run retry (``rerun.plan_run_retry``
      deletes and reopens records), or when unsure what it was fed, build a new one.
    """

    def __init__(self, spec: PipelineSpec, ctx: RunContext, records: Iterable[NodeRecord]) -> None:
        self.spec = spec
        self.ctx = ctx
        # Records are indexed by parent key; _Node objects are only built for the root and
        # for children of running groups, so finished subtrees cost one dict entry each.
        self._records: dict[str, NodeRecord] = {}
        self._children_of: dict[str, list[NodeRecord]] = {}
        for record in records:
            if record.key in self._records:
                raise EngineError(f"two records have the key {record.key!r}")
            self._records[record.key] = record
            parent = parent_key(record.key)
            if parent is not None:
                self._children_of.setdefault(parent, []).append(record)
        for parent in self._children_of:
            if parent not in self._records:
                raise EngineError(f"record(s) under {parent!r} have no parent record")
        self.nodes: dict[str, _Node] = {}
        self._result: Plan | None = None
        self._started = False  # the first advance() walked the records
        self._dirty: dict[str, _Node] = {}  # groups whose children changed since the last plan
        self.operations = EngineOperations()
        self._set_placeholder_base(ctx)

    def _set_placeholder_base(self, ctx: RunContext) -> None:
        self.pipeline_root = effective_pipeline_root(self.spec, ctx)
        self._placeholder_base = PlaceholderContext(
            pipeline_job_name=ctx.run_name,
            pipeline_job_resource_name=ctx.resource_name or ctx.run_id,
            pipeline_job_uuid=ctx.run_id,
            pipeline_root=self.pipeline_root,
            pipeline_job_create_time_utc=_utc_text(ctx.created_at),
            pipeline_job_schedule_time_utc=_utc_text(ctx.scheduled_at or ctx.created_at),
            **({"workspace_path": ctx.workspace_path} if ctx.workspace_path else {}),
        )

    # -- construction -------------------------------------------------------------------
    def _node(self, record: NodeRecord, task: TaskSpec | None, component: ComponentSpec) -> _Node:
        self.operations.visited += 1
        kind = _KINDS.get(str(record.kind))
        state = _record_state(record)
        if kind is None:
            raise EngineError(
                f"record {record.key!r} has an unknown kind or state ({record.kind}, {record.state})"
            )
        node = _Node(
            key=record.key,
            kind=kind,
            state=state,
            task=task,
            component=component,
            inputs=record.inputs,
            outputs=record.outputs,
            error=record.error,
            iteration_count=record.iteration_count,
        )
        self.nodes[record.key] = node
        return node

    def _materialize_children(self, group: _Node) -> None:
        if group.materialized:
            return
        group.materialized = True
        for record in self._children_of.pop(group.key, ()):
            self._child_from_record(group, record)

    def _child_from_record(self, group: _Node, record: NodeRecord) -> _Node:
        # A child's task comes from its parent's DAG (or, for an iteration, is the loop's).
        if group.kind == NodeKind.LOOP:
            index = iteration_index(record.key)
            if index is None or record.key != iteration_key(group.key, index):
                raise EngineError(f"record {record.key!r} is not an iteration of loop {group.key!r}")
            node = self._node(record, group.task, group.component)
            group.iterations[index] = node
            self._attach(group, node)
            return node
        name = record.key.rsplit("/", 1)[1]
        dag = group.component.dag
        if dag is None or name not in dag.tasks:
            raise EngineError(f"record {record.key!r} does not correspond to a task of the pipeline")
        task = dag.tasks[name]
        node = self._node(record, task, self.spec.component(task.component_ref))
        group.children[name] = node
        self._attach(group, node)
        return node

    def _attach(self, parent: _Node, node: _Node) -> None:
        node.parent = parent
        node.order = (*parent.order, parent.attached)
        parent.attached += 1
        parent.child_states[node.state] = parent.child_states.get(node.state, 0) + 1
        if not is_terminal(node.state):
            parent.active += 1
        if node.kind == NodeKind.ITERATION:
            while parent.next_index in parent.iterations:
                parent.next_index += 1

    def _set_state(self, node: _Node, state: NodeState) -> None:
        """Change a node's state, keeping its parent's counters right."""
        parent = node.parent
        if parent is not None and state != node.state:
            parent.child_states[node.state] -= 1
            parent.child_states[state] = parent.child_states.get(state, 0) + 1
            parent.active += int(is_terminal(node.state)) - int(is_terminal(state))
        node.state = state

    # -- events (an execution kept for the life of the run) --------------------------------
    def apply(self, record: NodeRecord) -> None:
        """Feed one record that changed, or appeared, outside the engine's own plans.

        Typically a step that started, succeeded (with its outputs) or failed (with its
        error). A record equal to what the engine already knows changes nothing. Its
        parent group is examined at the next :meth:`advance`; nothing else is.
        """
        self._result = None
        node = self.nodes.get(record.key)
        if node is None:
            self._apply_new(record)
            return
        if _KINDS.get(str(record.kind)) != node.kind:
            raise EngineError(f"record {record.key!r} changed kind ({node.kind} to {record.kind})")
        state = _record_state(record)
        changed = (
            state != node.state
            or record.outputs != node.outputs
            or record.error != node.error
            or record.iteration_count != node.iteration_count
        )
        if not changed:
            return
        self.operations.visited += 1
        node.outputs, node.error, node.iteration_count = record.outputs, record.error, record.iteration_count
        self._set_state(node, state)
        if node.parent is not None:
            self._dirty[node.parent.key] = node.parent
        if node.kind in GROUP_KINDS and not is_terminal(state):
            self._dirty[node.key] = node

    def _apply_new(self, record: NodeRecord) -> None:
        parent = parent_key(record.key)
        if parent is None:
            raise EngineError("a kept execution cannot be given a new root record: build a new one")
        self._records[record.key] = record
        group = self.nodes.get(parent)
        if group is None or not group.materialized:
            siblings = self._children_of.setdefault(parent, [])
            siblings[:] = [r for r in siblings if r.key != record.key]
            siblings.append(record)
            if group is None and parent not in self._records:
                raise EngineError(f"record(s) under {parent!r} have no parent record")
            return
        node = self._child_from_record(group, record)
        self._dirty[group.key] = group
        if node.kind in GROUP_KINDS and not is_terminal(node.state):
            self._dirty[node.key] = node

    def set_context(self, ctx: RunContext) -> None:
        """The run's context changed (typically: the run is now canceling)."""
        self._result = None
        self.ctx = ctx
        self._set_placeholder_base(ctx)

    # -- the plan -----------------------------------------------------------------------
    def plan(self) -> Plan:
        """Every decision that can be taken now (idempotent: existing nodes are never re-created).

        Calling plan() again returns the same Plan until an event (:meth:`apply`,
        :meth:`set_context`) is fed; a kept execution calls :meth:`advance` instead.
        """
        if self._result is None:
            self._result = self.advance()
        return self._result

    def advance(self) -> Plan:
        """The decisions that follow from the events fed since the last plan, which was applied.

        The first call walks the records (linear in the records of the running groups);
        later calls examine only the groups whose children changed, in the order a walk
        would reach them, so they return what a new instance would (while the run is
        canceling, every running group is examined, as RUNNING steps are listed again).
        """
        self._creates: list[NodeCreate] = []
        self._completes: list[NodeComplete] = []
        self._outcome: RunOutcome | None = None
        self._terminate: list[str] = []
        self._terminate_set: set[str] = set()
        self._queue: deque[_Node] = deque()
        self._queued: set[str] = set()

        root: _Node | None
        if not self._started:
            self._started = True
            root_record = self._records.get(ROOT_KEY)
            if root_record is None:
                if self._records:
                    raise EngineError("the records have no root record")
                root = self._start_root()
            else:
                root = self._node(root_record, None, self.spec.root)
            walk_all = True
        else:
            root = self.nodes.get(ROOT_KEY)
            walk_all = self.ctx.canceling
        dirty, self._dirty = self._dirty, {}
        if root is not None and not is_terminal(root.state):
            if walk_all:
                # Breadth-first, so parents are examined before their children; only
                # running groups are expanded.
                walk = deque([root])
                while walk:
                    node = walk.popleft()
                    self.operations.visited += 1
                    if is_terminal(node.state):
                        continue
                    self._materialize_children(node)
                    self._enqueue(node)
                    walk.extend(n for n in node.children.values() if n.kind in GROUP_KINDS)
                    walk.extend(node.iterations.values())
            else:
                # The groups whose children changed, in the order the walk would reach them.
                for node in sorted(dirty.values(), key=lambda n: (len(n.order), n.order)):
                    if not is_terminal(node.state) and self._reachable(node):
                        self._materialize_children(node)
                        self._enqueue(node)
            # The queue settles: a group is queued when it starts, when it is created and
            # when one of its children finishes, and each node finishes once, so there are
            # at most two visits per group. The budget turns a bug that broke that into a
            # clear error (the run fails with it) instead of a worker spinning forever.
            visits = 0
            while self._queue:
                visits += 1
                if visits > 2 * len(self.nodes) + 1:
                    raise EngineError(f"the plan did not settle after {visits - 1} group visits")
                node = self._queue.popleft()
                self.operations.visited += 1
                self._queued.discard(node.key)
                if is_terminal(node.state):
                    continue
                if node.kind == NodeKind.LOOP:
                    self._advance_loop(node)
                else:
                    self._advance_dag(node)
        self._result = Plan(
            creates=self._creates,
            completes=self._completes,
            run_outcome=self._outcome,
            to_terminate=self._terminate,
        )
        return self._result

    def _reachable(self, node: _Node) -> bool:
        # A walk only reaches a group through running ancestors.
        parent = node.parent
        while parent is not None:
            if is_terminal(parent.state):
                return False
            parent = parent.parent
        return True

    def _enqueue(self, node: _Node) -> None:
        if node.key not in self._queued:
            self._queued.add(node.key)
            self._queue.append(node)

    def _start_root(self) -> _Node | None:
        root_component = self.spec.root
        node = _Node(ROOT_KEY, NodeKind.ROOT, NodeState.RUNNING, None, root_component, materialized=True)
        self.nodes[ROOT_KEY] = node
        create = NodeCreate(
            key=ROOT_KEY,
            parent_key=None,
            task_name=ROOT_KEY,
            display_name=self.spec.display_name,
            kind=NodeKind.ROOT,
            component_name=ROOT_KEY,
            executor_label="",
            iteration_index=None,
            state=NodeState.RUNNING,
        )
        if self.ctx.canceling:
            node.state = NodeState.CANCELED
            self._creates.append(
                replace(create, state=NodeState.CANCELED, reason="the run was canceled before it started")
            )
            self._outcome = RunOutcome(NodeState.CANCELED, "the run was canceled before it started")
            return None
        try:
            node.inputs = self._root_inputs()
        except InputError as exc:
            node.state, node.error = NodeState.FAILED, str(exc)
            self._creates.append(replace(create, state=NodeState.FAILED, error=str(exc), reason=str(exc)))
            self._outcome = RunOutcome(NodeState.FAILED, str(exc))
            return None
        self._creates.append(replace(create, inputs=node.inputs))
        return node

    def _root_inputs(self) -> NodeIO:
        definitions = self.spec.root.input_definitions
        given = {k: v for k, v in self.ctx.parameters.items() if v is not None}
        unknown = sorted(set(given) - set(definitions.parameters) - set(definitions.artifacts))
        if unknown:
            raise InputError(f"the pipeline has no parameter named {', '.join(repr(u) for u in unknown)}")
        params: dict[str, Any] = {}
        problems: list[str] = []
        for name, definition in definitions.parameters.items():
            if name in given:
                try:
                    params[name] = _normalize(name, definition, given[name])
                except InputError as exc:
                    problems.append(str(exc))
            elif definition.has_default and definition.default is not None:
                params[name] = definition.default
            elif not definition.is_optional:
                problems.append(f"the required parameter '{name}' was not given a value")
        artifacts: dict[str, list[ArtifactRef]] = {}
        for name, art in definitions.artifacts.items():
            value = given.get(name)
            if isinstance(value, ArtifactRef):
                artifacts[name] = [value]
            elif isinstance(value, list) and all(isinstance(v, ArtifactRef) for v in value):
                artifacts[name] = list(value)
            elif value is not None:
                problems.append(f"the input artifact '{name}' must be given as artifact references")
            elif not art.is_optional:
                problems.append(f"the required input artifact '{name}' was not given")
        if problems:
            raise InputError("; ".join(problems))
        return NodeIO(params, artifacts)

    # -- DAG-like groups ----------------------------------------------------------------
    def _advance_dag(self, node: _Node) -> None:
        dag = node.component.dag
        assert dag is not None  # groups always have a DAG component (the parser checks loops)
        done = True
        # Upstream tasks first, so a task created SKIPPED or FAILED here is seen by its
        # dependents in this same pass, whatever order the IR lists the tasks in.
        for task in dag.execution_order:
            self.operations.visited += 1
            name = task.name
            child = node.children.get(name)
            if child is None:
                child = self._try_start(node, task)
                if child is None:
                    done = False
                    continue
            if self.ctx.canceling and child.kind in STEP_KINDS:
                self._cancel_step(child)
            if not is_terminal(child.state):
                done = False
        if done:
            self._finish_group(node, list(node.children.values()))

    def _cancel_step(self, step: _Node) -> None:
        if step.state == NodeState.PENDING:
            self._set_state(step, NodeState.CANCELED)
            self._completes.append(
                NodeComplete(
                    step.key, NodeState.CANCELED, error="the run was canceled before the step started"
                )
            )
        elif step.state in (NodeState.RUNNING, NodeState.CANCELING) and step.key not in self._terminate_set:
            # A group may be examined more than once per call; list each step once.
            self._terminate_set.add(step.key)
            self._terminate.append(step.key)

    def _try_start(self, parent: _Node, task: TaskSpec) -> _Node | None:
        if self.ctx.canceling:
            return self._add(
                parent, task, NodeState.CANCELED, reason="the run was canceled before this task started"
            )
        upstream = [parent.children.get(name) for name in task.upstream_tasks]
        if any(u is None or not is_terminal(u.state) for u in upstream):
            return None
        if task.trigger.strategy != STRATEGY_ALL_COMPLETED:
            for name, up in zip(task.upstream_tasks, upstream, strict=True):
                assert up is not None
                if up.state != NodeState.SUCCEEDED:
                    return self._add(
                        parent, task, NodeState.SKIPPED, reason=f"upstream '{name}' {_STATE_WORDS[up.state]}"
                    )
        component = self.spec.component(task.component_ref)
        try:
            inputs = self._resolve_inputs(parent, task, component)
        except InputError as exc:
            return self._add(parent, task, NodeState.FAILED, error=str(exc))
        condition = task.trigger.condition
        if condition:
            from apps.engine.cel import CelError, evaluate_condition  # loaded when first needed

            artifacts = {n: [a.runtime_artifact() for a in refs] for n, refs in inputs.artifacts.items()}
            try:
                run = evaluate_condition(condition, inputs.parameters, artifacts)
            except CelError as exc:
                return self._add(
                    parent,
                    task,
                    NodeState.FAILED,
                    inputs=inputs,
                    error=f"the condition {condition!r} could not be evaluated: {exc}",
                )
            if not run:
                return self._add(
                    parent, task, NodeState.SKIPPED, inputs=inputs, reason=f"condition false: {condition}"
                )
        if task.is_loop:
            try:
                items = self._loop_items(task, inputs)
            except InputError as exc:
                return self._add(parent, task, NodeState.FAILED, inputs=inputs, error=str(exc))
            loop = self._add(parent, task, NodeState.RUNNING, inputs=inputs, iteration_count=len(items))
            loop.items = items
            self._enqueue(loop)
            return loop
        if component.dag is not None:
            group = self._add(parent, task, NodeState.RUNNING, inputs=inputs)
            self._enqueue(group)
            return group
        executor = self.spec.executor_for(component)
        assert executor is not None
        if executor.kind not in (EXECUTOR_CONTAINER, EXECUTOR_IMPORTER):
            return self._add(
                parent,
                task,
                NodeState.FAILED,
                inputs=inputs,
                error=f"executor '{executor.label}' is a {executor.kind} executor, which Canal does not run "
                "(KFP's backend does not either)",
            )
        try:
            launch = self._launch(parent, task, component, inputs)
        except InputError as exc:
            return self._add(parent, task, NodeState.FAILED, inputs=inputs, error=str(exc))
        return self._add(parent, task, NodeState.PENDING, inputs=inputs, launch=launch)

    def _add(
        self,
        parent: _Node,
        task: TaskSpec,
        state: NodeState,
        *,
        inputs: NodeIO = EMPTY_IO,
        reason: str = "",
        error: str | None = None,
        iteration_count: int | None = None,
        launch: StepLaunch | None = None,
    ) -> _Node:
        key = child_key(parent.key, task.name)
        component = self.spec.component(task.component_ref)
        if task.is_loop:
            kind = NodeKind.LOOP
        elif component.dag is not None:
            kind = NodeKind.DAG
        else:
            executor = self.spec.executor_for(component)
            kind = (
                NodeKind.IMPORTER
                if executor is not None and executor.kind == EXECUTOR_IMPORTER
                else NodeKind.CONTAINER
            )
        node = _Node(
            key,
            kind,
            state,
            task,
            component,
            inputs=inputs,
            error=error,
            iteration_count=iteration_count,
            materialized=True,
        )
        parent.children[task.name] = node
        self._attach(parent, node)
        self.nodes[key] = node
        self._creates.append(
            NodeCreate(
                key=key,
                parent_key=parent.key,
                task_name=task.name,
                display_name=task.display_name,
                kind=kind,
                component_name=task.component_ref,
                executor_label=component.executor_label,
                iteration_index=iteration_index(key),
                state=state,
                inputs=inputs,
                reason=reason or (error or ""),
                error=error,
                iteration_count=iteration_count,
                launch=launch,
            )
        )
        return node

    # -- loops --------------------------------------------------------------------------
    def _loop_items(self, task: TaskSpec, inputs: NodeIO) -> list[Any]:
        if task.artifact_iterator is not None:
            source = task.artifact_iterator.input_artifact
            return list(inputs.artifacts.get(source, []))
        iterator = task.parameter_iterator
        assert iterator is not None
        if iterator.raw is not None:
            value: Any = json.loads(iterator.raw)
            source = "the raw items"
        else:
            assert iterator.input_parameter is not None
            source = f"input '{iterator.input_parameter}'"
            if iterator.input_parameter not in inputs.parameters:
                raise InputError(f"the loop has nothing to iterate over: {source} has no value")
            value = inputs.parameters[iterator.input_parameter]
        if isinstance(value, str):
            # KFP accepts a JSON-encoded list passed as a string.
            try:
                value = json.loads(value)
            except ValueError:
                raise InputError(f"cannot iterate over {source}: the string is not a JSON list") from None
        if not isinstance(value, list):
            raise InputError(f"cannot iterate over {source}: it is a {json_type_name(value)}, not a list")
        return value

    def _advance_loop(self, loop: _Node) -> None:
        task = loop.task
        assert task is not None
        if loop.items is None:
            try:
                loop.items = self._loop_items(task, loop.inputs)
            except InputError as exc:
                raise EngineError(
                    f"loop {loop.key!r}: its recorded inputs no longer give items: {exc}"
                ) from exc
        items = loop.items
        count = loop.iteration_count if loop.iteration_count is not None else len(items)
        if count != len(items):
            raise EngineError(
                f"loop {loop.key!r} recorded {count} iterations but its inputs give {len(items)}"
            )
        if self.ctx.canceling:
            if loop.active:
                return
            self._finish_group(loop, self._ordered_iterations(loop))
            return
        limit = task.parallelism_limit or count
        # Iterations are created in index order; next_index skips those already there.
        while loop.active < limit and len(loop.iterations) < count:
            index = loop.next_index
            if index >= count:
                raise EngineError(f"loop {loop.key!r} has iterations beyond its {count} items")
            self.operations.visited += 1
            self._enqueue(self._add_iteration(loop, task, index, items[index]))
        if loop.active == 0 and len(loop.iterations) == count:
            self._finish_group(loop, self._ordered_iterations(loop))

    def _ordered_iterations(self, loop: _Node) -> list[_Node]:
        return [loop.iterations[i] for i in sorted(loop.iterations)]

    def _add_iteration(self, loop: _Node, task: TaskSpec, index: int, item: Any) -> _Node:
        params = dict(loop.inputs.parameters)
        artifacts = dict(loop.inputs.artifacts)
        if task.artifact_iterator is not None:
            artifacts[task.artifact_iterator.item_input] = [item]
        else:
            assert task.parameter_iterator is not None
            params[task.parameter_iterator.item_input] = item
        inputs = NodeIO(params, artifacts)
        key = iteration_key(loop.key, index)
        node = _Node(
            key, NodeKind.ITERATION, NodeState.RUNNING, task, loop.component, inputs=inputs, materialized=True
        )
        loop.iterations[index] = node
        self._attach(loop, node)
        self.nodes[key] = node
        self._creates.append(
            NodeCreate(
                key=key,
                parent_key=loop.key,
                task_name=task.name,
                display_name=iteration_display_name(task.display_name, index),
                kind=NodeKind.ITERATION,
                component_name=task.component_ref,
                executor_label="",
                iteration_index=index,
                state=NodeState.RUNNING,
                inputs=inputs,
            )
        )
        return node

    # -- finishing groups ---------------------------------------------------------------
    def _finish_group(self, node: _Node, children: list[_Node]) -> None:
        if node.kind == NodeKind.LOOP:
            self.operations.collected += len(children)
        else:
            self.operations.visited += len(children)
        failed = next((c for c in children if c.state == NodeState.FAILED), None)
        error: str | None = None
        if node.kind == NodeKind.ROOT and self.ctx.canceling:
            state = NodeState.CANCELED
            error = "the run was canceled"
        elif failed is not None:
            state = NodeState.FAILED
            error = f"{failed.label} failed: {failed.error or 'no error message'}"
        elif any(c.state == NodeState.CANCELED for c in children):
            state = NodeState.CANCELED
        else:
            state = NodeState.SUCCEEDED
        outputs = self._collect(node) if node.kind == NodeKind.LOOP else self._dag_outputs(node)
        node.outputs, node.error = outputs, error
        self._set_state(node, state)
        self._completes.append(NodeComplete(node.key, state, outputs, error))
        if node.kind == NodeKind.ROOT:
            self._outcome = RunOutcome(state, error, outputs)
            return
        assert node.parent is not None
        self._enqueue(node.parent)

    def _dag_outputs(self, node: _Node) -> NodeIO:
        dag = node.component.dag
        assert dag is not None
        params: dict[str, Any] = {}
        for name, out in dag.output_parameters.items():
            # valueFromOneof: the first branch that produced the value is the one that ran.
            for selector in out.selectors:
                child = node.children.get(selector.producer_subtask)
                if child is not None and selector.output_parameter_key in child.outputs.parameters:
                    params[name] = child.outputs.parameters[selector.output_parameter_key]
                    break
        artifacts: dict[str, list[ArtifactRef]] = {}
        for name, art in dag.output_artifacts.items():
            for art_selector in art.selectors:
                child = node.children.get(art_selector.producer_subtask)
                if child is not None and art_selector.output_artifact_key in child.outputs.artifacts:
                    artifacts[name] = list(child.outputs.artifacts[art_selector.output_artifact_key])
                    break
        return NodeIO(params, artifacts)

    def _collect(self, loop: _Node) -> NodeIO:
        dag = loop.component.dag
        assert dag is not None
        iterations = self._ordered_iterations(loop)
        params: dict[str, Any] = {}
        for name in dag.output_parameters:
            params[name] = [it.outputs.parameters[name] for it in iterations if name in it.outputs.parameters]
        artifacts: dict[str, list[ArtifactRef]] = {}
        for name in dag.output_artifacts:
            artifacts[name] = [a for it in iterations for a in it.outputs.artifacts.get(name, [])]
        return NodeIO(params, artifacts)

    # -- inputs -------------------------------------------------------------------------
    def _resolve_inputs(self, parent: _Node, task: TaskSpec, component: ComponentSpec) -> NodeIO:
        definitions = component.input_definitions
        params: dict[str, Any] = {}
        why_absent: dict[str, str] = {}
        constants: list[ParameterInputSpec] = []
        for name, pin in task.parameters.items():
            if pin.source == PARAM_FROM_CONSTANT:
                constants.append(pin)
                continue
            value, reason = self._parameter(parent, pin)
            if value is None:
                why_absent[name] = reason
            else:
                params[name] = value
        # Constants last: an f-string constant reads the other inputs of the same task.
        for pin in constants:
            params[pin.name] = self._constant(pin.constant, params, task, child_key(parent.key, task.name))
        for name, pin in task.parameters.items():
            if pin.expression_selector and name in params:
                from apps.engine.cel import CelError, select  # loaded when first needed

                try:
                    params[name] = select(params[name], pin.expression_selector)
                except CelError as exc:
                    raise InputError(
                        f"input '{name}': the selector {pin.expression_selector!r} failed: {exc}"
                    ) from exc
            if name in params and params[name] is None:
                del params[name]
                why_absent.setdefault(name, "it resolved to null")
        for name in list(params):
            definition = definitions.parameters.get(name)
            if definition is not None:
                params[name] = _normalize(name, definition, params[name])
        loop_item = task.parameter_iterator.item_input if task.parameter_iterator else None
        for name, definition in definitions.parameters.items():
            if name in params or name == loop_item:
                continue
            if definition.has_default and definition.default is not None:
                params[name] = definition.default
            elif not definition.is_optional and definition.parameter_type not in ("TASK_CONFIG",):
                detail = f" ({why_absent[name]})" if name in why_absent else ""
                raise InputError(f"the required input '{name}' has no value{detail}")

        artifacts: dict[str, list[ArtifactRef]] = {}
        absent_artifacts: dict[str, str] = {}
        for name, ain in task.artifacts.items():
            if ain.source == ARTIFACT_FROM_COMPONENT_INPUT:
                found = parent.inputs.artifacts.get(ain.component_input_artifact)
                if found is None:
                    absent_artifacts[name] = f"the DAG input '{ain.component_input_artifact}' has no artifact"
                    continue
            else:
                producer = parent.children[ain.producer_task]
                found = producer.outputs.artifacts.get(ain.output_artifact_key)
                if found is None:
                    absent_artifacts[name] = (
                        f"task '{ain.producer_task}' {_STATE_WORDS.get(producer.state, 'did not finish')} "
                        f"and produced no artifact '{ain.output_artifact_key}'"
                    )
                    continue
            artifacts[name] = list(found)
        loop_artifact = task.artifact_iterator.item_input if task.artifact_iterator else None
        for name, art in definitions.artifacts.items():
            if name in artifacts or name == loop_artifact or art.is_optional:
                continue
            detail = f" ({absent_artifacts[name]})" if name in absent_artifacts else ""
            raise InputError(f"the required input artifact '{name}' has no value{detail}")
        return NodeIO(params, artifacts)

    def _parameter(self, parent: _Node, pin: ParameterInputSpec) -> tuple[Any, str]:
        if pin.source == PARAM_FROM_COMPONENT_INPUT:
            value = parent.inputs.parameters.get(pin.component_input_parameter)
            return value, f"the DAG input '{pin.component_input_parameter}' has no value"
        producer = parent.children[pin.producer_task]
        if pin.source == PARAM_FROM_TASK_OUTPUT:
            if pin.output_parameter_key in producer.outputs.parameters:
                return producer.outputs.parameters[pin.output_parameter_key], ""
            return None, (
                f"task '{pin.producer_task}' {_STATE_WORDS.get(producer.state, 'did not finish')} "
                f"and produced no output '{pin.output_parameter_key}'"
            )
        if pin.source == PARAM_FROM_TASK_FINAL_STATUS:
            return self._final_status(producer), ""
        raise EngineError(f"unexpected parameter source {pin.source!r}")

    def _final_status(self, producer: _Node) -> dict[str, Any]:
        # PipelineTaskFinalStatus as KFP's driver fills it: the state reads COMPLETE for a
        # task that succeeded or was skipped (what components written for KFP check), and
        # error.code is the state number.
        error: dict[str, Any] = {"code": RUNTIME_STATE_NUMBERS[producer.state]}
        if producer.error:
            error["message"] = producer.error
        return {
            "state": FINAL_STATUS_NAMES.get(producer.state, str(producer.state)),
            "pipeline_job_resource_name": self._placeholder_base.pipeline_job_resource_name,
            "pipeline_task_name": producer.task.name if producer.task else ROOT_KEY,
            "error": error,
        }

    def _constant(self, value: Any, params: Mapping[str, Any], task: TaskSpec, key: str) -> Any:
        if not isinstance(value, str) or "{{$" not in value:
            return value
        context = replace(
            self._placeholder_base,
            pipeline_task_name=task.display_name,
            pipeline_task_uuid=task_uuid(self.ctx.run_id, key),
        )
        return render_string(value, {"inputs": {"parameterValues": dict(params)}}, context)

    # -- steps --------------------------------------------------------------------------
    def _launch(self, parent: _Node, task: TaskSpec, component: ComponentSpec, inputs: NodeIO) -> StepLaunch:
        executor = self.spec.executor_for(component)
        assert executor is not None
        key = child_key(parent.key, task.name)
        platform = self._platform_config(parent, component.executor_label)
        timeout_seconds = _seconds(platform.get("activeDeadlineSeconds"))
        outputs = component.output_definitions
        container = executor.container
        caching = CacheDecision(enabled=False)
        if container is not None:
            container = replace(container, resources=render_resources(container.resources, inputs.parameters))
            key_json = build_cache_key(
                input_parameters=inputs.parameters,
                input_artifacts=inputs.artifacts,
                output_parameter_types={n: d.parameter_type for n, d in outputs.parameters.items()},
                output_artifacts=outputs.artifacts,
                # The raw, unrendered command and args, as KFP keys the cache.
                image=container.image,
                command=container.command,
                args=container.args,
                pvc_names=_pvc_names(platform),
            )
            custom = task.caching.cache_key
            try:
                computed = fingerprint(key_json)
                custom_fingerprint = custom_key_fingerprint(task.component_ref, custom) if custom else ""
            except (ValueError, TypeError) as exc:
                # Text that is not valid Unicode (a lone surrogate from a JSON "\ud800" escape)
                # cannot be hashed, nor handed to a process: the task fails and says which input.
                reason = _unhashable_input(inputs) or str(exc)
                raise InputError(
                    f"cannot compute the cache fingerprint of task '{task.display_name}': {reason}"
                ) from exc
            enabled = (
                self.ctx.enable_caching if self.ctx.enable_caching is not None else task.caching.enable_cache
            )
            caching = CacheDecision(
                enabled=enabled,
                fingerprint=custom_fingerprint or computed,
                cache_key=custom,
                computed_fingerprint=computed,
            )
        return StepLaunch(
            key=key,
            kind=NodeKind.IMPORTER if executor.kind == EXECUTOR_IMPORTER else NodeKind.CONTAINER,
            run_id=self.ctx.run_id,
            task_name=task.name,
            display_name=task.display_name,
            component_name=task.component_ref,
            executor_label=component.executor_label,
            container=container,
            importer=executor.importer,
            input_parameters=inputs.parameters,
            input_artifacts=inputs.artifacts,
            output_parameters=outputs.parameters,
            output_artifacts=outputs.artifacts,
            caching=caching,
            retry=task.retry,
            platform_config=platform,
            timeout_seconds=timeout_seconds,
            iteration_index=iteration_index(key),
            pipeline_root=self.pipeline_root,
            placeholder_context=replace(
                self._placeholder_base,
                pipeline_task_name=task.display_name,
                pipeline_task_uuid=task_uuid(self.ctx.run_id, key),
            ),
        )

    def _platform_config(self, parent: _Node, label: str) -> dict[str, Any]:
        raw = self.spec.platform.executors.get(label)
        if not raw:
            return {}
        config = copy.deepcopy(dict(raw))
        self._resolve_platform_refs(parent, config)
        return config

    def _resolve_platform_refs(self, parent: _Node, node: Any) -> None:
        # An InputParameterSpec inside the Kubernetes config (secretNameParameter,
        # pvcNameParameter, the deprecated pvcMount.componentInputParameter, ...) refers to
        # the parent DAG's inputs or a sibling's outputs; its value is put next to it as
        # "resolvedValue" (absent when it cannot be resolved).
        if isinstance(node, list):
            for item in node:
                self._resolve_platform_refs(parent, item)
            return
        if not isinstance(node, dict):
            return
        value: Any = None
        if isinstance(node.get(PARAM_FROM_COMPONENT_INPUT), str):
            value = parent.inputs.parameters.get(node[PARAM_FROM_COMPONENT_INPUT])
        elif isinstance(node.get(PARAM_FROM_TASK_OUTPUT), dict):
            ref = node[PARAM_FROM_TASK_OUTPUT]
            producer = parent.children.get(str(ref.get("producerTask", "")))
            if producer is not None:
                value = producer.outputs.parameters.get(str(ref.get("outputParameterKey", "")))
        elif isinstance(node.get(PARAM_FROM_CONSTANT), dict):
            value = node[PARAM_FROM_CONSTANT].get("constant")
        if value is not None:
            node["resolvedValue"] = value
        for key, child in list(node.items()):
            if key != "resolvedValue":
                self._resolve_platform_refs(parent, child)


def _record_state(record: NodeRecord) -> NodeState:
    state = _STATES.get(str(record.state))
    if state is None:
        raise EngineError(
            f"record {record.key!r} has an unknown kind or state ({record.kind}, {record.state})"
        )
    return state


def _unhashable_input(inputs: NodeIO) -> str | None:
    """Which input parameter cannot be encoded as UTF-8 JSON, and why (None: all can)."""
    for name, value in inputs.parameters.items():
        try:
            go_json_dumps(value).encode("utf-8")
        except UnicodeEncodeError as exc:
            # The code point's escape, never the character: this message is stored and shown.
            code = ord(exc.object[exc.start])
            return f"input '{name}' holds a lone surrogate (\\u{code:04x}), which is not valid Unicode text"
        except (ValueError, TypeError) as exc:
            return f"input '{name}' cannot be encoded as JSON: {exc}"
    return None


def _seconds(value: Any) -> float | None:
    # activeDeadlineSeconds is an int64: protojson may write it as a string.
    if isinstance(value, bool) or value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


def _pvc_names(platform: Mapping[str, Any]) -> list[str]:
    names: list[str] = []
    for mount in platform.get("pvcMount") or []:
        if not isinstance(mount, dict):
            continue
        name = mount.get("pvcName") or mount.get("constant") or mount.get("resolvedValue")
        ref = mount.get("pvcNameParameter")
        if not name and isinstance(ref, dict):
            name = ref.get("resolvedValue") or (ref.get(PARAM_FROM_CONSTANT) or {}).get("constant")
        if isinstance(name, str) and name:
            names.append(name)
    return names


def _normalize(name: str, definition: InputParameterDef, value: Any) -> Any:
    """Coerce a resolved value to its declared type, as KFP's driver does, or raise InputError."""
    ptype = definition.parameter_type
    value = normalize_parameter_value(value, ptype)
    if ptype == "STRING":
        if not isinstance(value, str):
            value = value_to_text(value)
    elif ptype in ("NUMBER_INTEGER", "NUMBER_DOUBLE"):
        if not is_number(value):
            raise InputError(f"input '{name}' expects a number ({ptype}) but got a {json_type_name(value)}")
    elif ptype == "BOOLEAN":
        if not isinstance(value, bool):
            raise InputError(f"input '{name}' expects a boolean but got a {json_type_name(value)}")
    elif ptype == "LIST":
        if not isinstance(value, list):
            raise InputError(f"input '{name}' expects a list but got a {json_type_name(value)}")
    elif ptype in ("STRUCT", "TASK_FINAL_STATUS", "TASK_CONFIG") and not isinstance(value, dict):
        raise InputError(f"input '{name}' expects a struct but got a {json_type_name(value)}")
    if definition.literals and value not in definition.literals:
        allowed = ", ".join(value_to_text(v) for v in definition.literals)
        raise InputError(f"input '{name}' is {value_to_text(value)!r}, which is not one of: {allowed}")
    return value


def iteration_display_name(loop_name: str, index: int) -> str:
    """``<loop>-iteration-<index>`` (KFP's), its loop's part shortened if the whole would
    not fit a display name (the spec allows the loop's own name the full ``MAX_NAME``)."""
    suffix = f"-iteration-{index}"
    if len(loop_name) + len(suffix) > MAX_NAME:
        loop_name = loop_name[: MAX_NAME - len(suffix) - 1] + "…"
    return loop_name + suffix
