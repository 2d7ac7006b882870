"""Read-side queries for runs, tasks, attempts and logs, scoped to the user's namespaces."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.cache import cache
from django.db.models import (
    BooleanField,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Q,
    QuerySet,
    Window,
)
from django.db.models.functions import RowNumber

from apps.core.choices import PipelineFormat, RuntimeState, StorageState, TaskKind
from apps.core.exceptions import NotFound
from apps.core.graphviz_svg import DRAWING_VERSION, GraphRenderError, RenderedGraph, render_graph_svg
from apps.core.models import Namespace
from apps.core.selectors import namespace_list_for_user
from apps.core.specs import graph_for_spec
from apps.core.storage import storage_scope
from apps.engine.graph import Graph
from apps.engine.keys import template_key
from apps.engine.rerun import task_spec_for_key
from apps.runs.filters import ExecutionFilterSet, RunFilterSet, TaskFilterSet
from apps.runs.models import Run, Task, TaskAttempt
from apps.storage import (
    Location,
    LocationError,
    LogChunk,
    LogStore,
    RunDir,
    UnsafePathError,
    check_pipeline_root,
    owning_prefix,
)


def _uuid(value: Any, what: str) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"{what} {value} not found") from None


def run_list(*, user: Any, namespace: Namespace | None = None, experiment: Any = None) -> QuerySet[Run]:
    """Runs the user may see (of one namespace and/or experiment if given), with what
    list pages show joined in (no N+1)."""
    qs = Run.objects.filter(namespace__in=namespace_list_for_user(user=user))
    if namespace is not None:
        qs = qs.filter(namespace=namespace)
    if experiment is not None:
        # An experiment's runs are all in its namespace (run_create refuses others).
        # Saying so as a constant lets the (namespace, experiment, ...) index answer the
        # experiment page alone; with only the namespaces subquery, MariaDB read every
        # run of the experiment's rows to check it: 0.4 s for 3,000 runs.
        qs = qs.filter(namespace_id=experiment.namespace_id, experiment=experiment)
    # The specs and the version's source text are left out: the lists never show them,
    # and a version's can be megabytes, read once per listed run otherwise.
    return qs.select_related(
        "namespace", "experiment", "pipeline_version", "pipeline_version__pipeline", "recurring_run"
    ).defer(
        "pipeline_spec",
        "platform_spec",
        "executor_state",
        "pipeline_version__pipeline_spec",
        "pipeline_version__platform_spec",
        "pipeline_version__source",
    )


def run_list_by_ids(*, user: Any, ids: Sequence[uuid.UUID], with_spec: bool = False) -> QuerySet[Run]:
    """The runs with these ids that the user may see (others are left out); with
    ``with_spec`` nothing is deferred (the compare page reads the specs)."""
    qs = run_list(user=user).filter(pk__in=ids)
    return qs.defer(None) if with_spec else qs


def run_get(*, user: Any, run_id: Any, with_spec: bool = True) -> Run:
    """One run the user may see, or NotFound."""
    qs = Run.objects.filter(namespace__in=namespace_list_for_user(user=user)).select_related(
        "namespace", "experiment", "pipeline_version", "pipeline_version__pipeline", "recurring_run"
    )
    if not with_spec:
        qs = qs.defer("pipeline_spec", "platform_spec")
    try:
        return qs.get(pk=_uuid(run_id, "run"))
    except Run.DoesNotExist:
        raise NotFound(f"run {run_id} not found") from None


def storage_owned_prefix(*, uri: str, namespace_id: Any, known_runs: Iterable[Run] = ()) -> Location | None:
    """The prefix of ``uri`` the namespace owns (the run directory of one of its runs, or
    an allowed import prefix; see ``apps.storage.ownership``), or None when it owns none.

    ``known_runs`` are runs the caller already has (an artifact's own run): when one of
    them owns the URI, no query is made; otherwise one query looks up the namespace's
    runs among the run ids the URI contains.
    """
    known = [run for run in known_runs if run.namespace_id == namespace_id]

    def runs(ids: Sequence[str]) -> Iterator[RunDir]:
        seen = set()
        for run in known:
            if str(run.pk) in ids:
                seen.add(str(run.pk))
                yield RunDir(str(run.pk), run.pipeline_root, run.pipeline_name)
        rest = [run_id for run_id in ids if run_id not in seen]
        if rest:
            rows = Run.objects.filter(pk__in=rest, namespace_id=namespace_id).values_list(
                "pk", "pipeline_root", "pipeline_name"
            )
            for pk, root, name in rows:
                yield RunDir(str(pk), root, name)

    return owning_prefix(uri, scope=storage_scope(), runs=runs)


def run_pipeline_root_note(*, run: Run) -> str:
    """Why a run does not use its pipeline's ``defaultPipelineRoot`` (empty when it does,
    or when the pipeline has none): the IR's root is not one of the configured roots."""
    default = str((run.pipeline_spec or {}).get("defaultPipelineRoot") or "")
    if not default or not run.pipeline_root:
        return ""
    try:
        if check_pipeline_root(default, storage_scope()) == run.pipeline_root:
            return ""
    except LocationError:
        return (
            f"The pipeline's defaultPipelineRoot {default} is not one of Canal's configured roots, "
            f"so this run writes to {run.pipeline_root}."
        )
    return ""


