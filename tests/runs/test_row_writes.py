"""``RowWrites`` (``apps.core.db``) sends the row updates of a transaction together, one
UPDATE per model and set of columns, and leaves every row as ``update_where`` (and so
the ORM's ``update()``) would, on SQLite and on MariaDB."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.db import RowWrites, insert_bounded, update_where
from apps.core.services import namespace_ensure
from apps.runs.models import Run, Task, TaskAttempt
from apps.runs.services import run_advance, run_create
from tests.engine.compiled import echo_each_ir
from tests.factories import RunFactory, TaskFactory

pytestmark = pytest.mark.django_db

FIELDS = ("state", "revision", "attempt", "lease_owner", "lease_expires_at", "started_at", "state_history")


def _pending(count: int) -> list[Task]:
    run = RunFactory(state=RuntimeState.RUNNING)
    return [
        TaskFactory(run=run, state=RuntimeState.PENDING, attempt=index, state_history=[{"n": index}])
        for index in range(count)
    ]


def _claim(task: Task, now: Any) -> dict[str, Any]:
    """Values as a claim writes them: some shared by every row, some each row's own."""
    return {
        "state": RuntimeState.RUNNING,
        "revision": 7,
        "attempt": task.attempt + 1,
        "lease_owner": f"worker:{task.attempt}",
        "lease_expires_at": now + timedelta(seconds=task.attempt),
        "started_at": now,
        "state_history": [*task.state_history, {"state": "RUNNING", "é": "✓"}],
    }


def _rows(tasks: list[Task]) -> list[tuple[Any, ...]]:
    return list(Task.objects.filter(pk__in=[t.pk for t in tasks]).order_by("pk").values_list("pk", *FIELDS))


def test_rows_end_as_update_where_leaves_them_with_one_statement() -> None:
    now = timezone.now()
    mine, theirs = _pending(5), _pending(5)
    writes = RowWrites()
    with CaptureQueriesContext(connection) as queries:
        for task in mine:
            # The condition is on a column the UPDATE sets (MySQL assigns left to right).
            writes.update(Task, {"pk": task.pk}, {"state": RuntimeState.PENDING}, **_claim(task, now))
        assert not queries.captured_queries  # nothing is sent before the flush
        writes.flush()
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["UPDATE"]
    for task in theirs:
        update_where(Task, {"pk": task.pk, "state": RuntimeState.PENDING}, **_claim(task, now))
    ours = [row[1:] for row in _rows(mine)]
    expected = [row[1:] for row in _rows(theirs)]
    assert sorted(ours, key=repr) == sorted(expected, key=repr)
    by_pk = {row[0]: row[1:] for row in _rows(mine)}
    assert [by_pk[t.pk][2:4] for t in mine] == [(t.attempt + 1, f"worker:{t.attempt}") for t in mine]


def test_a_key_of_two_columns() -> None:
    tasks = _pending(3)
    for task in tasks:
        for number in (1, 2):
            TaskAttempt.objects.create(task=task, number=number, state=RuntimeState.RUNNING)
    writes = RowWrites()
    now = timezone.now()
    for index, task in enumerate(tasks):
        writes.update(
            TaskAttempt,
            {"task": task.pk, "number": 2},
            state=RuntimeState.SUCCEEDED,
            exit_code=index,
            finished_at=now,
        )
    with CaptureQueriesContext(connection) as queries:
        writes.flush()
    assert len(queries.captured_queries) == 1
    rows = TaskAttempt.objects.filter(task__in=tasks).values_list("task_id", "number", "state", "exit_code")
    assert sorted(rows, key=repr) == sorted(
        [(t.pk, 1, RuntimeState.RUNNING, None) for t in tasks]
        + [(t.pk, 2, RuntimeState.SUCCEEDED, i) for i, t in enumerate(tasks)],
        key=repr,
    )


