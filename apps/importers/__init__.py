"""Importers: pure Python (no Django). They detect a pipeline file's format, parse
it safely, validate it, and return one typed result, or raise an error that says
what is wrong and where (file, field path, line).

Public API::

    import_pipeline(data, filename, *, limits=DEFAULT_LIMITS) -> ImportedPipeline
    import_spec_dict(spec, platform_spec=None, *, source_name="pipeline_spec") -> ImportedPipeline
    argo_graph(workflow) -> apps.engine.graph.Graph
"""

from .argo import argo_graph
from .errors import PipelineImportError
from .importer import import_pipeline, import_spec_dict
from .limits import DEFAULT_LIMITS, ImportLimits
from .result import ImportedPipeline

__all__ = [
    "DEFAULT_LIMITS",
    "ImportLimits",
    "ImportedPipeline",
    "PipelineImportError",
    "argo_graph",
    "import_pipeline",
    "import_spec_dict",
]
