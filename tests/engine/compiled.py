"""Pipelines written with kfp.dsl and compiled by the real SDK, for behaviours the corpus lacks."""

# No "from __future__ import annotations": kfp reads the real annotation objects.

import copy
import functools
import tempfile
from pathlib import Path
from typing import Any

import yaml

from apps.engine.spec import PipelineSpec, parse_pipeline_spec


def compile_pipeline(pipeline: Any) -> dict[str, Any]:
    """Compile a @dsl.pipeline function to its IR dict."""
    from kfp import compiler

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline.yaml"
        compiler.Compiler().compile(pipeline, str(path))
        with path.open() as fh:
            return dict(yaml.safe_load(fh))


@functools.cache
def if_elif_else_on_float() -> PipelineSpec:
    """make-float, then If(> 2.5) / Elif(> 1) / Else: the SDK emits ``double(1)`` for the Elif."""
    from kfp import dsl

    @dsl.component(base_image="python:3.11")
    def make_float() -> float:
        return 3.0

    @dsl.component(base_image="python:3.11")
    def show(msg: str) -> None:
        print(msg)

    @dsl.pipeline(name="float-branches")
    def pipeline() -> None:
        value = make_float()
        with dsl.If(value.output > 2.5):
            show(msg="big")
        with dsl.Elif(value.output > 1):
            show(msg="medium")
        with dsl.Else():
            show(msg="small")

    return parse_pipeline_spec(compile_pipeline(pipeline))


@functools.cache
def collected_ints() -> PipelineSpec:
    """ParallelFor over a list of ints, double each, dsl.Collected into a sum."""
    from kfp import dsl

    @dsl.component(base_image="python:3.11")
    def double(x: int) -> int:
        return 2 * x

    @dsl.component(base_image="python:3.11")
    def total(xs: list) -> int:
        return sum(xs)

    @dsl.pipeline(name="collected-ints")
    def pipeline(numbers: list = [1, 2, 3]) -> int:  # noqa: B006 - a pipeline default, never mutated
        with dsl.ParallelFor(numbers, parallelism=2) as x:
            doubled = double(x=x)
        return total(xs=dsl.Collected(doubled.output)).output

    return parse_pipeline_spec(compile_pipeline(pipeline))


@functools.cache
def cached_steps() -> PipelineSpec:
    """Two identical steps that differ only in an input value, plus a custom cache key."""
    from kfp import dsl

    @dsl.component(base_image="python:3.11")
    def square(x: int) -> int:
        return x * x

    @dsl.pipeline(name="cached-steps")
    def pipeline(a: int = 2, b: int = 3) -> None:
        square(x=a).set_caching_options(True)
        square(x=b).set_caching_options(True)
        square(x=a).set_caching_options(True, cache_key="v1")
        square(x=b).set_caching_options(True, cache_key="v1")
        square(x=a).set_caching_options(False)

    return parse_pipeline_spec(compile_pipeline(pipeline))


@functools.cache
def _skip_diamond_ir() -> dict[str, Any]:
    from kfp import dsl

    @dsl.component(base_image="python:3.11")
    def fail() -> None:
        raise SystemExit(1)

    @dsl.component(base_image="python:3.11")
    def echo() -> None:
        print("hi")

    @dsl.pipeline(name="skip-diamond")
    def pipeline() -> None:
        a = fail()
        b = echo().after(a)
        c = echo().after(a, b)
        echo().after(a, c)

    return compile_pipeline(pipeline)


def skip_diamond_ir() -> dict[str, Any]:
    """``a = fail(); b = echo().after(a); c = echo().after(a, b); d = echo().after(a, c)``
    as the SDK compiles it: tasks sorted by name (echo, echo-2, echo-3, fail), which for
    this diamond lists each echo after the echo it waits for."""
    return copy.deepcopy(_skip_diamond_ir())


@functools.cache
def sequential_loop_of_skips(count: int) -> PipelineSpec:
    """ParallelFor over ``count`` ints, parallelism 1, whose body is an If that is always false."""
    from kfp import dsl

    @dsl.component(base_image="python:3.11")
    def show(msg: str) -> None:
        print(msg)

    @dsl.pipeline(name="loop-of-skips")
    def pipeline() -> None:
        with dsl.ParallelFor(list(range(count)), parallelism=1) as x, dsl.If(x > count):
            show(msg="never")

    return parse_pipeline_spec(compile_pipeline(pipeline))


@functools.cache
def fan_out(parallelism: int = 0) -> PipelineSpec:
    """ParallelFor over ``numbers`` (no limit by default), double each, dsl.Collected into a sum."""
    return parse_pipeline_spec(fan_out_ir(parallelism))


def fan_out_ir(parallelism: int = 0) -> dict[str, Any]:
    """:func:`fan_out` as the IR document (a fresh copy each call)."""
    return copy.deepcopy(_fan_out_ir(parallelism))


@functools.cache
def _fan_out_ir(parallelism: int) -> dict[str, Any]:
    from kfp import dsl

    @dsl.component(base_image="python:3.11")
    def double(x: int) -> int:
        return 2 * x

    @dsl.component(base_image="python:3.11")
    def total(xs: list) -> int:
        return sum(xs)

    @dsl.pipeline(name="fan-out")
    def pipeline(numbers: list = [1, 2, 3]) -> int:  # noqa: B006 - a pipeline default, never mutated
        with dsl.ParallelFor(numbers, parallelism=parallelism) as x:
            doubled = double(x=x)
        return total(xs=dsl.Collected(doubled.output)).output

    return compile_pipeline(pipeline)


def echo_each_ir() -> dict[str, Any]:
    """A ParallelFor over a pipeline parameter ``words`` (a list of strings), each item
    echoed by a lightweight step; as the IR document (a fresh copy each call)."""
    return copy.deepcopy(_echo_each_ir())


@functools.cache
def _echo_each_ir() -> dict[str, Any]:
    from kfp import dsl

    @dsl.component(base_image="python:3.11")
    def echo(x: str) -> str:
        return x

    @dsl.pipeline(name="echo-each")
    def pipeline(words: list = ["a"]):  # noqa: B006 - a pipeline default, never mutated
        with dsl.ParallelFor(words) as word:
            echo(x=word)

    return compile_pipeline(pipeline)


@functools.cache
def nested_fan_out() -> PipelineSpec:
    """A ParallelFor over ``rows`` holding a ParallelFor over ``cols``, then one step after both."""
    from kfp import dsl

    @dsl.component(base_image="python:3.11")
    def cell(row: str, col: str) -> None:
        print(row, col)

    @dsl.component(base_image="python:3.11")
    def done() -> None:
        print("done")

    @dsl.pipeline(name="nested-fan-out")
    def pipeline(rows: list = [1], cols: list = [1]) -> None:  # noqa: B006 - pipeline defaults
        with dsl.ParallelFor(rows) as row, dsl.ParallelFor(cols) as col:
            cells = cell(row=row, col=col)
        done().after(cells)

    return parse_pipeline_spec(compile_pipeline(pipeline))
