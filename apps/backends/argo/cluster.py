"""Canal's client for Argo Workflows on a Kubernetes cluster, over the official ``kubernetes`` client.

Celery tasks submit, terminate, retry and delete Workflows through it; the
persistence agent reads them back (``get``/``list_workflows`` and the pure views
``workflow_nodes``/``workflow_phase``). Mapping Argo's phases onto Canal's run
and task states is the Django service layer's business, not this module's.

API::

    cluster = ArgoCluster.from_config(ClusterConfig(kubeconfig="", context="", namespace="kubeflow"))
    cluster = ArgoCluster(api_client, "kubeflow")            # injection (tests, a shared client)

    cluster.submit(workflow) -> SubmitResult                 # a re-submit of the same run is a success
    cluster.get(name) -> dict | None                         # None: the Workflow is gone (404)
    cluster.list_workflows(label_selector=RUN_ID_KEY) -> list[dict]  # every page
    cluster.terminate(name, *, strategy="Terminate") -> bool # False: it had already finished
    cluster.retry(name) -> dict                              # ``argo retry``: failed nodes run again
    cluster.delete(name) -> bool                             # False: it was already gone
    cluster.pod_log(pod_name, *, container="main", since_bytes=0, max_bytes=None) -> bytes
    cluster.close()                                          # or ``with ArgoCluster.from_config(...)``

    workflow_phase(wf) -> str       # "" (not picked up yet, or just retried) | Pending | Running | ...
    workflow_message(wf) -> str
    workflow_finished(wf) -> bool
    workflow_run_id(wf) -> str      # the ``canal.io/run-id`` annotation, else label
    workflow_nodes(wf) -> list[NodeView]                     # parents before children
    formulate_retry(wf) -> RetryPlan                         # the pure half of ``retry``

**Configuration.** ``from_config`` loads the kubeconfig file when one is named
(its ``context``, else the current one), else the in-cluster service account,
into a ``Configuration`` of its own: the client's global default configuration
is never read or written, so two clusters (or a test's emulator) can live in one
process. ``namespace=""`` means the context's namespace (in a pod: the service
account's). Every request has a connect and a read timeout (``ClusterConfig``:
10 s and 30 s), passed as a ``(connect, read)`` pair: the 30.x client silently
ignores a *float* total timeout. A refused connection is retried twice at
once, nothing else is retried by urllib3.

**Errors.** Every ``ApiException`` and urllib3 connection error becomes a
``ClusterError`` with a human message saying which server, what Canal was doing
and what went wrong, and a ``kind``:

* ``auth`` (``AuthError``): 401 "the Kubernetes API server at <url> refused
  Canal's credentials (401 Unauthorized) while <doing X>: ..."; 403 likewise,
  with the server's RBAC message.
* ``unavailable`` (``Unavailable``, ``retryable``): 5xx, 408, 429, refused
  connections, timeouts, TLS and protocol failures: "the Kubernetes API server
  at <url> is unavailable (503 Service Unavailable: <server message>) while
  <doing X>".
* ``not_found`` (``NotFound``): the object is gone (a pod's log after the pod
  was deleted: fall back to the stored copy).
* ``conflict`` (``Conflict``): 409; ``NameTaken`` when ``submit`` finds the
  name used by another run.
* ``invalid`` (``Invalid``): 422/400/413/415 with the server's message, or an
  operation the Workflow's state does not allow (retrying a running Workflow).
* ``config`` (``ConfigError``): no usable kubeconfig or service account, Argo's
  CRD not installed, node status offloaded to Argo's database.
* ``error``: anything else, with the HTTP status and the server's message.

**Submitting.** The Workflow must carry ``metadata.name`` (Canal's compiler
names it ``canal-<run id>``) and the run's id as the ``canal.io/run-id``
annotation or label (the compiler sets both; the annotation is exact, the label
is cut to 63 characters). A 409 AlreadyExists is then a success when the
existing Workflow has the same run id: that is the duplicate submit after a
crash between submitting and recording it. Another run's Workflow under that
name is a ``NameTaken`` error; Canal never overwrites it.

**Terminating** merge-patches ``spec.shutdown`` (as ``argo terminate`` does),
sent with an explicit ``application/merge-patch+json`` content type: depending
on the client version, ``patch_namespaced_custom_object`` picks the patch type
from the body's Python type (merge for a dict, JSON patch for a list) or
always sends merge patch, and a strategic merge patch is a 415 for a custom
resource.

**Retrying** follows Argo's ``FormulateRetryWorkflow`` (argoproj/argo-workflows
``workflow/util/util.go``) and its server's ``RetryWorkflow``: failed or errored
Pod nodes (those without a succeeded descendant, i.e. not "continue on
failure") are removed from ``status.nodes`` with their descendants, the group
nodes above them (DAG, steps, step and task groups, failed retry nodes) are
reset to Running, the Workflow's phase is cleared (Argo >= 3.7 leaves it to the
controller, which starts it again as Running), its message and ``finishedAt``
go, its ``completed`` label and ``spec.shutdown`` are removed. The removed
nodes' pods are deleted first (their logs go with them: store them before),
then the Workflow is replaced conditioned on the ``resourceVersion`` it was
read at; a 409 reads it again and starts over. Not supported: restarting
succeeded nodes (``--restart-successful``), parameter overrides, and Workflows
whose node status Argo offloaded to its database.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import gzip
import http
import json
import os
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, cast

from apps.backends.argo.compiler import LABEL_RUN_ID

if TYPE_CHECKING:
    from kubernetes.client.exceptions import ApiException

__all__ = [
    "FINISHED_PHASES",
    "RUN_ID_KEY",
    "ArgoCluster",
    "AuthError",
    "ClusterConfig",
    "ClusterError",
    "ConfigError",
    "Conflict",
    "Invalid",
    "NameTaken",
    "NodeView",
    "NotFound",
    "RetryPlan",
    "SubmitResult",
    "Unavailable",
    "formulate_retry",
    "pod_name",
    "status_nodes",
    "workflow_finished",
    "workflow_message",
    "workflow_nodes",
    "workflow_phase",
    "workflow_run_id",
]

GROUP: Final = "argoproj.io"
VERSION: Final = "v1alpha1"
PLURAL: Final = "workflows"
MERGE_PATCH: Final = "application/merge-patch+json"
RUN_ID_KEY: Final = LABEL_RUN_ID  # "canal.io/run-id": an annotation (exact) and a label (cut to 63)

FINISHED_PHASES: Final = frozenset({"Succeeded", "Failed", "Error"})
_NODE_FULFILLED: Final = frozenset({"Succeeded", "Failed", "Error", "Skipped", "Omitted"})
_LABEL_COMPLETED: Final = "workflows.argoproj.io/completed"
_LABEL_ARCHIVING: Final = "workflows.argoproj.io/workflow-archiving-status"
_ANNOTATION_POD_NAME_FORMAT: Final = "workflows.argoproj.io/pod-name-format"
_SERVICE_ACCOUNT_NAMESPACE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_CONFLICT_ATTEMPTS: Final = 5

Obj = dict[str, Any]


# -- errors ----------------------------------------------------------------------------
class ClusterError(Exception):
    """A cluster operation that failed; ``str()`` is a sentence for a person, ``kind`` is for code.

    ``status`` is the HTTP status when the server answered (None for a
    connection that failed), ``reason`` the ``Status`` object's reason
    (``AlreadyExists``, ``Conflict``, ``Invalid``...).
    """

    kind: ClassVar[str] = "error"

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason

    @property
    def retryable(self) -> bool:
        """Whether the same call may succeed later without anyone changing anything."""
        return False


class AuthError(ClusterError):
    """401 or 403: Canal's credentials are wrong or lack permission."""

    kind = "auth"


