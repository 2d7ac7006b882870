"""Roles in the service layer: every write service refuses a caller whose role is too low
before it writes anything, whoever calls it (view, API, admin, command, another service).

The matrix (test_role_matrix.py) goes through HTTP, where views also refuse early; these
tests call the services directly, so a service that forgot its own check fails here even
if every view in front of it checks.
"""

from __future__ import annotations

import inspect
import io
import pkgutil
from collections.abc import Callable
from importlib import import_module
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import AnonymousUser
from django.core.management import CommandError, call_command
from django.db import transaction

from apps.core import services as core_services
from apps.core.authz import OPERATOR, SCHEDULER
from apps.core.choices import RecurringRunMode, RuntimeState
from apps.core.exceptions import NotFound, PermissionDenied
from apps.core.models import Membership
from apps.experiments import services as experiment_services
from apps.importers import import_pipeline
from apps.pipelines import services as pipeline_services
from apps.runs import services as run_services
from apps.runs.models import Run
from apps.schedules import services as schedule_services
from apps.schedules.models import RecurringRun
from tests.factories import HELLO_IR_TEXT
from tests.hardening.world import RANK, World, build_world, deactivate, snapshot

SPEC = yaml.safe_load(HELLO_IR_TEXT)
Call = Callable[[World, Any], Any]


def _running(w: World) -> None:
    Run.objects.filter(pk=w.run.pk).update(state=RuntimeState.RUNNING)


#: What a service needs in the world before it can succeed (run before the snapshot).
PREPARE: dict[str, Callable[[World], None]] = {"run_terminate": _running}


