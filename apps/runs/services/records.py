"""Conversions between Task rows and the engine's records, and the per-process run cache.

Planning reads every node of a run. For a 1,000-way fan-out that is thousands of
rows, and a big run is planned every time a step finishes, so re-reading them all
(and rebuilding the engine from them) would make each advance O(run size) while
holding the run's lock. Instead every change the engine cares about stamps the rows
it writes with the run's next ``revision``, and a worker keeps, per run, the rows it
has seen and the engine it built from them (``RunRecords.engine``): an advance reads
only rows newer than its copy and feeds those to the engine. Deleting rows (run
retry) bumps ``records_epoch``, which starts every copy over.

An advance takes the run's entry out of the cache (it owns it: the engine is changed
in place, nothing is copied) and the entry goes back only when the transaction
commits. A rolled-back advance therefore loses the entry, and the next one rebuilds
from the committed rows: a half-applied plan never survives in a worker's memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from apps.core.choices import RuntimeState
from apps.core.db import select_values, update_where
from apps.engine.model import ArtifactRef, NodeIO, NodeRecord
from apps.engine.serialize import to_jsonable
from apps.runs.models import Run, Task

RECORD_FIELDS = (
    "id",
    "key",
    "kind",
    "state",
    "inputs",
    "outputs",
    "error",
    "iteration_index",
    "iteration_count",
)
# A worker keeps the records and engine of the runs it advanced lately, up to this many
# runs and this many nodes in all (a 5,000-wide fan-out is 10,000 nodes); a run that
# finished is dropped at once.
CACHED_RUNS = 64
CACHED_NODES = 50_000


def io_to_json(io: NodeIO) -> dict[str, Any]:
    """A NodeIO as stored in Task.inputs / Task.outputs."""
    data: dict[str, Any] = {}
    if io.parameters:
        data["parameters"] = to_jsonable(io.parameters)
    if io.artifacts:
        data["artifacts"] = {name: [to_jsonable(ref) for ref in refs] for name, refs in io.artifacts.items()}
    return data


def io_from_json(data: Mapping[str, Any] | None) -> NodeIO:
    """The stored JSON back into a NodeIO."""
    if not data:
        return NodeIO()
    artifacts = {
        name: [
            ArtifactRef(
                id=str(ref.get("id", "")),
                name=str(ref.get("name", name)),
                uri=str(ref.get("uri", "")),
                schema_title=str(ref.get("schema_title", "system.Artifact")),
                schema_version=str(ref.get("schema_version", "0.0.1")),
                metadata=ref.get("metadata") or {},
            )
            for ref in refs
        ]
        for name, refs in (data.get("artifacts") or {}).items()
    }
    return NodeIO(dict(data.get("parameters") or {}), artifacts)


def record_from_row(row: Mapping[str, Any]) -> NodeRecord:
    """One Task row (as a values() dict) as an engine record."""
    return NodeRecord(
        key=row["key"],
        kind=row["kind"],
        state=row["state"],
        inputs=io_from_json(row["inputs"]),
        outputs=io_from_json(row["outputs"]),
        error=row["error"] or None,
        iteration_index=row["iteration_index"],
        iteration_count=row["iteration_count"],
    )


def load_rows(run: Run | Any) -> list[dict[str, Any]]:
    """The run's task rows, only the columns the engine needs."""
    run_id = run.pk if isinstance(run, Run) else run
    return list(Task.objects.filter(run_id=run_id).values(*RECORD_FIELDS))


def load_records(run: Run | Any) -> list[NodeRecord]:
    """The run's tasks as engine records (uncached: for one-off reads)."""
    return [record_from_row(row) for row in load_rows(run)]


def bump_revision(run: Run) -> int:
    """The revision to stamp on task rows being written now. The caller holds the run's
    row lock (select_for_update), so ``run`` is current and no one else bumps it."""
    update_where(Run, {"pk": run.pk}, revision=next_revision(run))
    return run.revision


def next_revision(run: Run) -> int:
    """``bump_revision`` without writing the run's row, for a caller that writes it (the
    revision with it) later in the same transaction: nothing reads a run's revision from
    its row before then (its lock keeps other transactions out), and the kept engine
    reads the revision from ``run``."""
    run.revision += 1
    return run.revision


@dataclass
class RunRecords:
    """A worker's copy of one run's records, as of ``revision``, and the engine kept for it.

    ``engine`` is the run's ``ActiveExecution`` once the planner built one (the planner
    owns that part: this module only keeps it with the records it was built from and
    fed). ``changed`` holds the records the last refresh read (what the engine has not
    seen yet)."""

    epoch: int
    revision: int
    ids: dict[str, Any] = field(default_factory=dict)
    records: dict[str, NodeRecord] = field(default_factory=dict)
    engine: Any = None
    changed: list[NodeRecord] = field(default_factory=list)


_cache: OrderedDict[Any, RunRecords] = OrderedDict()
_cache_lock = threading.Lock()


def cached_records(run: Run, current: RunRecords | None = None) -> RunRecords:
    """The run's records as of its current revision, reading only what changed since this
    process (or ``current``, an entry from earlier in this transaction) last saw them.

    Call with the run's row lock held. The entry is taken out of the cache: the caller
    owns it (and may change it) until the transaction commits, when it goes back. A
    fresh entry (nothing cached, a new epoch, or a cached revision newer than the
    database's) has every row and no engine."""
    entry = current
    if entry is None:
        with _cache_lock:
            entry = _cache.pop(run.pk, None)
    if entry is None or entry.epoch != run.records_epoch or entry.revision > run.revision:
        entry = RunRecords(epoch=run.records_epoch, revision=run.revision)
        rows: Any = Task.objects.filter(run_id=run.pk).values(*RECORD_FIELDS)
    elif entry.revision == run.revision:
        rows = ()
    else:
        # Every advance reads this: a statement built once per process, not by the ORM.
        # In the order the rows were created (Task's default order), so that a group
        # comes before its children: one finished after them has a newer revision, and an
        # engine fed a child before its parent gives up and is rebuilt from every row.
        rows = select_values(
            Task,
            RECORD_FIELDS,
            {"run_id": run.pk, "revision__gt": entry.revision},
            order_by=("created_at",),
        )
    entry.changed = []
    for row in rows:
        record = record_from_row(row)
        entry.ids[row["key"]] = row["id"]
        entry.records[row["key"]] = record
        entry.changed.append(record)
    entry.revision = run.revision
    return _remember_on_commit(run, entry)


def _remember_on_commit(run: Run, entry: RunRecords) -> RunRecords:
    def remember() -> None:
        entry.changed = []
        with _cache_lock:
            if run.state in RuntimeState.terminal():  # as the transaction left it
                _cache.pop(run.pk, None)
                return
            current = _cache.get(run.pk)
            if current is None or (current.epoch, current.revision) <= (entry.epoch, entry.revision):
                _cache[run.pk] = entry
                _cache.move_to_end(run.pk)
            held = sum(len(kept.ids) for kept in _cache.values())
            while len(_cache) > CACHED_RUNS or (len(_cache) > 1 and held > CACHED_NODES):
                _, dropped = _cache.popitem(last=False)
                held -= len(dropped.ids)

    transaction.on_commit(remember)
    return entry


def forget(run_id: Any) -> None:
    """Drop a run from this process's cache."""
    with _cache_lock:
        _cache.pop(run_id, None)


def forget_all() -> None:
    """Drop every run from this process's cache."""
    with _cache_lock:
        _cache.clear()
