"""The artifact URIs a pipeline's importers will reference, as far as they are known
before the run starts (pure: no I/O).

An importer's URI is a constant in its executor, or its ``uri`` input parameter. That
parameter is known at creation when it is bound to a constant, or (through any depth
of nested DAGs) to a pipeline parameter or a component default. It is unknown when it
comes from an upstream task's output, a loop item, a selector expression, or a constant
with placeholders: those are checked when the importer runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apps.engine.spec import (
    PARAM_FROM_COMPONENT_INPUT,
    PARAM_FROM_CONSTANT,
    ComponentSpec,
    ParameterInputSpec,
    PipelineSpec,
)

__all__ = ["KnownImporterUri", "known_importer_uris"]


@dataclass(frozen=True)
class KnownImporterUri:
    """An importer task (its path of task names below the root, ``outer/importer``), the
    URI it will import, and the pipeline parameter the URI came from (None: the spec)."""

    task: str
    uri: str
    parameter: str | None = None


@dataclass(frozen=True)
class _Value:
    value: Any
    parameter: str | None  # the pipeline parameter it came from


def known_importer_uris(spec: PipelineSpec, parameters: Mapping[str, Any]) -> list[KnownImporterUri]:
    """Every importer URI known before the run starts, given the run's (coerced) parameters."""
    env: dict[str, _Value] = {}
    for name, definition in spec.root.input_definitions.parameters.items():
        if definition.has_default and definition.default is not None:
            env[name] = _Value(definition.default, name)
    for name, value in parameters.items():
        if value is not None:
            env[name] = _Value(value, name)
    found: list[KnownImporterUri] = []
    # Iterative, not recursive: nesting depth is whatever the spec says.
    stack: list[tuple[ComponentSpec, dict[str, _Value], str]] = [(spec.root, env, "")]
    while stack:
        component, scope, prefix = stack.pop()
        if component.dag is None:
            continue
        for task in component.dag.tasks.values():
            child = spec.component(task.component_ref)
            inputs = _task_inputs(task_parameters=task.parameters, scope=scope)
            loop_item = task.parameter_iterator.item_input if task.parameter_iterator else None
            for name, definition in child.input_definitions.parameters.items():
                # A default applies only to an input the task does not bind at all.
                unbound = name not in task.parameters and name != loop_item
                if unbound and definition.has_default and definition.default is not None:
                    inputs[name] = _Value(definition.default, None)
            if loop_item is not None:
                inputs.pop(loop_item, None)
            path = f"{prefix}/{task.name}" if prefix else task.name
            if child.dag is not None:
                stack.append((child, inputs, path))
                continue
            executor = spec.executor_for(child)
            if executor is None or executor.importer is None:
                continue
            importer = executor.importer
            if importer.artifact_uri_constant is not None:
                found.append(KnownImporterUri(path, importer.artifact_uri_constant))
                continue
            given = inputs.get(importer.artifact_uri_runtime_parameter or "")
            if given is not None and isinstance(given.value, str):
                found.append(KnownImporterUri(path, given.value, given.parameter))
    return found


def _task_inputs(
    *, task_parameters: Mapping[str, ParameterInputSpec], scope: Mapping[str, _Value]
) -> dict[str, _Value]:
    inputs: dict[str, _Value] = {}
    for name, pin in task_parameters.items():
        if pin.expression_selector:
            continue  # a CEL selector reshapes the value: known only at run time
        if pin.source == PARAM_FROM_CONSTANT:
            if isinstance(pin.constant, str) and "{{" in pin.constant:
                continue  # placeholders are rendered at run time
            if pin.constant is not None:
                inputs[name] = _Value(pin.constant, None)
        elif pin.source == PARAM_FROM_COMPONENT_INPUT:
            value = scope.get(pin.component_input_parameter)
            if value is not None:
                inputs[name] = value
    return inputs
