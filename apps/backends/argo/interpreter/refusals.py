"""What the local interpreter refuses, found before anything runs.

Every template reachable from the entrypoint and the exit handlers is checked
(following steps, DAG tasks, ``templateRef`` into the bundle and ``inline``
templates). A refusal names the template, the field and the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from apps.backends.pod_fields import FieldPathError, PodMetadata, field_value

from . import exprlang
from .errors import ExpressionError, WorkflowRefused
from .substitute import find_tags

__all__ = ["check_template", "check_workflow", "iter_reachable_templates", "volume_names"]

_NEEDS_CLUSTER = "the local interpreter runs pods as host processes and has no Kubernetes cluster"
_ARTIFACT_STORES = ("s3", "gcs", "git", "http", "oss", "hdfs", "azure", "artifactory", "plugin")
# Template fields that only tune scheduling or the pod spec on a cluster: ignored, never refused.
_LEAF_KINDS = ("container", "script", "resource", "containerSet", "suspend", "http", "plugin", "data")

TemplateLookup = Callable[[Mapping[str, Any], str], tuple[Mapping[str, Any], str] | None]


def _calls(template: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(field path, step or task) of every call a steps/DAG template makes, hooks included."""
    for g, group in enumerate(template.get("steps") or []):
        for s, step in enumerate(group or []):
            if isinstance(step, Mapping):
                yield f"steps[{g}][{s}]", step
    dag = template.get("dag")
    if isinstance(dag, Mapping):
        for t, task in enumerate(dag.get("tasks") or []):
            if isinstance(task, Mapping):
                yield f"dag.tasks[{t}]", task


