"""The argo executor: a run is one Argo Workflow on a Kubernetes cluster.

``advance`` submits the run's Workflow through the real ``kubernetes`` client
(``apps.backends.argo.cluster``): a KFP IR run is compiled
(``apps.backends.argo.compiler``); an uploaded Argo Workflow is submitted as
uploaded, with the run's parameter overrides. The name is deterministic from the
run id (``canal-<run id>``), so a submit repeated after a crash between submit
and commit finds its own Workflow and treats "already exists" as success.

``argo_runs_sync`` is the persistence agent, called on every scheduler tick: it
reads each active run's Workflow and records ``status.phase`` and
``status.nodes`` through the same services that record local outcomes
(``workflow_records``). It is idempotent and monotonic: a finished run never
moves back. A Workflow deleted under a live run fails the run, naming it. When
the API server refuses Canal's credentials or is down, the reason is kept on the
run (``executor_state.sync_error``, shown on the run page) and the run fails with
it once the cluster has been unreachable for ``CANAL_ARGO_UNREACHABLE_SECONDS``:
never a silent stall. Logs are read from the pod-log API and copied into Canal's
log store as each node ends, so they outlive pod garbage collection.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from apps.backends.argo import cluster as k8s
from apps.backends.argo.compiler import LABEL_RUN_ID, ArgoSettings, CompileError, compile_workflow
from apps.backends.argo.compiler import workflow_name as compiled_name
from apps.core.choices import PipelineFormat, RunExecutor, RuntimeState
from apps.core.exceptions import FailedPrecondition, InvalidInput
from apps.core.text import without_surrogates
from apps.importers import PipelineImportError
from apps.importers.argo import validate_argo
from apps.runs.models import Run, Task
from apps.runs.services.executors import RunExecutorBase, register_run_executor
from apps.runs.services.lifecycle import set_run_state
from apps.runs.services.local_steps import log_store
from apps.runs.services.records import bump_revision
from apps.runs.services.workflow_records import workflow_status_record

logger = logging.getLogger("canal.argo")

RUN_PHASES = {
    "Succeeded": RuntimeState.SUCCEEDED,
    "Failed": RuntimeState.FAILED,
    "Error": RuntimeState.FAILED,
}

_SYNC_NOTES = ("sync_error", "unreachable_since")
MAX_LOG_COPY_BYTES = 16 * 1024 * 1024  # of one pod's log, per copy
_cluster_lock = threading.Lock()
_clusters: dict[tuple[str, str, str, int], k8s.ArgoCluster] = {}


def argo_cluster() -> k8s.ArgoCluster:
    """The process's client for the configured cluster (CANAL_KUBECONFIG, or in-cluster)."""
    key = (settings.CANAL_KUBECONFIG, settings.CANAL_KUBE_CONTEXT, settings.CANAL_ARGO_NAMESPACE, os.getpid())
    with _cluster_lock:
        client = _clusters.get(key)
        if client is None:
            client = k8s.ArgoCluster.from_config(
                k8s.ClusterConfig(
                    kubeconfig=settings.CANAL_KUBECONFIG,
                    context=settings.CANAL_KUBE_CONTEXT,
                    namespace=settings.CANAL_ARGO_NAMESPACE,
                )
            )
            _clusters[key] = client
        return client


# What an uploaded Workflow may not ask of the cluster: its pods run the pipeline's own
# code, so they get the account Canal chooses (CANAL_ARGO_SERVICE_ACCOUNT, whose RBAC is
# only what Argo's executor needs) and none of the host.
_REFUSED_KEYS = {
    "serviceAccountName": "the pods' service account is Canal's choice (CANAL_ARGO_SERVICE_ACCOUNT)",
    "automountServiceAccountToken": "the pods' service account is Canal's choice",
    "podSpecPatch": "a pod spec patch can change anything about the pod",
    "hostPath": "a hostPath volume exposes the node's files",
    "hostNetwork": "the node's network namespace",
    "hostPID": "the node's process namespace",
    "hostIPC": "the node's IPC namespace",
    "privileged": "a privileged container",
    "allowPrivilegeEscalation": "privilege escalation",
}


