"""The one typed result every importer returns."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

from apps.engine.graph import Graph

PipelineFormat = Literal["kfp-ir", "argo"]


def content_hash(text: str) -> str:
    """sha256 hex of the UTF-8 bytes of ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ImportedPipeline:
    """A validated pipeline: its spec as plain JSON-shaped dicts, its source text and its drawing."""

    format: PipelineFormat
    name: str
    display_name: str
    description: str
    # KFP: the IR (YAML document 1). Argo: the Workflow/WorkflowTemplate resource
    # (a CronWorkflow arrives as the Workflow built from its workflowSpec).
    pipeline_spec: dict[str, Any]
    # KFP's optional second document, ``{"platforms": {"kubernetes": ...}}``.
    platform_spec: dict[str, Any] | None
    # The YAML text as uploaded (for archives, the member's text; for dict input, a YAML dump).
    source_text: str
    source_filename: str
    content_hash: str
    graph: Graph = field(default_factory=Graph, compare=False)
    # For archives, the member the pipeline was read from.
    archive_member: str | None = None
    # Things the user should know that did not stop the import (an unimported
    # CronWorkflow schedule, a reference to a template outside the file, ...).
    warnings: tuple[str, ...] = ()
    # Argo: the kind of the resource as given (a CronWorkflow's spec is imported as the
    # Workflow it would start); "" for KFP IR.
    source_kind: str = ""
