"""Running Argo's example workflows with the interpreter and the local pod runner (test helper)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from apps.backends.argo.interpreter import Interpreter, InterpreterError, WorkflowRefused, run_interpreter
from apps.backends.argo.local_runner import LocalPodRunner
from apps.importers import PipelineImportError, import_pipeline, import_spec_dict

TEMPLATE_KINDS = ("WorkflowTemplate", "ClusterWorkflowTemplate")
DEFAULT_TIMEOUT = 60.0


@dataclass
class Outcome:
    """How one example ended: refused (with the reason) or ran (with its final status)."""

    name: str
    refused: str | None = None
    status: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    @property
    def phase(self) -> str:
        return str(self.status.get("phase") or "")

    def nodes(self) -> list[dict[str, Any]]:
        return list((self.status.get("nodes") or {}).values())

    def node(self, display_name: str) -> dict[str, Any]:
        found = [n for n in self.nodes() if n.get("displayName") == display_name]
        assert found, (
            f"{self.name}: no node '{display_name}' in {[n.get('displayName') for n in self.nodes()]}"
        )
        return found[0]

    def messages(self) -> list[str]:
        return [str(self.status.get("message") or "")] + [str(n.get("message") or "") for n in self.nodes()]


def bundle(directory: Path) -> list[dict[str, Any]]:
    """The WorkflowTemplates of a directory, validated: what a user uploads next to a workflow
    that refers to them (Argo's examples expect them installed in the cluster)."""
    out: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError:
            continue
        for doc in docs:
            if isinstance(doc, Mapping) and doc.get("kind") in TEMPLATE_KINDS:
                try:
                    out.append(import_spec_dict(dict(doc)).pipeline_spec)
                except PipelineImportError:
                    continue
    return out


def _unique_name(workflow: Mapping[str, Any], example: str) -> str | None:
    """A fixed ``metadata.name`` made unique per example file (None: let generateName work)."""
    fixed = str((workflow.get("metadata") or {}).get("name") or "")
    if not fixed:
        return None
    return f"{fixed[:50]}-{hashlib.sha256(example.encode()).hexdigest()[:6]}"


def run_example(path: Path, root: Path, runner: LocalPodRunner, timeout: float) -> Outcome:
    """Import, check and run one example; never raises."""
    name = str(path.relative_to(root))
    started = time.monotonic()
    try:
        imported = import_pipeline(path.read_bytes(), path.name)
    except PipelineImportError as exc:
        return Outcome(name, refused=str(exc))
    try:
        # Examples run concurrently, and several share a fixed metadata.name (dag-inline
        # as a Workflow, a WorkflowTemplate, a CronWorkflow...). A cluster would never
        # hold two Workflows of one name in a namespace; neither does this run.
        interpreter = Interpreter(
            imported.pipeline_spec,
            templates=bundle(path.parent),
            name=_unique_name(imported.pipeline_spec, name),
        )
    except WorkflowRefused as exc:
        return Outcome(name, refused=str(exc))
    except InterpreterError as exc:
        return Outcome(name, refused=str(exc))
    try:
        status = run_interpreter(
            interpreter,
            runner,
            max_workers=16,
            deadline=datetime.now(UTC) + timedelta(seconds=timeout),
        )
    except Exception as exc:  # reported as a mismatch, with the cause
        return Outcome(name, error=f"{type(exc).__name__}: {exc}", seconds=time.monotonic() - started)
    return Outcome(name, status=status, seconds=time.monotonic() - started)


def run_corpus(
    root: Path, table: Mapping[str, Mapping[str, Any]], runner: LocalPodRunner, *, workers: int = 12
) -> dict[str, Outcome]:
    """Run every example of ``root``, longest first, ``workers`` at a time."""
    paths = sorted(p for p in root.rglob("*") if p.is_file())

    def timeout(path: Path) -> float:
        return float((table.get(str(path.relative_to(root))) or {}).get("timeout") or DEFAULT_TIMEOUT)

    ordered = sorted(paths, key=timeout, reverse=True)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(lambda p: run_example(p, root, runner, timeout(p)), ordered))
    return {o.name: o for o in outcomes}
