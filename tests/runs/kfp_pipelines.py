"""Pipelines written with the real kfp SDK for live tests, compiled to IR on demand.

No ``from __future__ import annotations`` here: kfp reads the components' type hints
at decoration time and needs real types, not strings."""

import functools
import tempfile
from pathlib import Path
from typing import Any

import yaml
from kfp import compiler, dsl

# An explicit base image keeps kfp's "default base_image will change" warning quiet;
# the local backend records it and runs the component in a cached task environment.
component = functools.partial(dsl.component, base_image="python:3.11")


def compile_to_ir(pipeline: Any) -> dict[str, Any]:
    """Compile with kfp.compiler, exactly as a user would, and load the IR."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline.yaml"
        compiler.Compiler().compile(pipeline, str(path))
        return yaml.safe_load(path.read_text())


@component
def identity_int(x: int) -> int:
    return x


@component
def report(text: str) -> str:
    print(text)
    return text


@dsl.pipeline(name="double-condition")
def double_condition(x: int = 3):
    # kfp compiles an int-vs-float comparison to CEL `double(...) > 2.5`; kfp.local skips it.
    value = identity_int(x=x)
    with dsl.If(value.output > 2.5):
        report(text="above")
    with dsl.Else():
        report(text="below")


@component
def square(x: int) -> int:
    return x * x


@component
def check_ints(values: list) -> str:
    kinds = sorted({type(v).__name__ for v in values})
    return ",".join(kinds) + ":" + str(sum(values))


@dsl.pipeline(name="collected-ints")
def collected_ints():
    with dsl.ParallelFor(items=[1, 2, 3]) as item:
        squared = square(x=item)
    check_ints(values=dsl.Collected(squared.output))


@component
def flaky(counter_path: str) -> str:
    import os

    count = 0
    if os.path.exists(counter_path):
        with open(counter_path) as fh:
            count = int(fh.read())
    with open(counter_path, "w") as fh:
        fh.write(str(count + 1))
    if count < 2:
        raise RuntimeError(f"flaky attempt {count + 1}")
    return f"succeeded on attempt {count + 1}"


@dsl.pipeline(name="retry-backoff")
def retry_backoff(counter_path: str):
    flaky(counter_path=counter_path).set_retry(num_retries=3, backoff_duration="1s", backoff_factor=2)


@component
def fail_step():
    raise SystemExit(1)


@component
def record_status(status: dsl.PipelineTaskFinalStatus) -> str:
    return f"{status.state}|{status.pipeline_task_name}|{status.error_code}"


@dsl.pipeline(name="exit-status")
def exit_status():
    with dsl.ExitHandler(record_status()):
        fail_step()


@component
def slow_square(x: int) -> int:
    return x * x


@dsl.pipeline(name="cached")
def cached(x: int = 7):
    slow_square(x=x).set_caching_options(True)


@component
def produce(text: str) -> str:
    return text.upper()


@component
def fail_once(text: str, counter_path: str) -> str:
    import os

    if not os.path.exists(counter_path):
        open(counter_path, "w").close()
        raise RuntimeError("first attempt fails")
    return text + "!"


@dsl.pipeline(name="fail-then-retry")
def fail_then_retry(text: str, counter_path: str):
    upstream = produce(text=text)
    fail_once(text=upstream.output, counter_path=counter_path)
    report(text="after").after(upstream)


@component
def write_dataset(text: str, data: dsl.Output[dsl.Dataset]):
    with open(data.path, "w") as fh:
        fh.write(text)
    data.metadata["chars"] = len(text)


@component
def read_dataset(data: dsl.Input[dsl.Dataset]) -> str:
    with open(data.path) as fh:
        return fh.read().upper()


@dsl.pipeline(name="artifacts-through-store")
def artifacts_through_store(text: str = "hello s3"):
    written = write_dataset(text=text)
    read_dataset(data=written.outputs["data"])