#: service name -> (the least role that may call it, or "admin"; the call).
SERVICES: dict[str, tuple[str, Call]] = {
    "pipeline_create_from_upload": (
        "editor",
        lambda w, actor: pipeline_services.pipeline_create_from_upload(
            actor=actor, namespace=w.a, data=HELLO_IR_TEXT.encode(), filename="p.yaml", name="svc"
        ),
    ),
    "pipeline_create_from_spec": (
        "editor",
        lambda w, actor: pipeline_services.pipeline_create_from_spec(
            actor=actor, namespace=w.a, spec=SPEC, name="svc"
        ),
    ),
    "pipeline_version_create": (
        "editor",
        lambda w, actor: pipeline_services.pipeline_version_create(
            actor=actor, pipeline=w.pipeline, imported=import_pipeline(HELLO_IR_TEXT.encode(), "p.yaml")
        ),
    ),
    "pipeline_version_create_from_upload": (
        "editor",
        lambda w, actor: pipeline_services.pipeline_version_create_from_upload(
            actor=actor, pipeline=w.pipeline, data=HELLO_IR_TEXT.encode(), filename="p.yaml"
        ),
    ),
    "pipeline_create": (
        "editor",
        lambda w, actor: pipeline_services.pipeline_create(actor=actor, namespace=w.a, name="svc-empty"),
    ),
    "pipeline_update": (
        "editor",
        lambda w, actor: pipeline_services.pipeline_update(
            actor=actor, pipeline=w.pipeline, display_name="new"
        ),
    ),
    "pipeline_version_update": (
        "editor",
        lambda w, actor: pipeline_services.pipeline_version_update(
            actor=actor, version=w.version, display_name="new"
        ),
    ),
    "pipeline_version_create_from_spec": (
        "editor",
        lambda w, actor: pipeline_services.pipeline_version_create_from_spec(
            actor=actor, pipeline=w.pipeline, spec=SPEC
        ),
    ),
    "pipeline_delete_many": (
        "owner",
        lambda w, actor: pipeline_services.pipeline_delete_many(
            actor=actor, pipelines=[w.spare_pipeline], cascade=True
        ),
    ),
    "pipeline_delete": (
        "owner",
        lambda w, actor: pipeline_services.pipeline_delete(
            actor=actor, pipeline=w.spare_pipeline, cascade=True
        ),
    ),
    "pipeline_version_delete": (
        "owner",
        lambda w, actor: pipeline_services.pipeline_version_delete(actor=actor, version=w.unused_version),
    ),
    "experiment_create": (
        "editor",
        lambda w, actor: experiment_services.experiment_create(
            actor=actor, namespace=w.a, display_name="svc"
        ),
    ),
    "experiment_archive": (
        "editor",
        lambda w, actor: experiment_services.experiment_archive(actor=actor, experiment=w.experiment),
    ),
    "experiment_unarchive": (
        "editor",
        lambda w, actor: experiment_services.experiment_unarchive(actor=actor, experiment=w.experiment),
    ),
    "experiment_delete": (
        "owner",
        lambda w, actor: experiment_services.experiment_delete(actor=actor, experiment=w.empty_experiment),
    ),
    "run_create": (
        "editor",
        lambda w, actor: run_services.run_create(
            actor=actor,
            namespace=w.a,
            display_name="svc",
            pipeline_version=w.version,
            experiment=w.experiment,
        ),
    ),
    "run_clone": ("editor", lambda w, actor: run_services.run_clone(actor=actor, run=w.run)),
    "run_terminate": ("editor", lambda w, actor: run_services.run_terminate(actor=actor, run=w.run)),
    "run_retry": ("editor", lambda w, actor: run_services.run_retry(actor=actor, run=w.run)),
    "run_archive": ("editor", lambda w, actor: run_services.run_archive(actor=actor, run=w.run)),
    "run_unarchive": ("editor", lambda w, actor: run_services.run_unarchive(actor=actor, run=w.run)),
    "run_delete": ("owner", lambda w, actor: run_services.run_delete(actor=actor, run=w.run)),
    "recurring_run_create": (
        "editor",
        lambda w, actor: schedule_services.recurring_run_create(
            actor=actor,
            namespace=w.a,
            display_name="svc",
            pipeline_version=w.version,
            experiment=w.experiment,
            trigger_type="PERIODIC",
            interval_second=3600,
        ),
    ),
    "recurring_run_clone": (
        "editor",
        lambda w, actor: schedule_services.recurring_run_clone(actor=actor, recurring_run=w.recurring_run),
    ),
    "recurring_run_enable": (
        "editor",
        lambda w, actor: schedule_services.recurring_run_enable(actor=actor, recurring_run=w.recurring_run),
    ),
    "recurring_run_disable": (
        "editor",
        lambda w, actor: schedule_services.recurring_run_disable(actor=actor, recurring_run=w.recurring_run),
    ),
    "recurring_run_delete": (
        "owner",
        lambda w, actor: schedule_services.recurring_run_delete(actor=actor, recurring_run=w.recurring_run),
    ),
    "namespace_update": (
        "owner",
        lambda w, actor: core_services.namespace_update(actor=actor, namespace=w.a, description="new"),
    ),
    "membership_add": (
        "owner",
        lambda w, actor: core_services.membership_add(
            actor=actor, namespace=w.a, username="newcomer", role=Membership.Role.VIEWER
        ),
    ),
    "membership_ensure": (
        "owner",
        lambda w, actor: core_services.membership_ensure(
            actor=actor, namespace=w.a, user=w.users["outsider"], role=Membership.Role.VIEWER
        ),
    ),
    "membership_set_role": (
        "owner",
        lambda w, actor: core_services.membership_set_role(
            actor=actor, membership=w.membership, role=Membership.Role.EDITOR
        ),
    ),
    "membership_remove": (
        "owner",
        lambda w, actor: core_services.membership_remove(actor=actor, membership=w.membership),
    ),
    "namespace_create": (
        "admin",
        lambda w, actor: core_services.namespace_create(actor=actor, name="new-ns"),
    ),
    "namespace_ensure": (
        "admin",
        lambda w, actor: core_services.namespace_ensure(actor=actor, name="new-ns"),
    ),
    "namespace_delete": (
        "admin",
        lambda w, actor: core_services.namespace_delete(actor=actor, namespace=w.b),
    ),
    "user_ensure": ("admin", lambda w, actor: core_services.user_ensure(actor=actor, username="made-up")),
    "api_token_create": (
        "admin",  # for someone else: a user makes only their own tokens
        lambda w, actor: core_services.api_token_create(actor=actor, user=w.newcomer),
    ),
    "api_token_revoke": (
        "admin",
        lambda w, actor: core_services.api_token_revoke(actor=actor, token=w.newcomer_token),
    ),
}

