"""A run the planner cannot handle fails with the reason; it never stays PENDING or RUNNING
(issue 9, section 7). And planning settles: inline I/O is re-planned until nothing changes.

The services are called here the way a worker calls them, without a worker process;
tests/runs/test_settle_live.py runs the same cases through a real worker."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from django.db import IntegrityError, transaction

from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.services import namespace_ensure
from apps.engine.model import NodeIO
from apps.runs.models import Run, Task
from apps.runs.services import local_plan as execution_service
from apps.runs.services import run_advance, run_create
from apps.runs.services.local_steps import StepOutcome, finish_attempt
from apps.runs.tasks import task_execute_task
from tests.database import refuses_lone_surrogates
from tests.runs.ir import container_pipeline

pytestmark = pytest.mark.django_db

ECHO = {"command": ["echo", "hi"]}


def _create(spec: dict[str, Any], **kwargs: Any) -> Run:
    return run_create(
        namespace=namespace_ensure(actor=OPERATOR),
        actor=OPERATOR,
        display_name="r",
        pipeline_spec=spec,
        **kwargs,
    )


def _stored_then_replaced(spec: dict[str, Any], params: Any = None, **columns: Any) -> Run:
    """A run created normally whose stored row then holds ``columns``: what an older
    version, the admin or a direct database write may have left, past the edge checks.

    MariaDB's JSON columns check their text: a lone surrogate is refused by the database
    itself, so no stored run can hold one there and the case cannot arise."""
    with transaction.atomic():
        run = _create(spec, parameters=params)
        if refuses_lone_surrogates():
            with pytest.raises(IntegrityError), transaction.atomic():
                Run.objects.filter(pk=run.pk).update(**columns)
            pytest.skip("the database refuses JSON holding a lone surrogate: no run can store one")
        Run.objects.filter(pk=run.pk).update(**columns)
    return Run.objects.get(pk=run.pk)


def test_a_parameter_that_cannot_be_fingerprinted_fails_the_run_with_the_reason() -> None:
    spec = container_pipeline(
        "surrogate",
        {"echo": {"command": ["echo"], "inputs": {"text": {"param": "text"}}}},
        parameters={"text": {"parameterType": "STRING"}},
    )
    run = _stored_then_replaced(spec, {"text": "fine"}, runtime_parameters={"text": "\ud800"})
    assert run_advance(run_id=run.pk) == []  # nothing to execute
    run.refresh_from_db()
    assert run.state == RuntimeState.FAILED
    assert "cannot compute the cache fingerprint of task 'echo'" in run.error
    assert "input 'text' holds a lone surrogate (\\ud800)" in run.error
    step = Task.objects.get(run=run, key="root/echo")
    assert step.state == RuntimeState.FAILED
    assert step.attempts.count() == 0  # it never reached a process


def test_any_error_while_writing_a_plan_fails_the_run_and_writes_nothing_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A failure that is not an engine error, after the plan's rows were written (a driver
    # refusing a value, say). Before, the advance rolled back and the run stayed PENDING,
    # to fail again on every reaper pass.
    run = _create(container_pipeline("bad-write", {"first": ECHO, "second": ECHO}))
    real_apply = execution_service._apply

    def apply_then_fail(*args: Any, **kwargs: Any) -> Any:
        real_apply(*args, **kwargs)
        assert Task.objects.filter(run=run).exists()  # written, to be rolled back
        raise UnicodeEncodeError("utf-8", "sec\ud800ond", 3, 4, "surrogates not allowed")

    monkeypatch.setattr(execution_service, "_apply", apply_then_fail)
    assert run_advance(run_id=run.pk) == []
    run.refresh_from_db()
    assert run.state == RuntimeState.FAILED
    assert run.error.startswith("internal error while planning this run: UnicodeEncodeError")
    run.error.encode("utf-8")  # the stored reason is valid text
    # The plan was written all or nothing: no root, no 'first' step left PENDING.
    assert not Task.objects.filter(run=run).exists()
    # A later advance (the reaper's) leaves the finished run alone.
    assert run_advance(run_id=run.pk) == []
    assert Run.objects.get(pk=run.pk).state == RuntimeState.FAILED


def test_a_stored_spec_holding_a_lone_surrogate_fails_the_run_and_pages_answer(
    client: Any, user: Any
) -> None:
    # Past the edge checks (an older version, a direct database write): protobuf, which
    # parses the spec, refuses a string that is not text, so the run fails with the place.
    spec = container_pipeline("bad-name", {"first": ECHO, "second": ECHO})
    hostile = copy.deepcopy(spec)
    hostile["root"]["dag"]["tasks"]["second"]["taskInfo"]["name"] = "sec\ud800ond"
    run = _stored_then_replaced(spec, pipeline_spec=hostile)
    assert run_advance(run_id=run.pk) == []
    run.refresh_from_db()
    assert run.state == RuntimeState.FAILED
    assert run.error == (
        "cannot run this pipeline: holds a lone surrogate, which is not valid text "
        "(at root.dag.tasks.second.taskInfo.name)"
    )
    assert not Task.objects.filter(run=run).exists()
    client.force_login(user)
    page = client.get(f"/runs/{run.pk}/")
    assert page.status_code == 200
    assert "holds a lone surrogate" in page.content.decode()
    # Nothing the engine can read, so nothing to draw: the drawing says so (no 500).
    assert client.get(f"/runs/{run.pk}/graph/").status_code == 404
    for url in ("/runs/", f"/apis/v2beta1/runs/{run.pk}", "/apis/v2beta1/runs"):
        assert client.get(url).status_code == 200, url


def test_a_step_that_cannot_be_loaded_fails_the_run_through_the_worker_task() -> None:
    # The worker's Celery task, called in-process: a stored launch this version cannot
    # read raises inside task_execute; the wrapper fails the run instead of leaving the
    # step PENDING to be re-queued for ever.
    run = _create(container_pipeline("corrupt", {"only": ECHO}))
    (step_id,) = run_advance(run_id=run.pk)
    Task.objects.filter(pk=step_id).update(launch={"not": "a launch"})
    task_execute_task(str(step_id))
    run.refresh_from_db()
    assert run.state == RuntimeState.FAILED
    assert run.error.startswith("internal error while working on this run: ")
    step = Task.objects.get(pk=step_id)
    assert step.state in (RuntimeState.CANCELED, RuntimeState.FAILED)
    root = Task.objects.get(run=run, key="root")
    assert root.state == RuntimeState.FAILED


def _succeed_every_step(run: Run) -> None:
    """Record every ready step of ``run`` as succeeded, through the service the worker uses."""
    ready = run_advance(run_id=run.pk)
    while ready:
        for step_id in ready:
            with transaction.atomic():
                locked = Run.objects.select_for_update().get(pk=run.pk)
                Task.objects.filter(pk=step_id).update(state=RuntimeState.RUNNING)
                task = Task.objects.get(pk=step_id)
                finish_attempt(locked, task, 1, StepOutcome(outputs=NodeIO(), error=""))
                locked.save(update_fields=["revision"])
        ready = run_advance(run_id=run.pk)


CACHED_CHAIN = {
    "one": {**ECHO, "cache": True},
    "two": {**ECHO, "cache": True, "after": ["one"]},
    "three": {**ECHO, "cache": True, "after": ["two"]},
}


def test_cache_hits_are_re_planned_until_the_run_settles() -> None:
    spec = container_pipeline("cached-chain", CACHED_CHAIN)
    first = _create(spec)
    _succeed_every_step(first)
    assert Run.objects.get(pk=first.pk).state == RuntimeState.SUCCEEDED

    # The same pipeline again: each step is a cache hit that completes inline and unblocks
    # the next; one advance plans again after each, to the end.
    again = _create(spec)
    assert run_advance(run_id=again.pk) == []
    again.refresh_from_db()
    assert again.state == RuntimeState.SUCCEEDED, again.error
    steps = Task.objects.filter(run=again, kind="CONTAINER")
    assert sorted(t.name for t in steps if t.cached_from_id) == ["one", "three", "two"]


def test_a_long_chain_of_inline_steps_continues_in_a_new_advance(
    monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    spec = container_pipeline("cached-chain", CACHED_CHAIN)
    first = _create(spec)
    _succeed_every_step(first)
    # One planning round per advance: each advance settles one cache hit, then hands the
    # rest to a fresh advance instead of stopping silently.
    monkeypatch.setattr(execution_service, "MAX_PLAN_ROUNDS", 1)
    again = _create(spec)
    for expected in (["one"], ["one", "two"], ["one", "three", "two"]):
        with django_capture_on_commit_callbacks(execute=False) as callbacks, transaction.atomic():
            locked = Run.objects.select_for_update().get(pk=again.pk)
            assert execution_service.advance_locked(locked) == []
        cached = sorted(
            Task.objects.filter(run=again, cached_from__isnull=False).values_list("name", flat=True)
        )
        assert cached == expected
        state = Run.objects.get(pk=again.pk)
        if expected != ["one", "three", "two"]:
            assert state.state == RuntimeState.RUNNING
            assert state.needs_advance  # and an advance was queued for after the commit
            assert [cb for cb in callbacks if "run_advance_later" in cb.__qualname__]
    # The third advance created the last hit; the next one ends the run.
    assert run_advance(run_id=again.pk) == []
    assert Run.objects.get(pk=again.pk).state == RuntimeState.SUCCEEDED
