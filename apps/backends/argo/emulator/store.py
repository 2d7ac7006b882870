"""The emulated cluster's object store: what etcd and the API server's registry do for it.

Objects are plain dicts, copied in and out. Every write takes the next
``resourceVersion`` from one counter (as etcd's revision), is recorded as a
watch event, and is announced to listeners (the kubelet, the controller).
Deleting a Workflow deletes the pods it owns, as Kubernetes' garbage
collector does through their ``ownerReferences``.
"""

from __future__ import annotations

import copy
import re
import secrets
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from apps.backends.argo.emulator.errors import ApiError, Resource
from apps.backends.argo.emulator.naming import now_rfc3339
from apps.backends.argo.emulator.patch import PatchError, json_patch, merge_patch
from apps.backends.argo.emulator.selectors import Selector

__all__ = ["JSON_PATCH", "MERGE_PATCH", "PODS", "RESOURCES", "WORKFLOWS", "Event", "Obj", "Store"]

Obj = dict[str, Any]
ObjList = list[Obj]

WORKFLOWS = Resource("workflows", "workflow", "Workflow", "argoproj.io", "v1alpha1", ("wf",))
PODS = Resource("pods", "pod", "Pod", "", "v1", ("po",))
RESOURCES = {resource.plural: resource for resource in (WORKFLOWS, PODS)}

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's utilrand alphabet
_MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"


@dataclass(frozen=True)
class Event:
    """One change, as a watch reports it: ``ADDED``, ``MODIFIED`` or ``DELETED`` and the object after it."""

    type: str
    resource: Resource
    object: Obj
    resource_version: int


Listener = Callable[[Event], None]
EventList = list[Event]


def _metadata(obj: Obj) -> Obj:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
        obj["metadata"] = metadata
    return metadata


def _owned_by(obj: Obj, uid: str) -> bool:
    refs = _metadata(obj).get("ownerReferences") or []
    return any(isinstance(ref, dict) and ref.get("uid") == uid for ref in refs)


