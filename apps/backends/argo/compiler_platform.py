"""The Kubernetes platform spec (kfp-kubernetes' ``KubernetesExecutorConfig``) on an Argo template.

The local backend honours only ``activeDeadlineSeconds`` and ``fieldPathAsEnv`` over
``podMetadata`` (``apps/backends/pod_fields.py``); on Argo they become the pod's: secrets and
config maps as environment variables or volumes, PVC mounts, node selectors,
tolerations, affinity, pod labels and annotations, ``fieldPathAsEnv``, image pull
secrets and policy, deadlines, ephemeral, emptyDir and shared-memory volumes, the
security context and init containers.

A setting may read a task input (``secretNameParameter``, ``pvcNameParameter``,
``nodeSelectorJson``, ...). When the compiler knows the value (a constant, or a
pipeline parameter) it is written into the template; otherwise the task's driver
resolves it and the template reads the driver's output (``{{inputs.parameters.pN}}``),
or, for settings that are whole objects (a node selector, tolerations, affinity), the
driver writes a ``podSpecPatch``. An optional setting whose input has no value is left
out, as KFP does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from apps.backends.argo.compiler_util import CompileError, check_no_tags, dns_label

__all__ = ["PlatformPod", "ResolvedValue", "apply_platform"]

Path = tuple[str | int, ...]

_QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i?|[mkMGTPE]|n|u)?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_PULL_POLICIES = frozenset({"Always", "IfNotPresent", "Never"})
_OPERATORS = frozenset({"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"})
_EFFECTS = frozenset({"", "NoSchedule", "PreferNoSchedule", "NoExecute"})
_RESERVED_MOUNTS = ("/canal",)


@dataclass(frozen=True)
class ResolvedValue:
    """A platform input's value: known now (``static``), or an Argo expression the driver fills."""

    present: bool
    static: Any = None
    expression: str | None = None  # "{{inputs.parameters.pN}}" when only known at run time

    @property
    def dynamic(self) -> bool:
        return self.expression is not None


# resolve(ref, path, what, *, pvc, json_kind) -> ResolvedValue
Resolve = Callable[..., ResolvedValue]


@dataclass
class PlatformPod:
    """What the platform spec adds to one executor template."""

    env: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    node_affinity_required: list[dict[str, Any]] = field(default_factory=list)
    node_affinity_preferred: list[dict[str, Any]] = field(default_factory=list)
    pod_affinity: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    image_pull_secrets: list[str] = field(default_factory=list)
    image_pull_policy: str = ""
    active_deadline_seconds: int | None = None
    security_context: dict[str, Any] = field(default_factory=dict)
    init_containers: list[dict[str, Any]] = field(default_factory=list)
    pvc_names: list[str] = field(default_factory=list)  # static PVC names (the cache key needs them)
    # Whole objects only known at run time: podSpecPatch fields -> driver slot expressions.
    patch: dict[str, list[str]] = field(default_factory=dict)


