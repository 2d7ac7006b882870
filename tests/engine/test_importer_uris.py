"""The importer URIs known before a run starts (apps.engine.importer_uris), on pipelines
compiled by the real kfp SDK: constants, pipeline parameters through nested DAGs, and the
URIs that only exist at run time (upstream outputs, loop items)."""

# No "from __future__ import annotations": kfp reads the real annotation objects.

import functools

from apps.engine.importer_uris import KnownImporterUri, known_importer_uris
from apps.engine.spec import PipelineSpec, parse_pipeline_spec
from tests.engine.compiled import compile_pipeline


@functools.cache
def _imports() -> PipelineSpec:
    from kfp import dsl

    @dsl.component(base_image="python:3.11")
    def make() -> str:
        return "x"

    @dsl.pipeline(name="inner")
    def inner(uri: str, fixed: str = "file:///srv/inner-default") -> None:
        dsl.importer(artifact_uri=uri, artifact_class=dsl.Dataset)
        dsl.importer(artifact_uri=fixed, artifact_class=dsl.Dataset)

    @dsl.pipeline(name="outer")
    def outer(uri: str) -> None:
        inner(uri=uri)

    @dsl.pipeline(name="imports")
    def pipeline(data_uri: str = "s3://default/x") -> None:
        dsl.importer(artifact_uri="gs://const/a", artifact_class=dsl.Dataset)
        dsl.importer(artifact_uri=data_uri, artifact_class=dsl.Dataset)
        outer(uri=data_uri)
        made = make()
        dsl.importer(artifact_uri=made.output, artifact_class=dsl.Dataset)
        with dsl.ParallelFor(["a", "b"]) as item:
            dsl.importer(artifact_uri=item, artifact_class=dsl.Dataset)

    return parse_pipeline_spec(compile_pipeline(pipeline))


def test_constants_parameters_and_nested_dags_are_known() -> None:
    found = known_importer_uris(_imports(), {"data_uri": "/data/artifacts/x"})
    assert sorted(found, key=lambda f: f.task) == [
        KnownImporterUri("importer", "gs://const/a", None),
        KnownImporterUri("importer-2", "/data/artifacts/x", "data_uri"),
        KnownImporterUri("outer/inner/importer", "/data/artifacts/x", "data_uri"),
        KnownImporterUri("outer/inner/importer-2", "file:///srv/inner-default", None),
    ]


def test_a_parameter_default_applies_when_the_run_gives_none() -> None:
    found = {f.task: f for f in known_importer_uris(_imports(), {})}
    assert found["importer-2"] == KnownImporterUri("importer-2", "s3://default/x", "data_uri")


def test_uris_from_upstream_outputs_and_loop_items_are_left_to_run_time() -> None:
    tasks = {f.task for f in known_importer_uris(_imports(), {"data_uri": "x"})}
    # importer-3 reads make's output; the loop's importer reads the loop item.
    assert not any(task.startswith(("importer-3", "for-loop")) for task in tasks)
    assert len(tasks) == 4
