"""Tiny pipelines compiled with the real kfp SDK for the client, CLI and schema
tests. Container components run as host processes under the local backend, so
they need no task environment and finish in well under a second.

(No ``from __future__ import annotations`` here: kfp reads the annotations.)"""

from pathlib import Path

from kfp import compiler, dsl


@dsl.container_component
def write_text(text: str, out: dsl.Output[dsl.Artifact]):  # type: ignore[no-untyped-def]
    """Write ``text`` into the output artifact."""
    return dsl.ContainerSpec(
        image="alpine:3.20",
        command=["sh", "-c", 'mkdir -p "$(dirname "$1")" && printf "%s" "$0" > "$1"'],
        args=[text, out.path],
    )


@dsl.container_component
def show(data: dsl.Input[dsl.Artifact]):  # type: ignore[no-untyped-def]
    """Print the artifact it is given."""
    return dsl.ContainerSpec(image="alpine:3.20", command=["cat"], args=[data.path])


@dsl.pipeline(name="api-hello", description="Writes a text artifact and prints it.")
def hello_pipeline(text: str = "hello"):  # type: ignore[no-untyped-def]
    written = write_text(text=text)
    show(data=written.outputs["out"])


@dsl.container_component
def sleep_for(seconds: int):  # type: ignore[no-untyped-def]
    return dsl.ContainerSpec(image="alpine:3.20", command=["sleep"], args=[seconds])


@dsl.pipeline(name="api-sleeper")
def sleeper_pipeline(seconds: int = 300):  # type: ignore[no-untyped-def]
    sleep_for(seconds=seconds)


def compile_to(pipeline: object, path: Path) -> Path:
    compiler.Compiler().compile(pipeline_func=pipeline, package_path=str(path))  # type: ignore[arg-type]
    return path
