"""Every KFP corpus file imports, every invalid one is refused precisely, and so for Argo's examples.

The counts are printed in pytest's terminal summary ("importers corpus" section).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from apps.importers import PipelineImportError, import_pipeline
from tests.paths import missing

from .conftest import ARGO_EXAMPLES, KFP_INVALID, KFP_VALID

if not KFP_VALID.is_dir():  # pragma: no cover - a CI run without the corpus fails at its start
    pytest.skip(missing(KFP_VALID), allow_module_level=True)

KFP_FILES = sorted(p for p in KFP_VALID.rglob("*") if p.suffix in (".yaml", ".zip"))
IMPORTED_ARGO_KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")


def _record(counts: Counter[str], record_property: Any, key: str) -> None:
    counts[key] += 1
    record_property(key, counts[key])


def test_corpus_is_complete() -> None:
    # The reference says 150 YAML and 1 zip; a silently shrunken corpus would hide regressions.
    assert len([p for p in KFP_FILES if p.suffix == ".yaml"]) == 150
    assert len([p for p in KFP_FILES if p.suffix == ".zip"]) == 1


@pytest.mark.parametrize("path", KFP_FILES, ids=lambda p: str(p.relative_to(KFP_VALID)))
def test_kfp_valid_file_imports(path: Path, corpus_counts: Counter[str], record_property: Any) -> None:
    result = import_pipeline(path.read_bytes(), path.name)
    assert result.format == "kfp-ir"
    assert result.name
    assert result.pipeline_spec["pipelineInfo"]["name"] == result.name
    assert "root" in result.pipeline_spec
    assert result.graph.nodes, "the engine draws every corpus pipeline"
    if result.platform_spec is not None:
        assert "platforms" in result.platform_spec
    if path.suffix == ".zip":
        assert result.archive_member is not None
        assert result.archive_member.endswith(".yaml")
    else:
        assert result.source_text == path.read_text(encoding="utf-8")
    _record(corpus_counts, record_property, f"imported KFP IR files ({path.suffix})")


def test_platform_spec_documents_are_kept() -> None:
    with_platform = [p for p in KFP_FILES if p.suffix == ".yaml" and "\nplatforms:" in p.read_text()]
    assert len(with_platform) == 14
    for path in with_platform:
        assert import_pipeline(path.read_bytes(), path.name).platform_spec is not None


# (file name, substrings that must all be in str(error), field_path, line)
INVALID_EXPECTATIONS = {
    "empty_file.yaml": (["empty_file.yaml", "holds no YAML document"], None, None),
    "empty_zip.zip": (["empty_zip.zip", "named .zip but is not a zip archive"], None, None),
    "invalid-zip.zip": (
        ["invalid-zip.zip/invalid_yaml.yaml", "unknown field 'components_1'", "did you mean 'components'"],
        "components_1",
        3,
    ),
    "invalid_yaml.yaml": (["unknown field 'components_1'", "did you mean 'components'"], "components_1", 3),
    "no_name.yaml": (["the pipeline name must be a non-empty string", "got null"], "pipelineInfo.name", 16),
    "wrong_format.png": (["unsupported file type '.png'"], None, None),
}


def test_every_invalid_file_has_an_expectation() -> None:
    assert sorted(p.name for p in KFP_INVALID.iterdir()) == sorted(INVALID_EXPECTATIONS)


@pytest.mark.parametrize("name", sorted(INVALID_EXPECTATIONS))
def test_kfp_invalid_file_is_refused(name: str, corpus_counts: Counter[str], record_property: Any) -> None:
    substrings, field_path, line = INVALID_EXPECTATIONS[name]
    with pytest.raises(PipelineImportError) as caught:
        import_pipeline((KFP_INVALID / name).read_bytes(), name)
    error = caught.value
    for text in substrings:
        assert text in str(error)
    assert error.field_path == field_path
    assert error.line == line
    _record(corpus_counts, record_property, "refused KFP invalid files")


# --- Argo examples -------------------------------------------------------------------


def _argo_cases() -> list[Any]:
    """One case per YAML document: multi-document example files are split, as a user would upload them."""
    cases = []
    for path in sorted(ARGO_EXAMPLES.rglob("*")):
        if not path.is_file():
            continue
        rel = str(path.relative_to(ARGO_EXAMPLES))
        text = path.read_text(encoding="utf-8")
        parts = [p for p in re.split(r"(?m)^---[ \t]*\n", text) if yaml.safe_load(p) is not None]
        for i, part in enumerate(parts):
            name = path.name if len(parts) == 1 else f"{path.stem}-{i}{path.suffix}"
            case_id = rel if len(parts) == 1 else f"{rel}#{i}"
            cases.append(pytest.param(name, part, id=case_id))
    return cases


ARGO_CASES = _argo_cases()

# Official examples that must be refused, and why.
ARGO_REFUSALS = {
    # A genuine duplicate key: Argo silently drops the first 'annotations' block.
    "k8s-patch-json-workflow.yaml": ["line 13", "duplicate key 'annotations'", "first at line 6"],
    "grafana-dashboard.json": ["not a recognised pipeline"],
    "simple-parameters-configmap.yaml": ["a Kubernetes ConfigMap is not a pipeline"],
    "testvolume.yaml": ["a Kubernetes PersistentVolumeClaim is not a pipeline"],
    "workflow-count-resourcequota.yaml": ["a Kubernetes ResourceQuota is not a pipeline"],
    "event-consumer-workfloweventbinding.yaml": ["Argo kind 'WorkflowEventBinding' is not a pipeline"],
    "github-path-filter-workfloweventbinding.yaml": ["Argo kind 'WorkflowEventBinding' is not a pipeline"],
}


def test_argo_corpus_is_complete() -> None:
    assert len(ARGO_CASES) > 220
    names = {case.values[0] for case in ARGO_CASES}
    assert set(ARGO_REFUSALS) <= names


@pytest.mark.parametrize(("name", "text"), ARGO_CASES)
def test_argo_example(name: str, text: str, corpus_counts: Counter[str], record_property: Any) -> None:
    if name in ARGO_REFUSALS:
        with pytest.raises(PipelineImportError) as caught:
            import_pipeline(text.encode(), name)
        for expected in ARGO_REFUSALS[name]:
            assert expected in str(caught.value)
        _record(corpus_counts, record_property, "refused Argo examples (not pipelines, or ambiguous)")
        return
    kind = yaml.safe_load(text)["kind"]
    assert kind in IMPORTED_ARGO_KINDS, f"no expectation for a {kind}"
    result = import_pipeline(text.encode(), name)
    assert result.format == "argo"
    assert result.name
    assert result.source_text == text
    assert isinstance(result.pipeline_spec["spec"], dict)
    if kind == "CronWorkflow":
        assert result.pipeline_spec["kind"] == "Workflow"
        assert any("schedule" in w for w in result.warnings)
    else:
        assert result.pipeline_spec["kind"] == kind
    spec = result.pipeline_spec["spec"]
    if spec.get("entrypoint") or "workflowTemplateRef" in spec:
        assert result.graph.nodes, "a runnable workflow draws at least one node"
    _record(corpus_counts, record_property, f"imported Argo {kind}")


def test_multi_document_argo_file_is_refused_with_a_listing() -> None:
    path = ARGO_EXAMPLES / "cron-backfill.yaml"
    with pytest.raises(PipelineImportError) as caught:
        import_pipeline(path.read_bytes(), path.name)
    message = str(caught.value)
    assert "holds 4 YAML documents" in message
    assert "WorkflowTemplate 'job' at line 3" in message
    assert "CronWorkflow 'daily-job'" in message
    assert "one Argo resource per file" in message
