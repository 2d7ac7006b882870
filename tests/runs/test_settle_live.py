"""Issue 9 end to end with a real worker: a failure settles through skips in one plan,
and a run that cannot be fingerprinted fails with the reason while its pages still load.

Only a worker runs here, no scheduler: the reaper's stuck-run sweep, which used to end
the diamond after STUCK_RUN_GRACE_SECONDS, never runs, so a run that did not settle
when its step failed would stay RUNNING and the wait would time out."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, transaction

from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.services import namespace_ensure
from apps.runs.models import Run, Task
from apps.runs.services import run_create
from tests.database import refuses_lone_surrogates
from tests.live import wait_for_run
from tests.runs.ir import container_pipeline

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

ECHO = ["echo", "hi"]


def _diamond(order: list[str]) -> dict[str, Any]:
    """``fail = fail(); echo.after(fail); echo-2.after(fail, echo); echo-3.after(fail, echo-2)``
    (as kfp names them), with dag.tasks in ``order``."""
    steps = {
        "fail": {"command": ["sh", "-c", "echo failing; exit 3"]},
        "echo": {"command": ECHO, "after": ["fail"]},
        "echo-2": {"command": ECHO, "after": ["fail", "echo"]},
        "echo-3": {"command": ECHO, "after": ["fail", "echo-2"]},
    }
    return container_pipeline("skip-diamond", {name: steps[name] for name in order})


# kfp's order (sorted by name) lists each echo after the one it waits for; reversed, each
# echo comes before it, which is what left the run RUNNING until the reaper's sweep.
@pytest.mark.parametrize(
    "order",
    [["echo", "echo-2", "echo-3", "fail"], ["echo-3", "echo-2", "echo", "fail"]],
    ids=["as-kfp-sorts", "reversed"],
)
def test_the_skip_diamond_fails_as_soon_as_its_step_fails(worker: Any, order: list[str]) -> None:
    spec = _diamond(order)
    assert list(spec["root"]["dag"]["tasks"]) == order
    run = run_create(
        namespace=namespace_ensure(actor=OPERATOR), actor=OPERATOR, display_name="diamond", pipeline_spec=spec
    )
    run = wait_for_run(run.pk, timeout=180)
    assert run.state == RuntimeState.FAILED
    assert run.error.startswith("task 'fail' failed: ")
    tasks = {t.name: t for t in Task.objects.filter(run=run)}
    assert tasks["fail"].state == RuntimeState.FAILED
    assert tasks["fail"].attempts.count() == 1
    skipped = [tasks[name] for name in ("echo", "echo-2", "echo-3")]
    for task in skipped:
        assert task.state == RuntimeState.SKIPPED, task.name
        assert task.attempts.count() == 0  # never ran
        assert task.status_message.startswith("upstream '")
    # One plan, after the failure was recorded, created the three skips and ended the run:
    # everything it wrote carries that advance's revision.
    assert len({t.revision for t in [*skipped, tasks["root"]]}) == 1
    assert tasks["root"].state == RuntimeState.FAILED


def test_a_run_whose_parameter_cannot_be_fingerprinted_fails_and_its_pages_load(
    worker: Any, client: Any, user: Any
) -> None:
    spec = container_pipeline(
        "surrogate-param",
        {"echo": {"command": ["echo"], "args": [], "inputs": {"text": {"param": "text"}}}},
        parameters={"text": {"parameterType": "STRING"}},
    )
    # The edges refuse a lone surrogate now; this row holds one anyway, as a run stored
    # before they did (or written past them) would. The worker only hears of the run
    # when this transaction commits, after the parameter was replaced.
    with transaction.atomic():
        run = run_create(
            namespace=namespace_ensure(actor=OPERATOR),
            actor=OPERATOR,
            display_name="surrogate",
            pipeline_spec=spec,
            parameters={"text": "fine"},
        )
        if refuses_lone_surrogates():  # MariaDB checks JSON text: no run can hold one there
            with pytest.raises(IntegrityError), transaction.atomic():
                Run.objects.filter(pk=run.pk).update(runtime_parameters={"text": "bad \ud800 value"})
            pytest.skip("the database refuses JSON holding a lone surrogate: no run can store one")
        Run.objects.filter(pk=run.pk).update(runtime_parameters={"text": "bad \ud800 value"})
    run = wait_for_run(run.pk, timeout=180)
    assert run.state == RuntimeState.FAILED
    assert "cannot compute the cache fingerprint of task 'echo'" in run.error
    assert "input 'text' holds a lone surrogate (\\ud800)" in run.error
    step = Task.objects.get(run=run, key="root/echo")
    assert step.state == RuntimeState.FAILED
    assert step.inputs["parameters"]["text"] == "bad \ud800 value"  # stored as given

    client.force_login(user)
    page = client.get(f"/runs/{run.pk}/")
    assert page.status_code == 200
    assert "cannot compute the cache fingerprint" in page.content.decode()
    panel = client.get(f"/runs/{run.pk}/?task={step.pk}")  # the step's inputs, shown
    assert panel.status_code == 200
    assert "bad \ufffd value" in panel.content.decode()
    listing = client.get("/runs/")
    assert listing.status_code == 200
    assert str(run.pk) in listing.content.decode()
    api_run = client.get(f"/apis/v2beta1/runs/{run.pk}")
    assert api_run.status_code == 200
    assert api_run.json()["state"] == "FAILED"
    assert api_run.json()["runtime_config"]["parameters"]["text"] == "bad \ufffd value"
    api_list = client.get("/apis/v2beta1/runs")
    assert api_list.status_code == 200
    assert str(run.pk) in [r["run_id"] for r in api_list.json()["runs"]]