def cluster_policy_check(workflow: Mapping[str, Any], *, field: str = "pipeline_version") -> None:
    """Refuse a Workflow that asks the cluster for more than a pipeline may have, naming
    the place in it (InvalidInput on ``field``: where the Workflow came from)."""

    def walk(value: Any, path: str) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                where = f"{path}.{key}" if path else str(key)
                reason = _REFUSED_KEYS.get(str(key))
                if reason is not None and inner not in (False, None, "", {}):
                    raise InvalidInput(f"{where}: not allowed on the argo executor ({reason})", field=field)
                walk(inner, where)
        elif isinstance(value, list):
            for i, inner in enumerate(value):
                walk(inner, f"{path}[{i}]")

    walk(workflow.get("spec") or {}, "spec")


def run_workflow(run: Run) -> dict[str, Any]:
    """The Workflow a run submits (validated against Argo's strict schema)."""
    name = compiled_name(str(run.pk))
    if run.spec_format == PipelineFormat.KFP_IR:
        workflow = compile_workflow(
            run.pipeline_spec,
            run_id=str(run.pk),
            parameters=run.runtime_parameters or {},
            # A directory on Canal's host means nothing in a cluster: the compiler's own
            # root (CANAL_ARGO_PIPELINE_ROOT) is used unless the run named an object store.
            pipeline_root=run.pipeline_root if "://" in run.pipeline_root else "",
            namespace=settings.CANAL_ARGO_NAMESPACE,
            settings=ArgoSettings.from_env(os.environ),
            platform_spec=run.platform_spec,
            run_name=run.display_name,
            enable_caching=run.enable_caching,
            created_at=run.created_at,
        )
    else:
        workflow = copy.deepcopy(run.pipeline_spec)
        if workflow.get("kind") in ("WorkflowTemplate", "ClusterWorkflowTemplate"):
            # An uploaded template runs as the Workflow it would start (as `argo submit
            # --from workflowtemplate/NAME` does): its spec is a WorkflowSpec, and the
            # cluster's workflows resource takes only kind Workflow.
            workflow["kind"] = "Workflow"
        metadata = workflow.setdefault("metadata", {})
        metadata.pop("generateName", None)
        metadata["name"] = name
        metadata["namespace"] = settings.CANAL_ARGO_NAMESPACE
        metadata.setdefault("labels", {})[LABEL_RUN_ID] = str(run.pk)
        metadata.setdefault("annotations", {})[LABEL_RUN_ID] = str(run.pk)
        cluster_policy_check(workflow)
        account = ArgoSettings.from_env(os.environ).service_account
        if account:
            workflow.setdefault("spec", {})["serviceAccountName"] = account
        overrides = run.runtime_parameters or {}
        arguments = workflow.setdefault("spec", {}).setdefault("arguments", {})
        for item in arguments.get("parameters") or []:
            if item.get("name") in overrides:
                item["value"] = str(overrides[item["name"]])
    validate_argo(workflow, filename=None, locate=None)
    return workflow


def _pod_log_copy(run: Run, node_id: str) -> Path:
    return Path(settings.CANAL_LOG_DIR) / str(run.pk) / "argo" / f"{node_id}.log"