def _hook_calls(call: Mapping[str, Any], where: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if call.get("onExit"):
        yield f"{where}.onExit", {"template": call["onExit"]}
    for name, hook in (call.get("hooks") or {}).items():
        if isinstance(hook, Mapping):
            yield f"{where}.hooks.{name}", hook


def iter_reachable_templates(
    spec: Mapping[str, Any], lookup: TemplateLookup
) -> Iterator[tuple[str, Mapping[str, Any], str, str]]:
    """(name, template, scope, how it was reached) of every template a run can reach."""
    seen: set[tuple[str, str]] = set()
    stack: list[tuple[Mapping[str, Any], str, str]] = []
    entry = spec.get("entrypoint")
    if entry:
        stack.append(({"template": entry}, "", "spec.entrypoint"))
    if spec.get("onExit"):
        stack.append(({"template": spec["onExit"]}, "", "spec.onExit"))
    for name, hook in (spec.get("hooks") or {}).items():
        if isinstance(hook, Mapping):
            stack.append((hook, "", f"spec.hooks.{name}"))
    while stack:
        holder, scope, where = stack.pop()
        if "inline" in holder and isinstance(holder["inline"], Mapping):
            template: Mapping[str, Any] = holder["inline"]
            name, tscope = f"{where}.inline", scope
        else:
            ref = holder.get("templateRef") if isinstance(holder.get("templateRef"), Mapping) else None
            label = str((ref or {}).get("template") or holder.get("template") or "")
            if "{{" in label:
                continue  # chosen at run time; the template it names is checked when it is reached
            found = lookup(holder, scope)
            if found is None:
                if ref is not None:
                    raise WorkflowRefused(
                        label,
                        f"{where}.templateRef",
                        f"it refers to template '{label}' of WorkflowTemplate '{ref.get('name')}', "
                        "which is not part of the uploaded bundle",
                    )
                raise WorkflowRefused(label, where, f"template '{label}' does not exist")
            template, tscope = found
            name = label
            key = (tscope, name)
            if key in seen:
                continue
            seen.add(key)
        yield name, template, tscope, where
        for path, call in _calls(template):
            stack.append((call, tscope, f"{name}.{path}"))
            for hook_path, hook in _hook_calls(call, f"{name}.{path}"):
                stack.append((hook, tscope, hook_path))


def _check_expressions(value: Any, template: str, field: str) -> None:
    if isinstance(value, str):
        for _, _, inner in find_tags(value):
            if inner.startswith("="):
                _check_expression(inner[1:], template, field)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _check_expressions(v, template, f"{field}.{k}" if field else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_expressions(v, template, f"{field}[{i}]")


def _check_expression(text: str, template: str, field: str) -> None:
    # ``{{…}}`` tags inside an expression are substituted before it is evaluated.
    masked = text
    for start, end, _ in reversed(find_tags(text)):
        masked = masked[:start] + "placeholder" + masked[end:]
    shown = " ".join(text.split())
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    try:
        exprlang.check_supported(masked)
    except exprlang.UnsupportedExpression as exc:
        raise WorkflowRefused(template, field, f"expression '{shown}': {exc}") from None
    except ExpressionError as exc:
        raise WorkflowRefused(template, field, f"invalid expression '{shown}': {exc}") from None


def _check_volumes(volumes: Any, template: str, field: str) -> set[str]:
    names: set[str] = set()
    for i, volume in enumerate(volumes or []):
        if not isinstance(volume, Mapping):
            continue
        kinds = [k for k in volume if k != "name"]
        if kinds != ["emptyDir"]:
            kind = ", ".join(kinds) or "no source"
            raise WorkflowRefused(
                template,
                f"{field}[{i}]",
                f"volume '{volume.get('name')}' is a {kind} volume; only emptyDir volumes exist "
                f"without a cluster ({_NEEDS_CLUSTER})",
            )
        names.add(str(volume.get("name")))
    return names


def _check_env(container: Mapping[str, Any], template: str, field: str) -> None:
    for i, env in enumerate(container.get("env") or []):
        source = env.get("valueFrom") if isinstance(env, Mapping) else None
        if source and list(source) == ["fieldRef"] and isinstance(source["fieldRef"], Mapping):
            # The pod's own fields (downward API): the interpreter knows its pods' name,
            # namespace, labels and annotations, and nothing a scheduled pod has.
            path = str(source["fieldRef"].get("fieldPath") or "")
            try:
                field_value(path, PodMetadata(name="", namespace=""))
            except FieldPathError as exc:
                raise WorkflowRefused(
                    template,
                    f"{field}.env[{i}].valueFrom.fieldRef",
                    f"environment variable '{env.get('name')}': {exc}",
                ) from None
            continue
        if source:
            kind = next(iter(source), "valueFrom")
            raise WorkflowRefused(
                template,
                f"{field}.env[{i}].valueFrom",
                f"environment variable '{env.get('name')}' comes from a {kind}; {_NEEDS_CLUSTER}",
            )
    if container.get("envFrom"):
        raise WorkflowRefused(
            template, f"{field}.envFrom", f"envFrom reads ConfigMaps or Secrets; {_NEEDS_CLUSTER}"
        )


def check_template(name: str, template: Mapping[str, Any], volumes: set[str], where: str) -> None:
    """Raise WorkflowRefused if one template uses what the interpreter cannot run."""
    kind = next((k for k in (*_LEAF_KINDS, "dag", "steps") if template.get(k) is not None), None)
    reasons = {
        "resource": f"resource templates create, patch or delete Kubernetes objects; {_NEEDS_CLUSTER}",
        "containerSet": "containerSet templates (several containers in one pod) are not implemented "
        "by the local interpreter",
        "http": "http templates are run by Argo's agent pod; the local interpreter makes no HTTP requests",
        "plugin": "executor plugins run in Argo's agent pod; the local interpreter has none",
        "data": "data templates (artifact transformations) are not implemented by the local interpreter",
    }
    if kind in reasons:
        raise WorkflowRefused(name, kind, reasons[kind])
    if kind is None:
        raise WorkflowRefused(name, "", "the template has none of container, script, steps, dag or suspend")
    if kind == "suspend":
        suspend = template.get("suspend") or {}
        if not str(suspend.get("duration") or "").strip():
            raise WorkflowRefused(
                name,
                "suspend",
                "a suspend template without a duration waits for 'argo resume'; the local interpreter "
                "cannot be resumed, so it would wait forever",
            )
    if template.get("daemon"):
        raise WorkflowRefused(
            name,
            "daemon",
            "daemon templates keep serving other steps over the pod network; " + _NEEDS_CLUSTER,
        )
    if template.get("sidecars"):
        raise WorkflowRefused(
            name,
            "sidecars",
            "sidecar containers share the pod's network with the main container; " + _NEEDS_CLUSTER,
        )
    if template.get("synchronization"):
        raise WorkflowRefused(
            name,
            "synchronization",
            "mutexes and semaphores are kept by the Argo controller in ConfigMaps; "
            "the local interpreter does not implement them",
        )
    if template.get("volumes"):
        volumes = volumes | _check_volumes(template.get("volumes"), name, "volumes")
    for field in ("container", "script"):
        body = template.get(field)
        if isinstance(body, Mapping):
            _check_env(body, name, field)
            for i, mount in enumerate(body.get("volumeMounts") or []):
                if mount.get("name") not in volumes:
                    raise WorkflowRefused(
                        name,
                        f"{field}.volumeMounts[{i}]",
                        f"volume '{mount.get('name')}' is not an emptyDir volume of this workflow "
                        f"(PersistentVolumeClaims and volumeClaimTemplates need a cluster)",
                    )
    for i, init in enumerate(template.get("initContainers") or []):
        if isinstance(init, Mapping):
            _check_env(init, name, f"initContainers[{i}]")
    for i, art in enumerate(((template.get("inputs") or {}).get("artifacts")) or []):
        for store in _ARTIFACT_STORES:
            location = art.get(store)
            if location is None:
                continue
            if store == "s3" and isinstance(location, Mapping) and set(location) <= {"key"}:
                continue  # a key in the workflow's own artifact repository
            raise WorkflowRefused(
                name,
                f"inputs.artifacts[{i}].{store}",
                f"input artifact '{art.get('name')}' is fetched from {store}; the local interpreter "
                "only passes artifacts between its own steps (and raw artifacts)",
            )
        if art.get("fromExpression"):
            raise WorkflowRefused(
                name, f"inputs.artifacts[{i}].fromExpression", "fromExpression is not implemented"
            )
    for i, art in enumerate(((template.get("outputs") or {}).get("artifacts")) or []):
        for store in _ARTIFACT_STORES:
            location = art.get(store)
            if location is None:
                continue
            if store == "s3" and isinstance(location, Mapping) and set(location) <= {"key"}:
                continue
            raise WorkflowRefused(
                name,
                f"outputs.artifacts[{i}].{store}",
                f"output artifact '{art.get('name')}' is stored to {store}; the local interpreter keeps "
                "artifacts in its own repository only",
            )
    for i, param in enumerate(((template.get("inputs") or {}).get("parameters")) or []):
        source = param.get("valueFrom") or {}
        if source.get("configMapKeyRef"):
            raise WorkflowRefused(
                name,
                f"inputs.parameters[{i}].valueFrom.configMapKeyRef",
                f"it reads a ConfigMap; {_NEEDS_CLUSTER}",
            )
    for i, param in enumerate(((template.get("outputs") or {}).get("parameters")) or []):
        source = param.get("valueFrom") or {}
        for key in ("jsonPath", "jqFilter", "event"):
            if source.get(key):
                raise WorkflowRefused(
                    name,
                    f"outputs.parameters[{i}].valueFrom.{key}",
                    f"valueFrom.{key} reads a Kubernetes resource or an event; {_NEEDS_CLUSTER}",
                )
        if source.get("expression"):
            _check_expression(
                str(source["expression"]), name, f"outputs.parameters[{i}].valueFrom.expression"
            )
    retry = template.get("retryStrategy") or {}
    if retry.get("expression"):
        _check_expression(str(retry["expression"]), name, "retryStrategy.expression")
    for path, call in _calls(template):
        for hook_name in call.get("hooks") or {}:
            if hook_name != "exit":
                raise WorkflowRefused(
                    name,
                    f"{path}.hooks.{hook_name}",
                    "lifecycle hooks other than 'exit' are not implemented by the local interpreter",
                )
        for i, art in enumerate(((call.get("arguments") or {}).get("artifacts")) or []):
            if art.get("fromExpression"):
                raise WorkflowRefused(
                    name,
                    f"{path}.arguments.artifacts[{i}].fromExpression",
                    "fromExpression is not implemented",
                )
            for store in _ARTIFACT_STORES:
                if art.get(store) is not None and not (
                    store == "s3" and isinstance(art[store], Mapping) and set(art[store]) <= {"key"}
                ):
                    raise WorkflowRefused(
                        name,
                        f"{path}.arguments.artifacts[{i}].{store}",
                        f"artifact '{art.get('name')}' is fetched from {store}; the local interpreter only "
                        "passes artifacts between its own steps (and raw artifacts)",
                    )
    _check_expressions(template, name, "")


_SPEC_REASONS = {
    "volumeClaimTemplates": "volumeClaimTemplates create PersistentVolumeClaims; " + _NEEDS_CLUSTER,
    "synchronization": "workflow-level mutexes and semaphores are kept by the Argo controller; "
    "the local interpreter does not implement them",
}


def volume_names(spec: Mapping[str, Any]) -> set[str]:
    """The workflow-level emptyDir volumes."""
    return {
        str(v.get("name")) for v in spec.get("volumes") or [] if isinstance(v, Mapping) and "emptyDir" in v
    }


def check_workflow(spec: Mapping[str, Any], lookup: TemplateLookup) -> None:
    """Raise WorkflowRefused for the first thing in ``spec`` the interpreter cannot run."""
    for key, reason in _SPEC_REASONS.items():
        if spec.get(key):
            raise WorkflowRefused("", f"spec.{key}", reason)
    for name in spec.get("hooks") or {}:
        if name != "exit":
            raise WorkflowRefused(
                "",
                f"spec.hooks.{name}",
                "lifecycle hooks other than 'exit' are not implemented by the local interpreter",
            )
    volumes = _check_volumes(spec.get("volumes"), "", "spec.volumes")
    for i, param in enumerate(((spec.get("arguments") or {}).get("parameters")) or []):
        source = param.get("valueFrom") or {}
        if source.get("configMapKeyRef"):
            raise WorkflowRefused(
                "",
                f"spec.arguments.parameters[{i}].valueFrom.configMapKeyRef",
                f"it reads a ConfigMap; {_NEEDS_CLUSTER}",
            )
    for i, art in enumerate(((spec.get("arguments") or {}).get("artifacts")) or []):
        for store in _ARTIFACT_STORES:
            if art.get(store) is not None and not (
                store == "s3" and isinstance(art[store], Mapping) and set(art[store]) <= {"key"}
            ):
                raise WorkflowRefused(
                    "",
                    f"spec.arguments.artifacts[{i}].{store}",
                    f"artifact '{art.get('name')}' is fetched from {store}; the local interpreter only "
                    "passes artifacts between its own steps (and raw artifacts)",
                )
    _check_expressions(spec.get("arguments") or {}, "", "spec.arguments")
    for name, template, _scope, _where in iter_reachable_templates(spec, lookup):
        check_template(name, template, volumes, _where)
