"""Pipelines for the task-environment and resource-limit checks (real kfp SDK; no
``from __future__ import annotations``: kfp reads the type hints)."""

import functools

from kfp import dsl

component = functools.partial(dsl.component, base_image="python:3.11")


@dsl.container_component
def pip_installer(wheel: str, report: dsl.OutputPath(str)):
    # Installs into the task environment (first on PATH), then proves it can import it.
    script = (
        'mkdir -p "$(dirname "$1")" && pip install --quiet --no-index "$0" '
        '&& python3 -c "import canal_probe; print(canal_probe.VALUE)" > "$1"'
    )
    return dsl.ContainerSpec(image="python:3.11", command=["sh", "-c", script, wheel, report])


@dsl.container_component
def importer_check(report: dsl.OutputPath(str)):
    script = (
        'mkdir -p "$(dirname "$0")" && python3 -c '
        '"import importlib.util; print(importlib.util.find_spec(\'canal_probe\') is not None)" > "$0"'
    )
    return dsl.ContainerSpec(image="python:3.11", command=["sh", "-c", script, report])


@dsl.pipeline(name="pip-in-a-step")
def pip_in_a_step(wheel: str):
    first = pip_installer(wheel=wheel).set_caching_options(False)
    importer_check().after(first).set_caching_options(False)


@component
def allocate(mebibytes: int) -> int:
    block = bytearray(mebibytes * 1024 * 1024)  # zero-filled: every page is touched
    return len(block) // (1024 * 1024)


@dsl.pipeline(name="memory-256m")
def memory_256m(mebibytes: int = 1024):
    allocate(mebibytes=mebibytes).set_memory_limit("256M").set_caching_options(False)


@dsl.pipeline(name="memory-2g")
def memory_2g(mebibytes: int = 1024):
    allocate(mebibytes=mebibytes).set_memory_limit("2G").set_caching_options(False)