def _str(value: Any, path: Path, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise CompileError(f"{what} must be a non-empty string", path)
    return check_no_tags(value, what, path)


def _opt_bool(value: Any, path: Path, what: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise CompileError(f"{what} must be true or false", path)
    return value


def _list(value: Any, path: Path, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CompileError(f"{what} must be a list", path)
    return value


def _dict(value: Any, path: Path, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CompileError(f"{what} must be a mapping", path)
    return value


def _mount_path(value: Any, path: Path) -> str:
    text = _str(value, path, "mountPath")
    if not text.startswith("/"):
        raise CompileError(f"mountPath {text!r} must be an absolute path", path)
    if any(text == r or text.startswith(r + "/") for r in _RESERVED_MOUNTS):
        raise CompileError(f"mountPath {text!r} is reserved for Canal's runtime", path)
    return text


def quantity(value: Any, path: Path, what: str) -> str:
    """A Kubernetes resource quantity, checked."""
    text = value if isinstance(value, str) else str(value)
    if not _QUANTITY.match(text.strip()):
        raise CompileError(f"{what} {text!r} is not a Kubernetes quantity (e.g. 500m, 2, 1Gi)", path)
    return text.strip()


def _name_ref(
    entry: Mapping[str, Any],
    legacy: str,
    param_key: str,
    path: Path,
    what: str,
    resolve: Resolve,
    *,
    pvc: bool = False,
) -> ResolvedValue:
    if entry.get(param_key) is not None:
        return resolve(
            _dict(entry[param_key], (*path, param_key), param_key), (*path, param_key), what, pvc=pvc
        )
    if entry.get(legacy):
        return ResolvedValue(True, static=_str(entry[legacy], (*path, legacy), what))
    raise CompileError(f"{what} is not given ({param_key} or {legacy})", path)


def _text(value: ResolvedValue) -> str:
    if value.expression is not None:
        return value.expression
    static = value.static
    if not isinstance(static, str) or not static:
        raise CompileError(f"expected a name, got {static!r}")
    return static


def apply_platform(config: Mapping[str, Any], path: Path, resolve: Resolve) -> PlatformPod:
    """Translate one executor's KubernetesExecutorConfig (``path`` locates it)."""
    pod = PlatformPod()
    volume_names: set[str] = set()

    def volume(prefix: str, spec: dict[str, Any], mount: dict[str, Any], wanted: Any = None) -> None:
        # A volume the platform spec names keeps its name: init containers mount it by name.
        name = dns_label(wanted, max_length=50) if isinstance(wanted, str) and wanted else ""
        if not name or name in volume_names:
            name = dns_label(f"{prefix}-{len(volume_names)}", max_length=50)
        volume_names.add(name)
        pod.volumes.append({"name": name, **spec})
        pod.mounts.append({"name": name, **mount})

    for i, entry in enumerate(
        _list(config.get("secretAsVolume"), (*path, "secretAsVolume"), "secretAsVolume")
    ):
        epath = (*path, "secretAsVolume", i)
        entry = _dict(entry, epath, "secretAsVolume entry")
        optional = _opt_bool(entry.get("optional"), (*epath, "optional"), "optional")
        name = _name_ref(entry, "secretName", "secretNameParameter", epath, "the secret's name", resolve)
        if not name.present:
            continue
        secret: dict[str, Any] = {"secretName": _text(name)}
        if optional:
            secret["optional"] = True
        volume(
            "secret",
            {"secret": secret},
            {"mountPath": _mount_path(entry.get("mountPath"), (*epath, "mountPath"))},
        )

    for i, entry in enumerate(_list(config.get("secretAsEnv"), (*path, "secretAsEnv"), "secretAsEnv")):
        epath = (*path, "secretAsEnv", i)
        entry = _dict(entry, epath, "secretAsEnv entry")
        optional = _opt_bool(entry.get("optional"), (*epath, "optional"), "optional")
        name = _name_ref(entry, "secretName", "secretNameParameter", epath, "the secret's name", resolve)
        if not name.present:
            continue
        for j, item in enumerate(_list(entry.get("keyToEnv"), (*epath, "keyToEnv"), "keyToEnv")):
            ipath = (*epath, "keyToEnv", j)
            item = _dict(item, ipath, "keyToEnv entry")
            ref: dict[str, Any] = {
                "name": _text(name),
                "key": _str(item.get("secretKey"), (*ipath, "secretKey"), "secretKey"),
            }
            if optional:
                ref["optional"] = True
            pod.env.append(
                {
                    "name": _env_name(item.get("envVar"), (*ipath, "envVar")),
                    "valueFrom": {"secretKeyRef": ref},
                }
            )

    for i, entry in enumerate(
        _list(config.get("configMapAsVolume"), (*path, "configMapAsVolume"), "configMapAsVolume")
    ):
        epath = (*path, "configMapAsVolume", i)
        entry = _dict(entry, epath, "configMapAsVolume entry")
        optional = _opt_bool(entry.get("optional"), (*epath, "optional"), "optional")
        name = _name_ref(
            entry, "configMapName", "configMapNameParameter", epath, "the config map's name", resolve
        )
        if not name.present:
            continue
        cm: dict[str, Any] = {"name": _text(name)}
        if optional:
            cm["optional"] = True
        volume(
            "configmap",
            {"configMap": cm},
            {"mountPath": _mount_path(entry.get("mountPath"), (*epath, "mountPath"))},
        )

    for i, entry in enumerate(
        _list(config.get("configMapAsEnv"), (*path, "configMapAsEnv"), "configMapAsEnv")
    ):
        epath = (*path, "configMapAsEnv", i)
        entry = _dict(entry, epath, "configMapAsEnv entry")
        optional = _opt_bool(entry.get("optional"), (*epath, "optional"), "optional")
        name = _name_ref(
            entry, "configMapName", "configMapNameParameter", epath, "the config map's name", resolve
        )
        if not name.present:
            continue
        for j, item in enumerate(_list(entry.get("keyToEnv"), (*epath, "keyToEnv"), "keyToEnv")):
            ipath = (*epath, "keyToEnv", j)
            item = _dict(item, ipath, "keyToEnv entry")
            ref = {
                "name": _text(name),
                "key": _str(item.get("configMapKey"), (*ipath, "configMapKey"), "configMapKey"),
            }
            if optional:
                ref["optional"] = True
            pod.env.append(
                {
                    "name": _env_name(item.get("envVar"), (*ipath, "envVar")),
                    "valueFrom": {"configMapKeyRef": ref},
                }
            )

    for i, entry in enumerate(_list(config.get("pvcMount"), (*path, "pvcMount"), "pvcMount")):
        epath = (*path, "pvcMount", i)
        entry = _dict(entry, epath, "pvcMount entry")
        if entry.get("pvcNameParameter") is not None:
            name = resolve(
                _dict(entry["pvcNameParameter"], (*epath, "pvcNameParameter"), "pvcNameParameter"),
                (*epath, "pvcNameParameter"),
                "the PVC's name",
                pvc=True,
            )
        elif entry.get("constant"):
            name = ResolvedValue(True, static=_str(entry["constant"], (*epath, "constant"), "the PVC's name"))
        elif entry.get("componentInputParameter") or entry.get("taskOutputParameter"):
            key = "componentInputParameter" if entry.get("componentInputParameter") else "taskOutputParameter"
            name = resolve({key: entry[key]}, (*epath, key), "the PVC's name", pvc=True)
        else:
            raise CompileError("pvcMount needs pvcNameParameter (or constant)", epath)
        if not name.present:
            raise CompileError("the PVC to mount has no name", epath)
        if not name.dynamic:
            pod.pvc_names.append(_text(name))
        mount: dict[str, Any] = {"mountPath": _mount_path(entry.get("mountPath"), (*epath, "mountPath"))}
        if entry.get("subPath"):
            mount["subPath"] = _str(entry["subPath"], (*epath, "subPath"), "subPath")
        volume("pvc", {"persistentVolumeClaim": {"claimName": _text(name)}}, mount)

    selector = _dict(config.get("nodeSelector"), (*path, "nodeSelector"), "nodeSelector")
    for key, value in _dict(selector.get("labels"), (*path, "nodeSelector", "labels"), "labels").items():
        pod.node_selector[_label_key(key, (*path, "nodeSelector", "labels"))] = _label_value(
            value, (*path, "nodeSelector", "labels", key)
        )
    if selector.get("nodeSelectorJson") is not None:
        spath = (*path, "nodeSelector", "nodeSelectorJson")
        value = resolve(
            _dict(selector["nodeSelectorJson"], spath, "nodeSelectorJson"),
            spath,
            "nodeSelectorJson",
            json_kind="object",
        )
        if value.dynamic:
            pod.patch.setdefault("nodeSelector", []).append(str(value.expression))
        elif value.present:
            for key, item in _dict(value.static, spath, "nodeSelectorJson").items():
                pod.node_selector[_label_key(key, spath)] = _label_value(item, spath)

    metadata = _dict(config.get("podMetadata"), (*path, "podMetadata"), "podMetadata")
    for key, value in _dict(metadata.get("labels"), (*path, "podMetadata", "labels"), "labels").items():
        pod.labels[_label_key(key, (*path, "podMetadata", "labels"))] = _label_value(
            value, (*path, "podMetadata", "labels", key)
        )
    for key, value in _dict(
        metadata.get("annotations"), (*path, "podMetadata", "annotations"), "annotations"
    ).items():
        apath = (*path, "podMetadata", "annotations", key)
        if not isinstance(value, str):
            raise CompileError("annotation values must be strings", apath)
        pod.annotations[_label_key(key, apath)] = check_no_tags(value, "an annotation", apath)

    for i, entry in enumerate(
        _list(config.get("imagePullSecret"), (*path, "imagePullSecret"), "imagePullSecret")
    ):
        epath = (*path, "imagePullSecret", i)
        entry = _dict(entry, epath, "imagePullSecret entry")
        name = _name_ref(entry, "secretName", "secretNameParameter", epath, "the image pull secret", resolve)
        if not name.present:
            continue
        if name.dynamic:
            pod.patch.setdefault("imagePullSecrets", []).append(str(name.expression))
        else:
            pod.image_pull_secrets.append(_text(name))

    if config.get("imagePullPolicy"):
        policy = config["imagePullPolicy"]
        if policy not in _PULL_POLICIES:
            raise CompileError(
                f"imagePullPolicy {policy!r} must be one of {', '.join(sorted(_PULL_POLICIES))}",
                (*path, "imagePullPolicy"),
            )
        pod.image_pull_policy = policy

    if config.get("activeDeadlineSeconds") not in (None, "", 0, "0"):
        raw = config["activeDeadlineSeconds"]
        try:
            seconds = int(raw)
        except (TypeError, ValueError):
            raise CompileError(
                "activeDeadlineSeconds must be an integer", (*path, "activeDeadlineSeconds")
            ) from None
        if seconds < 0:
            raise CompileError("activeDeadlineSeconds cannot be negative", (*path, "activeDeadlineSeconds"))
        pod.active_deadline_seconds = seconds

    for i, entry in enumerate(
        _list(config.get("fieldPathAsEnv"), (*path, "fieldPathAsEnv"), "fieldPathAsEnv")
    ):
        epath = (*path, "fieldPathAsEnv", i)
        entry = _dict(entry, epath, "fieldPathAsEnv entry")
        pod.env.append(
            {
                "name": _env_name(entry.get("name"), (*epath, "name")),
                "valueFrom": {
                    "fieldRef": {
                        "fieldPath": _str(entry.get("fieldPath"), (*epath, "fieldPath"), "fieldPath")
                    }
                },
            }
        )

    for i, entry in enumerate(_list(config.get("tolerations"), (*path, "tolerations"), "tolerations")):
        epath = (*path, "tolerations", i)
        entry = _dict(entry, epath, "toleration")
        if entry.get("tolerationJson") is not None:
            tpath = (*epath, "tolerationJson")
            value = resolve(
                _dict(entry["tolerationJson"], tpath, "tolerationJson"),
                tpath,
                "tolerationJson",
                json_kind="list",
            )
            if value.dynamic:
                pod.patch.setdefault("tolerations", []).append(str(value.expression))
            elif value.present:
                items = value.static if isinstance(value.static, list) else [value.static]
                pod.tolerations.extend(_toleration(_dict(t, tpath, "toleration"), tpath) for t in items)
            continue
        pod.tolerations.append(_toleration(entry, epath))

    for i, entry in enumerate(_list(config.get("nodeAffinity"), (*path, "nodeAffinity"), "nodeAffinity")):
        epath = (*path, "nodeAffinity", i)
        entry = _dict(entry, epath, "nodeAffinity term")
        if entry.get("nodeAffinityJson") is not None:
            apath = (*epath, "nodeAffinityJson")
            value = resolve(
                _dict(entry["nodeAffinityJson"], apath, "nodeAffinityJson"),
                apath,
                "nodeAffinityJson",
                json_kind="object",
            )
            if value.dynamic:
                pod.patch.setdefault("nodeAffinity", []).append(str(value.expression))
            elif value.present:
                _node_affinity_json(_dict(value.static, apath, "nodeAffinityJson"), apath, pod)
            continue
        term: dict[str, Any] = {}
        expressions = [
            _requirement(r, (*epath, "matchExpressions", j))
            for j, r in enumerate(
                _list(entry.get("matchExpressions"), (*epath, "matchExpressions"), "matchExpressions")
            )
        ]
        fields_ = [
            _requirement(r, (*epath, "matchFields", j))
            for j, r in enumerate(_list(entry.get("matchFields"), (*epath, "matchFields"), "matchFields"))
        ]
        if expressions:
            term["matchExpressions"] = expressions
        if fields_:
            term["matchFields"] = fields_
        if not term:
            continue
        if entry.get("weight") is not None:
            pod.node_affinity_preferred.append(
                {"weight": _weight(entry["weight"], (*epath, "weight")), "preference": term}
            )
        else:
            pod.node_affinity_required.append(term)

    for i, entry in enumerate(_list(config.get("podAffinity"), (*path, "podAffinity"), "podAffinity")):
        epath = (*path, "podAffinity", i)
        entry = _dict(entry, epath, "podAffinity term")
        term = {
            "topologyKey": _str(
                entry.get("topologyKey") or "kubernetes.io/hostname", (*epath, "topologyKey"), "topologyKey"
            )
        }
        selector_: dict[str, Any] = {}
        labels = _dict(entry.get("matchPodLabels"), (*epath, "matchPodLabels"), "matchPodLabels")
        if labels:
            selector_["matchLabels"] = {
                _label_key(k, epath): _label_value(v, epath) for k, v in labels.items()
            }
        exprs = [
            _requirement(r, (*epath, "matchPodExpressions", j))
            for j, r in enumerate(
                _list(
                    entry.get("matchPodExpressions"), (*epath, "matchPodExpressions"), "matchPodExpressions"
                )
            )
        ]
        if exprs:
            selector_["matchExpressions"] = exprs
        term["labelSelector"] = selector_
        namespaces = [
            _str(n, (*epath, "namespaces", j), "namespace")
            for j, n in enumerate(_list(entry.get("namespaces"), (*epath, "namespaces"), "namespaces"))
        ]
        if namespaces:
            term["namespaces"] = namespaces
        ns_selector: dict[str, Any] = {}
        ns_labels = _dict(
            entry.get("matchNamespaceLabels"), (*epath, "matchNamespaceLabels"), "matchNamespaceLabels"
        )
        if ns_labels:
            ns_selector["matchLabels"] = {
                _label_key(k, epath): _label_value(v, epath) for k, v in ns_labels.items()
            }
        ns_exprs = [
            _requirement(r, (*epath, "matchNamespaceExpressions", j))
            for j, r in enumerate(
                _list(
                    entry.get("matchNamespaceExpressions"),
                    (*epath, "matchNamespaceExpressions"),
                    "matchNamespaceExpressions",
                )
            )
        ]
        if ns_exprs:
            ns_selector["matchExpressions"] = ns_exprs
        if ns_selector:
            term["namespaceSelector"] = ns_selector
        kind = "podAntiAffinity" if _opt_bool(entry.get("anti"), (*epath, "anti"), "anti") else "podAffinity"
        if entry.get("weight") is not None:
            key = f"{kind}/preferred"
            pod.pod_affinity.setdefault(key, []).append(
                {"weight": _weight(entry["weight"], (*epath, "weight")), "podAffinityTerm": term}
            )
        else:
            pod.pod_affinity.setdefault(f"{kind}/required", []).append(term)

    for i, entry in enumerate(
        _list(
            config.get("genericEphemeralVolume"), (*path, "genericEphemeralVolume"), "genericEphemeralVolume"
        )
    ):
        epath = (*path, "genericEphemeralVolume", i)
        entry = _dict(entry, epath, "genericEphemeralVolume entry")
        spec: dict[str, Any] = {
            "accessModes": [
                _str(m, (*epath, "accessModes", j), "access mode")
                for j, m in enumerate(_list(entry.get("accessModes"), (*epath, "accessModes"), "accessModes"))
            ]
            or ["ReadWriteOnce"],
            "resources": {
                "requests": {"storage": quantity(entry.get("size") or "1Gi", (*epath, "size"), "size")}
            },
        }
        if entry.get("storageClassName") and not entry.get("defaultStorageClass"):
            spec["storageClassName"] = _str(
                entry["storageClassName"], (*epath, "storageClassName"), "storageClassName"
            )
        template: dict[str, Any] = {"spec": spec}
        meta = _dict(entry.get("metadata"), (*epath, "metadata"), "metadata")
        if meta:
            template["metadata"] = {
                key: {
                    _label_key(k, epath): _label_value(v, epath) if key == "labels" else str(v)
                    for k, v in _dict(meta.get(key), (*epath, "metadata", key), key).items()
                }
                for key in ("labels", "annotations")
                if meta.get(key)
            }
        volume(
            "ephemeral",
            {"ephemeral": {"volumeClaimTemplate": template}},
            {"mountPath": _mount_path(entry.get("mountPath"), (*epath, "mountPath"))},
            entry.get("volumeName"),
        )

    shm = config.get("enabledSharedMemory")
    if shm is not None:
        spath = (*path, "enabledSharedMemory")
        shm = _dict(shm, spath, "enabledSharedMemory")
        empty: dict[str, Any] = {"medium": "Memory"}
        if shm.get("size"):
            empty["sizeLimit"] = quantity(shm["size"], (*spath, "size"), "size")
        shm_path = "/dev/shm"  # noqa: S108 - the pod's shared memory, not a temporary file
        volume("shm", {"emptyDir": empty}, {"mountPath": shm_path}, shm.get("volumeName"))

    for i, entry in enumerate(
        _list(config.get("emptyDirMounts"), (*path, "emptyDirMounts"), "emptyDirMounts")
    ):
        epath = (*path, "emptyDirMounts", i)
        entry = _dict(entry, epath, "emptyDirMounts entry")
        empty = {}
        if entry.get("medium"):
            if entry["medium"] not in ("", "Memory"):
                raise CompileError("emptyDir medium must be '' or 'Memory'", (*epath, "medium"))
            empty["medium"] = entry["medium"]
        if entry.get("sizeLimit"):
            empty["sizeLimit"] = quantity(entry["sizeLimit"], (*epath, "sizeLimit"), "sizeLimit")
        volume(
            "emptydir",
            {"emptyDir": empty},
            {"mountPath": _mount_path(entry.get("mountPath"), (*epath, "mountPath"))},
            entry.get("volumeName"),
        )

    context = _dict(config.get("securityContext"), (*path, "securityContext"), "securityContext")
    for key in ("runAsUser", "runAsGroup"):
        if context.get(key) is not None:
            try:
                pod.security_context[key] = int(context[key])
            except (TypeError, ValueError):
                raise CompileError(f"{key} must be an integer", (*path, "securityContext", key)) from None
    if context.get("runAsNonRoot") is not None:
        pod.security_context["runAsNonRoot"] = _opt_bool(
            context["runAsNonRoot"], (*path, "securityContext", "runAsNonRoot"), "runAsNonRoot"
        )

    for i, entry in enumerate(
        _list(config.get("initContainers"), (*path, "initContainers"), "initContainers")
    ):
        epath = (*path, "initContainers", i)
        pod.init_containers.append(
            _init_container(_dict(entry, epath, "init container"), epath, volume_names)
        )
    return pod


def _env_name(value: Any, path: Path) -> str:
    text = _str(value, path, "an environment variable name")
    if not _ENV_NAME.match(text):
        raise CompileError(f"{text!r} is not a valid environment variable name", path)
    return text


def _label_key(value: Any, path: Path) -> str:
    text = _str(value, path, "a label or annotation key")
    if len(text) > 253 or not _LABEL_KEY.match(text):
        raise CompileError(f"{text!r} is not a valid Kubernetes label or annotation key", path)
    return text


def _label_value(value: Any, path: Path) -> str:
    if not isinstance(value, str):
        raise CompileError("label values must be strings", path)
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise CompileError(f"{value!r} is not a valid Kubernetes label value", path)
    return value


def _weight(value: Any, path: Path) -> int:
    try:
        weight = int(value)
    except (TypeError, ValueError):
        raise CompileError("weight must be an integer from 1 to 100", path) from None
    if not 1 <= weight <= 100:
        raise CompileError("weight must be an integer from 1 to 100", path)
    return weight


def _requirement(raw: Any, path: Path) -> dict[str, Any]:
    entry = _dict(raw, path, "a selector requirement")
    operator = entry.get("operator")
    if operator not in _OPERATORS:
        raise CompileError(
            f"operator {operator!r} must be one of {', '.join(sorted(_OPERATORS))}", (*path, "operator")
        )
    out: dict[str, Any] = {"key": _str(entry.get("key"), (*path, "key"), "key"), "operator": operator}
    values = [
        _str(v, (*path, "values", i), "value")
        for i, v in enumerate(_list(entry.get("values"), (*path, "values"), "values"))
    ]
    if values:
        out["values"] = values
    return out


def _toleration(entry: Mapping[str, Any], path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("key", "operator", "value", "effect"):
        value = entry.get(key)
        if value in (None, ""):
            continue
        out[key] = _str(value, (*path, key), key)
    if out.get("operator", "Equal") not in ("Equal", "Exists"):
        raise CompileError("toleration operator must be Equal or Exists", (*path, "operator"))
    if out.get("effect", "") not in _EFFECTS:
        raise CompileError(
            f"toleration effect must be one of {', '.join(sorted(e for e in _EFFECTS if e))}",
            (*path, "effect"),
        )
    seconds = entry.get("tolerationSeconds")
    if seconds is not None:
        try:
            out["tolerationSeconds"] = int(seconds)
        except (TypeError, ValueError):
            raise CompileError("tolerationSeconds must be an integer", (*path, "tolerationSeconds")) from None
    return out


def _node_affinity_json(value: dict[str, Any], path: Path, pod: PlatformPod) -> None:
    # The JSON form is a NodeAffinity object as Kubernetes writes it.
    required = _dict(value.get("requiredDuringSchedulingIgnoredDuringExecution"), path, "required terms")
    for term in _list(required.get("nodeSelectorTerms"), path, "nodeSelectorTerms"):
        pod.node_affinity_required.append(_dict(term, path, "a node selector term"))
    for term in _list(value.get("preferredDuringSchedulingIgnoredDuringExecution"), path, "preferred terms"):
        pod.node_affinity_preferred.append(_dict(term, path, "a preferred term"))


def _init_container(entry: dict[str, Any], path: Path, volumes: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": dns_label(_str(entry.get("name"), (*path, "name"), "name"), max_length=50),
        "image": _str(entry.get("image"), (*path, "image"), "image"),
    }
    for key in ("command", "args"):
        items = [
            _str_any(v, (*path, key, i), key) for i, v in enumerate(_list(entry.get(key), (*path, key), key))
        ]
        if items:
            out[key] = items
    env = [
        {
            "name": _env_name(_dict(e, (*path, "env", i), "env").get("name"), (*path, "env", i, "name")),
            "value": _str_any(e.get("value", ""), (*path, "env", i, "value"), "value"),
        }
        for i, e in enumerate(_list(entry.get("env"), (*path, "env"), "env"))
    ]
    if env:
        out["env"] = env
    mounts = []
    for i, m in enumerate(_list(entry.get("volumeMounts"), (*path, "volumeMounts"), "volumeMounts")):
        m = _dict(m, (*path, "volumeMounts", i), "volumeMount")
        mounts.append(
            {
                "name": dns_label(
                    _str(m.get("volumeName"), (*path, "volumeMounts", i, "volumeName"), "volumeName"),
                    max_length=50,
                ),
                "mountPath": _mount_path(m.get("mountPath"), (*path, "volumeMounts", i, "mountPath")),
            }
        )
    if mounts:
        out["volumeMounts"] = mounts
    resources = _dict(entry.get("resources"), (*path, "resources"), "resources")
    res: dict[str, Any] = {}
    for kind in ("requests", "limits"):
        values = _dict(resources.get(kind), (*path, "resources", kind), kind)
        if values:
            res[kind] = {str(k): quantity(v, (*path, "resources", kind, k), k) for k, v in values.items()}
    if res:
        out["resources"] = res
    if entry.get("restartPolicy"):
        if entry["restartPolicy"] != "Always":
            raise CompileError(
                "an init container's restartPolicy may only be 'Always'", (*path, "restartPolicy")
            )
        out["restartPolicy"] = "Always"
    return out


def _str_any(value: Any, path: Path, what: str) -> str:
    if not isinstance(value, str):
        raise CompileError(f"{what} must be a string", path)
    return check_no_tags(value, what, path)