def test_a_row_that_no_longer_matches_fails_the_flush_and_nothing_stays() -> None:
    tasks = _pending(3)
    Task.objects.filter(pk=tasks[1].pk).update(state=RuntimeState.RUNNING)
    now = timezone.now()
    writes = RowWrites()
    for task in tasks:
        writes.update(Task, {"pk": task.pk}, {"state": RuntimeState.PENDING}, **_claim(task, now))

    def transaction_flushing() -> None:
        with transaction.atomic():
            Task.objects.filter(pk=tasks[0].pk).update(error="written before the flush")
            writes.flush()

    with pytest.raises(DatabaseError, match="1 of 3 rows"):
        transaction_flushing()
    assert Task.objects.get(pk=tasks[0].pk).error == ""  # the transaction was rolled back
    states = dict(Task.objects.filter(pk__in=[t.pk for t in tasks]).values_list("pk", "state"))
    assert states == {
        tasks[0].pk: RuntimeState.PENDING,
        tasks[1].pk: RuntimeState.RUNNING,
        tasks[2].pk: RuntimeState.PENDING,
    }


def test_the_same_row_twice_is_written_in_order() -> None:
    (task,) = _pending(1)
    writes = RowWrites()
    writes.update(Task, {"pk": task.pk}, error="first", attempt=1)
    writes.update(Task, {"pk": task.pk}, error="second", attempt=2)
    writes.flush()
    assert Task.objects.values_list("error", "attempt").get(pk=task.pk) == ("second", 2)


def test_shapes_are_sent_apart_and_an_empty_flush_sends_nothing() -> None:
    tasks = _pending(4)
    writes = RowWrites()
    with CaptureQueriesContext(connection) as queries:
        writes.flush()
    assert not queries.captured_queries
    for task in tasks[:2]:
        writes.update(Task, {"pk": task.pk}, error="a")
    for task in tasks[2:]:
        writes.update(Task, {"pk": task.pk}, status_message="b")
    assert writes
    with CaptureQueriesContext(connection) as queries:
        writes.flush()
    assert not writes
    assert len(queries.captured_queries) == 2
    rows = dict(Task.objects.filter(pk__in=[t.pk for t in tasks]).values_list("pk", "error"))
    assert [rows[t.pk] for t in tasks] == ["a", "a", "", ""]
    with pytest.raises(ValueError, match="not NULL"):
        writes.update(Task, {"pk": None}, error="x")


def test_long_lists_are_sent_in_statements_of_bounded_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RowWrites, "MAX_ROWS", 2)
    tasks = _pending(5)
    writes = RowWrites()
    for task in tasks:
        writes.update(Task, {"pk": task.pk}, error=f"e{task.attempt}")
    with CaptureQueriesContext(connection) as queries:
        writes.flush()
    assert len(queries.captured_queries) == 3  # 2 + 2 + 1
    rows = dict(Task.objects.filter(pk__in=[t.pk for t in tasks]).values_list("pk", "error"))
    assert [rows[t.pk] for t in tasks] == [f"e{t.attempt}" for t in tasks]
    # And by parameters: a row of these seven values takes 15, so 59 rows per statement.
    monkeypatch.setattr(RowWrites, "MAX_ROWS", 1000)
    many = _pending(100)
    now = timezone.now()
    for task in many:
        writes.update(Task, {"pk": task.pk}, {"state": RuntimeState.PENDING}, **_claim(task, now))
    with CaptureQueriesContext(connection) as queries:
        writes.flush()
    assert [len(q["sql"].split(" WHEN ")) - 1 for q in queries.captured_queries] == [
        59 * 4,
        41 * 4,
    ]  # four columns differ
    assert set(Task.objects.filter(pk__in=[t.pk for t in many]).values_list("state", flat=True)) == {
        RuntimeState.RUNNING
    }


def test_a_row_in_two_shapes_is_written_in_order() -> None:
    first, second = _pending(2)
    writes = RowWrites()
    writes.update(Task, {"pk": first.pk}, error="other", status_message="other")
    writes.update(Task, {"pk": second.pk}, error="first")
    assert writes.pending(Task, {"pk": second.pk})
    assert not writes.pending(TaskAttempt, {"pk": second.pk})
    writes.update(Task, {"pk": second.pk}, error="second", status_message="second")
    writes.flush()
    assert not writes.pending(Task, {"pk": second.pk})
    assert Task.objects.values_list("error", "status_message").get(pk=second.pk) == ("second", "second")
    assert Task.objects.values_list("error", "status_message").get(pk=first.pk) == ("other", "other")