#: Services whose names say they write but which take no actor, and why.
NO_ACTOR = {
    "api_token_authenticate": "authentication itself: it finds out who the actor is",
    "experiment_get_or_create_default": "only called by run and schedule creation, after their check",
    "experiment_for_new_runs": "only called by run and schedule creation, after their check",
    "run_advance": "the engine: a Celery task advancing a run nobody asked about",
    "run_context": "reads a run for the engine; writes nothing",
    "run_id_for": "computes an id; writes nothing",
    "run_fail_unexpected": "the engine: a worker failing a run whose advance raised",
    "pipeline_root_check": "checks a requested root for run_create, which checks the actor first",
    "pipeline_root_for_run": "picks the root inside run_create, after its check",
    "run_pipeline_root_verify": "the engine: re-checks a run's stored root before planning",
    "run_uri_usable": "the engine: may a running step use this URI; writes nothing",
    "run_work_root": "computes a path; writes nothing",
    "run_executor_for": "picks a run's executor for the engine and the lifecycle services, after checks",
    "run_workflow": "builds the Workflow the argo executor submits for a run; writes nothing",
}
ENTITY_PREFIXES = (
    "pipeline_",
    "experiment_",
    "run_",
    "recurring_run_",
    "namespace_",
    "membership_",
    "user_",
    "api_token_",
)
CALLERS = ("viewer", "editor", "owner", "outsider", "admin", "deactivated", "anonymous", "none")


def _actor(w: World, caller: str) -> Any:
    if caller == "none":
        return None
    return AnonymousUser() if caller == "anonymous" else w.users[caller]


def _expected(caller: str, needs: str) -> type[Exception] | None:
    """The exception ``caller`` must get from a service that ``needs`` a role (None: allowed)."""
    if caller in ("anonymous", "none", "deactivated"):
        return PermissionDenied
    if caller == "admin":
        return None
    if needs == "admin":
        return PermissionDenied
    if caller == "outsider":
        return NotFound  # A's objects do not exist for them
    return None if RANK[caller] >= RANK[needs] else PermissionDenied


@pytest.fixture
def world(db: Any) -> World:
    built = build_world()
    deactivate(built.users["deactivated"])
    return built


def test_every_write_service_checks_the_role_before_writing(world: World) -> None:
    failures = []
    for name, (needs, call) in SERVICES.items():
        for caller in CALLERS:
            expected = _expected(caller, needs)
            with transaction.atomic():
                if name in PREPARE:
                    PREPARE[name](world)
                world.refresh()
                before = snapshot()
                try:
                    call(world, _actor(world, caller))
                except (PermissionDenied, NotFound) as exc:
                    raised: type[Exception] | None = type(exc)
                    unchanged = snapshot() == before
                else:
                    raised, unchanged = None, True
                transaction.set_rollback(True)
            if raised is not expected:
                failures.append(f"{name} as {caller}: raised {raised}, expected {expected}")
            elif raised is not None and not unchanged:
                failures.append(f"{name} as {caller}: refused, but wrote first")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("system", [SCHEDULER, OPERATOR])
def test_system_actors_are_explicit_and_allowed(world: World, system: Any) -> None:
    for name, (_, call) in SERVICES.items():
        with transaction.atomic():
            if name in PREPARE:
                PREPARE[name](world)
            world.refresh()
            call(world, system)  # no PermissionDenied, no NotFound
            transaction.set_rollback(True)
        assert name


def test_a_user_manages_their_own_tokens_only(world: World) -> None:
    viewer, editor = world.users["viewer"], world.users["editor"]
    token, _ = core_services.api_token_create(actor=viewer, user=viewer)
    with pytest.raises(PermissionDenied):
        core_services.api_token_revoke(actor=editor, token=token)
    core_services.api_token_revoke(actor=viewer, token=token)
    token.refresh_from_db()
    assert token.revoked


