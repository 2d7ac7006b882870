"""The emulated Kubernetes API server: the HTTP paths the ``kubernetes`` Python client uses for Argo.

Served (namespaced unless noted; every namespace exists):

- discovery: ``/version``, ``/api``, ``/api/v1``, ``/apis``, ``/apis/argoproj.io``,
  ``/apis/argoproj.io/v1alpha1``;
- ``workflows.argoproj.io``: list (also across namespaces), watch, create, get,
  replace, patch (merge patch and JSON patch), delete, delete collection;
  ``/status`` only when the store treats status as a subresource (stock
  Argo's CRD does not, so by default it is a 404 as on a real cluster);
- ``pods``: list (also across namespaces), watch, get, delete; ``pods/log``
  with ``container``, ``follow``, ``tailLines``, ``limitBytes`` and
  ``sinceSeconds`` (coarse: the whole log, or nothing when the container
  ended longer ago);
- ``namespaces``: list and get, answered for any name;
- ``/healthz``, ``/livez``, ``/readyz`` without a token;
- ``/_emulator/...``: the admin endpoints (fault injection, controller
  restart), which take the bearer token and are never failed by injection.

Errors are ``kind: Status`` objects with the API server's reasons and codes.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from apps.backends.argo.emulator.errors import ApiError, Resource, success_status
from apps.backends.argo.emulator.faults import Faults
from apps.backends.argo.emulator.kubelet import Kubelet
from apps.backends.argo.emulator.naming import now_rfc3339
from apps.backends.argo.emulator.selectors import Selector, parse_field_selector, parse_label_selector
from apps.backends.argo.emulator.store import JSON_PATCH, MERGE_PATCH, PODS, WORKFLOWS, Obj, Store

__all__ = ["KUBERNETES_VERSION", "ApiServer"]

logger = logging.getLogger(__name__)

KUBERNETES_VERSION = {"major": "1", "minor": "30", "gitVersion": "v1.30.0-canal-emulator"}
MAX_BODY = 3 * 1024 * 1024  # the API server's default request size limit
_NAME = r"([^/]+)"
_WF = rf"^/apis/argoproj\.io/v1alpha1/namespaces/{_NAME}/workflows"
_POD = rf"^/api/v1/namespaces/{_NAME}/pods"
_FIELDS = {
    "workflows": frozenset({"metadata.name", "metadata.namespace"}),
    "pods": frozenset({"metadata.name", "metadata.namespace", "status.phase", "spec.nodeName"}),
}
_WORKFLOW_VERBS = ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"]


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "t", "yes")


class ApiServer(ThreadingHTTPServer):
    """The HTTP server; ``admin`` maps an admin action name (``controller/restart``) to what does it."""

    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        *,
        store: Store,
        kubelet: Kubelet,
        token: str,
        faults: Faults,
        admin: Mapping[str, Callable[[], Any]],
    ) -> None:
        super().__init__(address, _Handler)
        self.store = store
        self.kubelet = kubelet
        self.token = token
        self.faults = faults
        self.admin = admin
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        """Remember (or forget) an open client connection."""
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """End every open connection (idle keep-alives, watches, log streams) when stopping."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "canal-k8s-emulator"
    timeout = 120  # an idle keep-alive connection is closed after this many seconds
    server: ApiServer
    _raw: bytes = b""

    # -- plumbing -------------------------------------------------------------
    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.track(self.connection, open_=False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, obj: Any) -> None:
        self._send(code, json.dumps(obj).encode())

    def _error(self, error: ApiError) -> None:
        self._json(error.code, error.status())

    def _read_body(self) -> None:
        # Read before anything can fail, so an error answer leaves the connection usable.
        self._raw = b""
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            raise ApiError.too_large(MAX_BODY)
        if length:
            self._raw = self.rfile.read(length)

    def _body(self) -> Any:
        raw = self._raw
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ApiError.bad_request(f"the request body is not JSON: {exc}") from None

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self.server.token.encode()
        )

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query, keep_blank_values=True).items()}
        path = url.path.rstrip("/") or "/"
        try:
            try:
                self._read_body()
                if path in ("/healthz", "/livez", "/readyz"):
                    self._send(200, b"ok", "text/plain")
                    return
                if path.startswith("/_emulator/"):
                    if not self._authorized():
                        raise ApiError.unauthorized()
                    self._admin(method, path[len("/_emulator/") :])
                    return
                injected = self.server.faults.take()
                if injected is not None:
                    raise ApiError.injected(injected)
                if not self._authorized():
                    raise ApiError.unauthorized()
                self._route(method, path, query)
            except ApiError as error:
                self._error(error)
            except ValueError as exc:  # a query parameter that is not a number
                self._error(ApiError.bad_request(f"invalid query parameter: {exc}"))
            except Exception as exc:
                logger.exception("emulated API server: %s %s failed", method, self.path)
                self._error(
                    ApiError(
                        500, "InternalError", f"an error on the server ({exc}) has prevented the request"
                    )
                )
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- admin ----------------------------------------------------------------
    def _admin(self, method: str, action: str) -> None:
        server = self.server
        if action == "state" and method == "GET":
            workflows, _ = server.store.list(WORKFLOWS)
            pods, _ = server.store.list(PODS)
            running = server.admin.get("controller/running")
            self._json(
                200,
                {
                    "controller": bool(running()) if running else None,
                    "faults": server.faults.describe(),
                    "workflows": len(workflows),
                    "pods": len(pods),
                },
            )
        elif action == "faults" and method == "POST":
            body = self._body() or {}
            count = body.get("count", 1)
            try:
                server.faults.inject(int(body["code"]), None if count is None else int(count))
            except (KeyError, TypeError, ValueError) as exc:
                raise ApiError.bad_request(f'a fault is {{"code": 503, "count": 3 or null}}: {exc}') from None
            self._json(200, server.faults.describe())
        elif action == "faults" and method == "DELETE":
            server.faults.clear()
            self._json(200, server.faults.describe())
        elif action in server.admin and method == "POST":
            server.admin[action]()
            self._json(200, {"done": action})
        else:
            raise ApiError.no_route()

    # -- routing ----------------------------------------------------------------
    def _route(self, method: str, path: str, query: dict[str, str]) -> None:
        discovery = _DISCOVERY.get(path)
        if discovery is not None:
            if method != "GET":
                raise ApiError.method_not_allowed()
            self._json(200, discovery(self.server.store))
            return
        if path == "/apis/argoproj.io/v1alpha1/workflows":
            self._collection(method, WORKFLOWS, None, query)
            return
        if path == "/api/v1/pods":
            self._collection(method, PODS, None, query)
            return
        if path == "/api/v1/namespaces":
            self._namespaces(method, None)
            return
        match = re.match(rf"^/api/v1/namespaces/{_NAME}$", path)
        if match:
            self._namespaces(method, match.group(1))
            return
        for prefix, resource in ((_WF, WORKFLOWS), (_POD, PODS)):
            match = re.match(rf"{prefix}(?:/{_NAME}(?:/(status|log))?)?$", path)
            if not match:
                continue
            namespace, name, sub = match.groups()
            if name is None:
                self._collection(method, resource, namespace, query)
            elif sub is None:
                self._object(method, resource, namespace, name, query)
            elif sub == "log" and resource is PODS:
                if method != "GET":
                    raise ApiError.method_not_allowed()
                self._log(namespace, name, query)
            elif sub == "status" and resource.plural in self.server.store.status_subresource:
                self._object(method, resource, namespace, name, query, status=True)
            else:
                # A subresource the resource does not have (Argo's CRD declares no status).
                raise ApiError.not_found(resource, name)
            return
        raise ApiError.no_route()

    def _selector(self, resource: Resource, query: dict[str, str]) -> Selector:
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"), _FIELDS[resource.plural])
        return lambda obj: labels(obj) and fields(obj)

    def _collection(
        self, method: str, resource: Resource, namespace: str | None, query: dict[str, str]
    ) -> None:
        store = self.server.store
        selector = self._selector(resource, query)
        if method == "GET":
            if _truthy(query.get("watch")):
                self._watch(resource, namespace, selector, query)
                return
            items, revision = store.list(resource, namespace, selector)
            self._json(200, self._page(resource, items, revision, query))
        elif method == "POST" and namespace is not None and resource is WORKFLOWS:
            self._json(201, store.create(resource, namespace, self._body()))
        elif method == "DELETE" and namespace is not None and resource is WORKFLOWS:
            self._body()
            items, revision = store.list(resource, namespace, selector)
            deleted = []
            for item in items:
                try:
                    deleted.append(store.delete(resource, namespace, item["metadata"]["name"]))
                except ApiError:
                    continue  # gone meanwhile
            self._json(200, self._page(resource, deleted, store.revision, {}))
        else:
            raise ApiError.method_not_allowed()

    @staticmethod
    def _page(resource: Resource, items: list[Obj], revision: int, query: dict[str, str]) -> Obj:
        metadata: Obj = {"resourceVersion": str(revision)}
        limit = int(query.get("limit") or 0)
        if query.get("continue"):
            try:
                start = int(base64.urlsafe_b64decode(query["continue"].encode()).decode())
            except ValueError:
                raise ApiError.bad_request("continue key is not valid") from None
            items = items[start:]
        else:
            start = 0
        if limit > 0 and len(items) > limit:
            metadata["remainingItemCount"] = len(items) - limit
            items = items[:limit]
            metadata["continue"] = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
        return {
            "apiVersion": resource.api_version,
            "kind": resource.list_kind,
            "metadata": metadata,
            "items": items,
        }

    def _object(
        self,
        method: str,
        resource: Resource,
        namespace: str,
        name: str,
        query: dict[str, str],
        *,
        status: bool = False,
    ) -> None:
        store = self.server.store
        if method == "GET":
            self._json(200, store.get(resource, namespace, name))
        elif method == "PUT" and resource is WORKFLOWS:
            self._json(200, store.replace(resource, namespace, name, self._body(), status=status))
        elif method == "PATCH" and resource is WORKFLOWS:
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if content_type not in (MERGE_PATCH, JSON_PATCH):
                raise ApiError.unsupported_media_type(content_type, [JSON_PATCH, MERGE_PATCH])
            self._json(200, store.patch(resource, namespace, name, content_type, self._body(), status=status))
        elif method == "DELETE" and not status:
            options = self._body() or {}
            preconditions = options.get("preconditions") or {}
            deleted = store.delete(
                resource,
                namespace,
                name,
                propagation=query.get("propagationPolicy")
                or options.get("propagationPolicy")
                or "Background",
                uid=preconditions.get("uid"),
                resource_version=preconditions.get("resourceVersion"),
            )
            if resource is PODS:  # pods answer with the object, marked for deletion
                deleted["metadata"]["deletionTimestamp"] = now_rfc3339()
                deleted["metadata"]["deletionGracePeriodSeconds"] = 0
                self._json(200, deleted)
            else:
                self._json(200, success_status(resource, name, deleted["metadata"]["uid"]))
        else:
            raise ApiError.method_not_allowed()

    def _namespaces(self, method: str, name: str | None) -> None:
        if method != "GET":
            raise ApiError.method_not_allowed()

        def namespace(ns: str) -> Obj:
            return {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns},
                "status": {"phase": "Active"},
            }

        if name is not None:
            self._json(200, namespace(name))
            return
        names = {"default"}
        for resource in (WORKFLOWS, PODS):
            items, _ = self.server.store.list(resource)
            names.update(item["metadata"]["namespace"] for item in items)
        items = [namespace(ns) for ns in sorted(names)]
        self._json(200, {"apiVersion": "v1", "kind": "NamespaceList", "metadata": {}, "items": items})

    # -- streams ------------------------------------------------------------------
    def _start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _watch(
        self, resource: Resource, namespace: str | None, selector: Selector, query: dict[str, str]
    ) -> None:
        store = self.server.store
        try:
            timeout = float(query.get("timeoutSeconds") or 1800)
            since = query.get("resourceVersion") or "0"
            revision = int(since)
        except ValueError:
            raise ApiError.bad_request(f"invalid resourceVersion or timeoutSeconds: {query}") from None
        deadline = time.monotonic() + timeout
        self._start_stream("application/json")

        def send(kind: str, obj: Obj) -> None:
            self._chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

        if revision == 0:
            items, revision = store.list(resource, namespace, selector)
            for item in items:
                send("ADDED", item)
        while True:
            events = store.events_after(revision)
            if events is None:
                gone = ApiError.gone(f"too old resource version: {revision} ({store.revision})")
                send("ERROR", gone.status())
                break
            for event in events:
                revision = event.resource_version
                obj = event.object
                if event.resource is not resource or not selector(obj):
                    continue
                if namespace is not None and obj["metadata"].get("namespace") != namespace:
                    continue
                send(event.type, obj)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.server.stopping.is_set():
                break
            store.wait_for_change(revision, min(remaining, 1.0))
        self._end_stream()

    def _log(self, namespace: str, name: str, query: dict[str, str]) -> None:
        server = self.server
        pod = server.store.get(PODS, namespace, name)
        containers = [c.get("name") for c in pod["spec"]["containers"]]
        container = query.get("container") or ""
        if not container:
            if len(containers) != 1:
                choices = " ".join(containers)
                raise ApiError.bad_request(
                    f"a container name must be specified for pod {name}, choose one of: [{choices}]"
                )
            container = containers[0]
        if container not in containers:
            raise ApiError.bad_request(f"container {container} is not valid for pod {name}")
        if _truthy(query.get("previous")):
            raise ApiError.bad_request(
                f'previous terminated container "{container}" in pod "{name}" not found'
            )
        state = self._container_state(pod, container)
        if "waiting" in state:
            reason = state["waiting"].get("reason", "ContainerCreating")
            raise ApiError.bad_request(
                f'container "{container}" in pod "{name}" is waiting to start: {reason}'
            )
        path = server.kubelet.log_path(namespace, name, container)
        data = _read(path)
        since = query.get("sinceSeconds")
        if since and "terminated" in state:
            finished = state["terminated"].get("finishedAt") or ""
            if finished and _seconds_ago(finished) > float(since):
                data = b""
        tail = query.get("tailLines")
        if tail:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-int(tail) :]) if int(tail) > 0 else b""
        limit = int(query.get("limitBytes") or 0) or None
        if limit is not None:
            data = data[:limit]
        if not _truthy(query.get("follow")) or "running" not in state:
            self._send(200, data, "text/plain")
            return
        self._start_stream("text/plain")
        self._chunk(data)
        sent, offset = len(data), path.stat().st_size if path.exists() else 0
        while not server.stopping.is_set() and (limit is None or sent < limit):
            current = server.store.find(PODS, namespace, name)
            more = _read(path, offset)
            if limit is not None:
                more = more[: limit - sent]
            self._chunk(more)
            sent, offset = sent + len(more), offset + len(more)
            if current is None or current["metadata"]["uid"] != pod["metadata"]["uid"]:
                break
            if "running" not in self._container_state(current, container) and not more:
                break
            time.sleep(0.1)
        self._end_stream()

    @staticmethod
    def _container_state(pod: Obj, container: str) -> Obj:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if status.get("name") == container:
                state: Obj = status.get("state") or {}
                return state
        return {"waiting": {"reason": "ContainerCreating"}}