def run_get_unscoped(*, run_id: Any) -> Run:
    """A run by id, for trusted callers (workers, management commands)."""
    try:
        return Run.objects.select_related("namespace", "experiment").get(pk=_uuid(run_id, "run"))
    except Run.DoesNotExist:
        raise NotFound(f"run {run_id} not found") from None


def task_list(*, run: Run) -> QuerySet[Task]:
    """A run's tasks in creation order, without the stored launch."""
    return Task.objects.filter(run=run).defer("launch").order_by("created_at", "key")


def task_list_with_cache_origin(*, run: Run) -> QuerySet[Task]:
    """``task_list`` with each task's cache origin (and its run's name) joined in, as
    ``task_why`` reads them (one query however many tasks were cached)."""
    return (
        task_list(run=run)
        .select_related("cached_from", "cached_from__run")
        .defer("cached_from__launch", "cached_from__run__pipeline_spec", "cached_from__run__platform_spec")
    )


def task_get(*, run: Run, task_id: Any) -> Task:
    """One task of a run (by id or by key), or NotFound."""
    qs = Task.objects.filter(run=run)
    try:
        return qs.get(pk=_uuid(task_id, "task"))
    except (NotFound, Task.DoesNotExist):
        task = qs.filter(key=str(task_id)).first()
        if task is None:
            raise NotFound(f"task {task_id} not found in run {run.pk}") from None
        return task


def task_attempts(*, task: Task) -> QuerySet[TaskAttempt]:
    """A task's attempts, first to last."""
    return task.attempts.order_by("number")


def task_log_read(
    *, task: Task, attempt: int | None = None, offset: int = 0, limit: int = 256 * 1024
) -> LogChunk:
    """A slice of a task attempt's log (latest attempt by default), for tailing."""
    number = attempt or task.attempt
    row = task.attempts.filter(number=number).first()
    path = row.log_path if row else task.log_path
    if not path:
        raise NotFound("this task has no log (it did not run a process)")
    store = LogStore(settings.CANAL_LOG_DIR)
    try:
        return store.read(path, offset=max(0, offset), limit=limit)
    except FileNotFoundError:
        raise NotFound("the log file is gone") from None
    except UnsafePathError:
        raise NotFound("log not found") from None


# --- Web UI reads: run lists, the run graph overlay, task tables ---------------------------


def run_list_with_duration(
    *, user: Any, namespace: Namespace | None = None, experiment: Any = None
) -> QuerySet[Run]:
    """``run_list`` with a ``duration`` annotation (finished - started) to sort by, for the
    runs tables: only the columns a table shows are read. With every column of the run
    and of the four rows joined to it (a recurring run's spec, a run's parameters and
    state history, each decoded from JSON), a page of 50 runs spent about a third of its
    CPU making model instances."""

    return (
        run_list(user=user, namespace=namespace, experiment=experiment)
        .select_related(None)
        .select_related("experiment", "pipeline_version__pipeline", "recurring_run")
        .only(*RUN_TABLE_FIELDS)
        .annotate(
            duration=ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
        )
    )


#: What a row of the runs tables shows (templates/runs/_table.html), and the keys of
#: the joined rows it links.
RUN_TABLE_FIELDS = (
    *("id", "namespace_id", "display_name", "state", "storage_state", "pipeline_name"),
    *("created_at", "started_at", "finished_at"),
    *("experiment__id", "experiment__display_name"),
    *("pipeline_version__id", "pipeline_version__display_name", "pipeline_version__pipeline_id"),
    *("pipeline_version__pipeline__id", "pipeline_version__pipeline__display_name"),
    *("recurring_run__id", "recurring_run__display_name"),
)


def run_table_filter(
    *, runs: QuerySet[Run], archived: bool, params: Any, request: Any = None
) -> RunFilterSet:
    """The runs table's rows: ``runs`` (from run_list_with_duration) archived or not,
    filtered and sorted by the request parameters ``params`` (``q``, ``state``,
    ``sort``); ``.qs`` is the queryset."""
    runs = runs.filter(storage_state=StorageState.ARCHIVED if archived else StorageState.AVAILABLE)
    return RunFilterSet(params, runs, request=request)


