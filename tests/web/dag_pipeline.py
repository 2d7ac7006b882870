"""A run of a pipeline with every kind of DAG node, built directly as rows (no worker):
an exit handler around a coin flip, an if/else on it, an artifact passed to a
ParallelFor (parallelism 2) of five iterations; the exit task after it all.

The heads branch ran, the tails branch was skipped, two iterations exist (one done, one
running), three wait; the exit task has not started."""

# No "from __future__ import annotations": kfp reads the real annotation objects.

import functools
import hashlib
import tempfile
import uuid
from pathlib import Path
from typing import Any

import yaml

from apps.core.choices import RuntimeState, TaskKind
from apps.runs.models import Run, Task
from tests.factories import PipelineVersionFactory, RunFactory

GROUP = "root/exit-handler-1"
FLIP = f"{GROUP}/flip"
BRANCHES = f"{GROUP}/condition-branches-2"
HEADS = f"{BRANCHES}/condition-3"
HEADS_STEP = f"{HEADS}/say-2"
TAILS = f"{BRANCHES}/condition-4"
TAILS_STEP = f"{TAILS}/say-3"
MAKE = f"{GROUP}/make"
ARTIFACT = f"{GROUP}/make::out"
LOOP = f"{GROUP}/for-loop-5"
LOOP_STEP = f"{LOOP}/use"
EXIT = "root/say"


@functools.cache
def dag_features_ir() -> str:
    """The pipeline, compiled by kfp."""
    from kfp import compiler, dsl
    from kfp.dsl import Dataset, Input, Output

    @dsl.component(base_image="python:3.11")
    def flip() -> str:
        return "heads"

    @dsl.component(base_image="python:3.11")
    def make(out: Output[Dataset]):  # type: ignore[no-untyped-def]
        with open(out.path, "w") as f:
            f.write("x")

    @dsl.component(base_image="python:3.11")
    def use(data: Input[Dataset], n: int):  # type: ignore[no-untyped-def]
        print(n)

    @dsl.component(base_image="python:3.11")
    def say(msg: str):  # type: ignore[no-untyped-def]
        print(msg)

    @dsl.pipeline(name="dag-features")
    def pipeline(items: list = [1, 2, 3, 4, 5]):  # type: ignore[no-untyped-def]  # noqa: B006
        bye = say(msg="bye")
        with dsl.ExitHandler(bye):
            coin = flip()
            with dsl.If(coin.output == "heads"):
                say(msg="heads")
            with dsl.Else():
                say(msg="tails")
            made = make()
            with dsl.ParallelFor(items, parallelism=2) as item:
                use(data=made.outputs["out"], n=item)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dag_features.yaml"
        compiler.Compiler().compile(pipeline, str(path))
        return path.read_text()


def create_dag_features_run(**run_fields: Any) -> Run:
    """A RUNNING run of the pipeline, half-way (see the module docstring)."""
    text = dag_features_ir()
    version = PipelineVersionFactory(
        source=text,
        pipeline_spec=yaml.safe_load(text),
        content_hash=hashlib.sha256(text.encode()).hexdigest(),
    )
    run = RunFactory(
        pipeline_version=version,
        pipeline_name="dag-features",
        runtime_parameters={},
        **{"state": RuntimeState.RUNNING, **run_fields},
    )
    S, R, P, K = RuntimeState.SUCCEEDED, RuntimeState.RUNNING, RuntimeState.PENDING, RuntimeState.SKIPPED
    rows: dict[str, Task] = {}

    def add(key: str, kind: str, state: str, **fields: Any) -> None:
        parent_key = key.rsplit("/", 1)[0] if "/" in key else None
        if parent_key and "#" in key.rsplit("/", 1)[-1]:
            parent_key = key.split("#")[0]
        rows[key] = Task(
            id=uuid.uuid4(),
            run=run,
            namespace_id=run.namespace_id,
            parent=rows.get(parent_key or ""),
            key=key,
            name=key.rsplit("/", 1)[-1].split("#")[0],
            kind=kind,
            state=state,
            **fields,
        )

    add("root", TaskKind.ROOT, R)
    add(GROUP, TaskKind.DAG, R)
    add(FLIP, TaskKind.CONTAINER, S)
    add(BRANCHES, TaskKind.DAG, S)
    add(HEADS, TaskKind.DAG, S)
    add(HEADS_STEP, TaskKind.CONTAINER, S)
    add(TAILS, TaskKind.DAG, K)  # condition false: its step never gets a row
    add(MAKE, TaskKind.CONTAINER, S)
    add(LOOP, TaskKind.LOOP, R, iteration_count=5)
    add(f"{LOOP}#0", TaskKind.ITERATION, S, iteration_index=0)
    add(f"{LOOP}#0/use", TaskKind.CONTAINER, S)
    add(f"{LOOP}#1", TaskKind.ITERATION, R, iteration_index=1)
    add(f"{LOOP}#1/use", TaskKind.CONTAINER, R)
    add(f"{LOOP}#2", TaskKind.ITERATION, P, iteration_index=2)
    Task.objects.bulk_create(rows.values())
    return run
