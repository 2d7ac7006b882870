"""Entry points: detect what was uploaded (or posted as JSON), parse it safely, validate it."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import yaml

from apps.engine.protojson import describe_value
from apps.engine.untrusted import text_problem

from .archive import read_pipeline_member, sniff_archive
from .argo import graph_with_warnings, looks_like_argo, validate_argo
from .errors import Path, PipelineImportError
from .kfp_ir import ir_graph, looks_like_ir, looks_like_platform_spec, validate_ir
from .limits import DEFAULT_LIMITS, ImportLimits
from .result import ImportedPipeline, content_hash
from .schema_check import Locate
from .yaml_safe import YamlDocument, decode_text, load_documents

TEXT_SUFFIXES = (".yaml", ".yml", ".json")
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
_ACCEPTED = ".yaml, .yml, .json, .zip, .tar.gz or .tgz"

# Formats people upload by mistake, recognised by their first bytes so the
# message can say what the file actually is.
_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"\x7fELF", "an ELF executable"),
    (b"\xfd7zXZ\x00", "an xz-compressed file"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\xca\xfe\xba\xbe", "a Java class file"),
)
_BZIP2 = re.compile(rb"BZh[1-9]1AY&SY")


def _binary_kind(data: bytes) -> str | None:
    for magic, what in _BINARY_SIGNATURES:
        if data.startswith(magic):
            return what
    if _BZIP2.match(data):
        return "a bzip2-compressed file"
    return None


def _basename(filename: str) -> str:
    # Browsers and clients may send full client-side paths (C:\fakepath\x.yaml).
    return re.split(r"[/\\]", filename or "")[-1] or "upload"


def _suffix(name: str) -> str:
    lower = name.lower()
    for suffix in (".tar.gz", *ARCHIVE_SUFFIXES, *TEXT_SUFFIXES):
        if lower.endswith(suffix):
            return suffix
    stem, dot, ext = lower.rpartition(".")
    return f".{ext}" if dot and stem else ""


def import_pipeline(data: bytes, filename: str, *, limits: ImportLimits = DEFAULT_LIMITS) -> ImportedPipeline:
    """Import an uploaded file: KFP IR (.yaml/.yml, or in a .zip/.tar.gz) or an Argo resource.

    The format is decided by content (archive and binary signatures, then the
    YAML's top-level keys); the file name only adds clearer refusals, e.g. for
    a ``.zip`` that is not a zip.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"import_pipeline needs bytes, not {type(data).__name__}")
    data = bytes(data)
    name = _basename(filename)
    if len(data) > limits.max_bytes:
        raise PipelineImportError(
            f"the file is {len(data):,} bytes; the limit is {limits.max_bytes:,} bytes", filename=name
        )
    if not data.strip():
        raise PipelineImportError("the file is empty", filename=name)
    suffix = _suffix(name)
    archive = sniff_archive(data)
    if archive is not None:
        member = read_pipeline_member(data, name, archive, limits=limits)
        return _import_text(
            member.data,
            where=f"{name}/{member.name}",
            source_filename=name,
            archive_member=member.name,
            limits=limits,
        )
    binary = _binary_kind(data)
    if binary is not None:
        raise PipelineImportError(
            f"this is {binary}, not a pipeline; upload a KFP pipeline or an Argo workflow as {_ACCEPTED}",
            filename=name,
        )
    if suffix in ARCHIVE_SUFFIXES:
        raise PipelineImportError(
            f"the file is named {suffix} but is not a {suffix.lstrip('.')} archive (it has no archive "
            "signature; it looks like text)",
            filename=name,
        )
    if suffix and suffix not in TEXT_SUFFIXES:
        raise PipelineImportError(f"unsupported file type '{suffix}'; upload {_ACCEPTED}", filename=name)
    return _import_text(data, where=name, source_filename=name, archive_member=None, limits=limits)


