"""Resource limits for importing untrusted pipeline files."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class ImportLimits:
    """Upper bounds that keep one hostile upload from costing more than ~1 s and a few MB.

    The defaults leave wide headroom over real pipelines: the largest file in
    KFP's own test corpus is 87 KB, 3.6k YAML nodes and 15 levels deep.
    """

    # KFP's API server refuses uploads over 32 MiB (MaxFileLength); match it.
    max_bytes: int = 32 * MIB
    # Counted *after* alias expansion, so a billion-laughs file is refused while
    # it is being composed. Pure-Python YAML composes ~100k nodes/s here, so this
    # bounds parse time at about a second.
    max_yaml_nodes: int = 100_000
    # Compiled KFP IR and Argo examples use no aliases at all; hand-written
    # YAML uses a handful.
    max_aliases: int = 1_000
    # Deep enough for any pipeline (the corpus peaks at 15), shallow enough
    # that no recursive walk here or in jsonschema nears Python's stack limit.
    max_depth: int = 64
    # KFP files hold one or two documents (PipelineSpec, PlatformSpec).
    max_documents: int = 8
    # A KFP archive holds one YAML file; a few extra entries (directories,
    # a README, macOS metadata) are tolerated, hundreds are not.
    max_archive_members: int = 64
    # Real decompressed bytes of the whole archive stream, not declared sizes.
    max_uncompressed_bytes: int = 32 * MIB
    # Tasks across all DAGs (KFP) or templates + steps + DAG tasks (Argo). The
    # engine is tested with 2,000-node DAGs; 10k-task files are refused here.
    max_tasks: int = 5_000
    # Nested Argo templates are expanded into the drawing; past this many nodes
    # further nesting is drawn collapsed instead.
    max_graph_nodes: int = 5_000


DEFAULT_LIMITS = ImportLimits()