def run_recent_by_experiment(*, experiment_ids: list[Any], limit: int = 5) -> dict[Any, list[Any]]:
    """The ``limit`` newest non-archived runs of each experiment, in one query
    (a window function ranks runs per experiment)."""

    if not experiment_ids:
        return {}
    ranked = (
        Run.objects.filter(experiment_id__in=experiment_ids)
        .exclude(storage_state=StorageState.ARCHIVED)
        .annotate(
            recent_rank=Window(
                RowNumber(), partition_by=[F("experiment_id")], order_by=[F("created_at").desc(), F("id")]
            )
        )
        .filter(recent_rank__lte=limit)
        .values("id", "experiment_id", "state", "display_name", "created_at")
        .order_by("experiment_id", "-created_at")
    )
    out: dict[Any, list[Mapping[str, Any]]] = {}
    for row in ranked:
        out.setdefault(row["experiment_id"], []).append(row)
    return out


GRAPH_TASK_FIELDS = (
    "id",
    "key",
    "node",
    "created_at",
    "kind",
    "state",
    "name",
    "display_name",
    "iteration_index",
    "iteration_count",
    "started_at",
    "finished_at",
    "cached_from_id",
)


def task_graph_counts(*, run: Run) -> list[Mapping[str, Any]]:
    """Every task of a run with a recorded node, counted per graph node, kind, state and
    whether the cache served it: a few rows per node whatever the number of iterations,
    one GROUP BY read from the (run, node, kind, state, cached_from) index alone."""
    return list(
        Task.objects.filter(run=run)
        .exclude(node="")
        .annotate(cached=ExpressionWrapper(Q(cached_from__isnull=False), output_field=BooleanField()))
        .values("node", "kind", "state", "cached")
        .annotate(n=Count("pk"))
        .order_by()
    )


_READ_KINDS = (TaskKind.ROOT, TaskKind.LOOP)
_STEP_KINDS = [k for k in TaskKind.values if k not in ("ROOT", "LOOP", "ITERATION")]
_NOT_ITERATION = [k for k in TaskKind.values if k != "ITERATION"]


