"""Canal's Argo interpreter: runs Argo Workflow YAML on one machine (see docs/argo-interpreter.md)."""

from .driver import PodRunner, run_interpreter, run_workflow
from .errors import ExpressionError, InterpreterError, WorkflowRefused
from .machine import Interpreter, Limits, fnv32a, node_id_for, pod_name_for
from .model import (
    FULFILLED,
    ContainerSpec,
    InputArtifact,
    OutputArtifactSpec,
    OutputParameterSpec,
    PodRequest,
    PodResult,
    Tick,
    VolumeMount,
)

__all__ = [
    "FULFILLED",
    "ContainerSpec",
    "ExpressionError",
    "InputArtifact",
    "Interpreter",
    "InterpreterError",
    "Limits",
    "OutputArtifactSpec",
    "OutputParameterSpec",
    "PodRequest",
    "PodResult",
    "PodRunner",
    "Tick",
    "VolumeMount",
    "WorkflowRefused",
    "fnv32a",
    "node_id_for",
    "pod_name_for",
    "run_interpreter",
    "run_workflow",
]