def test_the_scheduler_fires_as_itself_and_credits_the_author(world: World) -> None:
    """A schedule keeps firing after its author lost the editor role (the check was made
    when it was created or enabled; owners disable it); its runs record the author."""
    editor = world.users["editor"]
    rr = schedule_services.recurring_run_create(
        actor=editor,
        namespace=world.a,
        display_name="nightly",
        pipeline_version=world.version,
        experiment=world.experiment,
        trigger_type="PERIODIC",
        interval_second=3600,
    )
    Membership.objects.filter(user=editor, namespace=world.a).update(role=Membership.Role.VIEWER)
    report = schedule_services.schedules_tick(now=rr.next_fire_time)
    assert len(report.fired) == 1, report
    run = Run.objects.get(pk=report.fired[0])
    assert run.created_by == editor and run.recurring_run_id == rr.pk
    # The viewer can no longer stop it; an owner can.
    with pytest.raises(PermissionDenied):
        schedule_services.recurring_run_disable(actor=editor, recurring_run=rr)
    schedule_services.recurring_run_disable(actor=world.users["owner"], recurring_run=rr)
    assert RecurringRun.objects.get(pk=rr.pk).mode == RecurringRunMode.DISABLE


def test_a_missing_actor_is_a_loud_refusal_not_the_system(world: World) -> None:
    with pytest.raises(TypeError):
        run_services.run_delete(run=world.run)  # type: ignore[call-arg]
    with pytest.raises(PermissionDenied, match="no acting user"):
        run_services.run_delete(actor=None, run=world.run)
    assert Run.objects.filter(pk=world.run.pk).exists()


def _service_modules() -> list[Any]:
    modules = []
    for app in ("core", "pipelines", "experiments", "runs", "schedules", "artifacts"):
        try:
            package = import_module(f"apps.{app}.services")
        except ModuleNotFoundError:
            continue
        modules.append(package)
        for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
            modules.append(import_module(f"{package.__name__}.{info.name}"))
    return modules


def test_every_public_write_service_takes_the_actor_keyword_only() -> None:
    """Guards the rule for the next service: a public ``entity_verb`` function in a
    services module takes ``actor`` (keyword-only), or is listed in NO_ACTOR with why."""
    missing, seen = [], set()
    for module in _service_modules():
        for name, func in inspect.getmembers(module, inspect.isfunction):
            if func.__module__ != module.__name__ or name.startswith("_"):
                continue
            if not name.startswith(ENTITY_PREFIXES):
                continue
            seen.add(name)
            param = inspect.signature(func).parameters.get("actor")
            if name in NO_ACTOR:
                assert param is None, f"{name} takes an actor now: drop it from NO_ACTOR"
                continue
            if param is None or param.kind is not inspect.Parameter.KEYWORD_ONLY:
                missing.append(f"{module.__name__}.{name}")
    assert not missing, f"services without a keyword-only actor: {missing}"
    assert set(SERVICES) <= seen, f"tested services that no longer exist: {set(SERVICES) - seen}"
    untested = seen - set(SERVICES) - set(NO_ACTOR)
    assert not untested, f"services the role test does not call (add them to SERVICES): {untested}"


def test_run_pipeline_acts_as_the_given_user_or_the_operator(world: World, tmp_path: Any) -> None:
    path = tmp_path / "hello.yaml"
    path.write_text(HELLO_IR_TEXT)
    with pytest.raises(CommandError, match="may not start or clone runs"):
        call_command(
            "run_pipeline", str(path), "--namespace", "team-a", "--user", "viewer", stdout=io.StringIO()
        )
    with pytest.raises(CommandError, match="not found"):
        call_command(
            "run_pipeline", str(path), "--namespace", "team-a", "--user", "outsider", stdout=io.StringIO()
        )
    assert not Run.objects.filter(display_name="hello").exists()

    call_command("run_pipeline", str(path), "--namespace", "team-a", "--user", "editor", stdout=io.StringIO())
    by_editor = Run.objects.get(display_name="hello")
    assert by_editor.created_by == world.users["editor"] and by_editor.namespace == world.a

    call_command("run_pipeline", str(path), "--namespace", "made-by-operator", stdout=io.StringIO())
    by_operator = Run.objects.get(namespace__name="made-by-operator")
    assert by_operator.created_by is None