@register_run_executor(RunExecutor.ARGO, PipelineFormat.KFP_IR)
class ArgoClusterExecutor(RunExecutorBase):
    """Runs on Argo Workflows: submit on advance; the persistence agent syncs it back."""

    def advance(self, run: Run) -> list[uuid.UUID]:
        if run.state == RuntimeState.PENDING:
            _submit(run)
        return []

    def terminate(self, run: Run) -> None:
        name = (run.executor_state or {}).get("workflow")
        if not name:
            # A submit that timed out may still have created it: stop it by its name.
            with contextlib.suppress(k8s.ClusterError):
                argo_cluster().terminate(compiled_name(str(run.pk)))
            set_run_state(run, RuntimeState.CANCELED, error="terminated before it was submitted")
            run.save(update_fields=["state", "state_history", "finished_at", "error"])
            return
        run.executor_state = {**(run.executor_state or {}), "terminate_requested": time.time()}
        Run.objects.filter(pk=run.pk).update(executor_state=run.executor_state)
        try:
            argo_cluster().terminate(name)
        except k8s.NotFound:
            pass  # gone already: the next sync cancels the run
        except k8s.ClusterError as exc:
            _note_unreachable(run, exc)
        # The Workflow is Failed ("Stopped with strategy 'Terminate'") at the next sync,
        # and the run, CANCELING now, ends CANCELED.

    def retry(self, run: Run) -> None:
        name = (run.executor_state or {}).get("workflow")
        if not name:
            raise FailedPrecondition("this run was never submitted; start a new run instead (clone it)")
        _copy_logs(run, force=True)  # Argo's retry deletes the failed nodes' pods
        try:
            retried = argo_cluster().retry(name)
        except k8s.NotFound:
            raise FailedPrecondition(
                f"the Workflow {name} no longer exists in namespace {settings.CANAL_ARGO_NAMESPACE}"
            ) from None
        except k8s.ClusterError as exc:
            raise FailedPrecondition(f"Argo could not retry the run: {exc}") from exc
        # The nodes Argo reset run again (same node ids): their logs are copied afresh.
        kept = {node.id for node in k8s.workflow_nodes(retried) if node.type == "Pod" and node.fulfilled}
        copied = [n for n in (run.executor_state or {}).get("logs_copied") or [] if n in kept]
        run.executor_state = {**(run.executor_state or {}), "logs_copied": copied}
        revision = bump_revision(run)
        Task.objects.filter(run=run).exclude(state=RuntimeState.SUCCEEDED).delete()
        run.records_epoch += 1
        Run.objects.filter(pk=run.pk).update(
            records_epoch=run.records_epoch, revision=revision, executor_state=run.executor_state
        )


# Argo YAML on the cluster is the same executor: it is submitted as uploaded.
@register_run_executor(RunExecutor.ARGO, PipelineFormat.ARGO)
class ArgoYamlClusterExecutor(ArgoClusterExecutor):
    """Argo Workflow YAML on the cluster: submitted as uploaded, with the run's parameters."""


def _submit(run: Run) -> None:
    try:
        workflow = run_workflow(run)
    except (CompileError, PipelineImportError, ValueError) as exc:
        _fail(run, f"cannot compile this run into an Argo Workflow: {exc}")
        return
    try:
        result = argo_cluster().submit(workflow)
    except k8s.Invalid as exc:
        _fail(run, f"Argo refused the Workflow: {exc}")
        return
    except k8s.ClusterError as exc:
        # Kept PENDING with the reason shown; the persistence agent submits again.
        _note_unreachable(run, exc)
        return
    state = {
        k: v for k, v in (run.executor_state or {}).items() if k not in ("sync_error", "unreachable_since")
    }
    run.executor_state = {
        **state,
        "workflow": result.name,
        "namespace": settings.CANAL_ARGO_NAMESPACE,
        "submitted": time.time(),
    }
    set_run_state(run, RuntimeState.RUNNING)
    run.save(update_fields=["state", "state_history", "started_at", "finished_at", "error", "executor_state"])


def _fail(run: Run, message: str) -> None:
    message = without_surrogates(message)
    set_run_state(run, RuntimeState.FAILED, error=message)
    run.save(update_fields=["state", "state_history", "finished_at", "error", "executor_state"])
    Task.objects.filter(run=run, state__in=[RuntimeState.RUNNING, RuntimeState.PENDING]).update(
        state=RuntimeState.FAILED, error=message
    )


def _note_unreachable(run: Run, exc: k8s.ClusterError) -> None:
    """Show why the cluster cannot be reached; fail the run once that has lasted too long."""
    state = dict(run.executor_state or {})
    since = state.get("unreachable_since") or time.time()
    state.update(sync_error=without_surrogates(str(exc)), unreachable_since=since)
    run.executor_state = state
    if time.time() - since >= settings.CANAL_ARGO_UNREACHABLE_SECONDS:
        waited = int(time.time() - since)
        _fail(run, f"lost contact with the Kubernetes cluster for {waited}s: {exc}")
        with contextlib.suppress(k8s.ClusterError):  # if it is back, stop what may still run
            argo_cluster().terminate(state.get("workflow") or compiled_name(str(run.pk)))
        return
    Run.objects.filter(pk=run.pk).update(executor_state=state)