class Unavailable(ClusterError):
    """The API server could not be reached or answered 5xx/408/429: try again later."""

    kind = "unavailable"

    @property
    def retryable(self) -> bool:
        return True


class NotFound(ClusterError):
    """The Workflow or pod does not exist (any more)."""

    kind = "not_found"


class Conflict(ClusterError):
    """409: the object exists already, or changed since it was read."""

    kind = "conflict"


class NameTaken(Conflict):
    """``submit`` found a Workflow of that name that belongs to another run."""


class Invalid(ClusterError):
    """The request was refused as invalid (422 and the like), or the Workflow's state does not allow it."""

    kind = "invalid"


class ConfigError(ClusterError):
    """Canal is not configured to reach a cluster with Argo (no kubeconfig, no CRD, offloaded nodes)."""

    kind = "config"


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _status_body(exc: ApiException) -> Obj:
    raw = exc.body
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str) or not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        return {"message": raw.strip()[:500]}
    return body if isinstance(body, dict) else {}


def _connection_detail(exc: BaseException, connect_timeout: float, read_timeout: float) -> str:
    """What went wrong with the connection, in a few words."""
    import urllib3  # loaded with the kubernetes client, when a cluster is first used

    reason: BaseException = exc
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        reason = exc.reason
    # NameResolutionError < NewConnectionError < ConnectTimeoutError: the most specific first.
    if isinstance(reason, urllib3.exceptions.NameResolutionError):
        return "its host name does not resolve"
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        text = str(reason).split("Failed to establish a new connection:")[-1].strip()
        text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
        return text[:1].lower() + text[1:] if text else "no connection"
    if isinstance(reason, urllib3.exceptions.ConnectTimeoutError):
        return f"no connection within {connect_timeout:g} s"
    if isinstance(reason, urllib3.exceptions.ReadTimeoutError):
        return f"no answer within {read_timeout:g} s"
    if isinstance(reason, urllib3.exceptions.SSLError):
        return f"TLS failed: {reason}"
    if isinstance(reason, urllib3.exceptions.ProtocolError):
        return f"the connection broke: {reason}"
    return f"{type(reason).__name__}: {reason}"


# -- configuration -------------------------------------------------------------------------
@dataclass(frozen=True)
class ClusterConfig:
    """Where the cluster is: a kubeconfig file and context (else the pod's service account) and a namespace.

    ``namespace=""`` takes the context's namespace (in a pod: the service
    account's), else ``default``. ``timeout`` bounds the wait for an answer,
    ``connect_timeout`` the wait for a connection, each request (seconds).
    """

    kubeconfig: str = ""
    context: str = ""
    namespace: str = "kubeflow"
    timeout: float = 30.0
    connect_timeout: float = 10.0


