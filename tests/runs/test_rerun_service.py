"""Re-running one step: the service, the REST endpoint, the task panel's form and the
"why" sentence, on recorded runs (no worker: the child run is created, not executed)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.core.authz import OPERATOR
from apps.core.choices import PipelineFormat, RuntimeState, TaskKind
from apps.core.exceptions import FailedPrecondition, InvalidInput, NotFound, PermissionDenied
from apps.core.models import Membership, Namespace
from apps.core.services import api_token_create
from apps.runs.models import Run
from apps.runs.selectors import task_get_detail, task_why
from apps.runs.services import task_rerun
from tests.factories import RunFactory, TaskFactory, UserFactory
from tests.runs.ir import container_pipeline

pytestmark = pytest.mark.django_db


def _origin(state: str = RuntimeState.FAILED) -> Run:
    """A finished run of a -> b (b takes a's output v as an integer, and parameter n),
    with c after b, recorded as a worker would have left it."""
    spec = container_pipeline(
        "chain",
        {
            "a": {"command": ["echo"], "outputs": ["out"], "inputs": {"n": {"param": "n"}}},
            "b": {
                "command": ["echo"],
                "outputs": ["out"],
                "inputs": {"v": {"task": "a", "output": "out"}, "n": {"param": "n"}},
            },
            "c": {"command": ["echo"], "inputs": {"v": {"task": "b", "output": "out"}}},
        },
        parameters={"n": {"parameterType": "STRING"}},
    )
    spec["components"]["comp-b"]["inputDefinitions"]["parameters"]["v"] = {"parameterType": "NUMBER_INTEGER"}
    run = RunFactory(
        pipeline_version=None, pipeline_spec=spec, spec_format=PipelineFormat.KFP_IR, state=state
    )
    root = TaskFactory(
        run=run, key="root", name="root", kind=TaskKind.ROOT, inputs={"parameters": {"n": "N"}}
    )
    TaskFactory(run=run, parent=root, key="root/a", name="a", outputs={"parameters": {"out": -2}})
    TaskFactory(
        run=run,
        parent=root,
        key="root/b",
        name="b",
        state=RuntimeState.FAILED,
        inputs={"parameters": {"v": -2, "n": "N"}},
        cache_status="caching disabled",
    )
    TaskFactory(
        run=run,
        parent=root,
        key="root/c",
        name="c",
        state=RuntimeState.SKIPPED,
        status_message="upstream 'b' failed",
    )
    return run


def _user(role: str):  # type: ignore[no-untyped-def]
    return UserFactory(username=f"u-{role}", namespace__role=role)


def test_editor_reruns_a_step_with_an_edited_parameter() -> None:
    origin = _origin()
    child = task_rerun(
        actor=_user(Membership.Role.EDITOR), run=origin, task_ref="root/b", parameters={"v": "5"}
    )
    assert child.rerun_of == origin and child.rerun_of_task_key == "root/b"
    assert child.runtime_parameters == {"v": 5}
    defaults = child.pipeline_spec["root"]["inputDefinitions"]["parameters"]
    assert defaults["n"]["defaultValue"] == "N" and defaults["v"]["defaultValue"] == -2
    assert list(child.pipeline_spec["root"]["dag"]["tasks"]) == ["b"]
    assert child.namespace == origin.namespace and child.experiment == origin.experiment
    assert child.display_name == f"Re-run of b from {origin.display_name}"


def test_downstream_is_included_on_request() -> None:
    child = task_rerun(actor=OPERATOR, run=_origin(), task_ref="root/b", include_downstream=True)
    assert sorted(child.pipeline_spec["root"]["dag"]["tasks"]) == ["b", "c"]


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"task_ref": "root/nope"}, NotFound, "task root/nope not found"),
        ({"task_ref": "root"}, InvalidInput, "not a container step"),
        ({"task_ref": "root/b", "parameters": {"v": "abc"}}, InvalidInput, "v: expects an integer"),
        ({"task_ref": "root/b", "parameters": {"v": 1.5}}, InvalidInput, "v: expects an integer"),
        ({"task_ref": "root/b", "parameters": {"zzz": 1}}, InvalidInput, "no input parameter 'zzz'"),
        ({"task_ref": "root/b", "parameters": ["v"]}, InvalidInput, "parameters must be an object"),
    ],
)
def test_bad_requests_are_refused_and_create_nothing(kwargs, error, words) -> None:  # type: ignore[no-untyped-def]
    origin = _origin()
    before = Run.objects.count()
    with pytest.raises(error, match=words):
        task_rerun(actor=OPERATOR, run=origin, **kwargs)
    assert Run.objects.count() == before


def test_type_errors_name_the_parameter_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        task_rerun(actor=OPERATOR, run=_origin(), task_ref="root/b", parameters={"v": "x"})
    assert caught.value.field == "parameters.v"


def test_a_viewer_may_not_rerun_and_an_active_run_is_refused() -> None:
    origin = _origin()
    with pytest.raises(PermissionDenied):
        task_rerun(actor=_user(Membership.Role.VIEWER), run=origin, task_ref="root/b")
    active = _origin(state=RuntimeState.RUNNING)
    with pytest.raises(FailedPrecondition, match="once the run has finished"):
        task_rerun(actor=OPERATOR, run=active, task_ref="root/b")
    assert not Run.objects.filter(rerun_of__isnull=False).exists()


# --- the REST endpoint -------------------------------------------------------------------


def _api(user) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(actor=user, user=user, name='t')[1]}")
    return client


def _rerun_url(run: Run, task: str) -> str:
    return f"/apis/v2beta1/runs/{run.pk}/tasks/{task}:rerun"


def test_api_reruns_a_step_and_answers_the_new_run() -> None:
    origin = _origin()
    api = _api(_user(Membership.Role.EDITOR))
    response = api.post(
        _rerun_url(origin, "b"), {"parameters": {"v": 7}, "include_downstream": True}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    child = Run.objects.get(pk=body["run_id"])
    assert body["rerun_of_run_id"] == str(origin.pk) and body["rerun_of_task_key"] == "root/b"
    assert body["runtime_config"]["parameters"]["v"] == 7
    assert sorted(child.pipeline_spec["root"]["dag"]["tasks"]) == ["b", "c"]


@pytest.mark.parametrize(
    ("role", "task", "body", "status", "words"),
    [
        (Membership.Role.EDITOR, "b", {"parameters": {"v": "seven"}}, 400, "v: expects an integer"),
        (Membership.Role.EDITOR, "b", {"include_downstream": "yes"}, 400, "include_downstream"),
        (Membership.Role.EDITOR, "nope", {}, 404, "nope"),
        (Membership.Role.VIEWER, "b", {}, 403, "editor"),
    ],
)
def test_api_refusals_create_nothing(role, task, body, status, words) -> None:  # type: ignore[no-untyped-def]
    origin = _origin()
    response = _api(_user(role)).post(_rerun_url(origin, task), body, format="json")
    assert response.status_code == status, response.content
    assert words in response.content.decode()
    assert not Run.objects.filter(rerun_of__isnull=False).exists()


# --- the task panel ------------------------------------------------------------------------


def _panel(client, run: Run, key: str) -> str:  # type: ignore[no-untyped-def]
    task = run.tasks.get(key=key)
    return client.get(f"/runs/{run.pk}/panel/", {"task": task.pk}, HTTP_X_CANAL_FRAGMENT="1").content.decode()


def test_panel_offers_the_form_to_editors_prefilled_and_hides_it_from_viewers(client) -> None:  # type: ignore[no-untyped-def]
    origin = _origin()
    client.force_login(_user(Membership.Role.EDITOR))
    html = _panel(client, origin, "root/b")
    assert "Re-run this step" in html
    assert 'name="rerun-param__v"' in html and 'value="-2"' in html
    assert 'name="rerun-include_downstream"' in html
    client.force_login(_user(Membership.Role.VIEWER))
    html = _panel(client, origin, "root/b")
    assert "Re-run this step" not in html
    task = origin.tasks.get(key="root/b")
    assert (
        client.post(f"/runs/{origin.pk}/tasks/{task.pk}/rerun/", {"rerun-param__v": "1"}).status_code == 403
    )


def test_form_post_lands_on_the_child_run_whose_banner_links_back(client) -> None:  # type: ignore[no-untyped-def]
    origin = _origin()
    client.force_login(_user(Membership.Role.EDITOR))
    task = origin.tasks.get(key="root/b")
    response = client.post(
        f"/runs/{origin.pk}/tasks/{task.pk}/rerun/", {"rerun-param__v": "3", "rerun-param__n": "M"}
    )
    child = Run.objects.get(rerun_of=origin)
    assert response.status_code == 302 and response["Location"] == f"/runs/{child.pk}/"
    assert child.runtime_parameters == {"v": 3, "n": "M"}
    html = client.get(f"/runs/{child.pk}/").content.decode()
    assert "data-rerun-banner" in html and f'href="/runs/{origin.pk}/"' in html and "root/b" in html
    origin_page = client.get(f"/runs/{origin.pk}/").content.decode()
    assert "data-rerun-children" in origin_page and f'href="/runs/{child.pk}/"' in origin_page


def test_form_post_with_a_bad_value_goes_back_with_the_error_and_creates_nothing(client) -> None:  # type: ignore[no-untyped-def]
    origin = _origin()
    client.force_login(_user(Membership.Role.EDITOR))
    task = origin.tasks.get(key="root/b")
    response = client.post(f"/runs/{origin.pk}/tasks/{task.pk}/rerun/", {"rerun-param__v": "abc"})
    assert response.status_code == 400
    assert not Run.objects.filter(rerun_of=origin).exists()
    html = response.content.decode()
    # The run page again, the panel open on the step, the form showing the value and the error.
    assert "Not re-run" in html and "data-rerun-error>Enter a whole number." in html
    assert 'name="rerun-param__v"' in html and 'value="abc"' in html


# --- why -------------------------------------------------------------------------------------


def test_why_says_which_upstream_stopped_a_task_and_why_a_step_ran() -> None:
    origin = _origin()
    c = task_get_detail(run=origin, task_id="root/c")
    assert task_why(run=origin, task=c) == (
        "Not reached: upstream 'b' failed, and it runs only when its upstream tasks succeed."
    )
    b = task_get_detail(run=origin, task_id="root/b")
    assert task_why(run=origin, task=b) == "Ran because its upstream task a succeeded; caching is off for it."


def test_why_names_a_false_condition_with_the_values_it_saw() -> None:
    origin = _origin()
    origin.pipeline_spec["root"]["dag"]["tasks"]["c"]["triggerPolicy"] = {
        "condition": "int(inputs.parameter_values['pipelinechannel--x']) > 5"
    }
    task = TaskFactory(
        run=origin,
        key="root/c2",
        name="c2",
        state=RuntimeState.SKIPPED,
        inputs={"parameters": {"pipelinechannel--x": 3}},
        status_message="condition false: int(inputs.parameter_values['pipelinechannel--x']) > 5",
    )
    assert task_why(run=origin, task=task) == (
        "Skipped: its condition int(inputs.parameter_values['pipelinechannel--x']) > 5 "
        "evaluated to false (with x = 3)."
    )


def test_why_names_the_cache_origin_and_fingerprint() -> None:
    origin = _origin(state=RuntimeState.SUCCEEDED)
    source = origin.tasks.get(key="root/a")
    run = RunFactory(state=RuntimeState.SUCCEEDED)
    hit = TaskFactory(run=run, key="root/a", name="a", cached_from=source, cache_fingerprint="ab" * 32)
    text = task_why(run=run, task=task_get_detail(run=run, task_id=hit.pk))
    assert text.startswith(f"Served from cache: task root/a of run “{origin.display_name}”")
    assert "fingerprint abababababab…" in text


def test_the_rerun_step_says_it_is_a_rerun() -> None:
    child = task_rerun(actor=OPERATOR, run=_origin(), task_ref="root/b")
    step = TaskFactory(run=child, key="root/b", name="b", state=RuntimeState.SUCCEEDED)
    assert task_why(run=child, task=step).startswith("Ran as the re-run of task root/b of its origin run")


def test_namespace_of_child_is_the_origins() -> None:
    origin = _origin()
    assert Namespace.objects.count() >= 1
    child = task_rerun(actor=OPERATOR, run=origin, task_ref="root/b")
    assert child.namespace_id == origin.namespace_id


# --- manage.py run_step ----------------------------------------------------------------------


def test_run_step_command_creates_the_child_and_prints_its_url() -> None:
    from io import StringIO

    from django.core.management import call_command

    origin = _origin()
    out = StringIO()
    call_command("run_step", str(origin.pk), "b", "--param", "v=9", "--downstream", stdout=out)
    child = Run.objects.get(rerun_of=origin)
    assert child.runtime_parameters == {"v": 9}
    assert sorted(child.pipeline_spec["root"]["dag"]["tasks"]) == ["b", "c"]
    assert f"run {child.pk}: re-run of root/b" in out.getvalue()
    assert f"/runs/{child.pk}/" in out.getvalue()


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["nope"], "has no task 'nope'"),
        (["b", "--param", "v=abc"], "v: expects an integer"),
        (["b", "--param", "zzz=1"], "no input parameter 'zzz'"),
        (["b", "--param", "novalue"], "expected NAME=VALUE"),
        (["b", "--user", "u-viewer"], "editor"),
    ],
)
def test_run_step_command_refusals_create_nothing(argv, words) -> None:  # type: ignore[no-untyped-def]
    from django.core.management import call_command
    from django.core.management.base import CommandError

    _user(Membership.Role.VIEWER)
    origin = _origin()
    with pytest.raises(CommandError, match=words):
        call_command("run_step", str(origin.pk), *argv)
    assert not Run.objects.filter(rerun_of__isnull=False).exists()


def test_api_task_details_say_why_in_a_fixed_number_of_queries() -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    api = APIClient()
    api.force_authenticate(_user(Membership.Role.VIEWER))  # no token bookkeeping in the counts
    source = _origin(state=RuntimeState.SUCCEEDED).tasks.get(key="root/a")

    def get(cached: int) -> tuple[dict, int]:  # type: ignore[type-arg]
        run = _origin()
        for i in range(cached):
            TaskFactory(
                run=run, key=f"root/x{i}", name=f"x{i}", cached_from=source, cache_fingerprint="f" * 64
            )
        with CaptureQueriesContext(connection) as queries:
            response = api.get(f"/apis/v2beta1/runs/{run.pk}")
        assert response.status_code == 200
        details = {t["display_name"]: t.get("why") for t in response.json()["run_details"]["task_details"]}
        return details, len(queries)

    details, few = get(1)
    assert (
        details["c"] == "Not reached: upstream 'b' failed, and it runs only when its upstream tasks succeed."
    )
    assert details["x0"].startswith("Served from cache: task root/a of run")
    assert "root" not in details or details["root"] is None
    _details, many = get(5)
    assert many == few, (few, many)


def test_a_step_that_was_not_reached_points_to_its_failed_upstream() -> None:
    origin = _origin()
    origin.pipeline_spec["components"]["comp-c"]["inputDefinitions"]["parameters"]["v"] = {
        "parameterType": "STRING"
    }
    with pytest.raises(
        InvalidInput, match=r"'c' was not reached .upstream 'b' failed.*re-run 'b' with its downstream"
    ):
        task_rerun(actor=OPERATOR, run=origin, task_ref="root/c")
    assert not Run.objects.filter(rerun_of__isnull=False).exists()


def test_why_makes_no_upstream_claim_without_a_kfp_spec() -> None:
    run = RunFactory(state=RuntimeState.SUCCEEDED, spec_format=PipelineFormat.ARGO)
    task = TaskFactory(run=run, key="root/step", name="step")
    assert (
        task_why(run=run, task=task_get_detail(run=run, task_id=task.pk))
        == "Ran because the executor started it."
    )