# --- the persistence agent ----------------------------------------------------------------------


def argo_runs_sync() -> list[str]:
    """One pass of the persistence agent over every active run of the argo executor,
    oldest first. An outage ends the pass early (each run would wait out the same
    timeout); the runs it skipped are synced at the next tick."""
    synced: list[str] = []
    active = (
        Run.objects.filter(
            executor=RunExecutor.ARGO,
            state__in=[RuntimeState.PENDING, RuntimeState.RUNNING, RuntimeState.CANCELING],
        )
        .order_by("created_at")
        .values_list("id", flat=True)
    )
    for run_id in list(active):
        try:
            reachable = argo_run_sync(run_id=run_id)
            synced.append(str(run_id))
        except Exception:
            logger.exception("could not sync Argo run %s", run_id)
            continue
        if not reachable:
            break
    return synced


def argo_run_sync(*, run_id: Any) -> bool:
    """Copy one run's Workflow state into its rows (idempotent, monotonic). Returns False
    when the cluster could not be reached."""
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("namespace").filter(pk=run_id).first()
        if run is None or run.state in RuntimeState.terminal() or run.executor != RunExecutor.ARGO:
            return True
        name = (run.executor_state or {}).get("workflow")
        if not name:
            if run.state == RuntimeState.PENDING:
                _submit(run)
            return not (run.executor_state or {}).get("sync_error")
        try:
            workflow = argo_cluster().get(name)
        except k8s.ClusterError as exc:
            _note_unreachable(run, exc)
            return False
        if workflow is None:
            where = (run.executor_state or {}).get("namespace") or settings.CANAL_ARGO_NAMESPACE
            if run.state == RuntimeState.CANCELING:
                _finish(run, RuntimeState.CANCELED, "terminated")
            else:
                _fail(
                    run,
                    f"the Workflow {name} was deleted from namespace {where} while the run was {run.state}",
                )
            return True  # the cluster answered: the pass goes on to the next run
        if (run.executor_state or {}).get("sync_error"):
            run.executor_state = {k: v for k, v in run.executor_state.items() if k not in _SYNC_NOTES}
            Run.objects.filter(pk=run.pk).update(executor_state=run.executor_state)
        phase = k8s.workflow_phase(workflow)
        problem = ""
        try:
            status = {**(workflow.get("status") or {}), "nodes": k8s.status_nodes(workflow)}
            with transaction.atomic():  # a recording that fails half-way leaves nothing behind
                workflow_status_record(
                    run,
                    workflow,
                    status,
                    log_path=lambda node: str(_pod_log_copy(run, str(node.get("id")))),
                    artifact_uri=lambda item: None,
                )
                _copy_logs(run, workflow=workflow)
        except Exception as exc:  # whatever the Workflow holds, the run must still end
            logger.exception("run %s: recording Workflow %s failed", run.pk, name)
            problem = without_surrogates(f"{type(exc).__name__}: {exc}")[:2000]
        if phase in RUN_PHASES:
            if run.state == RuntimeState.CANCELING:
                _finish(run, RuntimeState.CANCELED, "terminated")
            elif problem:
                _fail(
                    run,
                    f"the Workflow {name} ended {phase}, but its outcome could not be recorded: {problem}",
                )
            else:
                outcome, message = RUN_PHASES[phase], k8s.workflow_message(workflow)
                failed = _failed_step(run) if outcome == RuntimeState.SUCCEEDED else None
                if failed is not None:  # its pod exited 0, but what it produced is unusable
                    outcome, message = (
                        RuntimeState.FAILED,
                        f"{failed.key.rsplit('/', 1)[-1]} failed: {failed.error}",
                    )
                _finish(run, outcome, message)
            return True
        _check_stalled(run, name, phase, problem)
        return True


