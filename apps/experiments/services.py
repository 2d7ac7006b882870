"""Write-side operations for experiments. Each public service takes the acting user
(``actor=``) and checks its role in the experiment's namespace first."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from apps.core.authz import Action, Actor, actor_user, namespace_authorize
from apps.core.choices import RecurringRunMode, RecurringRunStatus, RunExecutor, StorageState
from apps.core.exceptions import Conflict, FailedPrecondition, InvalidInput
from apps.core.models import Namespace
from apps.experiments.models import Experiment
from apps.experiments.selectors import DEFAULT_EXPERIMENT_NAME


def experiment_create(
    *,
    actor: Actor,
    namespace: Namespace,
    display_name: str,
    description: str = "",
    execution_backend: str = "",
) -> Experiment:
    """Create an experiment; its name is unique in the namespace. ``execution_backend``
    (local or argo; empty: the server's default) is where its runs execute."""
    namespace_authorize(actor=actor, namespace=namespace, action=Action.EXPERIMENT_CREATE)
    name = (display_name or "").strip()
    if not name:
        raise InvalidInput("display_name is required", field="display_name")
    if len(name) > 255:
        raise InvalidInput("display_name is longer than 255 characters", field="display_name")
    backend = (execution_backend or "").strip().lower()
    if backend and backend not in RunExecutor.values:
        raise InvalidInput(
            f"unknown execution backend {backend!r}: use one of {', '.join(RunExecutor.values)}",
            field="execution_backend",
        )
    try:
        with transaction.atomic():
            return Experiment.objects.create(
                namespace=namespace,
                display_name=name,
                description=description or "",
                execution_backend=backend,
                created_by=actor_user(actor),
            )
    except IntegrityError as exc:
        raise Conflict(f"an experiment named {name!r} already exists", field="display_name") from exc


def experiment_get_or_create_default(*, namespace: Namespace) -> Experiment:
    """The namespace's "Default" experiment, which runs land in when none is given.

    No actor: only called by run and recurring-run creation, after they authorized
    their actor to create runs in ``namespace``."""
    try:
        with transaction.atomic():
            experiment, _ = Experiment.objects.get_or_create(
                namespace=namespace, display_name=DEFAULT_EXPERIMENT_NAME
            )
    except IntegrityError:  # created concurrently
        experiment = Experiment.objects.get(namespace=namespace, display_name=DEFAULT_EXPERIMENT_NAME)
    return experiment


def experiment_for_new_runs(*, namespace: Namespace, experiment: Experiment | None) -> Experiment:
    """The experiment new runs (and recurring runs) go into: the given one, if it is in
    the namespace and not archived, else the namespace's Default experiment."""
    if experiment is None:
        return experiment_get_or_create_default(namespace=namespace)
    if experiment.namespace_id != namespace.pk:
        raise InvalidInput("the experiment belongs to another namespace", field="experiment")
    if experiment.storage_state == StorageState.ARCHIVED:
        raise FailedPrecondition(
            f"experiment {experiment.display_name!r} is archived; restore it before starting runs in it"
        )
    return experiment


@transaction.atomic
def experiment_archive(*, actor: Actor, experiment: Experiment) -> None:
    """Archive an experiment, its runs, and disable its recurring runs (as KFP does)."""
    namespace_authorize(actor=actor, namespace=experiment.namespace, action=Action.EXPERIMENT_ARCHIVE)
    Experiment.objects.filter(pk=experiment.pk).update(storage_state=StorageState.ARCHIVED)
    experiment.runs.update(storage_state=StorageState.ARCHIVED)
    experiment.recurring_runs.update(mode=RecurringRunMode.DISABLE, status=RecurringRunStatus.DISABLED)
    experiment.storage_state = StorageState.ARCHIVED


@transaction.atomic
def experiment_unarchive(*, actor: Actor, experiment: Experiment) -> None:
    """Restore an experiment. Its runs stay archived until restored one by one, as in KFP."""
    namespace_authorize(actor=actor, namespace=experiment.namespace, action=Action.EXPERIMENT_ARCHIVE)
    Experiment.objects.filter(pk=experiment.pk).update(storage_state=StorageState.AVAILABLE)
    experiment.storage_state = StorageState.AVAILABLE


@transaction.atomic
def experiment_delete(*, actor: Actor, experiment: Experiment) -> None:
    """Delete an experiment that has no runs or recurring runs; the default one stays."""
    namespace_authorize(actor=actor, namespace=experiment.namespace, action=Action.EXPERIMENT_DELETE)
    if experiment.display_name == DEFAULT_EXPERIMENT_NAME:
        raise FailedPrecondition("the Default experiment cannot be deleted")
    if experiment.runs.exists() or experiment.recurring_runs.exists():
        raise FailedPrecondition(
            f"experiment {experiment.display_name!r} still has runs or recurring runs; delete them first"
        )
    experiment.delete()