def task_graph_rows(*, run: Run, counts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The task rows the graph overlay reads one by one (one query): the root, the loops
    (their declared iteration counts), the tasks of the nodes that ran once (``counts``
    says which: a node's panel opens its task) and any task with no recorded node
    (written before Task.node existed). The rest, iterations and the tasks inside them,
    stay counted."""
    per_node: dict[str, int] = {}
    read = set()
    for group in counts:
        if group["kind"] in _READ_KINDS:
            read.add(group["node"])
        elif group["kind"] != TaskKind.ITERATION:
            per_node[group["node"]] = per_node.get(group["node"], 0) + int(group["n"])
    read.update(node for node, n in per_node.items() if n == 1)
    # Ranges of the (run, node, kind, ...) index, so that only the rows read are visited;
    # the ORDER BY is done here: in SQL it made MariaDB walk (run, created_at) through
    # every row of the run.
    rows = list(
        Task.objects.filter(run=run)
        .filter(Q(node__in=sorted(read), kind__in=_NOT_ITERATION) | Q(node=""))
        .order_by()
        .values(*GRAPH_TASK_FIELDS)
    )
    rows.sort(key=lambda row: (row["created_at"], row["key"]))
    return rows


def task_node_rows(*, run: Run, node: str, kinds: Sequence[str]) -> list[dict[str, Any]]:
    """The tasks of one graph node of a run (those of ``kinds``), as task_graph_rows
    gives them: what a node's panel lists when the overlay only counted them."""
    return list(
        Task.objects.filter(run=run, node=node, kind__in=kinds)
        .order_by("created_at", "key")
        .values(*GRAPH_TASK_FIELDS)
    )


def task_table(*, run: Run) -> QuerySet[Task]:
    """A run's tasks (the root excepted) for the task list, with a ``duration`` to sort by."""

    return (
        task_list(run=run)
        .exclude(kind=TaskKind.ROOT)
        .defer("inputs", "outputs", "command", "state_history")
        .annotate(
            duration=ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
        )
    )


_GROUP_KINDS = (TaskKind.ROOT, TaskKind.DAG, TaskKind.LOOP, TaskKind.ITERATION)


def task_table_filter(*, run: Run, params: Any, request: Any = None) -> TaskFilterSet:
    """The run page's task table: task_table filtered and sorted by the request
    parameters ``params`` (``tstate``, ``tq``, ``tsort``); ``.qs`` is the queryset."""
    return TaskFilterSet(params, task_table(run=run), request=request)


def run_failed_steps(*, run: Run, limit: int = 20) -> list[Task]:
    """The run's failed steps (not the DAGs and loops around them), first to fail first
    (one query; at most ``limit``). The first is what the run page's banner names."""
    return list(
        Task.objects.filter(run=run, state=RuntimeState.FAILED)
        .exclude(kind__in=_GROUP_KINDS)
        .only("id", "run_id", "key", "name", "display_name", "error", "finished_at")
        .order_by(F("finished_at").asc(nulls_last=True), "created_at", "key")[:limit]
    )


def task_get_detail(*, run: Run, task_id: Any) -> Task:
    """One task of a run with what its panel shows (cache origin, parent) joined in."""
    task = task_get(run=run, task_id=task_id)
    return Task.objects.select_related("cached_from", "cached_from__run", "parent").get(pk=task.pk)


def task_siblings(*, task: Task) -> list[Task]:
    """The other tasks of the same DAG instance (same parent), with their outputs."""
    return list(
        Task.objects.filter(run_id=task.run_id, parent_id=task.parent_id)
        .exclude(pk=task.pk)
        .only("id", "name", "key", "outputs")
    )


def task_parent(*, task: Task) -> Task | None:
    """The DAG, iteration or root task that holds ``task`` (its recorded inputs)."""
    if task.parent_id is None:
        return None
    return Task.objects.filter(pk=task.parent_id).only("id", "key", "inputs").first()


def run_reruns(*, run: Run) -> list[Run]:
    """The step re-runs started from ``run``, newest first."""
    return list(
        Run.objects.filter(rerun_of=run)
        .only("id", "display_name", "state", "rerun_of_task_key", "created_at", "rerun_of_id")
        .order_by("-created_at")
    )


_CONDITION_INPUT = re.compile(r"parameter_values\[['\"]([^'\"]+)['\"]\]")


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def task_why(*, run: Run, task: Task) -> str:
    """One sentence saying why ``task`` ran, was served from cache, was skipped (which
    condition, with the values it saw) or was not reached (which upstream). Reads the
    run's spec for the task's upstream tasks and condition; ``task.cached_from`` should
    be joined (``task_get_detail``)."""
    if task.kind in (TaskKind.ROOT, TaskKind.ITERATION):
        return ""
    message = task.status_message or ""
    fingerprint = f"fingerprint {task.cache_fingerprint[:12]}…" if task.cache_fingerprint else ""
    if task.cached_from_id and task.cached_from is not None:
        origin = task.cached_from
        return (
            f"Served from cache: task {origin.key} of run “{origin.run.display_name}” ran with the same "
            f"component and inputs ({fingerprint or 'same fingerprint'}), so its outputs were reused."
        )
    spec: dict[str, Any] = {}
    if run.spec_format == PipelineFormat.KFP_IR:
        spec = task_spec_for_key(run.pipeline_spec or {}, task.key) or {}
    condition = str((spec.get("triggerPolicy") or {}).get("condition") or "")
    if task.state == "SKIPPED":
        if message.startswith("condition false: "):
            condition = message.removeprefix("condition false: ")
            seen = ((task.inputs or {}).get("parameters")) or {}
            names = [n for n in dict.fromkeys(_CONDITION_INPUT.findall(condition)) if n in seen]
            values = ", ".join(f"{n.removeprefix('pipelinechannel--')} = {_short(seen[n])}" for n in names)
            return f"Skipped: its condition {condition} evaluated to false" + (
                f" (with {values})." if values else "."
            )
        if message.startswith("upstream "):
            return f"Not reached: {message}, and it runs only when its upstream tasks succeed."
        return f"Skipped: {message}." if message else "Skipped."
    if task.state == "CANCELED":
        return f"Canceled: {message or task.error or 'the run was terminated'}."
    if run.rerun_of_id and task.key == run.rerun_of_task_key:
        return (
            f"Ran as the re-run of task {task.key} of its origin run, with caching off "
            "(upstream values came from the origin's records)."
        )
    deps = [str(d) for d in spec.get("dependentTasks") or [] if not str(d).startswith("rerun-input-")]
    if task.state == "PENDING":
        return "Waiting for a worker." if task.dispatched_at else "Waiting for its upstream tasks."
    if deps:
        all_done = (spec.get("triggerPolicy") or {}).get("strategy") == "ALL_UPSTREAM_TASKS_COMPLETED"
        reason = f"its upstream task{'s' if len(deps) > 1 else ''} {', '.join(deps)} " + (
            "finished" if all_done else "succeeded"
        )
    elif spec:
        reason = "it has no upstream tasks"
    else:  # an Argo workflow's node, or a task the spec no longer names: no claim about upstream
        reason = "the executor started it"
    if condition:
        reason += f" and its condition {condition} was true"
    sentence = f"Ran because {reason}"
    if task.kind == TaskKind.CONTAINER:
        status = task.cache_status or ""
        if status == "caching disabled":
            sentence += "; caching is off for it"
        elif status.startswith("not cached"):
            sentence += f"; no earlier result to reuse ({fingerprint})" if fingerprint else f"; {status}"
        elif status:
            sentence += f"; cache: {status}"
    return sentence + "."


def task_children_under(*, run: Run, key_prefix: str) -> QuerySet[Task]:
    """The tasks under one iteration or sub-DAG (keys starting with ``key_prefix + '/'``)."""
    return task_list(run=run).filter(key__startswith=key_prefix.rstrip("/") + "/")


def task_children_rows(*, run: Run, key_prefix: str) -> list[Mapping[str, Any]]:
    """task_children_under as rows of what the group panel shows (no model instances)."""
    return list(
        task_children_under(run=run, key_prefix=key_prefix).values(
            "id", "key", "kind", "state", "started_at", "finished_at", "cached_from_id"
        )
    )


def task_list_named(*, run: Run, name: str, limit: int = 2) -> list[Task]:
    """At most ``limit`` of the run's tasks with this name."""
    return list(task_list(run=run).filter(name=name)[:limit])


def task_log_stream(*, task: Task, attempt: int | None = None, chunk: int = 256 * 1024) -> Any:
    """Yield a task attempt's whole log in chunks (for downloads); NotFound if it has none."""
    first = task_log_read(task=task, attempt=attempt, offset=0, limit=chunk)

    def chunks() -> Any:
        current = first
        while True:
            if current.data:
                yield current.data
            if not current.data or current.at_end:
                return
            current = task_log_read(task=task, attempt=attempt, offset=current.next_offset, limit=chunk)

    return chunks()


# --- The run's DAG: the static graph of its spec with the tasks' states overlaid ----------

ACTIVE_ORDER = ("RUNNING", "CANCELING", "PENDING", "PAUSED")


def _display_state(row: dict[str, Any]) -> str:
    if row["state"] == "SUCCEEDED" and row.get("cached_from_id"):
        return "CACHED"
    return str(row["state"])


def aggregate_state(states: list[str]) -> str:
    """One state standing for many (a loop's body node): active first, then failures."""
    if not states:
        return ""
    present = set(states)
    if len(present) == 1:
        return states[0]
    for state in ACTIVE_ORDER:
        if state in present:
            return state
    for state in ("FAILED", "CANCELED"):
        if state in present:
            return state
    if present <= {"SKIPPED"}:
        return "SKIPPED"
    return "SUCCEEDED"


TERMINAL_STATES = frozenset({"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED"})
# A loop's iterations in words people scan: "3 running · 5 waiting · 2 done".
LOOP_WORDS = (
    ("running", ("RUNNING", "CANCELING")),
    ("waiting", ("PENDING", "PAUSED")),
    ("done", ("SUCCEEDED", "CACHED")),
    ("failed", ("FAILED",)),
    ("canceled", ("CANCELED",)),
    ("skipped", ("SKIPPED",)),
)


def loop_badge(counts: dict[str, int], *, unborn: int = 0) -> str:
    """``3 running · 5 waiting · 2 done · 1 failed`` for a loop's iteration (or a node's run) counts;
    ``unborn`` iterations (not created yet) count as waiting."""
    parts = []
    for word, states in LOOP_WORDS:
        n = sum(counts.get(s, 0) for s in states) + (unborn if word == "waiting" else 0)
        if n:
            parts.append(f"{n} {word}")
    return " · ".join(parts)


def _bucket(kind: str) -> str:
    return "iteration" if kind == "ITERATION" else "loop" if kind == "LOOP" else "task"


class RunGraph:
    """A run's static graph (node ids are template keys) with, per node, one display
    state, per-state counts and a badge for loops and for nodes that ran more than once.
    ``signature`` changes whenever the drawing would.

    It counts every task per node, kind and state (``counts``, see task_graph_counts)
    and reads only the root, the loops and the tasks of nodes that ran once (``rows``,
    see task_graph_rows), so a 5,000-iteration loop costs a handful of grouped rows,
    not 10,000 rows; ``instances`` reads one node's rows when a panel asks for them."""

    def __init__(
        self,
        graph: Any,
        rows: list[dict[str, Any]],
        *,
        counts: Sequence[Mapping[str, Any]] = (),
        prefix: str = "",
        finished: bool = False,
        run: Run | None = None,
    ) -> None:

        self.graph = graph
        self.rows = rows
        self.run = run
        self.prefix = prefix
        self.by_node: dict[str, list[dict[str, Any]]] = {}
        self.iterations: dict[str, list[dict[str, Any]]] = {}
        self.loop_rows: dict[str, list[dict[str, Any]]] = {}
        self.root: dict[str, Any] | None = None
        # Counted (not read) tasks per kind ("iteration", "loop", "task"), node and display state.
        self.counted: dict[str, dict[str, dict[str, int]]] = {"iteration": {}, "loop": {}, "task": {}}
        self.task_count = len(rows)
        for row in rows:
            if row["kind"] == "ROOT":
                self.root = row
                continue
            try:
                node_id = template_key(row["key"])
            except ValueError:
                continue
            # An Argo graph names its nodes without the root's key ("a/b", not "root/a/b").
            node_id = node_id.removeprefix(prefix)
            if row["kind"] == "ITERATION":
                self.iterations.setdefault(node_id, []).append(row)
            elif row["kind"] == "LOOP":
                self.loop_rows.setdefault(node_id, []).append(row)
            else:
                self.by_node.setdefault(node_id, []).append(row)
        for group in counts:
            if group["kind"] == "ROOT":
                continue
            by_state = self.counted[_bucket(group["kind"])].setdefault(group["node"].removeprefix(prefix), {})
            state = "CACHED" if group["state"] == "SUCCEEDED" and group["cached"] else str(group["state"])
            by_state[state] = by_state.get(state, 0) + int(group["n"])
        # The counts include the rows that were read too: take those out.
        for row in rows:
            if not row.get("node") or row["kind"] == "ROOT":
                continue
            counted = self.counted[_bucket(row["kind"])].get(row["node"].removeprefix(prefix), {})
            state = _display_state(row)
            if counted.get(state, 0) > 1:
                counted[state] -= 1
            else:
                counted.pop(state, None)
        for bucket in self.counted.values():
            for node_id in [n for n, by_state in bucket.items() if not by_state]:
                del bucket[node_id]
            self.task_count += sum(sum(by_state.values()) for by_state in bucket.values())
        self.states: dict[str, str] = {}
        self.badges: dict[str, str] = {}
        self.counts: dict[str, dict[str, int]] = {}
        for node in graph.nodes:
            self._overlay(node.id, node.kind)
        self._not_run(graph, finished=finished)

        blob = json.dumps([self.states, self.badges], sort_keys=True)
        self.signature = hashlib.sha1(blob.encode(), usedforsecurity=False).hexdigest()[:16]

    def _not_run(self, graph: Any, *, finished: bool) -> None:
        """Nodes with no task row: SKIPPED when they never will get one (everything inside a
        skipped group, i.e. a condition that was false, and, once the run is finished,
        whatever never started), else PENDING. A group drawn only for layout takes its
        children's state; an artifact node its producer's."""
        parents = {node.id: node.parent for node in graph.nodes}
        children: dict[str, list[str]] = {}
        for node in graph.nodes:
            if node.parent is not None:
                children.setdefault(node.parent, []).append(node.id)
        # A group drawn for layout only (an Argo step's parallel group) never gets a row:
        # it stands for its children. Children come after their group, so go backwards.
        for node in reversed(graph.nodes):
            if node.id not in self.states and node.id in children:
                inner = [self.states[c] for c in children[node.id] if self.states.get(c)]
                if inner:
                    self.states[node.id] = aggregate_state(inner)

        def skipped_above(node_id: str) -> bool:
            parent = parents.get(node_id)
            while parent is not None:
                if self.states.get(parent) == "SKIPPED":
                    return True
                parent = parents.get(parent)
            return False

        for node in graph.nodes:
            if node.kind == "artifact":
                continue
            if node.id not in self.states:
                # Otherwise it has not started yet: pending, with its glyph (as in KFP's UI).
                self.states[node.id] = "SKIPPED" if finished or skipped_above(node.id) else "PENDING"
        for node in graph.nodes:
            if node.kind != "artifact":
                continue
            producer = self.states.get(str(node.detail.get("producer", "")), "")
            if producer in ("SUCCEEDED", "CACHED", "SKIPPED"):
                self.states[node.id] = producer
            elif producer in ("FAILED", "CANCELED") or finished:
                self.states[node.id] = "SKIPPED"  # never written
            else:
                self.states[node.id] = "PENDING"

    def _overlay(self, node_id: str, kind: str) -> None:
        if kind == "loop":
            loops = self.loop_rows.get(node_id, [])
            counted_loops = self.counted["loop"].get(node_id, {})
            counts: dict[str, int] = {}
            for row in self.iterations.get(node_id, []):
                state = _display_state(row)
                counts[state] = counts.get(state, 0) + 1
            for state, n in self.counted["iteration"].get(node_id, {}).items():
                counts[state] = counts.get(state, 0) + n
            iterations = sum(counts.values())
            total = sum(r["iteration_count"] or 0 for r in loops)
            loop_count = len(loops) + sum(counted_loops.values())
            loop_states = [str(r["state"]) for r in loops] + list(counted_loops)
            self.counts[node_id] = counts
            if loop_count:
                self.states[node_id] = aggregate_state(loop_states)
                head = f"{total} iteration{'s' if total != 1 else ''}"
                if loop_count > 1:
                    head += f" in {loop_count} loops"
                # Iterations not created yet (a parallelism limit) are waiting too, unless
                # the loop is over (then they never will be).
                unborn = max(0, total - iterations)
                if all(state in TERMINAL_STATES for state in loop_states):
                    unborn = 0
                badge = loop_badge(counts, unborn=unborn)
                self.badges[node_id] = f"{head} · {badge}" if badge else head
            return
        rows = self.by_node.get(node_id, [])
        counted = self.counted["task"].get(node_id, {})
        total = len(rows) + sum(counted.values())
        if not total:
            return
        counts = {}
        for row in rows:
            state = _display_state(row)
            counts[state] = counts.get(state, 0) + 1
        for state, n in counted.items():
            counts[state] = counts.get(state, 0) + n
        if total == 1:
            self.states[node_id] = next(iter(counts))
            return
        self.counts[node_id] = counts
        self.states[node_id] = aggregate_state(list(counts))
        self.badges[node_id] = f"{total} runs · {loop_badge(counts)}"

    def _counted_rows(self, node_id: str, kinds: Sequence[str]) -> list[dict[str, Any]]:
        if self.run is None:
            return []
        return task_node_rows(run=self.run, node=f"{self.prefix}{node_id}", kinds=kinds)

    def instances(self, node_id: str) -> list[dict[str, Any]]:
        """The task rows that ran a node (a loop: its iterations); counted ones are read now."""
        if node_id in self.counted["iteration"]:
            return self._counted_rows(node_id, ["ITERATION"])
        if node_id in self.iterations:
            return self.iterations[node_id]
        if node_id in self.counted["task"]:
            return self._counted_rows(node_id, _STEP_KINDS)  # the read ones included
        return self.by_node.get(node_id, [])

    def loops(self, node_id: str) -> list[dict[str, Any]]:
        """The loop rows of a loop node."""
        return self.loop_rows.get(node_id, [])


def run_graph(*, run: Run) -> RunGraph:
    """The run's graph overlay: one query for the task rows; the spec's graph is parsed
    once per run and process (a run's spec never changes)."""
    prefix = "root/" if run.spec_format == PipelineFormat.ARGO else ""
    counts = task_graph_counts(run=run)
    return RunGraph(
        _run_static_graph(run),
        task_graph_rows(run=run, counts=counts),
        counts=counts,
        prefix=prefix,
        finished=run.state in RuntimeState.terminal(),
        run=run,
    )


_GRAPH_CACHE: dict[str, Any] = {}


def _run_static_graph(run: Run) -> Any:

    key = str(run.pk)
    graph = _GRAPH_CACHE.get(key)
    if graph is None:
        try:
            graph = graph_for_spec(run.spec_format, run.pipeline_spec, run.platform_spec)
        except ValueError:
            graph = Graph()
        if len(_GRAPH_CACHE) > 256:
            _GRAPH_CACHE.clear()
        _GRAPH_CACHE[key] = graph
    return graph


def _node_link(node_id: str) -> str:
    # Relative to the run page: without JavaScript the link opens the node's panel there.
    return f"?{urlencode({'node': node_id})}#graph"


def run_graph_drawing(*, run: Run, overlay: RunGraph) -> Any:
    """The overlay drawn as SVG, cached by run and signature (a finished run is drawn once).
    None when it cannot be drawn (no ``dot``, or a layout that takes too long)."""

    key = f"canal:run-svg:{DRAWING_VERSION}:{run.pk}:{overlay.signature}"
    cached = cache.get(key)
    if cached is not None:
        return RenderedGraph(**cached)
    try:
        drawing = render_graph_svg(
            overlay.graph, states=overlay.states, badges=overlay.badges, link=_node_link
        )
    except GraphRenderError:
        return None
    cache.set(key, {"svg": drawing.svg, "element_ids": drawing.element_ids}, timeout=3600)
    return drawing


def task_compare_rows(*, run: Run) -> list[Mapping[str, Any]]:
    """A run's steps (containers and importers) for the per-step diff of run compare."""

    return list(
        Task.objects.filter(run=run, kind__in=[TaskKind.CONTAINER, TaskKind.IMPORTER])
        .order_by("key")
        .values("key", "state", "started_at", "finished_at", "cached_from_id", "outputs")
    )


def run_sandbox_warnings(*, run: Run) -> list[str]:
    """Why some of the run's steps ran without the step sandbox (one query; usually empty)."""
    notes = (
        TaskAttempt.objects.filter(task__run=run)
        .exclude(sandbox="")
        .values_list("sandbox", flat=True)
        .distinct()[:5]
    )
    return list(notes)


# --- Executions: every step run across runs (KFP's Executions page) ------------------------

#: The task kinds that are executions: the steps that ran (or would have run) a process or
#: recorded an import. Groups (the root, sub-DAGs, loops, iterations) only gather steps.
EXECUTION_KINDS = (TaskKind.CONTAINER, TaskKind.IMPORTER)


def execution_list(*, user: Any, namespace: Namespace | None = None) -> QuerySet[Task]:
    """The steps of every run the user may see (of ``namespace`` if given), with their run
    joined in and a ``duration`` to sort by; the big JSON columns are left out."""

    qs = _executions(user=user, namespace=namespace)
    return (
        qs.select_related("run")
        .defer(
            "launch",
            "inputs",
            "outputs",
            "command",
            "state_history",
            "run__pipeline_spec",
            "run__platform_spec",
            "run__executor_state",
            "run__state_history",
            "run__runtime_parameters",
        )
        .annotate(
            duration=ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
        )
    )


def execution_filter(
    *, user: Any, namespace: Namespace | None, params: Any, request: Any = None
) -> ExecutionFilterSet:
    """The executions list's rows: execution_list filtered and sorted by the request
    parameters ``params`` (``q``, ``pipeline``, ``component``, ``state``, ``cache``,
    ``sort``); ``.qs`` is the queryset."""
    return ExecutionFilterSet(params, execution_list(user=user, namespace=namespace), request=request)


def execution_filter_choices(*, user: Any, namespace: Namespace | None = None) -> dict[str, list[str]]:
    """The filters' options: the pipeline names of the user's runs and the component
    names of their executions, in two queries. Each reads an index's distinct values:
    the pipelines come from the runs, not from every step of them (a DISTINCT over the
    steps joined to their runs took 15 s at 1M tasks)."""

    visible = namespace_list_for_user(user=user).values_list("pk", flat=True)
    if namespace is not None:
        visible = visible.filter(pk=namespace.pk)
    ids = list(visible)
    # DISTINCT over an index's leading columns, all of them selected and the namespaces
    # given as values: MariaDB then reads one entry per distinct value ("index for
    # group-by"). With the namespace left out of the SELECT, or the kinds in the WHERE,
    # or the membership subquery in it, it read every entry: all 333k of a namespace's
    # steps, 75-150 ms. The kinds are chosen here instead.
    pipelines = (
        Run.objects.filter(namespace_id__in=ids)
        .order_by()
        .values_list("namespace_id", "pipeline_name")
        .distinct()
    )
    components = (
        Task.objects.filter(namespace_id__in=ids)
        .order_by()
        .values_list("namespace_id", "kind", "component_name")
        .distinct()
    )
    return {
        "pipelines": sorted({name for _, name in pipelines if name}),
        "components": sorted({name for _, kind, name in components if name and kind in EXECUTION_KINDS}),
    }


def _executions(*, user: Any, namespace: Namespace | None) -> QuerySet[Task]:
    """The user's container and importer steps (of ``namespace`` if given), found by the
    task's own namespace column and indexes, not through the runs."""
    qs = Task.objects.filter(namespace__in=namespace_list_for_user(user=user), kind__in=EXECUTION_KINDS)
    return qs.filter(namespace=namespace) if namespace is not None else qs


def execution_get(*, user: Any, task_id: Any) -> Task:
    """One step the user may see, with its run and cache origin, or NotFound."""

    pk = _uuid(task_id, "execution")
    task = (
        Task.objects.filter(run__namespace__in=namespace_list_for_user(user=user), pk=pk)
        .select_related(
            "run", "run__namespace", "run__pipeline_version", "run__pipeline_version__pipeline", "cached_from"
        )
        .defer("launch", "run__pipeline_spec", "run__platform_spec")
        .first()
    )
    if task is None:
        raise NotFound(f"execution {task_id} not found")
    return task
