"""Pipelines for the step re-run tests (written with the kfp SDK, compiled on demand).

No ``from __future__ import annotations``: kfp reads the components' type hints."""

from kfp import dsl

from tests.runs.kfp_pipelines import component


@component
def produce(x: int, out: dsl.Output[dsl.Dataset]) -> int:
    with open(out.path, "w") as fh:
        fh.write(f"data-for-{x}")
    return x


@component
def check(x: int, label: str, data: dsl.Input[dsl.Dataset]) -> str:
    with open(data.path) as fh:
        content = fh.read()
    if x < 0:
        raise ValueError(f"x must not be negative, got {x}")
    return f"{label}:{x}:{content}"


@component
def shout(text: str) -> str:
    return text.upper()


@dsl.pipeline(name="rerun-negative")
def fails_when_negative(x: int = -1):
    # check fails for x < 0; shout depends on it, and runs only when x > 5.
    p = produce(x=x)
    c = check(x=p.outputs["Output"], label="ok", data=p.outputs["out"])
    shout(text=c.output)
    with dsl.If(x > 5):
        shout(text="big").set_display_name("big")
