"""Argo Workflow YAML on the local executor: Canal's Argo interpreter runs it on a worker.

``advance`` hands a new run to a worker (``dispatch.argo_interpret_later``).
``argo_interpret`` takes the run's lease (stored in ``Run.executor_state``, renewed
every heartbeat), drives ``apps.backends.argo.interpreter`` with its pods running
as sandboxed host processes (``LocalPodRunner``), and after every change stores
the Argo-shaped status on the run and mirrors it into Task rows
(``workflow_records``). The status is the interpreter's whole state, so a worker
that dies mid-run loses nothing: its lease lapses, the scheduler's reaper
(``reap``) hands the run to another worker, and the interpreter resumes from the
stored status (pods that were running are run again, as Argo does for a pod
whose node was lost). Terminating a run is seen at the next heartbeat and stops
the workflow as ``spec.shutdown: Terminate`` does.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.backends.argo.cluster import ClusterError, formulate_retry
from apps.backends.argo.interpreter import Interpreter, InterpreterError, WorkflowRefused, run_interpreter
from apps.backends.argo.local_runner import LocalArtifactRepository, LocalPodRunner
from apps.core.choices import PipelineFormat, RunExecutor, RuntimeState
from apps.core.db import retry_on_conflict
from apps.core.exceptions import FailedPrecondition, InvalidInput
from apps.core.text import without_surrogates
from apps.runs import dispatch
from apps.runs.models import Run, Task
from apps.runs.services.executors import RunExecutorBase, register_run_executor
from apps.runs.services.lifecycle import set_run_state
from apps.runs.services.local_steps import WORKER_ID, execution_backend
from apps.runs.services.records import bump_revision
from apps.runs.services.storage import run_work_root
from apps.runs.services.workflow_records import workflow_status_record
from apps.storage.ownership import run_dir_uri

logger = logging.getLogger("canal.argo")

PERSIST_EVERY_SECONDS = 0.5
RUN_PHASES = {
    "Succeeded": RuntimeState.SUCCEEDED,
    "Failed": RuntimeState.FAILED,
    "Error": RuntimeState.FAILED,
}


_UNSAFE_NAME = re.compile(r"[^a-z0-9-]+")


def workflow_name(run: Run) -> str:
    """The Workflow's name in this run: its ``metadata.name`` or ``generateName`` made a
    DNS label (it names pod directories and log files: nothing may climb out of them),
    completed from the run id as Argo completes a ``generateName``."""
    metadata = run.pipeline_spec.get("metadata") or {}
    given = str(metadata.get("name") or metadata.get("generateName") or "workflow-")
    prefix = _UNSAFE_NAME.sub("-", given.lower()).strip("-")[:40] or "workflow"
    return f"{prefix}-{run.pk.hex[:5]}"


def _workflow(run: Run) -> dict[str, Any]:
    workflow: dict[str, Any] = copy.deepcopy(run.pipeline_spec)
    workflow.setdefault("metadata", {})["name"] = workflow_name(run)
    workflow["metadata"].pop("generateName", None)
    return workflow


def interpreter_for(
    run: Run, status: Mapping[str, Any] | None = None, *, namespace: str = "default"
) -> Interpreter:
    """The interpreter of a run (raises WorkflowRefused for what it cannot run)."""
    return Interpreter(
        _workflow(run),
        parameters=run.runtime_parameters or {},
        status=status or None,
        namespace=namespace,
        uid=str(run.pk),
    )


def interpretable_check(
    *, workflow: Mapping[str, Any], parameters: Mapping[str, Any], field: str = "pipeline_version"
) -> None:
    """Refuse, at creation, an Argo Workflow the local interpreter cannot run, with its
    reason (InvalidInput on ``field``: where the Workflow came from)."""
    try:
        Interpreter(workflow, parameters=parameters)
    except WorkflowRefused as exc:
        raise InvalidInput(
            f"the local executor cannot run this Argo Workflow: {exc} "
            "(run it on the argo executor, which needs a Kubernetes cluster)",
            field=field,
        ) from exc
    except InterpreterError as exc:
        raise InvalidInput(f"this Argo Workflow cannot run: {exc}", field=field) from exc


def _run_dir(run: Run) -> Path:
    root = run.pipeline_root or settings.CANAL_PIPELINE_ROOT
    if "://" in root and not root.startswith("file://"):
        raise FailedPrecondition(
            f"the local Argo interpreter keeps artifacts on this host; the pipeline root {root} is not local"
        )
    return Path(run_dir_uri(root.removeprefix("file://"), run.pipeline_name or "pipeline", str(run.pk)))


def _log_dir(run: Run) -> Path:
    return Path(settings.CANAL_LOG_DIR) / str(run.pk) / "argo"


def pod_log_path(run: Run, node: Mapping[str, Any]) -> str:
    """Where the log of a Pod node's main container is kept (LocalPodRunner's layout)."""
    pod = _pod_name(run, node)
    return str(_log_dir(run) / f"{pod}.log") if pod else ""


def _pod_name(run: Run, node: Mapping[str, Any]) -> str:
    from apps.backends.argo.interpreter import pod_name_for

    name = str(node.get("name") or "")
    template = str(node.get("templateName") or "")
    return pod_name_for(workflow_name(run), name, template) if name else ""


def _artifact_uri(run: Run, repository: Path) -> Any:
    def uri(item: Mapping[str, Any]) -> str | None:
        s3 = item.get("s3")
        key = s3.get("key") if isinstance(s3, Mapping) else None
        if not key:
            return None
        path = repository / str(key)
        return str(path) if path.exists() else None

    return uri


# --- the executor ---------------------------------------------------------------------------------


@register_run_executor(RunExecutor.LOCAL, PipelineFormat.ARGO)
class InterpretedArgoExecutor(RunExecutorBase):
    """Argo YAML on the local executor: the Argo interpreter on one worker at a time."""

    def advance(self, run: Run) -> list[uuid.UUID]:
        if run.state == RuntimeState.PENDING:
            set_run_state(run, RuntimeState.RUNNING)
            run.save(update_fields=["state", "state_history", "started_at", "finished_at", "error"])
            _hand_to_worker(run)
        elif not _lease_alive(run):
            if run.state == RuntimeState.CANCELING:
                _finish_canceled(run)
            else:
                _hand_to_worker(run)
        return []

    def terminate(self, run: Run) -> None:
        # The worker interpreting the run sees CANCELING at its next heartbeat; with no
        # worker on it, the run ends at once.
        if not _lease_alive(run):
            _finish_canceled(run)

    def retry(self, run: Run) -> None:
        status = (run.executor_state or {}).get("status")
        if not status or not status.get("nodes"):
            raise FailedPrecondition("this run never started a step; start a new run instead (clone it)")
        try:
            retried = retried_status(run, status)
        except ClusterError as exc:  # not Failed or Error: nothing to retry
            raise FailedPrecondition(str(exc)) from exc
        run.executor_state = {**run.executor_state, "status": retried}
        run.executor_state.pop("lease", None)
        revision = bump_revision(run)
        Task.objects.filter(run=run).exclude(state=RuntimeState.SUCCEEDED).delete()
        run.records_epoch += 1
        Run.objects.filter(pk=run.pk).update(
            executor_state=run.executor_state, records_epoch=run.records_epoch, revision=revision
        )


def retried_status(run: Run, status: Mapping[str, Any]) -> dict[str, Any]:
    """The stored status as ``argo retry`` rewrites it (``cluster.formulate_retry``, the
    same rules the argo executor applies on a cluster): the failed nodes run again, what
    succeeded is kept."""
    workflow = {**_workflow(run), "status": dict(status)}
    return dict(formulate_retry(workflow).workflow.get("status") or {})


def _lease(run: Run) -> Mapping[str, Any]:
    lease = (run.executor_state or {}).get("lease")
    return lease if isinstance(lease, Mapping) else {}


def _lease_alive(run: Run) -> bool:
    expires = _lease(run).get("expires")
    return isinstance(expires, (int, float)) and expires > time.time()


def _finish_canceled(run: Run) -> None:
    set_run_state(run, RuntimeState.CANCELED, error="terminated")
    run.executor_state = {k: v for k, v in (run.executor_state or {}).items() if k != "lease"}
    run.save(update_fields=["state", "state_history", "finished_at", "error", "executor_state"])
    Task.objects.filter(run=run, state__in=[RuntimeState.RUNNING, RuntimeState.PENDING]).update(
        state=RuntimeState.CANCELED, finished_at=timezone.now(), revision=bump_revision(run)
    )


def _hand_to_worker(run: Run) -> None:
    run.executor_state = {**(run.executor_state or {}), "dispatched": time.time()}
    Run.objects.filter(pk=run.pk).update(executor_state=run.executor_state)
    dispatch.argo_interpret_later(run.pk)


# --- interpreting a run on a worker --------------------------------------------------------------


def _claim(run_id: Any, token: str) -> Run | None:
    lease = settings.CANAL_TASK_LEASE_SECONDS
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("namespace").filter(pk=run_id).first()
        if run is None or run.state in RuntimeState.terminal() or run.spec_format != PipelineFormat.ARGO:
            return None
        holder = _lease(run).get("owner")
        if holder and holder != token and _lease_alive(run):
            return None  # another worker is interpreting it
        if run.state == RuntimeState.CANCELING:
            _finish_canceled(run)
            return None
        run.executor_state = {
            **(run.executor_state or {}),
            "workflow_name": workflow_name(run),
            "lease": {"owner": token, "expires": time.time() + lease},
        }
        Run.objects.filter(pk=run.pk).update(executor_state=run.executor_state)
        return run


def argo_interpret(*, run_id: Any) -> None:
    """Interpret an Argo run to its end on this worker (idempotent: a run another live
    worker holds, or a finished one, is left alone)."""
    token = f"{WORKER_ID}:{uuid.uuid4().hex[:12]}"
    run = _claim(run_id, token)
    if run is None:
        return
    namespace = run.namespace.name
    try:
        interpreter = interpreter_for(run, (run.executor_state or {}).get("status"), namespace=namespace)
        repository = _run_dir(run)
    except (WorkflowRefused, InterpreterError, FailedPrecondition) as exc:
        _finish(run.pk, token, None, error=f"cannot run this Argo Workflow: {exc}")
        return
    backend = execution_backend()
    runner = LocalPodRunner(
        backend,  # type: ignore[arg-type]  # the local step backend is a LocalBackend
        artifacts=LocalArtifactRepository(repository),
        logs_dir=_log_dir(run),
        work_dir=run_work_root(run.pk, namespace) / "pods",
        tenant=namespace,
    )
    state = _Persist(run, token, repository)
    try:
        status = run_interpreter(
            interpreter,
            runner,
            max_workers=max(1, settings.CANAL_WORKER_CONCURRENCY),
            on_change=state.changed,
            poll=state.heartbeat,
            poll_interval=settings.CANAL_HEARTBEAT_SECONDS,
        )
    except _LeaseLost:
        logger.warning("run %s: lease taken over; another worker resumes it", run_id)
        return
    _finish(run.pk, token, status)


class _LeaseLost(RuntimeError):
    pass


class _Persist:
    """Stores the status and mirrors it into tasks, at most every PERSIST_EVERY_SECONDS."""

    def __init__(self, run: Run, token: str, repository: Path) -> None:
        self.run_id = run.pk
        self.token = token
        self.repository = repository
        self.digest = ""
        self.last = 0.0
        self.pending: dict[str, Any] | None = None
        self.canceling = False

    def changed(self, status: dict[str, Any]) -> None:
        self.pending = status
        if time.monotonic() - self.last >= PERSIST_EVERY_SECONDS:
            self.flush()

    def flush(self) -> None:
        status = self.pending
        if status is None:
            return
        digest = hashlib.sha1(
            json.dumps(status, sort_keys=True, default=str).encode(), usedforsecurity=False
        ).hexdigest()
        self.last = time.monotonic()
        if digest == self.digest:
            return
        self.digest = digest
        retry_on_conflict(lambda: self._write(status), what=f"recording Argo run {self.run_id}")

    def _write(self, status: dict[str, Any]) -> None:
        with transaction.atomic():
            run = Run.objects.select_for_update().select_related("namespace").get(pk=self.run_id)
            if _lease(run).get("owner") != self.token:
                raise _LeaseLost(str(self.run_id))
            self.canceling = run.state == RuntimeState.CANCELING
            run.executor_state = {
                **run.executor_state,
                "status": status,
                "lease": {"owner": self.token, "expires": time.time() + settings.CANAL_TASK_LEASE_SECONDS},
            }
            Run.objects.filter(pk=run.pk).update(executor_state=run.executor_state)
            workflow_status_record(
                run,
                _workflow(run),
                status,
                log_path=lambda node: pod_log_path(run, node),
                artifact_uri=_artifact_uri(run, self.repository),
            )

    def heartbeat(self) -> bool:
        """Renew the lease and say whether the run is being terminated."""
        self.flush()
        lease = settings.CANAL_TASK_LEASE_SECONDS

        def renew() -> bool:
            with transaction.atomic():
                run = Run.objects.select_for_update().filter(pk=self.run_id).first()
                if run is None or _lease(run).get("owner") != self.token:
                    raise _LeaseLost(str(self.run_id))
                run.executor_state = {
                    **run.executor_state,
                    "lease": {"owner": self.token, "expires": time.time() + lease},
                }
                Run.objects.filter(pk=run.pk).update(executor_state=run.executor_state)
                return run.state != RuntimeState.RUNNING

        try:
            return retry_on_conflict(renew, what=f"renewing the lease of run {self.run_id}")
        except _LeaseLost:
            raise
        except Exception:  # a database hiccup: keep going, the next heartbeat tries again
            logger.exception("run %s: heartbeat failed", self.run_id)
            return False


def _finish(run_id: Any, token: str, status: Mapping[str, Any] | None, *, error: str = "") -> None:
    """Record the final status and the run's outcome (monotonic: a finished run stays)."""

    def write() -> None:
        with transaction.atomic():
            run = Run.objects.select_for_update().select_related("namespace").get(pk=run_id)
            if run.state in RuntimeState.terminal():
                return
            if _lease(run).get("owner") != token:
                return  # terminated, retried or taken over meanwhile: not ours to finish
            state = run.executor_state or {}
            if status is not None:
                workflow_status_record(
                    run,
                    _workflow(run),
                    status,
                    log_path=lambda node: pod_log_path(run, node),
                    artifact_uri=_artifact_uri(run, _run_dir(run)),
                )
                state = {**state, "status": dict(status)}
            state.pop("lease", None)
            run.executor_state = state
            phase = str((status or {}).get("phase") or "")
            message = without_surrogates(error or str((status or {}).get("message") or ""))
            outcome = RUN_PHASES.get(phase, RuntimeState.FAILED)
            if run.state == RuntimeState.CANCELING:
                outcome = RuntimeState.CANCELED
                message = "terminated"
            elif outcome == RuntimeState.FAILED and not message:
                message = f"the workflow ended {phase or 'without a phase'}"
            set_run_state(run, outcome, error=message if outcome != RuntimeState.SUCCEEDED else "")
            run.save(update_fields=["state", "state_history", "finished_at", "error", "executor_state"])
            Task.objects.filter(run=run, state__in=[RuntimeState.RUNNING, RuntimeState.PENDING]).update(
                state=RuntimeState.CANCELED if outcome == RuntimeState.CANCELED else RuntimeState.FAILED,
                finished_at=timezone.now(),
            )

    retry_on_conflict(write, what=f"finishing Argo run {run_id}")


def reap(*, now: Any = None) -> list[str]:
    """Hand active interpreted runs whose worker stopped heartbeating to another worker."""
    grace = timezone.now() - timedelta(seconds=10)
    handed: list[str] = []
    candidates = Run.objects.filter(
        executor=RunExecutor.LOCAL,
        spec_format=PipelineFormat.ARGO,
        state__in=[RuntimeState.PENDING, RuntimeState.RUNNING, RuntimeState.CANCELING],
        created_at__lt=grace,
    ).values_list("id", flat=True)[:200]
    for run_id in list(candidates):
        with transaction.atomic():
            run = Run.objects.select_for_update().select_related("namespace").get(pk=run_id)
            if _lease_alive(run) or run.state in RuntimeState.terminal():
                continue
            dispatched = (run.executor_state or {}).get("dispatched")
            recent = time.time() - settings.CANAL_REDISPATCH_SECONDS
            if isinstance(dispatched, (int, float)) and dispatched > recent:
                continue  # handed out recently; a worker may simply not have got to it yet
            InterpretedArgoExecutor().advance(run)
            handed.append(str(run_id))
    return handed
