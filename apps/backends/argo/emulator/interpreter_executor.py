"""The emulator's WorkflowExecutor: Canal's Argo interpreter, with its pods run by ``LocalPodRunner``.

Every ``reconcile`` is one pass of Argo's operator over the stored status, as
Argo's controller makes after every pod or Workflow change:

1. A fresh ``Interpreter`` is built from the Workflow and its stored status.
   Pod nodes still Pending or Running there whose pod exists (running or
   already ended) are re-attached, so no pod runs twice, even after a
   controller restart. A first ``advance`` rebuilds each pod's request.
2. What the pods did since is reported, from ``PodHost.get_pod``: a pod that
   runs turns its node Running; an ended pod's exit code, message and outputs
   (what Argo's wait container reports: parameters, artifacts, ``result``)
   end its node; the pod of a Running node that no longer exists ends that
   node in Error with Argo's "pod deleted" (a Pending node's missing pod is
   created again, as Argo does). Then the interpreter advances again.
3. The pods of new Pod nodes are created, each running its request with
   ``LocalPodRunner`` in the kubelet's pod directory, logging into the pod's
   log (served by ``pods/{name}/log``) and stopping when the pod is deleted or
   killed; the pods the interpreter stops are killed.

Time comes from the clock at each call: retry backoffs, suspend durations
and deadlines are decided when the controller looks again, which it does
every ``resync`` seconds. ``spec.shutdown`` is the interpreter's to apply
(``handles_shutdown``): ``Terminate`` kills the running pods and fails what
is unfinished, ``Stop`` does too but runs the exit handlers first, as Argo
does. What the interpreter refuses (resource templates,
daemons, suspends without a duration, ...) ends the Workflow in Error with
the reason.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apps.backends.argo.emulator.errors import ApiError
from apps.backends.argo.emulator.naming import progress
from apps.backends.argo.emulator.protocol import PodContext, PodHost, PodOutcome, PodView
from apps.backends.argo.emulator.protocol import PodRequest as EmulatedPod
from apps.backends.argo.interpreter import (
    Interpreter,
    InterpreterError,
    Limits,
    PodRequest,
    PodResult,
    Tick,
)
from apps.backends.argo.local_runner import ArtifactRepository, LocalPodRunner
from apps.backends.local import LocalBackend

__all__ = ["InterpreterExecutor", "InterpreterPod", "pod_outcome", "pod_result"]

logger = logging.getLogger(__name__)

_ACTIVE = ("Pending", "Running")
_DEADLINE_EXCEEDED = "DeadlineExceeded"
# Kubernetes' own words for a pod past its activeDeadlineSeconds (status.message).
_DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
# Argo's message for a node whose pod disappeared (operator.go, podReconciliation).
POD_DELETED = "pod deleted"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_outcome(request: PodRequest, result: PodResult) -> PodOutcome:
    """How a pod the interpreter asked for ended, as the kubelet records it on the Pod object.

    The outputs are those Argo's wait container reports (``exitCode``,
    ``parameters``, ``artifacts``, and ``result`` when the interpreter wants
    stdout); a pod past its deadline ends with the pod reason Kubernetes gives it.
    """
    outputs: dict[str, Any] = {}
    if result.exit_code is not None:
        outputs["exitCode"] = str(result.exit_code)
    if request.capture_result:
        outputs["result"] = result.stdout
    if result.parameters:
        outputs["parameters"] = [{"name": name, "value": value} for name, value in result.parameters.items()]
    if result.artifacts:
        outputs["artifacts"] = [{"name": name, **dict(where)} for name, where in result.artifacts.items()]
    if result.timed_out:
        return PodOutcome(
            exit_code=result.exit_code, message=_DEADLINE_MESSAGE, outputs=outputs, reason=_DEADLINE_EXCEEDED
        )
    return PodOutcome(exit_code=result.exit_code, message=result.message, outputs=outputs)


def pod_result(view: PodView) -> PodResult:
    """What the interpreter learns from an ended pod: the inverse of ``pod_outcome``."""
    outputs = view.outputs or {}
    timed_out = view.pod_reason == _DEADLINE_EXCEEDED
    never_started = view.reason == "StartError"
    parameters = {
        str(item["name"]): str(item.get("value", ""))
        for item in outputs.get("parameters") or []
        if isinstance(item, Mapping) and "name" in item
    }
    artifacts = {
        str(item["name"]): {key: value for key, value in item.items() if key != "name"}
        for item in outputs.get("artifacts") or []
        if isinstance(item, Mapping) and "name" in item
    }
    return PodResult(
        exit_code=None if never_started else view.exit_code,
        message="" if timed_out else view.message,
        stdout=str(outputs.get("result") or ""),
        parameters=parameters,
        artifacts=artifacts,
        timed_out=timed_out,
        error=never_started and not timed_out,
        started_at=_parse_time(view.started_at),
        finished_at=_parse_time(view.finished_at),
    )


class InterpreterPod:
    """A ``PodProgram``: one interpreter ``PodRequest`` run by ``LocalPodRunner`` inside a kubelet pod.

    The pod's files live in the kubelet's pod directory (its container roots,
    volumes and inputs; removed when the pod ends), its containers' logs next
    to the pod's main log; the pod is Running once its main container's
    process exists, and stops when the kubelet cancels it.
    """

    def __init__(self, runner: Callable[[Path], LocalPodRunner], request: PodRequest) -> None:
        self.runner = runner
        self.request = request

    def __call__(self, context: PodContext) -> PodOutcome:
        """Run the pod to its end and report it."""
        runner = self.runner(context.tenant_dir)
        result = runner.run(
            self.request,
            context.cancel,
            pod_dir=context.workdir,
            log_dir=context.log_path.parent,
            on_started=context.started,
        )
        return pod_outcome(self.request, result)


def _container(request: PodRequest) -> dict[str, Any]:
    """The main container as the pod spec shows it."""
    main = request.main
    shown: dict[str, Any] = {"image": main.image}
    shown["command" if main.has_command else "args"] = list(main.argv)
    if main.env:
        shown["env"] = [{"name": name, "value": value} for name, value in main.env.items()]
    if main.working_dir:
        shown["workingDir"] = main.working_dir
    mounts = []
    for mount in main.volume_mounts:
        entry: dict[str, Any] = {"name": mount.name, "mountPath": mount.mount_path}
        if mount.read_only:
            entry["readOnly"] = True
        if mount.sub_path:
            entry["subPath"] = mount.sub_path
        mounts.append(entry)
    if mounts:
        shown["volumeMounts"] = mounts
    return shown


class InterpreterExecutor:
    """Runs Workflows with Canal's Argo interpreter (a ``WorkflowExecutor``; see the module docstring).

    ``backend`` runs the pods (it needs the step sandbox: each pod gets its own
    root filesystem); ``artifacts`` keeps output artifacts (Argo's default
    artifact repository); ``templates`` are the WorkflowTemplates installed in
    the cluster that ``templateRef`` and ``workflowTemplateRef`` may name;
    ``limits`` bound what one Workflow may do; ``clock`` is the time source.
    Keeps nothing between ``reconcile`` calls but a ``LocalPodRunner`` per
    namespace directory.
    """

    handles_shutdown = True  # spec.shutdown is applied by the interpreter, exit handlers and all

    def __init__(
        self,
        backend: LocalBackend,
        *,
        artifacts: ArtifactRepository,
        templates: Sequence[Mapping[str, Any]] = (),
        limits: Limits | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.backend = backend
        self.artifacts = artifacts
        self.templates = tuple(templates)
        self.limits = limits
        self.clock = clock
        self._runners: dict[Path, LocalPodRunner] = {}
        self._lock = threading.Lock()

    def runner(self, tenant_dir: Path) -> LocalPodRunner:
        """The pod runner of one namespace directory (pods' directories lie inside it)."""
        with self._lock:
            runner = self._runners.get(tenant_dir)
            if runner is None:
                runner = LocalPodRunner(
                    self.backend,
                    artifacts=self.artifacts,
                    logs_dir=tenant_dir,  # unused: each pod logs where the kubelet says
                    work_dir=tenant_dir,
                    tenant_dir=tenant_dir,
                )
                self._runners[tenant_dir] = runner
            return runner

    def reconcile(
        self, workflow: Mapping[str, Any], status: Mapping[str, Any], pods: PodHost
    ) -> dict[str, Any]:
        """The Workflow's next status (see the module docstring)."""
        now = self.clock()
        metadata = workflow.get("metadata") or {}
        nodes: Mapping[str, Any] = status.get("nodes") or {}
        views = {
            node_id: pods.get_pod(node_id)
            for node_id, node in nodes.items()
            if node.get("type") == "Pod" and node.get("phase") in _ACTIVE
        }
        try:
            interpreter = Interpreter(
                {key: value for key, value in workflow.items() if key != "status"},
                templates=self.templates,
                status=status or None,
                name=str(metadata.get("name") or "") or None,
                uid=str(metadata.get("uid") or "") or None,
                namespace=str(metadata.get("namespace") or "default"),
                running=[node_id for node_id, view in views.items() if view is not None],
                limits=self.limits,
            )
            starts: dict[str, PodRequest] = {}
            stops: dict[str, None] = {}
            self._collect(interpreter.advance(now), starts, stops)
            if self._report(interpreter, views, now):
                self._collect(interpreter.advance(now), starts, stops)
        except InterpreterError as exc:
            return self._errored(status, views, pods, f"the emulator cannot run this Workflow: {exc}", now)
        result = interpreter.status
        current = result.get("nodes") or {}
        for node_id in stops:
            pods.kill_pod(node_id)
        for request in starts.values():
            node = current.get(request.node_id)
            if node is None or node.get("phase") not in _ACTIVE:
                continue  # ended in this very pass (the workflow failed, a deadline passed)
            try:
                pods.create_pod(
                    EmulatedPod(
                        node_id=request.node_id,
                        node_name=request.node_name,
                        template_name=request.template_name,
                        program=InterpreterPod(self.runner, request),
                        container=_container(request),
                        pod_name=request.pod_name,
                    )
                )
            except ApiError as exc:
                if exc.code != 409:
                    raise
                # A deleted pod of that name is still terminating: the node stays Pending
                # without a pod, and the next pass creates it, as Argo would.
                logger.debug("pod %s not created yet: %s", request.pod_name, exc.message)
        if current:
            result["progress"] = progress(current)
        return result

    @staticmethod
    def _collect(tick: Tick, starts: dict[str, PodRequest], stops: dict[str, None]) -> None:
        for request in tick.start:
            starts[request.node_id] = request
        for node_id in tick.stop:
            stops[node_id] = None

    @staticmethod
    def _report(interpreter: Interpreter, views: Mapping[str, PodView | None], now: datetime) -> bool:
        """Tell the interpreter what the pods of its active nodes did; returns whether anything changed."""
        changed = False
        nodes = interpreter.status["nodes"]
        for node_id, view in views.items():
            node = nodes.get(node_id)
            if node is None or node.get("phase") not in _ACTIVE:
                continue
            if view is None:
                # Argo: a Pending node's missing pod is created again (the first advance
                # handed it out anew); a Running node's pod was deleted under it.
                if node.get("phase") == "Running":
                    lost = PodResult(exit_code=None, error=True, message=POD_DELETED, finished_at=now)
                    interpreter.pod_finished(node_id, lost, now)
                    changed = True
            elif view.finished:
                interpreter.pod_finished(node_id, pod_result(view), now)
                changed = True
            elif view.phase == "Running" and node.get("phase") == "Pending":
                interpreter.pod_started(node_id, now)
                changed = True
        return changed

    @staticmethod
    def _errored(
        status: Mapping[str, Any],
        views: Mapping[str, PodView | None],
        pods: PodHost,
        message: str,
        now: datetime,
    ) -> dict[str, Any]:
        """End the Workflow in Error with ``message``; its running pods are killed, their nodes end too."""
        result = copy.deepcopy(dict(status))
        stamp = _timestamp(now)
        nodes: dict[str, Any] = result.get("nodes") or {}
        for node_id in _alive(views):
            pods.kill_pod(node_id)
        for node in nodes.values():
            if node.get("phase") in _ACTIVE:
                node.update(phase="Error", message=message, finishedAt=stamp)
        result.setdefault("startedAt", stamp)
        result.update(phase="Error", message=message, finishedAt=stamp)
        if nodes:
            result["progress"] = progress(nodes)
        return result


def _alive(views: Mapping[str, PodView | None]) -> Iterable[str]:
    return [node_id for node_id, view in views.items() if view is not None and not view.finished]
