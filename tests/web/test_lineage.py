"""An artifact's lineage on its page: its producer and that step's inputs (with their
producers), its consumers and their outputs (with their consumers), as an SVG of links
and as a list; a bounded number of queries whatever the number of steps."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.choices import TaskKind
from tests.factories import ArtifactFactory, NamespaceFactory, RunFactory, TaskFactory


def _ref(artifact) -> dict:  # type: ignore[no-untyped-def]
    return {
        "id": str(artifact.pk),
        "name": artifact.name,
        "uri": artifact.uri,
        "schema_title": artifact.schema_title,
    }


def _consume(task, **artifacts) -> None:  # type: ignore[no-untyped-def]
    task.inputs = {"artifacts": {name: [_ref(a)] for name, a in artifacts.items()}}
    task.save()


def _produce(task, **artifacts) -> None:  # type: ignore[no-untyped-def]
    task.outputs = {"artifacts": {name: [_ref(a)] for name, a in artifacts.items()}}
    task.save()


def _chain():  # type: ignore[no-untyped-def]
    """load -> raw -> prepare -> dataset -> train -> model -> evaluate."""
    run = RunFactory()
    load = TaskFactory(run=run, name="load")
    raw = ArtifactFactory(producer_task=load, name="raw", schema_title="system.Dataset")
    prepare = TaskFactory(run=run, name="prepare")
    dataset = ArtifactFactory(producer_task=prepare, name="dataset", schema_title="system.Dataset")
    train = TaskFactory(run=run, name="train")
    model = ArtifactFactory(producer_task=train, name="model", schema_title="system.Model")
    evaluate = TaskFactory(run=run, name="evaluate")
    unrelated = TaskFactory(run=run, name="unrelated")
    _produce(load, raw=raw)
    _consume(prepare, raw=raw)
    _produce(prepare, dataset=dataset)
    _consume(train, dataset=dataset)
    _produce(train, model=model)
    _consume(evaluate, model=model)
    return (
        run,
        {"load": load, "prepare": prepare, "train": train, "evaluate": evaluate, "unrelated": unrelated},
        {
            "raw": raw,
            "dataset": dataset,
            "model": model,
        },
    )


def _lineage_html(html: str) -> str:
    start = html.index('id="lineage"')
    return html[start : html.index("</section>", start)]


@pytest.mark.django_db
def test_lineage_one_hop_each_way(logged_in) -> None:  # type: ignore[no-untyped-def]
    _run, tasks, artifacts = _chain()
    html = _lineage_html(logged_in.get(f"/artifacts/{artifacts['dataset'].pk}/").content.decode())
    svg = html[html.index("<svg") : html.index("</svg>")]
    # Producer, its input and that input's producer; consumer, its output and that one's consumer.
    for task in ("load", "prepare", "train", "evaluate"):
        assert f'href="/executions/{tasks[task].pk}/"' in svg, task
    for name in ("raw", "dataset", "model"):
        assert f'href="/artifacts/{artifacts[name].pk}/"' in svg, name
    assert str(tasks["unrelated"].pk) not in html
    # Columns run left to right: load, raw, prepare, dataset, train, model, evaluate.
    xs = []
    for node in (
        f"t:{tasks['load'].pk}",
        f"a:{artifacts['raw'].pk}",
        f"t:{tasks['prepare'].pk}",
        f"a:{artifacts['dataset'].pk}",
        f"t:{tasks['train'].pk}",
        f"a:{artifacts['model'].pk}",
        f"t:{tasks['evaluate'].pk}",
    ):
        match = re.search(rf'data-node="{re.escape(node)}"><title>[^<]*</title><rect x="(\d+)"', svg)
        assert match, node
        xs.append(int(match.group(1)))
    assert xs == sorted(xs) and len(set(xs)) == 7
    # The readable list says the same without the drawing.
    assert f'/executions/{tasks["prepare"].pk}/" data-lineage-producer' in html
    assert f'/executions/{tasks["load"].pk}/" data-lineage-input-producer' in html
    assert f'/executions/{tasks["train"].pk}/" data-lineage-consumer' in html


@pytest.mark.django_db
def test_lineage_finds_consumers_in_runs_that_reused_the_producer(logged_in) -> None:  # type: ignore[no-untyped-def]
    _run, tasks, artifacts = _chain()
    later = RunFactory()
    hit = TaskFactory(run=later, name="train", cached_from=tasks["train"], outputs=tasks["train"].outputs)
    report = TaskFactory(run=later, name="report")
    _consume(report, model=artifacts["model"])
    html = _lineage_html(logged_in.get(f"/artifacts/{artifacts['model'].pk}/").content.decode())
    assert f'/executions/{report.pk}/" data-lineage-consumer' in html
    assert "(another run)" in html
    assert str(hit.pk) not in html  # a cache hit produced nothing itself


@pytest.mark.django_db
def test_lineage_queries_are_bounded(logged_in) -> None:  # type: ignore[no-untyped-def]
    def count(artifact) -> int:  # type: ignore[no-untyped-def]
        with CaptureQueriesContext(connection) as ctx:
            assert logged_in.get(f"/artifacts/{artifact.pk}/").status_code == 200
        return len(ctx.captured_queries)

    run, _tasks, artifacts = _chain()
    few = count(artifacts["dataset"])
    for index in range(30):  # thirty more consumers, each with its own output and its consumer
        consumer = TaskFactory(run=run, name=f"use-{index}")
        _consume(consumer, dataset=artifacts["dataset"])
        out = ArtifactFactory(producer_task=consumer, name=f"out-{index}")
        _produce(consumer, out=out)
        _consume(TaskFactory(run=run, name=f"next-{index}"), out=out)
    assert count(artifacts["dataset"]) == few


@pytest.mark.django_db
def test_lineage_skips_groups_and_other_namespaces(logged_in) -> None:  # type: ignore[no-untyped-def]
    run, tasks, artifacts = _chain()
    group = TaskFactory(run=run, name="sub-dag", kind=TaskKind.DAG)
    _consume(group, dataset=artifacts["dataset"])
    foreign = ArtifactFactory(
        producer_task=TaskFactory(run=RunFactory(namespace=NamespaceFactory(name="elsewhere"))), name="secret"
    )
    _consume(tasks["prepare"], raw=artifacts["raw"], other=foreign)
    # A step of another namespace naming the artifact (it cannot, through the cache, which is
    # per namespace; but the page must not show it if a row says so).
    outside = RunFactory(namespace=NamespaceFactory(name="elsewhere"))
    TaskFactory(run=outside, name="hit", cached_from=tasks["prepare"])
    spy = TaskFactory(run=outside, name="spy")
    _consume(spy, dataset=artifacts["dataset"])
    html = _lineage_html(logged_in.get(f"/artifacts/{artifacts['dataset'].pk}/").content.decode())
    assert str(group.pk) not in html and str(spy.pk) not in html
    assert f"/artifacts/{foreign.pk}/" not in html and "secret" not in html
