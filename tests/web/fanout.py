"""A run of a ParallelFor pipeline built directly as rows (no worker), for the big-run
tests and bench/ui_run_page.py: root, one LOOP, ``n`` ITERATIONs and ``n`` steps."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import yaml
from django.utils import timezone

from apps.core.choices import RuntimeState, TaskKind
from apps.runs.models import Run, Task
from tests.factories import PipelineVersionFactory, RunFactory

FANOUT_IR = """\
# PIPELINE DEFINITION
# Name: fan-out
components:
  comp-for-loop-1:
    dag:
      tasks:
        square:
          cachingOptions:
            enableCache: true
          componentRef:
            name: comp-square
          inputs:
            parameters:
              x:
                componentInputParameter: pipelinechannel--items-loop-item
          taskInfo:
            name: square
    inputDefinitions:
      parameters:
        pipelinechannel--items:
          parameterType: LIST
        pipelinechannel--items-loop-item:
          parameterType: STRING
  comp-square:
    executorLabel: exec-square
    inputDefinitions:
      parameters:
        x:
          parameterType: NUMBER_INTEGER
deploymentSpec:
  executors:
    exec-square:
      container:
        args:
        - '{{$.inputs.parameters[''x'']}}'
        command:
        - echo
        image: python:3.11
pipelineInfo:
  name: fan-out
root:
  dag:
    tasks:
      for-loop-1:
        componentRef:
          name: comp-for-loop-1
        inputs:
          parameters:
            pipelinechannel--items:
              componentInputParameter: items
        parameterIterator:
          itemInput: pipelinechannel--items-loop-item
          items:
            inputParameter: pipelinechannel--items
        taskInfo:
          name: for-loop-1
  inputDefinitions:
    parameters:
      items:
        defaultValue:
        - 1.0
        - 2.0
        - 3.0
        isOptional: true
        parameterType: LIST
schemaVersion: 2.1.0
sdkVersion: kfp-2.17.3
"""

LOOP_NODE = "root/for-loop-1"
STEP_NODE = "root/for-loop-1/square"


def default_state(index: int) -> str:
    """Most iterations succeeded; a few failed, a few still run."""
    if index % 100 == 7:
        return RuntimeState.FAILED
    if index % 50 == 3:
        return RuntimeState.RUNNING
    return RuntimeState.SUCCEEDED


def create_fanout_run(n: int, *, state_of: Callable[[int], str] = default_state, **run_fields: Any) -> Run:
    """A RUNNING run of the fan-out pipeline with ``n`` iterations, rows bulk-created."""
    version = PipelineVersionFactory(
        source=FANOUT_IR,
        pipeline_spec=yaml.safe_load(FANOUT_IR),
        content_hash=hashlib.sha256(FANOUT_IR.encode()).hexdigest(),
    )
    now = timezone.now()
    fields = {
        "state": RuntimeState.RUNNING,
        "started_at": now - timedelta(minutes=5),
        "runtime_parameters": {},
        **run_fields,
    }
    run = RunFactory(pipeline_version=version, pipeline_name="fan-out", **fields)
    root = Task(
        id=uuid.uuid4(),
        run=run,
        namespace_id=run.namespace_id,
        key="root",
        node="root",
        name="root",
        kind=TaskKind.ROOT,
        state=RuntimeState.RUNNING,
    )
    loop = Task(
        id=uuid.uuid4(),
        run=run,
        namespace_id=run.namespace_id,
        parent=root,
        key=LOOP_NODE,
        node=LOOP_NODE,
        name="for-loop-1",
        kind=TaskKind.LOOP,
        state=RuntimeState.RUNNING,
        iteration_count=n,
        started_at=now - timedelta(minutes=5),
    )
    rows = [root, loop]
    for index in range(n):
        state = state_of(index)
        done = state in RuntimeState.terminal()
        started = now - timedelta(seconds=300 - index % 200)
        iteration = Task(
            id=uuid.uuid4(),
            run=run,
            namespace_id=run.namespace_id,
            parent=loop,
            key=f"{LOOP_NODE}#{index}",
            node=LOOP_NODE,
            name="for-loop-1",
            kind=TaskKind.ITERATION,
            iteration_index=index,
            state=state,
            started_at=started,
            finished_at=started + timedelta(seconds=3) if done else None,
        )
        step = Task(
            id=uuid.uuid4(),
            run=run,
            namespace_id=run.namespace_id,
            parent=iteration,
            key=f"{LOOP_NODE}#{index}/square",
            node=STEP_NODE,
            name="square",
            kind=TaskKind.CONTAINER,
            state=state,
            image="python:3.11",
            command=["echo", str(index)],
            inputs={"parameters": {"x": index}},
            started_at=started,
            finished_at=started + timedelta(seconds=3) if done else None,
        )
        rows += [iteration, step]
    Task.objects.bulk_create(rows, batch_size=500)
    return run