def _import_text(
    raw: bytes, *, where: str, source_filename: str, archive_member: str | None, limits: ImportLimits
) -> ImportedPipeline:
    text = decode_text(raw, where)
    docs = load_documents(text, filename=where, limits=limits)
    if not docs:
        raise PipelineImportError(
            "the file holds no YAML document (it is empty or only comments)", filename=where
        )
    first = docs[0]
    if not isinstance(first.data, dict):
        raise PipelineImportError(
            f"the top level must be a mapping, got {describe_value(first.data)}",
            filename=where,
            line=first.line,
        )
    platform_doc: YamlDocument | None = None
    if looks_like_ir(first.data):
        if len(docs) > 2:
            raise PipelineImportError(
                "a KFP pipeline file holds at most two YAML documents (the pipeline spec and the "
                f"platform spec); this one has {len(docs)}",
                filename=where,
                line=docs[2].line,
            )
        if len(docs) == 2:
            platform_doc = docs[1]
            if not looks_like_platform_spec(platform_doc.data):
                raise PipelineImportError(
                    "the second YAML document must be the platform spec ('platforms: {kubernetes: ...}')",
                    filename=where,
                    line=platform_doc.line,
                )
    elif looks_like_argo(first.data):
        if len(docs) > 1:
            listing = ", ".join(_describe_resource(d) for d in docs[:6])
            raise PipelineImportError(
                f"the file holds {len(docs)} YAML documents ({listing}); upload one Argo resource per file",
                filename=where,
            )
    else:
        raise PipelineImportError(_unrecognised(first.data), filename=where, line=first.line)
    return _validated(
        first.data,
        platform_doc.data if platform_doc else None,
        text=text,
        where=where,
        source_filename=source_filename,
        archive_member=archive_member,
        locate=first.locator.locate,
        locate_platform=platform_doc.locator.locate if platform_doc else None,
        limits=limits,
    )


def _validated(
    spec: dict[str, Any],
    platform: dict[str, Any] | None,
    *,
    text: str | None,
    where: str,
    source_filename: str,
    archive_member: str | None,
    locate: Locate | None,
    locate_platform: Locate | None,
    limits: ImportLimits,
) -> ImportedPipeline:
    """Validate a KFP or Argo spec already recognised by its keys; ``text=None`` means dump it."""
    if looks_like_ir(spec):
        parsed = validate_ir(
            spec,
            platform,
            filename=where,
            locate_ir=locate,
            locate_platform=locate_platform,
            limits=limits,
        )
        if text is None:
            text = _dump(spec) + (f"---\n{_dump(platform)}" if platform is not None else "")
        return ImportedPipeline(
            format="kfp-ir",
            name=parsed.name,
            display_name=parsed.display_name,
            description=parsed.description,
            pipeline_spec=spec,
            platform_spec=platform,
            source_text=text,
            source_filename=source_filename,
            content_hash=content_hash(text),
            graph=ir_graph(parsed),
            archive_member=archive_member,
        )
    if platform is not None:
        raise PipelineImportError("platform_spec only applies to KFP pipeline specs", filename=where)
    imported = validate_argo(spec, filename=where, locate=locate, limits=limits)
    graph, graph_warnings = graph_with_warnings(imported.workflow, limits.max_graph_nodes)
    name, display, description = _argo_metadata(imported.workflow, source_filename)
    if text is None:
        text = _dump(spec)
    return ImportedPipeline(
        format="argo",
        name=name,
        display_name=display,
        description=description,
        pipeline_spec=imported.workflow,
        platform_spec=None,
        source_text=text,
        source_filename=source_filename,
        content_hash=content_hash(text),
        graph=graph,
        archive_member=archive_member,
        warnings=(*imported.warnings, *graph_warnings),
        source_kind=imported.kind,
    )


def _describe_resource(doc: YamlDocument) -> str:
    data = doc.data if isinstance(doc.data, dict) else {}
    kind = data.get("kind") or "untyped document"
    meta = data.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    name = meta.get("name") or meta.get("generateName") or ""
    return f"{kind} '{name}' at line {doc.line}" if name else f"{kind} at line {doc.line}"


def _unrecognised(doc: Mapping[str, Any]) -> str:
    kind = doc.get("kind")
    if isinstance(kind, str) and "apiVersion" in doc:
        return (
            f"a Kubernetes {kind} is not a pipeline; upload a KFP pipeline spec or an Argo Workflow, "
            "WorkflowTemplate, ClusterWorkflowTemplate or CronWorkflow"
        )
    return (
        "not a recognised pipeline: expected a KFP pipeline spec (with pipelineInfo, root, components, "
        "deploymentSpec) or an Argo resource (apiVersion: argoproj.io/v1alpha1, kind: Workflow)"
    )


def _argo_metadata(workflow: Mapping[str, Any], source_filename: str) -> tuple[str, str, str]:
    meta = workflow.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    stem = source_filename.rsplit("/", 1)[-1].split(".", 1)[0] or "workflow"
    name = str(meta.get("name") or str(meta.get("generateName") or "").rstrip("-") or stem)
    display = str(annotations.get("workflows.argoproj.io/title") or name)
    description = str(annotations.get("workflows.argoproj.io/description") or "").strip()
    return name, display, description


