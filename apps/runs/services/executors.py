"""The run-executor seam: which executor runs a run, and the interface each one has.

A run is executed by a *run executor*, chosen when the run is created and recorded
on it (``Run.executor``): the run's own choice, else its experiment's
``execution_backend``, else ``CANAL_EXECUTION_BACKEND``.

* ``local``: a KFP IR run is planned by Canal's engine (``local_plan``) and its
  steps run as sandboxed processes on the workers (``local_steps``); an Argo
  Workflow is run by Canal's Argo interpreter on a worker (``argo_interpreted``).
* ``argo``: the run is one Argo Workflow on a Kubernetes cluster
  (``argo_cluster``): compiled (KFP IR) or taken as uploaded (Argo YAML),
  submitted, and mirrored back by the persistence agent on the scheduler's tick.

Whatever runs it, a run's outcome is recorded in the same Run, Task, TaskAttempt
and Artifact rows, so the UI, the API, compare, clone and caching display never
ask which executor ran a task (Airflow's executor interface is as small: queue,
sync, end, terminate; Dagster separates where a run goes from where steps go).
"""

from __future__ import annotations

import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, TypeVar

from django.conf import settings

from apps.core.choices import RunExecutor
from apps.core.exceptions import InvalidInput

if TYPE_CHECKING:
    from apps.experiments.models import Experiment
    from apps.runs.models import Run


class RunExecutorBase(ABC):
    """How one kind of run is executed. Every method is called with the run's row
    locked by the caller's transaction (``SELECT … FOR UPDATE``), so two workers or
    schedulers never act on the same run at once."""

    name: ClassVar[str] = ""

    @abstractmethod
    def advance(self, run: Run) -> list[uuid.UUID]:
        """Start the run or move it on; return the local steps to execute now (if any)."""

    @abstractmethod
    def terminate(self, run: Run) -> None:
        """The run has just gone CANCELING: stop what is running (it ends CANCELED)."""

    @abstractmethod
    def retry(self, run: Run) -> None:
        """Re-run a FAILED or CANCELED run's failed parts, keeping what succeeded; the
        caller then marks the run RUNNING and advances it. Raises FailedPrecondition
        when there is nothing to resume."""


_ExecutorT = TypeVar("_ExecutorT", bound=type[RunExecutorBase])
_REGISTRY: dict[tuple[str, str], RunExecutorBase] = {}


def register_run_executor(executor: str, spec_format: str) -> Callable[[_ExecutorT], _ExecutorT]:
    """Class decorator (NetBox's registry pattern): ``cls`` runs ``spec_format`` runs on ``executor``."""

    def decorate(cls: _ExecutorT) -> _ExecutorT:
        key = (executor, spec_format)
        if key in _REGISTRY and type(_REGISTRY[key]) is not cls:
            raise ValueError(f"run executor {key} is already registered by {type(_REGISTRY[key]).__name__}")
        cls.name = executor
        _REGISTRY[key] = cls()
        return cls

    return decorate


def run_executor_for(run: Run) -> RunExecutorBase:
    """The executor of ``run`` (by its recorded executor and spec format)."""
    _load()
    try:
        return _REGISTRY[(run.executor, run.spec_format)]
    except KeyError:
        raise InvalidInput(
            f"no run executor {run.executor!r} for {run.spec_format} pipelines", field="executor"
        ) from None


def executor_choose(*, requested: str = "", experiment: Experiment | None = None) -> str:
    """The executor of a new run: ``requested``, else the experiment's, else the default."""
    choice = (requested or "").strip().lower()
    if not choice and experiment is not None:
        choice = experiment.execution_backend or ""
    choice = choice or settings.CANAL_EXECUTION_BACKEND
    if choice not in RunExecutor.values:
        raise InvalidInput(
            f"unknown executor {choice!r}: use one of {', '.join(RunExecutor.values)}", field="executor"
        )
    return choice


def _load() -> None:
    # The executors register themselves when their module is imported.
    from apps.runs.services import argo_cluster, argo_interpreted, local_plan  # noqa: F401


def executor_check(*, executor: str, spec_format: str) -> None:
    """Refuse a run its executor could not start: the Argo executor needs a cluster."""
    if executor == RunExecutor.ARGO and not (
        settings.CANAL_KUBECONFIG or os.environ.get("KUBERNETES_SERVICE_HOST")
    ):
        raise InvalidInput(
            "the argo executor is not configured: set CANAL_KUBECONFIG to a kubeconfig file "
            "(or run Canal inside the cluster) and CANAL_ARGO_NAMESPACE",
            field="executor",
        )