class Store:
    """Thread-safe in-memory objects of every served resource, with a bounded watch history.

    ``status_subresource`` names resources whose ``status`` is written only
    through ``/status`` (stock Argo's Workflow CRD has no status subresource:
    its controller updates the whole object, so ``/status`` is a 404 there).
    """

    def __init__(self, *, status_subresource: Iterable[str] = (), history: int = 5000) -> None:
        self.status_subresource = frozenset(status_subresource)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {plural: {} for plural in RESOURCES}
        # Never 0: to a watch, resourceVersion "0" means "from whatever is stored now".
        self._revision = 1
        self._events: deque[Event] = deque(maxlen=history)
        self._listeners: list[Listener] = []

    # -- reading -----------------------------------------------------------
    @property
    def revision(self) -> int:
        """The newest resourceVersion handed out."""
        with self._lock:
            return self._revision

    def get(self, resource: Resource, namespace: str, name: str) -> Obj:
        """A copy of the object; ApiError 404 when absent."""
        with self._lock:
            obj = self._objects[resource.plural].get((namespace, name))
            if obj is None:
                raise ApiError.not_found(resource, name)
            return copy.deepcopy(obj)

    def find(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        """A copy of the object, or None."""
        with self._lock:
            obj = self._objects[resource.plural].get((namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(
        self, resource: Resource, namespace: str | None = None, selector: Selector | None = None
    ) -> tuple[ObjList, int]:
        """Copies of the objects in ``namespace`` (all when None) that ``selector`` admits, and the
        resourceVersion of this view, ordered by namespace and name."""
        with self._lock:
            # Filtered before sorting and copying: a controller lists one Workflow's pods
            # among every pod of the cluster several times a second.
            chosen = [
                (key, obj)
                for key, obj in self._objects[resource.plural].items()
                if (namespace is None or key[0] == namespace) and (selector is None or selector(obj))
            ]
            chosen.sort(key=lambda item: item[0])
            return [copy.deepcopy(obj) for _key, obj in chosen], self._revision

    # -- watching ----------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` after every change (outside the store's lock); returns an unsubscribe."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def events_after(self, resource_version: int) -> EventList | None:
        """The recorded changes newer than ``resource_version``; None when some have been forgotten."""
        with self._lock:
            if resource_version >= self._revision:
                return []
            if not self._events or self._events[0].resource_version > resource_version + 1:
                return None
            return [event for event in self._events if event.resource_version > resource_version]

    def wait_for_change(self, resource_version: int, timeout: float) -> None:
        """Block until something newer than ``resource_version`` is written, or ``timeout`` seconds."""
        with self._changed:
            if self._revision <= resource_version:
                self._changed.wait(timeout)

    def wake_watchers(self) -> None:
        """Wake every ``wait_for_change`` (used when the server stops)."""
        with self._changed:
            self._changed.notify_all()

    # -- writing (API verbs) -----------------------------------------------
    def create(self, resource: Resource, namespace: str, body: Any) -> Obj:
        """Store a new object (``generateName`` honoured); 409 AlreadyExists when the name is taken."""
        if not isinstance(body, dict):
            raise ApiError.bad_request(f"the body of a {resource.kind} must be a JSON object")
        obj = copy.deepcopy(body)
        self._check_type(resource, obj)
        metadata = _metadata(obj)
        if metadata.get("namespace") not in (None, "", namespace):
            raise ApiError.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        events: EventList = []
        with self._lock:
            name = metadata.get("name") or ""
            if not name and metadata.get("generateName"):
                while True:
                    suffix = "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
                    name = f"{metadata['generateName']}{suffix}"
                    if (namespace, name) not in self._objects[resource.plural]:
                        break
            self._check_name(resource, name)
            if (namespace, name) in self._objects[resource.plural]:
                raise ApiError.already_exists(resource, name)
            for transient in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
                metadata.pop(transient, None)
            metadata.update(
                name=name,
                namespace=namespace,
                uid=str(uuid.uuid4()),
                creationTimestamp=now_rfc3339(),
                generation=1,
            )
            self._commit(resource, "ADDED", obj, events)
            result = copy.deepcopy(obj)
        self._announce(events)
        return result

    def replace(
        self, resource: Resource, namespace: str, name: str, body: Any, *, status: bool = False
    ) -> Obj:
        """PUT: replace the object (or only its status); needs the current ``resourceVersion``."""
        if not isinstance(body, dict):
            raise ApiError.bad_request(f"the body of a {resource.kind} must be a JSON object")
        events: EventList = []
        with self._lock:
            current = self._current(resource, namespace, name)
            proposed = copy.deepcopy(body)
            given = _metadata(proposed).get("resourceVersion")
            if not given:
                raise ApiError.invalid(
                    resource, name, "metadata.resourceVersion", "must be specified for an update"
                )
            obj = self._validated_update(resource, current, proposed, name=name, status=status)
            self._commit(resource, "MODIFIED", obj, events)
            result = copy.deepcopy(obj)
        self._announce(events)
        return result

    def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        content_type: str,
        patch: Any,
        *,
        status: bool = False,
    ) -> Obj:
        """PATCH with a merge patch or a JSON patch; a ``resourceVersion`` in the result is a precondition."""
        events: EventList = []
        with self._lock:
            current = self._current(resource, namespace, name)
            try:
                if content_type == JSON_PATCH:
                    proposed = json_patch(current, patch)
                else:
                    if not isinstance(patch, dict):
                        raise ApiError.bad_request("a merge patch must be a JSON object")
                    proposed = merge_patch(current, patch)
            except PatchError as exc:
                raise ApiError(
                    422, "Invalid", f"the server rejected our request due to an error in our request: {exc}"
                ) from None
            if not isinstance(proposed, dict):
                raise ApiError.bad_request(f"the patched {resource.kind} is not a JSON object")
            if not _metadata(proposed).get("resourceVersion"):
                _metadata(proposed)["resourceVersion"] = _metadata(current)["resourceVersion"]
            obj = self._validated_update(resource, current, proposed, name=name, status=status)
            self._commit(resource, "MODIFIED", obj, events)
            result = copy.deepcopy(obj)
        self._announce(events)
        return result

    def delete(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        *,
        propagation: str = "Background",
        uid: str | None = None,
        resource_version: str | None = None,
    ) -> Obj:
        """Remove the object and (unless ``Orphan``) the objects it owns; returns it as last stored."""
        events: EventList = []
        with self._lock:
            current = self._current(resource, namespace, name)
            metadata = _metadata(current)
            if uid and uid != metadata.get("uid"):
                raise ApiError.conflict(
                    resource,
                    name,
                    f"Precondition failed: UID in precondition: {uid}, "
                    f"UID in object meta: {metadata.get('uid')}",
                )
            if resource_version and resource_version != metadata.get("resourceVersion"):
                raise ApiError.conflict(
                    resource,
                    name,
                    f"Precondition failed: ResourceVersion in precondition: {resource_version}, "
                    f"ResourceVersion in object meta: {metadata.get('resourceVersion')}",
                )
            deleted = self._remove(resource, namespace, name, events)
            owner = metadata.get("uid", "")
            for plural, dependents in self._objects.items():
                for (ns, dependent_name), obj in list(dependents.items()):
                    if ns != namespace or not _owned_by(obj, owner):
                        continue
                    if propagation == "Orphan":
                        refs = [r for r in _metadata(obj).get("ownerReferences", []) if r.get("uid") != owner]
                        _metadata(obj)["ownerReferences"] = refs
                        self._commit(RESOURCES[plural], "MODIFIED", obj, events)
                    else:
                        self._remove(RESOURCES[plural], ns, dependent_name, events)
        self._announce(events)
        return deleted

    # -- writing (the emulator's own components) ----------------------------
    def modify(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        mutate: Callable[[Obj], None],
        *,
        uid: str | None = None,
        resource_version: str | None = None,
    ) -> Obj:
        """Change a stored object in place through ``mutate`` (the controller's and kubelet's writes).

        ``uid`` guards against a deleted and re-created object of the same
        name; ``resource_version`` makes the write conditional (409 Conflict
        when someone else wrote first). Nothing is recorded when ``mutate``
        changes nothing.
        """
        events: EventList = []
        with self._lock:
            current = self._current(resource, namespace, name)
            metadata = _metadata(current)
            if uid is not None and metadata.get("uid") != uid:
                raise ApiError.not_found(resource, name)
            if resource_version is not None and metadata.get("resourceVersion") != resource_version:
                raise ApiError.conflict(resource, name, _MODIFIED)
            obj = copy.deepcopy(current)
            mutate(obj)
            if obj == current:
                return obj
            self._set_generation(resource, current, obj)
            self._commit(resource, "MODIFIED", obj, events)
            result = copy.deepcopy(obj)
        self._announce(events)
        return result

    # -- persistence ---------------------------------------------------------
    def snapshot(self) -> Obj:
        """Everything stored, as JSON-ready data."""
        with self._lock:
            return {
                "revision": self._revision,
                "objects": {
                    plural: [copy.deepcopy(obj) for _, obj in sorted(objects.items())]
                    for plural, objects in self._objects.items()
                },
            }

    def restore(self, data: Obj) -> None:
        """Load a ``snapshot()`` (before the server starts; no events are recorded)."""
        with self._lock:
            self._revision = int(data.get("revision", 0))
            for plural, items in (data.get("objects") or {}).items():
                if plural not in RESOURCES:
                    continue
                self._objects[plural] = {
                    (obj["metadata"]["namespace"], obj["metadata"]["name"]): obj for obj in items
                }
            self._events.clear()

    # -- internals -------------------------------------------------------------
    def _current(self, resource: Resource, namespace: str, name: str) -> Obj:
        obj = self._objects[resource.plural].get((namespace, name))
        if obj is None:
            raise ApiError.not_found(resource, name)
        return obj

    @staticmethod
    def _check_type(resource: Resource, obj: Obj) -> None:
        api_version = obj.setdefault("apiVersion", resource.api_version)
        kind = obj.setdefault("kind", resource.kind)
        if api_version != resource.api_version:
            raise ApiError.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({resource.api_version})"
            )
        if kind != resource.kind:
            raise ApiError.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({resource.kind})"
            )

    @staticmethod
    def _check_name(resource: Resource, name: Any) -> None:
        if not name:
            raise ApiError.invalid(
                resource, "", "metadata.name", "Required value: name or generateName is required"
            )
        if not isinstance(name, str) or len(name) > 253 or not _NAME.match(name):
            raise ApiError.invalid(
                resource,
                str(name),
                "metadata.name",
                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
                "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            )

    def _validated_update(
        self, resource: Resource, current: Obj, proposed: Obj, *, name: str, status: bool
    ) -> Obj:
        self._check_type(resource, proposed)
        metadata, old = _metadata(proposed), _metadata(current)
        if metadata.get("name") != name:
            raise ApiError.bad_request(
                f"the name of the object ({metadata.get('name')}) does not match the name on the URL ({name})"
            )
        if metadata.get("namespace") not in (None, "", old["namespace"]):
            raise ApiError.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        if metadata.get("uid") not in (None, "", old["uid"]):
            raise ApiError.conflict(
                resource,
                name,
                f"Precondition failed: UID in precondition: {metadata.get('uid')}, "
                f"UID in object meta: {old['uid']}",
            )
        if str(metadata.get("resourceVersion")) != old["resourceVersion"]:
            raise ApiError.conflict(resource, name, _MODIFIED)
        if resource.plural in self.status_subresource:
            if status:  # /status changes nothing but the status
                obj = copy.deepcopy(current)
                if "status" in proposed:
                    obj["status"] = proposed["status"]
                else:
                    obj.pop("status", None)
                proposed = obj
            elif "status" in current:
                proposed["status"] = copy.deepcopy(current["status"])
            else:
                proposed.pop("status", None)
        metadata = _metadata(proposed)
        for kept in ("uid", "creationTimestamp", "namespace", "generation"):
            if kept in old:
                metadata[kept] = old[kept]
        self._set_generation(resource, current, proposed)
        return proposed

    def _set_generation(self, resource: Resource, old: Obj, new: Obj) -> None:
        # Generation counts changes of everything but metadata (and of status, when status
        # is a subresource), as the API server's strategy for custom resources does.
        ignored = {"metadata", "status"} if resource.plural in self.status_subresource else {"metadata"}

        def content(obj: Obj) -> Obj:
            return {key: value for key, value in obj.items() if key not in ignored}

        generation = int(_metadata(old).get("generation", 1))
        if content(old) != content(new):
            generation += 1
        _metadata(new)["generation"] = generation

    def _commit(self, resource: Resource, kind: str, obj: Obj, events: EventList) -> None:
        self._revision += 1
        _metadata(obj)["resourceVersion"] = str(self._revision)
        metadata = _metadata(obj)
        self._objects[resource.plural][(metadata["namespace"], metadata["name"])] = obj
        event = Event(kind, resource, copy.deepcopy(obj), self._revision)
        self._events.append(event)
        events.append(event)
        self._changed.notify_all()

    def _remove(self, resource: Resource, namespace: str, name: str, events: EventList) -> Obj:
        obj = self._objects[resource.plural].pop((namespace, name))
        self._revision += 1
        _metadata(obj)["resourceVersion"] = str(self._revision)
        event = Event("DELETED", resource, copy.deepcopy(obj), self._revision)
        self._events.append(event)
        events.append(event)
        self._changed.notify_all()
        return copy.deepcopy(obj)

    def _announce(self, events: EventList) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for event in events:
            for listener in listeners:
                listener(event)
