"""Step cache fingerprints, computed the way KFP's backend computes them.

``backend/src/v2/cacheutils/cache.go`` builds a ``CacheKey`` message from the step's
ExecutorInput and container, marshals it with protojson, re-decodes and re-encodes it
with Go's ``encoding/json`` (sorted keys, compact, HTML-escaped) and hashes that with
SHA-256. ``driver/cache.go getFingerPrint`` supplies:

* ``inputArtifactNames``: for each input artifact, the ``name`` of each RuntimeArtifact,
  which in the backend is the artifact's id;
* ``inputParameterValues``: the resolved input parameter values;
* ``outputArtifactsSpec``: each provisioned output artifact with its URI wiped: its type
  (``schemaTitle``/``schemaVersion``) and the metadata declared in the component (the
  provisioned artifact has no name);
* ``outputParametersSpec``: output parameter name → ``ParameterType`` name;
* ``containerSpec``: ``image``, ``cmdArgs`` = the raw, unrendered command followed by the
  raw args, and ``pvcNames``, the de-duplicated sorted names of mounted PVCs.

Empty maps and lists are left out, as protojson leaves them out. The encoding was
checked against the golden fingerprints in KFP's ``cache_test.go``.

Unavoidable differences: Canal keeps ints as ints, but an int prints exactly as the equal
float does in Go, so fingerprints agree; KFP deployments that publish executor logs add
an ``executor-logs`` output artifact to the key, which Canal does not (Canal stores logs
separately), so Canal fingerprints match a KFP backend running with log publishing off.

With a custom ``cachingOptions.cacheKey`` the lookup key is
``sha256(component_name + "\\0" + cacheKey)`` (the component name keeps two components
with the same custom key apart), as documented for KFP and done by kfp.local.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from apps.engine.model import ArtifactRef
from apps.engine.spec import OutputArtifactDef
from apps.engine.values import go_json_dumps


def build_cache_key(
    *,
    input_parameters: Mapping[str, Any],
    input_artifacts: Mapping[str, Sequence[ArtifactRef]],
    output_parameter_types: Mapping[str, str],
    output_artifacts: Mapping[str, OutputArtifactDef],
    image: str,
    command: Sequence[str],
    args: Sequence[str],
    pvc_names: Iterable[str] = (),
) -> dict[str, Any]:
    """The CacheKey message as the JSON object KFP hashes."""
    key: dict[str, Any] = {}
    names = {
        name: {"artifactNames": [a.id or a.name for a in artifacts]} if artifacts else {}
        for name, artifacts in input_artifacts.items()
    }
    if names:
        key["inputArtifactNames"] = names
    if input_parameters:
        key["inputParameterValues"] = dict(input_parameters)
    outputs: dict[str, Any] = {}
    for name, definition in output_artifacts.items():
        spec: dict[str, Any] = {"type": definition.artifact_type.to_json()}
        if definition.metadata:
            spec["metadata"] = dict(definition.metadata)
        outputs[name] = spec
    if outputs:
        key["outputArtifactsSpec"] = outputs
    if output_parameter_types:
        key["outputParametersSpec"] = dict(output_parameter_types)
    container: dict[str, Any] = {}
    if image:
        container["image"] = image
    cmd_args = [*command, *args]
    if cmd_args:
        container["cmdArgs"] = cmd_args
    pvcs = sorted(set(pvc_names))
    if pvcs:
        container["pvcNames"] = pvcs
    key["containerSpec"] = container
    return key


def fingerprint(cache_key: Mapping[str, Any]) -> str:
    """SHA-256 of the Go ``encoding/json`` serialisation of a cache key (hex)."""
    return hashlib.sha256(go_json_dumps(dict(cache_key)).encode("utf-8")).hexdigest()


def custom_key_fingerprint(component_name: str, cache_key: str) -> str:
    """The lookup key for a task with a custom ``cachingOptions.cacheKey``."""
    digest = hashlib.sha256()
    digest.update(component_name.encode("utf-8"))
    digest.update(b"\0")
    digest.update(cache_key.encode("utf-8"))
    return digest.hexdigest()
