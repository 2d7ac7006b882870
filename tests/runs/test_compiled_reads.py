"""The group commit's reads (``select_where``, ``select_values``) return what the ORM's
QuerySets return, on SQLite and on MariaDB: the same rows, values converted the same way
(UUIDs, aware datetimes, JSON), the same columns deferred, and the run's row locked."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError, connections, transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from apps.core import db
from apps.core.choices import RuntimeState, TaskKind
from apps.core.db import CACHED_IN_LENGTH, select_values, select_where
from apps.runs.models import Run, Task
from apps.runs.services.local_steps import _CLAIM_READ, _lock_runs
from apps.runs.services.records import RECORD_FIELDS
from tests.database import locks_rows
from tests.factories import RunFactory, TaskFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tasks() -> list[Task]:
    run = RunFactory(state=RuntimeState.RUNNING)
    now = timezone.now()
    made = [
        TaskFactory(
            run=run,
            state=RuntimeState.PENDING,
            not_before=not_before,
            started_at=now - timedelta(minutes=index),
            state_history=[{"state": "PENDING", "update_time": f"t{index}"}],
            launch={"container": {"image": "alpine", "command": ["true"]}, "index": index},
            inputs={"parameters": {"n": index, "text": "é ✓"}},
            revision=index,
            attempt=index % 3,
        )
        for index, not_before in enumerate(
            [None, now - timedelta(seconds=5), now + timedelta(hours=1), None, now + timedelta(seconds=1)]
        )
    ]
    TaskFactory(run=run, kind=TaskKind.DAG, state=RuntimeState.PENDING)  # not a container
    TaskFactory(run=RunFactory(), state=RuntimeState.PENDING)  # another run's
    return made


def _same(read: list[Task], expected: list[Task], fields: tuple[str, ...]) -> None:
    assert [task.pk for task in read] == [task.pk for task in expected]
    for mine, theirs in zip(read, expected, strict=True):
        assert mine.get_deferred_fields() == theirs.get_deferred_fields()
        for name in fields:
            assert getattr(mine, name) == getattr(theirs, name), name
            assert type(getattr(mine, name)) is type(getattr(theirs, name)), name
        assert mine._state.adding is False and mine._state.db == theirs._state.db


def test_rows_by_key_equal_the_querysets(tasks: list[Task]) -> None:
    ids = [tasks[3].pk, tasks[0].pk, tasks[4].pk]
    read = select_where(Task, _CLAIM_READ, {"pk__in": ids}, order_by=("pk",))
    expected = list(Task.objects.only(*_CLAIM_READ).filter(pk__in=ids).order_by("pk"))
    _same(read, expected, _CLAIM_READ)
    # Aware datetimes, UUIDs, JSON as the ORM gives them; a deferred column still loads.
    started = read[0].started_at
    assert started is not None and timezone.is_aware(started)
    assert read[0].error == expected[0].error


def test_every_column_when_asked(tasks: list[Task]) -> None:
    names = tuple(f.name for f in Task._meta.concrete_fields)
    read = select_where(
        Task, names, {"run_id": tasks[0].run_id, "kind": TaskKind.CONTAINER}, order_by=("pk",)
    )
    expected = list(Task.objects.filter(run_id=tasks[0].run_id, kind=TaskKind.CONTAINER).order_by("pk"))
    _same(read, expected, tuple(f.attname for f in Task._meta.concrete_fields))
    assert read[0].get_deferred_fields() == set()


def test_the_pull_reads_only_due_container_steps_of_the_run(tasks: list[Task]) -> None:
    now = timezone.now()
    where = {
        "run_id": tasks[0].run_id,
        "state": RuntimeState.PENDING,
        "kind": TaskKind.CONTAINER,
        "not_before__null_or_lte": now,
    }
    due = {task.pk for task in select_where(Task, _CLAIM_READ, where)}
    # Unset, or due 5 s ago; not the one due in an hour, nor in a second.
    assert due == {tasks[0].pk, tasks[1].pk, tasks[3].pk}
    assert len(select_where(Task, _CLAIM_READ, where, limit=2)) == 2
    later = select_where(Task, _CLAIM_READ, {**where, "not_before__null_or_lte": now + timedelta(hours=2)})
    assert {task.pk for task in later} == {task.pk for task in tasks}


def test_values_equal_the_querysets(tasks: list[Task]) -> None:
    run_id = tasks[0].run_id
    read = select_values(Task, RECORD_FIELDS, {"run_id": run_id, "revision__gt": 2}, order_by=("pk",))
    expected = list(Task.objects.filter(run_id=run_id, revision__gt=2).order_by("pk").values(*RECORD_FIELDS))
    assert read == expected
    assert {row["id"] for row in read} == {tasks[3].pk, tasks[4].pk}
    assert list(read[0]) == list(RECORD_FIELDS)  # keyed by the names given, in their order


def test_an_empty_list_matches_nothing_without_a_query(tasks: list[Task], django_assert_num_queries) -> None:
    with django_assert_num_queries(0):
        assert select_where(Task, _CLAIM_READ, {"pk__in": []}) == []
        assert select_values(Task, ("id",), {"pk__in": []}) == []


def test_it_refuses_what_it_cannot_say() -> None:
    with pytest.raises(ValueError, match="lookup 'startswith'"):
        select_where(Task, ("id",), {"key__startswith": "root"})
    with pytest.raises(ValueError, match="not NULL"):
        select_where(Task, ("id",), {"not_before": None})
    with pytest.raises(ValueError, match="not a column"):
        select_where(Task, ("attempts",), {"state": "PENDING"})


def test_locked_runs_carry_their_namespace(tasks: list[Task], django_assert_num_queries) -> None:
    other = RunFactory()
    with transaction.atomic():
        runs = _lock_runs({other.pk, tasks[0].run_id})
        # In the database's key order, as the ORM's order_by("pk") (MariaDB's UUID type
        # does not sort as Python's UUIDs do): every writer locks runs in one order.
        ordered = Run.objects.filter(pk__in=[other.pk, tasks[0].run_id]).order_by("pk")
        assert [run.pk for run in runs] == list(ordered.values_list("pk", flat=True))
        with django_assert_num_queries(0):
            names = [run.namespace.name for run in runs]
        assert names == [Run.objects.get(pk=run.pk).namespace.name for run in runs]
        # The spec is not read; read on demand it is the stored one.
        assert "pipeline_spec" in runs[0].get_deferred_fields()
        assert runs[0].pipeline_spec == Run.objects.get(pk=runs[0].pk).pipeline_spec


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not locks_rows(), reason="SQLite locks the whole database instead")
def test_the_run_row_is_locked_until_the_transaction_ends() -> None:
    run = RunFactory()
    outcome: dict[str, object] = {}

    def other_writer() -> None:
        try:
            with transaction.atomic(), connections["default"].cursor() as cursor:
                cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
                Run.objects.filter(pk=run.pk).update(error="late")
                outcome["wrote"] = True
        except OperationalError as exc:
            outcome["refused"] = exc.args[0]
        finally:
            connections["default"].close()

    with transaction.atomic():
        assert [locked.pk for locked in select_where(Run, ("id",), {"pk": run.pk}, for_update=True)] == [
            run.pk
        ]
        writer = threading.Thread(target=other_writer)
        writer.start()
        writer.join()
    assert outcome == {"refused": 1205}  # lock wait timeout: our lock held it off


@pytest.mark.django_db(transaction=True)
def test_locking_outside_a_transaction_is_refused_where_the_orm_refuses_it() -> None:
    run = RunFactory()

    def outcome(read: Any) -> str:
        try:
            read()
        except TransactionManagementError:
            return "refused"
        return "read"

    orm = outcome(lambda: list(Run.objects.select_for_update().filter(pk=run.pk)))
    mine = outcome(lambda: select_where(Run, ("id",), {"pk": run.pk}, for_update=True))
    assert mine == orm == ("refused" if locks_rows() else "read")


def test_long_lists_are_read_without_keeping_a_statement_for_each_length(tasks: list[Task]) -> None:
    ids = [task.pk for task in tasks]
    padding = [uuid.uuid4() for _ in range(CACHED_IN_LENGTH)]  # no such rows
    kept = len(db._SELECT_SQL)
    read = select_where(Task, ("id",), {"pk__in": ids + padding})
    assert {task.pk for task in read} == set(ids)
    assert len(db._SELECT_SQL) == kept
    select_where(Task, ("id",), {"pk__in": ids})
    assert len(db._SELECT_SQL) == kept + 1  # a batch's length is kept