@dataclass(frozen=True)
class SubmitResult:
    """A submitted Workflow: ``created`` is False when it existed already for the same run."""

    name: str
    uid: str
    created: bool
    workflow: Obj


@dataclass(frozen=True)
class RetryPlan:
    """What ``retry`` writes: the Workflow reset for its failed nodes, and the pods to delete first."""

    workflow: Obj
    pods_to_delete: list[str]
    reset_nodes: list[str]
    removed_nodes: list[str]


def _kubernetes() -> ModuleType:
    """The ``kubernetes`` package, imported when a client is first made (``k8s``)."""
    from apps.backends.argo import k8s

    return cast(ModuleType, k8s.kubernetes)


# -- the client ----------------------------------------------------------------------------
class ArgoCluster:
    """Argo Workflows in one namespace, through a ``kubernetes`` ``ApiClient``."""

    def __init__(
        self,
        api_client: Any,
        namespace: str,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
    ) -> None:
        if not namespace:
            raise ValueError("ArgoCluster needs a namespace")
        self.api_client = api_client
        self.namespace = namespace
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        client = _kubernetes().client
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)
        self._api_exception: type[ApiException] = client.exceptions.ApiException

    @classmethod
    def from_config(cls, config: ClusterConfig) -> ArgoCluster:
        """A client loaded from ``config``'s kubeconfig, or from the pod's service account without one."""
        kubernetes = _kubernetes()
        configuration = kubernetes.client.Configuration()
        namespace = config.namespace
        if config.kubeconfig:
            path = os.path.expanduser(config.kubeconfig)
            try:
                kubernetes.config.load_kube_config(
                    config_file=path, context=config.context or None, client_configuration=configuration
                )
                if not namespace:
                    contexts, active = kubernetes.config.list_kube_config_contexts(config_file=path)
                    chosen = next((c for c in contexts if c.get("name") == config.context), active)
                    namespace = ((chosen or {}).get("context") or {}).get("namespace") or ""
            except (kubernetes.config.ConfigException, OSError, ValueError) as exc:
                where = f"context {config.context!r} of " if config.context else ""
                raise ConfigError(f"Canal cannot use {where}the kubeconfig {path}: {exc}") from exc
        else:
            try:
                kubernetes.config.load_incluster_config(client_configuration=configuration)
            except kubernetes.config.ConfigException as exc:
                raise ConfigError(
                    "Canal has no kubeconfig configured and is not running in a Kubernetes pod with a "
                    f"service account ({exc}): name a kubeconfig file for the Argo backend"
                ) from exc
            if not namespace:
                with contextlib.suppress(OSError):
                    namespace = _SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        import urllib3  # the kubernetes client's own transport (imported by it above)

        # A refused connection is retried twice at once; reads and answers never (the caller decides).
        configuration.retries = urllib3.util.Retry(
            total=2, connect=2, read=0, redirect=0, status=0, other=0, backoff_factor=0.1
        )
        return cls(
            kubernetes.client.ApiClient(configuration),
            namespace or "default",
            timeout=config.timeout,
            connect_timeout=config.connect_timeout,
        )

    @property
    def host(self) -> str:
        """The API server's URL."""
        return str(getattr(self.api_client.configuration, "host", "") or "the configured address")

    def close(self) -> None:
        """Close the connections."""
        self.api_client.close()

    def __enter__(self) -> ArgoCluster:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------
    def _call(self, doing: str, subject: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``method(*args, **kwargs)`` with the timeouts, its failures made ``ClusterError``s."""
        import urllib3  # see from_config: loaded with the kubernetes client

        kwargs["_request_timeout"] = (self.connect_timeout, self.timeout)
        try:
            return method(*args, **kwargs)
        except self._api_exception as exc:
            raise self._api_error(exc, doing, subject) from exc
        except urllib3.exceptions.HTTPError as exc:
            detail = _connection_detail(exc, self.connect_timeout, self.timeout)
            raise Unavailable(
                f"the Kubernetes API server at {self.host} is unavailable ({detail}) while {doing}"
            ) from exc

    def _api_error(self, exc: ApiException, doing: str, subject: str) -> ClusterError:
        status = int(exc.status or 0)
        body = _status_body(exc)
        reason = str(body.get("reason") or "")
        said = str(body.get("message") or "").strip()
        host = self.host
        if status == 0:  # the client's own failure, e.g. TLS: exc.reason holds the text
            detail = " ".join(str(exc.reason or "no answer").split())
            return Unavailable(f"the Kubernetes API server at {host} is unavailable ({detail}) while {doing}")
        head = f"{status} {_phrase(status)}"
        suffix = f": {said}" if said and said != _phrase(status) else ""
        if status == 401:
            return AuthError(
                f"the Kubernetes API server at {host} refused Canal's credentials ({head}) while {doing}: "
                "check the token or client certificate of Canal's kubeconfig (or its pod's service account)",
                status=status,
                reason=reason,
            )
        if status == 403:
            return AuthError(
                f"the Kubernetes API server at {host} forbade {doing} ({head}{suffix}): Canal's account "
                f"needs RBAC permission on workflows.argoproj.io and pods in namespace {self.namespace}",
                status=status,
                reason=reason,
            )
        if status == 404:
            if said == "the server could not find the requested resource":  # no such route: no CRD
                return ConfigError(
                    f"the Kubernetes API server at {host} does not serve workflows.argoproj.io/v1alpha1 "
                    f"({head}) while {doing}: is Argo Workflows installed on this cluster?",
                    status=status,
                    reason=reason,
                )
            return NotFound(
                f"{subject} does not exist in namespace {self.namespace}", status=status, reason=reason
            )
        if status == 409:
            return Conflict(f"{subject}: {said or head} (while {doing})", status=status, reason=reason)
        if status in (400, 413, 415, 422):
            return Invalid(
                f"the Kubernetes API server refused {doing} ({head}){suffix}", status=status, reason=reason
            )
        if status in (408, 429) or status >= 500:
            return Unavailable(
                f"the Kubernetes API server at {host} is unavailable ({head}{suffix}) while {doing}",
                status=status,
                reason=reason,
            )
        return ClusterError(
            f"the Kubernetes API server at {host} answered {head}{suffix} while {doing}",
            status=status,
            reason=reason,
        )

    # -- Workflows -------------------------------------------------------------------------
    def submit(self, workflow: Mapping[str, Any]) -> SubmitResult:
        """Create ``workflow``; an existing Workflow of that name for the same run is a success."""
        manifest: Obj = copy.deepcopy(dict(workflow))
        metadata = manifest.setdefault("metadata", {})
        name = str(metadata.get("name") or "")
        if not name:
            raise ValueError(
                "a Workflow to submit needs metadata.name (with generateName a duplicate goes unnoticed)"
            )
        run_id = workflow_run_id(manifest)
        if not run_id:
            raise ValueError(
                f"Workflow {name} carries no {RUN_ID_KEY} annotation or label: "
                "without it a duplicate submit cannot be told from another run's Workflow"
            )
        given = metadata.get("namespace")
        if given and given != self.namespace:
            raise ValueError(f"Workflow {name} names namespace {given}, this cluster client {self.namespace}")
        metadata["namespace"] = self.namespace
        subject = f"Workflow {name}"
        for _ in range(_CONFLICT_ATTEMPTS):
            try:
                created: Obj = self._call(
                    f"creating Workflow {name}",
                    subject,
                    self._custom.create_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    manifest,
                )
            except Conflict as exc:
                if exc.reason not in ("AlreadyExists", ""):
                    raise
            else:
                return SubmitResult(name, str(created["metadata"].get("uid", "")), True, created)
            existing = self.get(name)
            if existing is None:
                continue  # deleted in between: create it again
            theirs = workflow_run_id(existing)
            if theirs != run_id:
                raise NameTaken(
                    f"a Workflow named {name} already exists in namespace {self.namespace} for another run "
                    f"({RUN_ID_KEY}={theirs or 'none'}), not for run {run_id}: Canal does not replace it",
                    status=409,
                    reason="AlreadyExists",
                )
            return SubmitResult(name, str(existing["metadata"].get("uid", "")), False, existing)
        raise Conflict(
            f"Workflow {name} kept appearing and disappearing while Canal submitted it", status=409
        )

    def get(self, name: str) -> Obj | None:
        """The Workflow, or None when it does not exist."""
        try:
            workflow: Obj = self._call(
                f"reading Workflow {name}",
                f"Workflow {name}",
                self._custom.get_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                name,
            )
        except NotFound:
            return None
        return workflow

    def _require(self, name: str) -> Obj:
        workflow = self.get(name)
        if workflow is None:
            raise NotFound(f"Workflow {name} does not exist in namespace {self.namespace}", status=404)
        return workflow

    def list_workflows(self, label_selector: str = RUN_ID_KEY, *, page: int = 200) -> list[Obj]:
        """Every Workflow of the namespace matching ``label_selector`` (default: Canal's), page by page."""
        items: list[Obj] = []
        token = ""
        while True:
            extra = {"_continue": token} if token else {}
            answer: Obj = self._call(
                "listing Workflows",
                "the Workflow list",
                self._custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                label_selector=label_selector,
                limit=page,
                **extra,
            )
            items.extend(answer.get("items") or [])
            token = str((answer.get("metadata") or {}).get("continue") or "")
            if not token:
                return items

    def terminate(self, name: str, *, strategy: Literal["Terminate", "Stop"] = "Terminate") -> bool:
        """Shut the Workflow down (``spec.shutdown``); False when it had already finished."""
        if strategy not in ("Terminate", "Stop"):
            raise ValueError(f"a shutdown strategy is Terminate or Stop, not {strategy!r}")
        if workflow_finished(self._require(name)):
            return False
        path_params = {
            "group": GROUP,
            "version": VERSION,
            "namespace": self.namespace,
            "plural": PLURAL,
            "name": name,
        }
        self._call(
            f"terminating Workflow {name}",
            f"Workflow {name}",
            self.api_client.call_api,
            "/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}",
            "PATCH",
            path_params=path_params,
            query_params=[],
            header_params={"Accept": "application/json", "Content-Type": MERGE_PATCH},
            body={"spec": {"shutdown": strategy}},
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )
        return True

    def retry(self, name: str) -> Obj:
        """Run a Failed or Errored Workflow's failed nodes again (``argo retry``); returns the Workflow."""
        for _ in range(_CONFLICT_ATTEMPTS):
            plan = formulate_retry(self._require(name))
            for pod in plan.pods_to_delete:
                self._delete_pod(pod, f"deleting pod {pod} to retry Workflow {name}")
            try:
                replaced: Obj = self._call(
                    f"retrying Workflow {name}",
                    f"Workflow {name}",
                    self._custom.replace_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    name,
                    plan.workflow,
                )
            except Conflict:
                continue  # changed since read: read it again
            return replaced
        raise Conflict(
            f"Workflow {name} kept changing while Canal retried it ({_CONFLICT_ATTEMPTS} attempts)",
            status=409,
        )

    def delete(self, name: str) -> bool:
        """Delete the Workflow (its pods go with it); False when it was already gone."""
        try:
            self._call(
                f"deleting Workflow {name}",
                f"Workflow {name}",
                self._custom.delete_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                name,
                propagation_policy="Background",
            )
        except NotFound:
            return False
        return True

    # -- pods ----------------------------------------------------------------------------------
    def _delete_pod(self, pod: str, doing: str) -> None:
        with contextlib.suppress(NotFound):
            self._call(doing, f"pod {pod}", self._core.delete_namespaced_pod, pod, self.namespace)

    def pod_log(
        self, pod_name: str, *, container: str = "main", since_bytes: int = 0, max_bytes: int | None = None
    ) -> bytes:
        """The container's log from byte ``since_bytes`` on (at most ``max_bytes`` of it).

        A pod whose container has not started yet has an empty log; a pod that
        is gone raises ``NotFound`` (read the copy Canal stored instead).
        """
        import urllib3  # see from_config: loaded with the kubernetes client

        if since_bytes < 0 or (max_bytes is not None and max_bytes < 0):
            raise ValueError("since_bytes and max_bytes cannot be negative")
        extra: dict[str, Any] = {}
        if max_bytes is not None:
            if max_bytes == 0:
                return b""
            extra["limit_bytes"] = since_bytes + max_bytes
        try:
            # Raw bytes: preloading decodes as UTF-8 (a binary log would raise) and may parse JSON.
            response = self._call(
                f"reading the log of pod {pod_name}",
                f"pod {pod_name}",
                self._core.read_namespaced_pod_log,
                pod_name,
                self.namespace,
                container=container,
                _preload_content=False,
                **extra,
            )
        except Invalid as exc:
            if "is waiting to start" in exc.message:
                return b""
            raise
        try:
            data = bytes(response.data or b"")
        except urllib3.exceptions.HTTPError as exc:
            detail = _connection_detail(exc, self.connect_timeout, self.timeout)
            raise Unavailable(
                f"the Kubernetes API server at {self.host} is unavailable ({detail}) "
                f"while reading the log of pod {pod_name}"
            ) from exc
        finally:
            response.release_conn()
        return data[since_bytes:]


# -- the pure views --------------------------------------------------------------------------
def workflow_phase(workflow: Mapping[str, Any]) -> str:
    """Argo's ``status.phase``: "" until the controller has seen it (also right after a retry),
    then Pending, Running, Succeeded, Failed or Error."""
    return str((workflow.get("status") or {}).get("phase") or "")


def workflow_message(workflow: Mapping[str, Any]) -> str:
    """``status.message``: why it failed, or what it waits for."""
    return str((workflow.get("status") or {}).get("message") or "")


def workflow_finished(workflow: Mapping[str, Any]) -> bool:
    """Whether the Workflow has ended (Succeeded, Failed or Error)."""
    return workflow_phase(workflow) in FINISHED_PHASES


def workflow_run_id(workflow: Mapping[str, Any]) -> str:
    """The Canal run a Workflow belongs to: its ``canal.io/run-id`` annotation, else that label."""
    metadata = workflow.get("metadata") or {}
    return str(
        (metadata.get("annotations") or {}).get(RUN_ID_KEY)
        or (metadata.get("labels") or {}).get(RUN_ID_KEY)
        or ""
    )


def _fnv32a(text: str) -> int:
    value = 0x811C9DC5
    for byte in text.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def pod_name(workflow: Mapping[str, Any], node: Mapping[str, Any]) -> str:
    """The name Argo gives a Pod node's pod (``GeneratePodName``).

    Format v2 (Argo's default since 3.4): ``<workflow>-<template>-<fnv32a(node name)>``,
    the prefix cut to 242 characters, the workflow's name itself for a root Pod
    node; v1 (the Workflow annotated ``workflows.argoproj.io/pod-name-format: v1``):
    the node's id.
    """
    metadata = workflow.get("metadata") or {}
    workflow_name = str(metadata.get("name") or "")
    node_name = str(node.get("name") or "")
    if (metadata.get("annotations") or {}).get(_ANNOTATION_POD_NAME_FORMAT) == "v1":
        return str(node.get("id") or "")
    if node_name == workflow_name:
        return workflow_name
    template = str(node.get("templateName") or (node.get("templateRef") or {}).get("template") or "")
    prefix = f"{workflow_name}-{template}" if template else workflow_name
    return f"{prefix[: 253 - 10 - 1]}-{_fnv32a(node_name)}"


def _parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class NodeView:
    """One entry of a Workflow's ``status.nodes``, typed.

    ``parameters`` holds the output parameters that have a value, ``artifacts``
    the output artifacts by name (Argo's shape: ``s3.key``, ``path``...),
    ``result`` a script's stdout, ``exit_code`` the main container's exit code.
    ``pod_name`` is set for Pod nodes; ``template_annotations`` are the
    ``metadata.annotations`` of the node's template (Canal's compiler puts
    ``canal.io/role`` and ``canal.io/task`` there). ``raw`` is the node as Argo wrote it.
    """

    id: str
    name: str
    display_name: str
    type: str
    template_name: str
    phase: str
    message: str
    started_at: datetime | None
    finished_at: datetime | None
    boundary_id: str
    children: tuple[str, ...]
    outbound_nodes: tuple[str, ...]
    parameters: Mapping[str, str]
    artifacts: Mapping[str, Mapping[str, Any]]
    result: str | None
    exit_code: int | None
    pod_name: str | None
    template_annotations: Mapping[str, str]
    retried: bool  # an attempt of a retryStrategy (its parent is the Retry node)
    hooked: bool  # a lifecycle hook's node
    memoized: bool  # its outputs came from Argo's memoization cache
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def fulfilled(self) -> bool:
        """Whether the node has reached a final phase (Succeeded, Failed, Error, Skipped, Omitted)."""
        return self.phase in _NODE_FULFILLED


def status_nodes(workflow: Mapping[str, Any]) -> dict[str, Obj]:
    """``status.nodes``, from ``compressedNodes`` when Argo compressed them (ConfigError
    when they are offloaded to Argo's database, or cannot be read)."""
    return _nodes(workflow)


def _nodes(workflow: Mapping[str, Any]) -> dict[str, Obj]:
    """``status.nodes``, from ``compressedNodes`` when Argo compressed them."""
    status = workflow.get("status") or {}
    nodes = status.get("nodes")
    if nodes:
        return cast(dict[str, Obj], nodes)
    name = (workflow.get("metadata") or {}).get("name", "")
    compressed = status.get("compressedNodes")
    if compressed:
        try:
            decoded = json.loads(gzip.decompress(base64.b64decode(compressed)))
        except (ValueError, OSError, EOFError, binascii.Error) as exc:
            raise ConfigError(f"the compressed node status of Workflow {name} cannot be read: {exc}") from exc
        return cast(dict[str, Obj], decoded or {})
    if status.get("offloadNodeStatusVersion"):
        raise ConfigError(
            f"the node status of Workflow {name} is offloaded to Argo's database "
            f"(offloadNodeStatusVersion {status['offloadNodeStatusVersion']}), which Canal does not read: "
            "turn off the controller's persistence.nodeStatusOffLoad"
        )
    return {}


def _templates(workflow: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found: dict[str, Mapping[str, Any]] = {}
    stored = (workflow.get("status") or {}).get("storedWorkflowTemplateSpec") or {}
    for source in (stored.get("templates") or [], (workflow.get("spec") or {}).get("templates") or []):
        for template in source:
            if isinstance(template, dict) and template.get("name"):
                found[str(template["name"])] = template
    return found


def _node_order(nodes: Mapping[str, Obj], root: str) -> list[str]:
    """Breadth first from the root along ``children`` (parents first), then the rest (exit handlers) by id."""
    order: list[str] = []
    seen: set[str] = set()
    queue = deque([node_id for node_id, node in nodes.items() if node.get("name") == root])
    while queue:
        node_id = queue.popleft()
        if node_id in seen or node_id not in nodes:
            continue
        seen.add(node_id)
        order.append(node_id)
        queue.extend(nodes[node_id].get("children") or [])
    order.extend(sorted(set(nodes) - seen))
    return order


def workflow_nodes(workflow: Mapping[str, Any]) -> list[NodeView]:
    """A typed view of every node of ``status.nodes``, parents before their children."""
    nodes = _nodes(workflow)
    templates = _templates(workflow)
    workflow_name = str((workflow.get("metadata") or {}).get("name") or "")
    views = []
    for node_id in _node_order(nodes, workflow_name):
        node = nodes[node_id]
        outputs = node.get("outputs") or {}
        parameters = {
            str(p["name"]): str(p["value"])
            for p in outputs.get("parameters") or []
            if isinstance(p, dict) and "name" in p and p.get("value") is not None
        }
        artifacts = {
            str(a["name"]): a for a in outputs.get("artifacts") or [] if isinstance(a, dict) and "name" in a
        }
        try:
            exit_code = int(outputs["exitCode"]) if outputs.get("exitCode") not in (None, "") else None
        except (TypeError, ValueError):
            exit_code = None
        template_name = str(node.get("templateName") or (node.get("templateRef") or {}).get("template") or "")
        template = templates.get(template_name) or {}
        annotations = (template.get("metadata") or {}).get("annotations") or {}
        flags = node.get("nodeFlag") or {}
        views.append(
            NodeView(
                id=str(node.get("id") or node_id),
                name=str(node.get("name") or ""),
                display_name=str(node.get("displayName") or node.get("name") or ""),
                type=str(node.get("type") or ""),
                template_name=template_name,
                phase=str(node.get("phase") or ""),
                message=str(node.get("message") or ""),
                started_at=_parse_time(node.get("startedAt")),
                finished_at=_parse_time(node.get("finishedAt")),
                boundary_id=str(node.get("boundaryID") or ""),
                children=tuple(str(c) for c in node.get("children") or []),
                outbound_nodes=tuple(str(c) for c in node.get("outboundNodes") or []),
                parameters=parameters,
                artifacts=artifacts,
                result=str(outputs["result"]) if outputs.get("result") is not None else None,
                exit_code=exit_code,
                pod_name=pod_name(workflow, node) if node.get("type") == "Pod" else None,
                template_annotations={str(k): str(v) for k, v in annotations.items()},
                retried=bool(flags.get("retried")),
                hooked=bool(flags.get("hooked")),
                memoized=bool((node.get("memoizationStatus") or {}).get("hit")),
                raw=node,
            )
        )
    return views


# -- retry, the pure half ----------------------------------------------------------------------
_EXECUTION_TYPES: Final = frozenset({"Container", "Pod", "HTTP", "Plugin"})
_GROUP_TYPES: Final = frozenset({"DAG", "TaskGroup", "StepGroup", "Steps"})


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _failed(node: Mapping[str, Any]) -> bool:
    return node.get("phase") in ("Failed", "Error")


class _Tree:
    """The nodes as Argo's retry sees them: each with one parent (the last by id to list it as a child)."""

    def __init__(self, workflow_name: str, nodes: Mapping[str, Obj]) -> None:
        self.nodes = nodes
        self.parent: dict[str, str] = {}
        for node_id in sorted(nodes):
            for child in nodes[node_id].get("children") or []:
                if child not in nodes:
                    raise Invalid(f"node {node_id} of Workflow {workflow_name} has an unknown child {child}")
                self.parent[child] = node_id
        exit_prefix = f"{workflow_name}.onExit"
        for node_id, node in nodes.items():
            node_name = str(node.get("name") or "")
            if (
                node_id not in self.parent
                and node_name != workflow_name
                and not node_name.startswith(exit_prefix)
            ):
                raise Invalid(f"node {node_id} of Workflow {workflow_name} has no parent node")
        roots = [node_id for node_id, node in nodes.items() if node.get("name") == workflow_name]
        if not roots:
            raise Invalid(f"Workflow {workflow_name} has no root node to retry from")
        # Breadth first from the root: a failure near the top is handled before those below it.
        self.order: list[str] = []
        seen = {roots[0]}
        queue = deque([roots[0]])
        while queue:
            node_id = queue.popleft()
            self.order.append(node_id)
            for child in nodes[node_id].get("children") or []:
                if child not in seen:
                    seen.add(child)
                    queue.append(child)
        self.root = roots[0]
        self.limit = 2 * len(nodes) + 2  # more steps up than that is a cycle

    def type(self, node_id: str) -> str:
        return str(self.nodes[node_id].get("type") or "")

    def descendants(self, node_id: str) -> set[str]:
        return _descendants(self.nodes, node_id)

    def up_to(self, node_id: str, match: Callable[[str], bool]) -> str:
        """The first of ``node_id`` and its ancestors that ``match`` accepts."""
        current: str | None = node_id
        for _ in range(self.limit):
            if current is None:
                break
            if match(current):
                return current
            current = self.parent.get(current)
        raise Invalid(f"node {node_id} has no ancestor the retry looks for: its status is inconsistent")


def _reset_path(tree: _Tree, leaf: str) -> tuple[set[str], set[str]]:
    """Argo's ``resetPath``: the nodes to reset (groups above ``leaf``) and to remove (it and below)."""
    to_delete = tree.descendants(leaf) | {leaf}
    to_reset: set[str] = set()
    if leaf == tree.root:
        return to_reset, to_delete

    def boundaries(node_id: str) -> str | None:
        """Reset the enclosing groups up to the root; returns where the walk goes on."""
        current: str | None = node_id
        for _ in range(tree.limit):
            if current is None:
                return None
            parent = tree.parent.get(current)
            if parent is not None and tree.type(parent) == "Retry":
                to_reset.add(parent)
                current = parent
                parent = tree.parent.get(current)
            if parent is not None and tree.type(parent) in ("StepGroup", "TaskGroup"):
                to_reset.add(parent)
            boundary = str(tree.nodes[current].get("boundaryID") or "")
            if not boundary:
                return tree.parent.get(current)
            current = tree.up_to(current, boundary.__eq__)
            to_reset.add(current)
        raise Invalid(f"the boundaries above node {node_id} form a cycle")

    current: str | None = leaf
    for _ in range(tree.limit):
        if current is None:
            return to_reset, to_delete
        kind = tree.type(current)
        if kind in _GROUP_TYPES:
            to_reset.add(current)
            current = boundaries(current)
            continue
        if kind == "Retry" and _failed(tree.nodes[current]):
            to_reset.add(current)
        elif kind == "Container":  # a container of a containerSet: its whole pod runs again
            pod = tree.up_to(current, lambda n: tree.type(n) == "Pod")
            to_delete |= {pod} | tree.descendants(pod)
            current = pod
            continue
        current = tree.parent.get(current)
    raise Invalid(f"the parents of node {leaf} form a cycle")


def _reset_node(node: Obj, now: str) -> Obj:
    reset = copy.deepcopy(node)
    if reset.get("type") == "Suspend":
        for parameter in (reset.get("outputs") or {}).get("parameters") or []:
            parameter.pop("value", None)
            parameter["valueFrom"] = {"supplied": {}}
    if reset.get("phase") != "Skipped":
        reset["phase"] = "Running"
    reset.pop("message", None)
    reset.pop("finishedAt", None)
    reset["startedAt"] = now
    return reset


def formulate_retry(workflow: Mapping[str, Any], *, now: str | None = None) -> RetryPlan:
    """The Workflow as ``argo retry`` rewrites it to run its failed nodes again, and the pods to delete.

    ``workflow`` must be Failed or Errored (``Invalid`` otherwise). A failed
    Pod node with a succeeded descendant (a task whose failure the DAG went
    on past) is left alone, as in Argo.
    """
    result: Obj = copy.deepcopy(dict(workflow))
    metadata = result.setdefault("metadata", {})
    name = str(metadata.get("name") or "")
    status: Obj = result.setdefault("status", {})
    phase = workflow_phase(result)
    if phase not in ("Failed", "Error"):
        raise Invalid(
            f"Workflow {name} cannot be retried in phase {phase or 'Pending'}: only Failed or Error ones can",
            reason="BadRequest",
        )
    nodes = _nodes(result)
    now = now or _now()

    # The Workflow as a whole starts again.
    labels = metadata.get("labels") or {}
    labels.pop(_LABEL_COMPLETED, None)
    labels.pop(_LABEL_ARCHIVING, None)
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "Completed"]
    status["conditions"] = [*conditions, {"type": "Completed", "status": "False"}]
    for key in ("phase", "message", "finishedAt", "compressedNodes", "persistentVolumeClaims"):
        status.pop(key, None)
    status["startedAt"] = now
    spec = result.setdefault("spec", {})
    spec.pop("shutdown", None)
    if spec.get("activeDeadlineSeconds") == 0:  # what a terminate used to set
        spec.pop("activeDeadlineSeconds")
    stored = status.get("storedWorkflowTemplateSpec")
    if isinstance(stored, dict):
        stored.pop("shutdown", None)

    # The failed execution nodes (a retried attempt counts through its Retry node).
    failed: set[str] = set()
    for node_id, node in nodes.items():
        if not (_failed(node) and node.get("type") in _EXECUTION_TYPES):
            continue
        subject = node_id
        if (node.get("nodeFlag") or {}).get("retried"):
            subject = next(
                (
                    i
                    for i, n in nodes.items()
                    if n.get("type") == "Retry" and node_id in (n.get("children") or [])
                ),
                node_id,
            )
        if not any(nodes[d].get("phase") == "Succeeded" for d in _descendants(nodes, subject)):
            failed.add(node_id)

    to_reset: set[str] = set()
    to_delete: set[str] = set()
    if nodes:
        tree = _Tree(name, nodes)
        for node_id in tree.order:
            if node_id in failed and node_id not in to_delete:
                reset, delete = _reset_path(tree, node_id)
                to_reset |= reset
                to_delete |= delete

    exit_name = f"{name}.onExit"
    pods: set[str] = set()
    new_nodes: dict[str, Obj] = {}
    for node_id in sorted(to_reset - to_delete):
        new_nodes[node_id] = _reset_node(nodes[node_id], now)
    for node_id in to_delete:
        if nodes[node_id].get("type") == "Pod":
            pods.add(pod_name(result, nodes[node_id]))
    for node_id, node in nodes.items():
        node_name = str(node.get("name") or "")
        if node_id not in new_nodes and node_id not in to_delete and not node_name.startswith(exit_name):
            new_nodes[node_id] = copy.deepcopy(node)
        if node_name == exit_name:  # the exit handler runs again: all its pods go
            for member in {node_id} | _descendants(nodes, node_id):
                if nodes[member].get("type") == "Pod":
                    pods.add(pod_name(result, nodes[member]))
    for node in new_nodes.values():
        for key in ("children", "outboundNodes"):
            kept = [i for i in node.get(key) or [] if i not in to_delete]
            if kept:
                node[key] = kept
            else:
                node.pop(key, None)
    status["nodes"] = new_nodes
    return RetryPlan(
        workflow=result,
        pods_to_delete=sorted(pods),
        reset_nodes=sorted(to_reset - to_delete),
        removed_nodes=sorted(set(nodes) - set(new_nodes)),
    )


def _descendants(nodes: Mapping[str, Obj], node_id: str) -> set[str]:
    found: set[str] = set()
    queue = deque((nodes.get(node_id) or {}).get("children") or [])
    while queue:
        child = queue.popleft()
        if child in found or child not in nodes:
            continue
        found.add(child)
        queue.extend(nodes[child].get("children") or [])
    return found
