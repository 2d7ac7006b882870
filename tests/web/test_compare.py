"""Run compare: parameters and metrics with differing rows highlighted, confusion
matrices side by side, ROC curves overlaid in one SVG, a per-step diff."""

from __future__ import annotations

import re

import pytest

from apps.core.choices import RuntimeState
from tests.factories import ArtifactFactory, NamespaceFactory, PipelineVersionFactory, RunFactory, TaskFactory


def _run(version, a: int, accuracy: float, output: int, cached: bool = False):  # type: ignore[no-untyped-def]
    run = RunFactory(
        pipeline_version=version, runtime_parameters={"a": a, "b": 5}, state=RuntimeState.SUCCEEDED
    )
    step = TaskFactory(run=run, key="root/train", name="train", outputs={"parameters": {"Output": output}})
    TaskFactory(run=run, key="root/report", name="report", outputs={"parameters": {"done": True}})
    if cached:
        step.cached_from = TaskFactory(key="root/train")
        step.save()
    ArtifactFactory(
        producer_task=step, name="metrics", schema_title="system.Metrics", metadata={"accuracy": accuracy}
    )
    ArtifactFactory(
        producer_task=step,
        name="classification",
        schema_title="system.ClassificationMetrics",
        metadata={
            "confusionMatrix": {
                "annotationSpecs": [{"displayName": "yes"}, {"displayName": "no"}],
                "rows": [{"row": [a, 1]}, {"row": [2, 8]}],
            },
            "confidenceMetrics": [
                {"confidenceThreshold": 1.0, "falsePositiveRate": 0.0, "recall": 0.0},
                {"confidenceThreshold": 0.5, "falsePositiveRate": 0.2, "recall": 0.8},
                {"confidenceThreshold": 0.0, "falsePositiveRate": 1.0, "recall": 1.0},
            ],
        },
    )
    return run


@pytest.mark.django_db
def test_compare_two_runs(logged_in) -> None:  # type: ignore[no-untyped-def]
    version = PipelineVersionFactory()
    first, second = _run(version, 10, 0.9, 13), _run(version, 1, 0.8, 4, cached=True)
    response = logged_in.get("/runs/compare/", {"run": [first.pk, second.pk]})
    assert response.status_code == 200
    html = response.content.decode()
    params = html[html.index('id="compare-params"') :].split("</table>", 1)[0]
    assert re.search(r'<tr class="diff" data-differs="1"><th scope="row" class="mono">a</th>', params)
    assert re.search(r'<tr class="" ><th scope="row" class="mono">b</th>', params)
    metrics = html[html.index('id="compare-metrics"') :].split("</table>", 1)[0]
    assert 'class="diff"' in metrics and "0.9" in metrics and "0.8" in metrics
    assert html.count('class="confusion-matrix"') == 2  # side by side
    roc = html[html.index('id="compare-roc"') :].split("</svg>", 1)[0]
    assert roc.count("<polyline") == 2  # overlaid in one SVG
    steps = html[html.index('id="compare-steps"') :].split("</table>", 1)[0]
    rows = {row.split("</th>", 1)[0].rsplit(">", 1)[-1]: row for row in steps.split("<tr")[2:]}
    assert rows["root/train"].startswith(' class="diff"')
    assert "Cached" in rows["root/train"] and 'class="changed"' in rows["root/train"]
    assert rows["root/report"].startswith(' class=""')


@pytest.mark.django_db
def test_compare_needs_two_to_ten_visible_runs(logged_in) -> None:  # type: ignore[no-untyped-def]
    runs = [RunFactory() for _ in range(11)]
    assert logged_in.get("/runs/compare/", {"run": [runs[0].pk]}).status_code == 302
    assert logged_in.get("/runs/compare/", {"run": [r.pk for r in runs]}).status_code == 302
    assert logged_in.get("/runs/compare/", {"run": f"{runs[0].pk},{runs[1].pk}"}).status_code == 200
    hidden = RunFactory(namespace=NamespaceFactory(name="hidden"))
    assert logged_in.get("/runs/compare/", {"run": [runs[0].pk, hidden.pk]}).status_code == 404