# ---------------------------------------------------------------------------------------
# JSON input (REST API)
# ---------------------------------------------------------------------------------------


def _check_text(text: str, what: str, path: Path) -> None:
    problem = text_problem(text)
    if problem is not None:
        raise PipelineImportError(f"the text {problem}", filename=what, field_path=path)


def _check_json(value: Any, what: str, limits: ImportLimits) -> None:
    """Refuse non-JSON values and anything over the node/depth limits (iteratively: no recursion)."""
    nodes = 0
    stack: list[tuple[Any, Path]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        nodes += 1
        if nodes > limits.max_yaml_nodes:
            raise PipelineImportError(
                f"the spec has more than {limits.max_yaml_nodes:,} values; refusing a spec this large",
                filename=what,
            )
        if len(path) >= limits.max_depth:
            # Also what stops a self-referencing dict from looping forever.
            raise PipelineImportError(
                f"the spec is nested deeper than {limits.max_depth} levels", filename=what, field_path=path
            )
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise PipelineImportError(
                        f"mapping keys must be strings, got {describe_value(key)}",
                        filename=what,
                        field_path=path,
                    )
                _check_text(key, what, (*path, key))
                stack.append((child, (*path, key)))
        elif isinstance(item, list):
            stack.extend((child, (*path, i)) for i, child in enumerate(item))
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise PipelineImportError(
                    "NaN and infinity cannot be represented in JSON", filename=what, field_path=path
                )
        elif isinstance(item, str):
            _check_text(item, what, path)
        elif not (item is None or isinstance(item, int | bool)):
            raise PipelineImportError(
                f"{type(item).__name__} is not a JSON value", filename=what, field_path=path
            )


def _dump(doc: Any) -> str:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(doc, Dumper=dumper, sort_keys=False, allow_unicode=True, default_flow_style=False)


def import_spec_dict(
    spec: dict[str, Any],
    platform_spec: dict[str, Any] | None = None,
    *,
    source_name: str = "pipeline_spec",
    limits: ImportLimits = DEFAULT_LIMITS,
) -> ImportedPipeline:
    """Import a spec that arrived as JSON (REST ``pipeline_spec``), bare or wrapped with its platform_spec.

    There is no YAML text, so errors carry field paths but no lines; ``source_text``
    is a YAML dump laid out like a KFP file (``---`` before the platform spec).
    """
    if not isinstance(spec, dict):
        raise PipelineImportError(
            f"the spec must be a JSON object, got {describe_value(spec)}", filename=source_name
        )
    if "pipeline_spec" in spec and not looks_like_ir(spec) and not looks_like_argo(spec):
        extra = sorted(set(spec) - {"pipeline_spec", "platform_spec"})
        if extra:
            raise PipelineImportError(
                f"unknown field '{extra[0]}' next to pipeline_spec (only platform_spec may accompany it)",
                filename=source_name,
                field_path=extra[0],
            )
        if platform_spec is not None and spec.get("platform_spec") is not None:
            raise PipelineImportError(
                "platform_spec was given twice (inside the wrapper and as an argument)", filename=source_name
            )
        if spec.get("platform_spec") is not None:
            platform_spec = spec["platform_spec"]
        spec = spec["pipeline_spec"]
        if not isinstance(spec, dict):
            raise PipelineImportError(
                f"pipeline_spec must be a JSON object, got {describe_value(spec)}", filename=source_name
            )
    if platform_spec is not None and not isinstance(platform_spec, dict):
        raise PipelineImportError(
            f"platform_spec must be a JSON object, got {describe_value(platform_spec)}", filename=source_name
        )
    _check_json(spec, source_name, limits)
    if platform_spec is not None:
        _check_json(platform_spec, "platform_spec", limits)
    # A JSON round trip is a cheap deep copy: the caller's dicts stay theirs.
    spec = json.loads(json.dumps(spec))
    platform_spec = json.loads(json.dumps(platform_spec)) if platform_spec is not None else None
    if not looks_like_ir(spec) and not looks_like_argo(spec):
        raise PipelineImportError(_unrecognised(spec), filename=source_name)
    return _validated(
        spec,
        platform_spec,
        text=None,
        where=source_name,
        source_filename=source_name,
        archive_member=None,
        locate=None,
        locate_platform=None,
        limits=limits,
    )
