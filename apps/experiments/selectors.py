"""Read-side queries for experiments, scoped to the user's namespaces."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet

from apps.core.choices import StorageState
from apps.core.exceptions import NotFound
from apps.core.models import Namespace
from apps.core.selectors import namespace_list_for_user
from apps.experiments.filters import ExperimentFilterSet
from apps.experiments.models import Experiment

DEFAULT_EXPERIMENT_NAME = "Default"


def experiment_list(*, user: Any, namespace: Namespace | None = None) -> QuerySet[Experiment]:
    """Experiments the user may see (in one namespace if given)."""
    qs = Experiment.objects.filter(namespace__in=namespace_list_for_user(user=user))
    if namespace is not None:
        qs = qs.filter(namespace=namespace)
    return qs.select_related("namespace")


def experiment_filter(
    *, user: Any, namespace: Namespace | None, archived: bool, params: Any, request: Any = None
) -> ExperimentFilterSet:
    """The experiments list page's rows: the archived (or the active) experiments,
    filtered and sorted by the request parameters ``params`` (``q``, ``sort``); ``.qs``
    is the queryset."""
    qs = experiment_list(user=user, namespace=namespace).filter(
        storage_state=StorageState.ARCHIVED if archived else StorageState.AVAILABLE
    )
    return ExperimentFilterSet(params, qs, request=request)


def experiment_choices(*, user: Any, namespace: Namespace | None, limit: int = 500) -> list[Experiment]:
    """At most ``limit`` active experiments of the namespace, by name (a form's choices)."""
    qs = experiment_list(user=user, namespace=namespace).filter(storage_state=StorageState.AVAILABLE)
    return list(qs.order_by("display_name")[:limit])


def experiment_get(*, user: Any, experiment_id: Any) -> Experiment:
    """One experiment the user may see, or NotFound."""
    try:
        eid = experiment_id if isinstance(experiment_id, uuid.UUID) else uuid.UUID(str(experiment_id))
        return experiment_list(user=user).get(pk=eid)
    except (ValueError, Experiment.DoesNotExist):
        raise NotFound(f"experiment {experiment_id} not found") from None


def experiment_get_by_name(*, user: Any, namespace: Namespace, name: str) -> Experiment | None:
    """The experiment with this display name in the namespace, if any."""
    return experiment_list(user=user, namespace=namespace).filter(display_name=name).first()
