"""A pod's own fields as environment variables (Kubernetes' downward API, ``fieldRef``).

kfp-kubernetes sets pod labels and annotations (``podMetadata``) and exposes pod fields
as environment variables (``fieldPathAsEnv``: ``metadata.labels['x']``,
``metadata.annotations['y']``, ``metadata.name``, ``metadata.namespace``). Without a
cluster there is no pod, so the local executor gives each step a pod-like
:class:`PodMetadata` and resolves those field paths against it, as the kubelet would:
a label or annotation the pod does not have is the empty string. A field only a
scheduled pod has (``spec.nodeName``, ``status.podIP``, ...) is refused, naming it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FieldPathError", "PodMetadata", "field_value", "platform_pod_env", "platform_pod_metadata"]

# metadata.labels['key'] / metadata.annotations['key'], as Kubernetes writes a subscript.
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")
# What a container's environment variable name may be (Kubernetes' check).
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
KNOWN = "metadata.name, metadata.namespace, metadata.labels['<key>'] and metadata.annotations['<key>']"


class FieldPathError(ValueError):
    """A pod field path, or a platform setting around it, that cannot be resolved here."""


@dataclass(frozen=True)
class PodMetadata:
    """What a step's pod would say of itself."""

    name: str
    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


def field_value(field_path: str, pod: PodMetadata) -> str:
    """The value of ``field_path`` on ``pod``; FieldPathError for a field it has no value for."""
    if field_path == "metadata.name":
        return pod.name
    if field_path == "metadata.namespace":
        return pod.namespace
    match = _SUBSCRIPT.match(field_path)
    if match:
        values = pod.labels if match.group(1) == "labels" else pod.annotations
        return values.get(match.group(2), "")
    raise FieldPathError(
        f"field path {field_path!r} has no value outside a Kubernetes pod; without a cluster "
        f"Canal knows {KNOWN}"
    )


def platform_pod_metadata(config: Mapping[str, Any], *, name: str, namespace: str) -> PodMetadata:
    """A step's pod metadata: ``name`` and ``namespace``, with the labels and annotations of
    its platform config's ``podMetadata`` (kfp-kubernetes' KubernetesExecutorConfig)."""
    metadata = config.get("podMetadata") or {}
    if not isinstance(metadata, Mapping):
        raise FieldPathError("podMetadata must be a mapping")
    return PodMetadata(
        name=name,
        namespace=namespace,
        labels=_strings(metadata.get("labels"), "podMetadata.labels"),
        annotations=_strings(metadata.get("annotations"), "podMetadata.annotations"),
    )


def platform_pod_env(config: Mapping[str, Any], pod: PodMetadata) -> dict[str, str]:
    """The environment variables of a platform config's ``fieldPathAsEnv``, resolved on ``pod``."""
    entries = config.get("fieldPathAsEnv") or []
    if not isinstance(entries, list):
        raise FieldPathError("fieldPathAsEnv must be a list")
    env: dict[str, str] = {}
    for i, entry in enumerate(entries):
        where = f"fieldPathAsEnv[{i}]"
        if not isinstance(entry, Mapping):
            raise FieldPathError(f"{where} must be a mapping with a name and a fieldPath")
        name, path = entry.get("name"), entry.get("fieldPath")
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise FieldPathError(f"{where}.name {name!r} is not an environment variable name")
        if not isinstance(path, str) or not path:
            raise FieldPathError(f"{where} ({name}) has no fieldPath")
        try:
            env[name] = field_value(path, pod)
        except FieldPathError as exc:
            raise FieldPathError(f"{where} ({name}): {exc}") from None
    return env


def _strings(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise FieldPathError(f"{where} must be a mapping")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise FieldPathError(f"{where}: {key!r} must map a text key to a text value")
        out[key] = item
    return out