def _failed_step(run: Run) -> Task | None:
    """A KFP step recorded FAILED in a Workflow Argo calls Succeeded (its outputs could not
    be read): the run fails, as it would on the local executor."""
    if run.spec_format != PipelineFormat.KFP_IR:
        return None  # in Argo YAML, continueOn may let a Workflow succeed past a failure
    return Task.objects.filter(run=run, state=RuntimeState.FAILED, kind="CONTAINER").first()


def _check_stalled(run: Run, name: str, phase: str, problem: str) -> None:
    """End a run whose Workflow cannot be followed: recording keeps failing, no Argo
    controller ever picks it up, or it does not stop when terminated."""
    state = dict(run.executor_state or {})
    now = time.time()
    limit = settings.CANAL_ARGO_UNREACHABLE_SECONDS
    where = state.get("namespace") or settings.CANAL_ARGO_NAMESPACE
    if problem:
        since = state.get("record_failing_since") or now
        if now - since >= limit:
            _fail(
                run, f"the state of Workflow {name} could not be recorded for {int(now - since)}s: {problem}"
            )
            return
        state.update(
            record_failing_since=since, sync_error=f"recording the Workflow's state failed: {problem}"
        )
    else:
        state.pop("record_failing_since", None)
    asked = state.get("terminate_requested")
    if run.state == RuntimeState.CANCELING and isinstance(asked, (int, float)) and now - asked >= limit:
        _finish(
            run,
            RuntimeState.CANCELED,
            f"terminated; the Workflow {name} had not stopped after {int(now - asked)}s",
        )
        return
    submitted = state.get("submitted")
    if not phase and isinstance(submitted, (int, float)) and now - submitted >= limit:
        _fail(
            run,
            f"no Argo controller picked up the Workflow {name} in namespace {where} "
            f"in {int(now - submitted)}s: "
            "is Argo Workflows installed and watching that namespace?",
        )
        return
    if state != run.executor_state:
        run.executor_state = state
        Run.objects.filter(pk=run.pk).update(executor_state=state)


def _finish(run: Run, state: str, message: str) -> None:
    set_run_state(run, state, error="" if state == RuntimeState.SUCCEEDED else without_surrogates(message))
    run.save(update_fields=["state", "state_history", "finished_at", "error"])
    Task.objects.filter(run=run, state__in=[RuntimeState.RUNNING, RuntimeState.PENDING]).update(
        state=RuntimeState.CANCELED if state == RuntimeState.CANCELED else RuntimeState.FAILED
    )


def _copy_logs(run: Run, *, workflow: Mapping[str, Any] | None = None, force: bool = False) -> None:
    """Copy pods' logs into Canal's log store: running ones at every sync, finished ones
    once (``force``: every pod again, before a retry deletes them)."""
    name = (run.executor_state or {}).get("workflow")
    if workflow is None:
        if not name:
            return
        try:
            workflow = argo_cluster().get(name)
        except k8s.ClusterError:
            return
        if workflow is None:
            return
    copied = set() if force else set((run.executor_state or {}).get("logs_copied") or [])
    added = False
    for node in k8s.workflow_nodes(workflow):
        # Running pods are copied again at every sync (a live view); finished ones once.
        # (A node has a pod_name exactly when it is a Pod.)
        if node.pod_name is None or node.id in copied or node.phase in ("Pending", "Skipped", "Omitted"):
            continue
        target = _pod_log_copy(run, node.id)
        try:
            data = argo_cluster().pod_log(node.pod_name, max_bytes=MAX_LOG_COPY_BYTES)
        except k8s.NotFound:
            data = b"[canal] the pod was deleted before its log was copied\n"
        except k8s.ClusterError:
            continue  # try again at the next sync
        log_store().create(target)
        target.write_bytes(data)
        if node.fulfilled:
            copied.add(node.id)
            added = True
    if added:
        run.executor_state = {**(run.executor_state or {}), "logs_copied": sorted(copied)}
        Run.objects.filter(pk=run.pk).update(executor_state=run.executor_state)