def _read(path: Path, offset: int = 0) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read()
    except FileNotFoundError:
        return b""


def _seconds_ago(stamp: str) -> float:
    when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (datetime.now(UTC) - when).total_seconds()


# -- discovery documents -------------------------------------------------------------
def _version(_: Store) -> Obj:
    return {
        **KUBERNETES_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-01-01T00:00:00Z",
        "goVersion": "go1.22.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def _api_versions(_: Store) -> Obj:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


_ARGO_VERSION = {"groupVersion": "argoproj.io/v1alpha1", "version": "v1alpha1"}
_ARGO_GROUP = {"name": "argoproj.io", "versions": [_ARGO_VERSION], "preferredVersion": _ARGO_VERSION}


def _api_groups(_: Store) -> Obj:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_ARGO_GROUP]}


def _argo_group(_: Store) -> Obj:
    return {"kind": "APIGroup", "apiVersion": "v1", **_ARGO_GROUP}


def _argo_resources(store: Store) -> Obj:
    resources = [
        {
            "name": "workflows",
            "singularName": "workflow",
            "namespaced": True,
            "kind": "Workflow",
            "verbs": _WORKFLOW_VERBS,
            "shortNames": ["wf"],
        }
    ]
    if "workflows" in store.status_subresource:
        resources.append(
            {"name": "workflows/status", "singularName": "", "namespaced": True, "kind": "Workflow",
             "verbs": ["get", "patch", "update"]}
        )  # fmt: skip
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "argoproj.io/v1alpha1",
        "resources": resources,
    }


def _core_resources(_: Store) -> Obj:
    return {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {"name": "namespaces", "singularName": "namespace", "namespaced": False, "kind": "Namespace",
             "verbs": ["get", "list"], "shortNames": ["ns"]},
            {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
             "verbs": ["delete", "get", "list", "watch"], "shortNames": ["po"]},
            {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
        ],
    }  # fmt: skip


_DISCOVERY: dict[str, Callable[[Store], Obj]] = {
    "/version": _version,
    "/api": _api_versions,
    "/apis": _api_groups,
    "/api/v1": _core_resources,
    "/apis/argoproj.io": _argo_group,
    "/apis/argoproj.io/v1alpha1": _argo_resources,
}
