"""Generate a large, reproducible Canal dataset straight into a database.

Rows are written with ``executemany`` on raw INSERTs (no service layer, no model
instances), in batches, so 100k runs and 1M tasks go into MariaDB in a few minutes.
The same ``--seed`` and sizes always give the same rows (ids included).

What it writes (all under namespaces named ``scale-0`` ... ``scale-{N-1}``):

* ``--namespaces`` namespaces, ``--experiments`` experiments and ``--pipelines``
  pipelines (one version each) spread over them, and a user ``scale`` who is a
  member (editor) of every one of them;
* ``--runs`` runs, created over the past year (a few share a created_at second and
  many share a display name, so sorting has ties), in every KFP state, about 5 %
  archived; each carries a small stub spec (the list pages never read it);
* ``--tasks-per-run`` tasks per run: the root and a chain of container steps;
* one more run, ``big-parallel-for``, in ``scale-0``: the fan-out pipeline of
  tests/web/fanout.py with a ``--iterations`` ParallelFor (root, loop, N iterations
  and N steps; most succeeded, some failed, some running).

If the namespaces already hold exactly this dataset (same sizes and seed, recorded in
the first namespace's description) nothing is written; ``--reset`` deletes the
generated rows first.

Usage::

    .venv/bin/python bench/generate_data.py                     # MariaDB, canal_scale, 100k/1M
    .venv/bin/python bench/generate_data.py --runs 100000 --tasks-per-run 10 --iterations 5000
    .venv/bin/python bench/generate_data.py --database-url sqlite:////tmp/s.sqlite3 --runs 2000
    .venv/bin/python bench/generate_data.py --reset             # regenerate

The database is migrated first; a MariaDB database named in the URL is created if
missing (the URL's user needs CREATE).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "mysql://root@127.0.0.1:3306/canal_scale"
BIG_RUN_NAME = "big-parallel-for"
SCALE_USER = "scale"
BATCH = 5000
#: The newest run's creation time: fixed, so the data does not depend on the clock.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)

STATES = (
    ("SUCCEEDED", 70),
    ("FAILED", 10),
    ("RUNNING", 8),
    ("PENDING", 4),
    ("SKIPPED", 2),
    ("CANCELED", 4),
    ("PAUSED", 2),
)
TERMINAL = {"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("SCALE_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--tasks-per-run", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=5000, help="the big ParallelFor run's size")
    parser.add_argument("--namespaces", type=int, default=3)
    parser.add_argument("--experiments", type=int, default=30)
    parser.add_argument("--pipelines", type=int, default=6)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--reset", action="store_true", help="delete the generated rows first")
    return parser.parse_args(argv)


def setup_django(database_url: str) -> None:
    """Point Django at ``database_url`` (creating a MariaDB database if missing), migrate."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipelines_site.settings")
    if database_url.startswith("mysql"):
        import dj_database_url
        import MySQLdb

        db = dj_database_url.parse(database_url)
        server = MySQLdb.connect(
            host=db["HOST"] or "127.0.0.1",
            port=int(db["PORT"] or 3306),
            user=db["USER"] or "root",
            passwd=db["PASSWORD"] or "",
        )
        server.cursor().execute(
            f"CREATE DATABASE IF NOT EXISTS `{db['NAME']}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
        server.close()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


class Inserter:
    """Raw multi-row INSERTs of one model: every concrete column, defaults converted
    once, per-row values given already in database form by the caller."""

    def __init__(self, model: Any) -> None:
        from django.db import connection

        self.connection = connection
        self.fields = [f for f in model._meta.concrete_fields]
        self.columns = [f.column for f in self.fields]
        qn = connection.ops.quote_name
        # Table and column names come from the model, never from input.
        table, names = qn(model._meta.db_table), ", ".join(qn(c) for c in self.columns)
        marks = ", ".join(["%s"] * len(self.columns))
        self.sql = f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608
        self.defaults: dict[str, Any] = {}
        for field in self.fields:
            if field.has_default():
                value = field.get_default()
            elif field.null:
                value = None
            else:
                value = "" if field.get_internal_type() in ("CharField", "TextField", "SlugField") else None
            self.defaults[field.column] = None if value is None else field.get_db_prep_save(value, connection)
        self.written = 0

    def row(self, **values: Any) -> tuple[Any, ...]:
        return tuple(values[c] if c in values else self.defaults[c] for c in self.columns)

    def write(self, rows: Iterable[tuple[Any, ...]]) -> None:
        batch: list[tuple[Any, ...]] = []
        with self.connection.cursor() as cursor:
            for row in rows:
                batch.append(row)
                if len(batch) >= BATCH:
                    cursor.executemany(self.sql, batch)
                    self.written += len(batch)
                    batch = []
            if batch:
                cursor.executemany(self.sql, batch)
                self.written += len(batch)


def db_time(value: datetime | None) -> Any:
    from django.db import connection

    return None if value is None else connection.ops.adapt_datetimefield_value(value)


def db_uuid(value: uuid.UUID) -> Any:
    from django.db import connection

    return value if connection.features.has_native_uuid_field else value.hex


def db_json(value: Any) -> str:
    return json.dumps(value)


def stable_uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def fingerprint(args: argparse.Namespace) -> str:
    return (
        f"canal scale data: runs={args.runs} tasks_per_run={args.tasks_per_run} "
        f"iterations={args.iterations} namespaces={args.namespaces} experiments={args.experiments} "
        f"pipelines={args.pipelines} seed={args.seed}"
    )


def reset() -> None:
    from django.db import connection

    from apps.core.models import Namespace
    from apps.experiments.models import Experiment
    from apps.pipelines.models import Pipeline, PipelineVersion
    from apps.runs.models import Run, Task

    namespaces = list(Namespace.objects.filter(name__startswith="scale-").values_list("pk", flat=True))
    if not namespaces:
        return
    # Raw deletes: Django's cascade would load a million tasks into memory first. Every
    # task of these runs goes, its parent too: MariaDB need not check the rows one by one.
    mysql = connection.vendor == "mysql"
    if mysql:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION foreign_key_checks = 0")
    Task.objects.filter(run__namespace_id__in=namespaces)._raw_delete(connection.alias)
    Run.objects.filter(namespace_id__in=namespaces)._raw_delete(connection.alias)
    if mysql:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION foreign_key_checks = 1")
    Experiment.objects.filter(namespace_id__in=namespaces).delete()
    PipelineVersion.objects.filter(pipeline__namespace_id__in=namespaces).delete()
    Pipeline.objects.filter(namespace_id__in=namespaces).delete()
    Namespace.objects.filter(pk__in=namespaces).delete()


def generate(args: argparse.Namespace) -> dict[str, Any]:
    """Write the dataset (unless already there); return what scale.py needs to know."""
    import hashlib

    import yaml
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from apps.core.models import Membership, Namespace
    from apps.experiments.models import Experiment
    from apps.pipelines.models import Pipeline, PipelineVersion
    from apps.runs.models import Run, Task
    from tests.web.fanout import FANOUT_IR, LOOP_NODE, STEP_NODE

    mark = fingerprint(args)
    first = Namespace.objects.filter(name="scale-0").first()
    if first is not None and first.description == mark and not args.reset:
        print(f"dataset already present ({mark}); nothing written", file=sys.stderr)
        refresh_statistics()
        return {"generated": False}
    if first is not None or args.reset:
        started = time.perf_counter()
        reset()
        print(f"deleted the previous dataset in {time.perf_counter() - started:.1f} s", file=sys.stderr)

    rng = random.Random(args.seed)
    started = time.perf_counter()
    user, _ = get_user_model().objects.get_or_create(username=SCALE_USER)
    with transaction.atomic():
        namespaces = [
            Namespace.objects.create(name=f"scale-{i}", description=mark if i == 0 else "")
            for i in range(args.namespaces)
        ]
        Membership.objects.bulk_create(
            [Membership(namespace=ns, user=user, role=Membership.Role.EDITOR) for ns in namespaces]
        )
        experiments = [
            Experiment(
                id=stable_uuid(rng),
                namespace=namespaces[i % len(namespaces)],
                display_name=f"experiment-{i:03d}",
            )
            for i in range(args.experiments)
        ]
        Experiment.objects.bulk_create(experiments)
        spec = yaml.safe_load(FANOUT_IR)
        pipelines, versions = [], []
        for i in range(args.pipelines):
            pipeline = Pipeline(
                id=stable_uuid(rng),
                namespace=namespaces[i % len(namespaces)],
                name=f"pipeline-{i}",
                display_name=f"pipeline-{i}",
            )
            pipelines.append(pipeline)
            versions.append(
                PipelineVersion(
                    id=stable_uuid(rng),
                    pipeline=pipeline,
                    name="v1",
                    display_name="v1",
                    source=FANOUT_IR,
                    format="kfp-ir",
                    pipeline_spec=spec,
                    content_hash=hashlib.sha256(FANOUT_IR.encode()).hexdigest(),
                )
            )
        Pipeline.objects.bulk_create(pipelines)
        PipelineVersion.objects.bulk_create(versions)

    by_namespace: dict[int, list[Experiment]] = {}
    for experiment in experiments:
        by_namespace.setdefault(experiment.namespace_id, []).append(experiment)
    versions_by_namespace: dict[int, list[PipelineVersion]] = {}
    for version in versions:
        versions_by_namespace.setdefault(version.pipeline.namespace_id, []).append(version)

    runs = Inserter(Run)
    tasks = Inserter(Task)
    stub_spec = db_json({"pipelineInfo": {"name": "scale"}, "root": {"dag": {"tasks": {}}}})
    state_names = [s for s, _ in STATES]
    state_weights = [w for _, w in STATES]
    span = 365 * 24 * 3600
    step_keys = [f"root/step-{k}" for k in range(1, args.tasks_per_run)]

    def run_rows() -> Iterable[tuple[Any, ...]]:
        for i in range(args.runs):
            namespace = namespaces[i % len(namespaces)]
            experiment = rng.choice(by_namespace[namespace.pk])
            choices = versions_by_namespace.get(namespace.pk) or versions
            version = rng.choice(choices)
            # Spread over a year, oldest first, whole seconds; ~1 in 20 shares its second.
            created = EPOCH - timedelta(seconds=span * (args.runs - i) // args.runs)
            state = rng.choices(state_names, state_weights)[0]
            started = created + timedelta(seconds=rng.randint(1, 30)) if state != "PENDING" else None
            finished = (
                started + timedelta(seconds=rng.randint(5, 3600)) if state in TERMINAL and started else None
            )
            run_id = stable_uuid(rng)
            task_pending.append((run_id, namespace.pk, created, state, started, finished))
            yield runs.row(
                id=db_uuid(run_id),
                namespace_id=namespace.pk,
                experiment_id=db_uuid(experiment.pk),
                display_name=f"{version.pipeline.name} run {i % 5000}",
                pipeline_version_id=db_uuid(version.pk),
                pipeline_spec=stub_spec,
                pipeline_name=version.pipeline.name,
                state=state,
                storage_state="ARCHIVED" if rng.random() < 0.05 else "AVAILABLE",
                created_at=db_time(created),
                started_at=db_time(started),
                finished_at=db_time(finished),
                state_history=db_json([{"state": state}]),
            )

    def task_rows() -> Iterable[tuple[Any, ...]]:
        for run_id, namespace_id, created, state, started, finished in task_pending:
            root_id = stable_uuid(rng)
            run_db = db_uuid(run_id)
            at = db_time(created)
            yield tasks.row(
                id=db_uuid(root_id),
                run_id=run_db,
                namespace_id=namespace_id,
                key="root",
                node="root",
                name="root",
                kind="ROOT",
                state=state,
                created_at=at,
                started_at=db_time(started),
                finished_at=db_time(finished),
            )
            parent = db_uuid(root_id)
            for key in step_keys:
                yield tasks.row(
                    id=db_uuid(stable_uuid(rng)), run_id=run_db, namespace_id=namespace_id, parent_id=parent,
                    key=key, node=key,
                    name=key[5:], kind="CONTAINER", state=state, created_at=at, image="python:3.11",
                    component_name="comp-step", executor_label="exec-step",
                )  # fmt: skip

    # Runs then their tasks, in chunks so that memory stays flat.
    chunk = 10_000
    total = args.runs
    produced = run_rows()
    for _ in range(0, total, chunk):
        task_pending: list[tuple[Any, ...]] = []
        with transaction.atomic():
            runs.write(row for _, row in zip(range(chunk), produced, strict=False))
            tasks.write(task_rows())
        print(
            f"  {runs.written:,} runs, {tasks.written:,} tasks ({time.perf_counter() - started:.0f} s)",
            file=sys.stderr,
        )

    # The big ParallelFor run (as tests/web/fanout.py builds it, with its real spec).
    with transaction.atomic():
        big_id = stable_uuid(rng)
        version = versions[0]
        now = EPOCH + timedelta(minutes=5)
        runs.write(
            [
                runs.row(
                    id=db_uuid(big_id),
                    namespace_id=namespaces[0].pk,
                    experiment_id=db_uuid(by_namespace[namespaces[0].pk][0].pk),
                    display_name=BIG_RUN_NAME,
                    pipeline_version_id=db_uuid(version.pk),
                    pipeline_spec=db_json(spec),
                    pipeline_name=version.pipeline.name,
                    runtime_parameters=db_json({"items": list(range(args.iterations))}),
                    state="RUNNING",
                    created_at=db_time(now - timedelta(minutes=10)),
                    started_at=db_time(now - timedelta(minutes=10)),
                )
            ]
        )
        root_id, loop_id = stable_uuid(rng), stable_uuid(rng)
        run_db = db_uuid(big_id)
        big_namespace = namespaces[0].pk

        def big_rows() -> Iterable[tuple[Any, ...]]:
            yield tasks.row(
                id=db_uuid(root_id), run_id=run_db, namespace_id=big_namespace, key="root", node="root",
                name="root", kind="ROOT",
                state="RUNNING",
                created_at=db_time(now - timedelta(minutes=10)),
            )  # fmt: skip
            yield tasks.row(
                id=db_uuid(loop_id), run_id=run_db, namespace_id=big_namespace, parent_id=db_uuid(root_id),
                key=LOOP_NODE, node=LOOP_NODE,
                name="for-loop-1", kind="LOOP", state="RUNNING", iteration_count=args.iterations,
                created_at=db_time(now - timedelta(minutes=10)),
                started_at=db_time(now - timedelta(minutes=10)),
            )  # fmt: skip
            for index in range(args.iterations):
                state = "FAILED" if index % 100 == 7 else "RUNNING" if index % 50 == 3 else "SUCCEEDED"
                started = now - timedelta(seconds=300 - index % 200)
                finished = db_time(started + timedelta(seconds=3)) if state != "RUNNING" else None
                created = db_time(now - timedelta(minutes=9) + timedelta(milliseconds=index))
                iteration_id = stable_uuid(rng)
                yield tasks.row(
                    id=db_uuid(iteration_id), run_id=run_db, namespace_id=big_namespace,
                    parent_id=db_uuid(loop_id),
                    key=f"{LOOP_NODE}#{index}", node=LOOP_NODE, name="for-loop-1", kind="ITERATION",
                    iteration_index=index,
                    state=state, created_at=created, started_at=db_time(started), finished_at=finished,
                )  # fmt: skip
                yield tasks.row(
                    id=db_uuid(stable_uuid(rng)), run_id=run_db, namespace_id=big_namespace,
                    parent_id=db_uuid(iteration_id),
                    key=f"{LOOP_NODE}#{index}/square", node=STEP_NODE, name="square", kind="CONTAINER",
                    state=state,
                    image="python:3.11", command=db_json(["echo", str(index)]),
                    inputs=db_json({"parameters": {"x": index}}), created_at=created,
                    started_at=db_time(started), finished_at=finished,
                )  # fmt: skip

        tasks.write(big_rows())
    elapsed = time.perf_counter() - started
    print(f"wrote {runs.written:,} runs and {tasks.written:,} tasks in {elapsed:.0f} s", file=sys.stderr)
    refresh_statistics()
    return {"generated": True, "seconds": elapsed}


def refresh_statistics() -> None:
    """Recompute the optimizer's statistics of the tables the dataset fills.

    A database that grew run by run has statistics that grew with it (InnoDB recomputes
    a table's once a tenth of it changed); a bulk load leaves them as they were before
    it. On a freshly generated dataset MariaDB then joined a runs page's 50 rows (by
    primary key) from the experiments side, reading every run of every experiment
    through an index: 17.5 ms for that query, 2.4 ms after ``ANALYZE TABLE``
    (2026-12-07). Measuring the lists on such statistics measures the bulk load, not
    Canal."""
    from django.db import connection

    from apps.core.models import Membership, Namespace
    from apps.experiments.models import Experiment
    from apps.pipelines.models import Pipeline, PipelineVersion
    from apps.runs.models import Run, Task

    models = (Namespace, Membership, Experiment, Pipeline, PipelineVersion, Run, Task)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            tables = ", ".join(connection.ops.quote_name(model._meta.db_table) for model in models)
            cursor.execute(f"ANALYZE TABLE {tables}")  # table names from the models, quoted
            cursor.fetchall()
        elif connection.vendor == "sqlite":
            cursor.execute("ANALYZE")
    print(f"refreshed the tables' statistics in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    setup_django(args.database_url)
    generate(args)


if __name__ == "__main__":
    main()