def test_a_plan_too_long_for_one_statement_is_inserted_in_several() -> None:
    """MariaDB refuses a statement longer than max_allowed_packet (16 MiB by default) and
    drops the connection. A loop's iterations each store the loop's inputs, so a wide
    loop over a long list made one INSERT of tens of MiB, and the run could never start
    (every advance failed the same way). Now the rows go in statements of about 4 MiB."""
    words = [f"{index:04d}-" + "x" * 195 for index in range(320)]  # 64 KiB as JSON
    run = run_create(
        namespace=namespace_ensure(actor=OPERATOR),
        actor=OPERATOR,
        display_name="wide",
        pipeline_spec=echo_each_ir(),
        parameters={"words": words},
    )
    with CaptureQueriesContext(connection) as queries:
        ready = run_advance(run_id=run.pk)
    assert Run.objects.get(pk=run.pk).error == ""
    assert len(ready) == len(words)  # 320 iterations, each holding the 64 KiB list: 20 MiB
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT INTO")]
    task_inserts = [sql for sql in inserts if "runs_task" in sql.split("(")[0]]
    assert len(task_inserts) >= 5
    assert max(len(sql) for sql in task_inserts) < 8 * 1024 * 1024
    assert Task.objects.filter(run=run).count() == 2 * len(words) + 2  # + the root and the loop


def _unsaved_tasks(run: Run, count: int) -> list[Task]:
    """New rows as a plan builds them: every kind of column set, NULLs and JSON included."""
    now = timezone.now()
    return [
        Task(
            id=uuid.uuid4(),
            run=run,
            namespace_id=run.namespace_id,
            key=f"root/t#{index}",
            node="root/t",
            name="t",
            display_name=f"t é {index}",  # not ASCII
            kind="CONTAINER",
            iteration_index=index if index % 2 else None,
            state=RuntimeState.PENDING,
            state_history=[{"state": "PENDING", "n": index}],
            inputs={"parameters": {"x": {"value": index, "quote": 'it\'s "quoted"'}}},
            command=["sh", "-c", "echo %s"],  # a literal %s: a parameter, not a placeholder
            dispatched_at=now - timedelta(seconds=index),
            revision=7,
        )
        for index in range(count)
    ]


def _stored(run: Run) -> list[tuple[Any, ...]]:
    names = [f.attname for f in Task._meta.concrete_fields if f.attname not in ("created_at", "updated_at")]
    return list(Task.objects.filter(run=run).order_by("key").values_list(*names))


def test_insert_bounded_stores_what_bulk_create_stores() -> None:
    ours, django = RunFactory(), RunFactory()
    mine = _unsaved_tasks(ours, 40)
    statements = insert_bounded(Task, mine)
    theirs = _unsaved_tasks(django, 40)
    for task, same in zip(theirs, mine, strict=True):
        task.id, task.dispatched_at = uuid.uuid4(), same.dispatched_at
    Task.objects.bulk_create(theirs)

    def comparable(run: Run) -> list[tuple[Any, ...]]:
        return [row[2:] for row in _stored(run)]  # without id and run

    assert comparable(ours) == comparable(django)
    # SQLite takes 999 parameters a statement; MariaDB has no such limit.
    assert statements == (2 if connection.vendor == "sqlite" else 1)
    # Marked saved, as bulk_create leaves them: save() now updates the row.
    mine[0].status_message = "updated"
    mine[0].save(update_fields=["status_message"])
    assert Task.objects.get(pk=mine[0].pk).status_message == "updated"
    assert Task.objects.filter(run=ours).count() == 40


def test_insert_bounded_keeps_each_statement_under_its_limit() -> None:
    run = RunFactory()
    tasks = _unsaved_tasks(run, 30)
    for task in tasks:
        task.launch = {"blob": "x" * 4000}  # a row of 4,000 to 4,600 bytes
    with CaptureQueriesContext(connection) as queries:
        statements = insert_bounded(Task, tasks, limit=10_000)
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT INTO")]
    assert statements == len(inserts) == 15  # two rows fit in 10,000 bytes, three do not
    assert Task.objects.filter(run=run).count() == 30


def test_insert_bounded_refuses_rows_without_keys() -> None:
    task = _unsaved_tasks(RunFactory(), 1)[0]
    task.id = None
    with pytest.raises(ValueError, match="primary keys are set"):
        insert_bounded(Task, [task])
    assert insert_bounded(Task, []) == 0
