"""Canal's Argo interpreter: runs Argo Workflow YAML on one machine. Pure: no Django, no I/O.

State machine: ``Interpreter(workflow, parameters=, templates=, status=)``; each
``advance(now) -> Tick`` walks the templates from the entrypoint as Argo's operator
does and returns the pods to start (``PodRequest``) and to stop; pods report back
with ``pod_finished(node_id, PodResult, now)``. All state is the Argo-shaped
``status`` (node ids ``<workflow>-fnv32a(node name)``), so a restarted controller
resumes from the status it wrote: pods still Pending/Running there are handed out
again (re-run) unless named in ``running=`` (re-attached). What needs a cluster
(resource, daemon, sidecars, PVCs, suspend without duration, ...) raises
``WorkflowRefused`` before anything runs. ``run_workflow`` is a thread-pool driver.
Design, coverage and refusals: docs/argo-interpreter.md.
"""

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
