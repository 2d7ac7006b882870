"""The benchmark pipelines, written with the kfp SDK. The same definitions are
compiled for Canal and called directly under kfp.local, so both run the same
components (imported only inside a venv that has kfp). No ``from __future__ import
annotations``: kfp reads the type hints at decoration time."""

import functools

from kfp import dsl

component = functools.partial(dsl.component, base_image="python:3.11")


@component
def add_one(x: int) -> int:
    return x + 1


@dsl.pipeline(name="chain-20")
def chain_20(start: int = 0) -> int:
    task = add_one(x=start)
    for _ in range(19):
        task = add_one(x=task.output)
    return task.output


@component
def nap(i: int) -> int:
    import time

    time.sleep(1)
    return i


@component
def total(values: list[int]) -> int:
    # int(): kfp.local hands a Collected list of ints over as floats (its known bug), and
    # would then fail the int return-type check; the benchmark times, it doesn't test that.
    return int(sum(values))


@dsl.pipeline(name="fan-8")
def fan_8() -> int:
    with dsl.ParallelFor(items=[0, 1, 2, 3, 4, 5, 6, 7]) as item:
        napped = nap(i=item)
    return total(values=dsl.Collected(napped.output)).output


@dsl.container_component
def emit(i: int, out: dsl.OutputPath(str)):
    """A container step that only writes its input back: one sh process, no Python."""
    return dsl.ContainerSpec(image="alpine:3", command=["sh", "-c", 'printf %s "$0" > "$1"'], args=[i, out])


@component
def count(values: list) -> int:
    return len(values)


def fan_out(width: int):
    """ParallelFor of ``width`` container steps, then a dsl.Collected fan-in."""

    @dsl.pipeline(name=f"fan-{width}")
    def pipeline() -> int:
        with dsl.ParallelFor(items=list(range(width))) as item:
            emitted = emit(i=item)
        return count(values=dsl.Collected(emitted.outputs["out"])).output

    return pipeline


PIPELINES = {"chain-20": chain_20, "fan-8": fan_8, "fan-1000": fan_out(1000), "fan-5000": fan_out(5000)}
