"""Mutated corpus files either import or raise PipelineImportError, never anything else (no 500s).

Seeded, so a failure reproduces; kept small so the suite stays fast. A longer
run of the same generator (tens of thousands of cases) found no crash.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import random
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from apps.importers import PipelineImportError, import_pipeline, import_spec_dict

from .conftest import ARGO_EXAMPLES, KFP_VALID

SOURCES = [
    KFP_VALID / "pipeline_with_loops_and_conditions.yaml",
    KFP_VALID / "pipeline_with_volume.yaml",
    KFP_VALID / "critical" / "parallel_for_after_dependency.yaml",
    KFP_VALID / "critical" / "pipeline_with_secret_as_env.yaml",
    ARGO_EXAMPLES / "dag-diamond-steps.yaml",
    ARGO_EXAMPLES / "steps.yaml",
]
VALUES: list[Any] = [
    None,
    1,
    -1,
    2.5,
    True,
    "",
    "x",
    [],
    {},
    [1],
    {"a": 1},
    "{{x}}",
    "comp-nope",
    ["a"],
    [{}],
]
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
SNIPPETS = [
    b"&a ",
    b"*a",
    b"!!python/object:os.system ",
    b"<<: ",
    b"---\n",
    b"\t",
    b"{",
    b"]",
    b": ",
    b"\xff",
    b"\0",
]


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*path, index))


def _mutate(doc: Any, rng: random.Random) -> None:
    path = rng.choice(list(_paths(doc))[1:])
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if isinstance(parent, dict) and rng.random() < 0.4:
        del parent[path[-1]]
    else:
        parent[path[-1]] = copy.deepcopy(rng.choice(VALUES))


def test_sources_exist() -> None:
    assert all(p.is_file() for p in SOURCES)


def _only_refusals(call: Any) -> None:
    with contextlib.suppress(PipelineImportError):
        call()


@functools.cache
def _parsed_sources() -> list[list[Any]]:
    return [[d for d in yaml.load_all(p.read_text(), Loader=_LOADER) if d] for p in SOURCES]


@pytest.mark.parametrize("seed", range(3))
def test_structural_mutations_never_crash(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(25):
        docs = copy.deepcopy(rng.choice(_parsed_sources()))
        for _ in range(rng.randint(1, 3)):
            _mutate(docs[0], rng)
        text = "---\n".join(yaml.dump(d, Dumper=_DUMPER) for d in docs).encode()
        _only_refusals(lambda text=text: import_pipeline(text, "f.yaml"))
        platform = docs[1] if len(docs) > 1 else None
        _only_refusals(lambda docs=docs, platform=platform: import_spec_dict(docs[0], platform))


@pytest.mark.parametrize("seed", range(3))
def test_text_mutations_never_crash(seed: int) -> None:
    rng = random.Random(seed)
    blobs = [p.read_bytes() for p in SOURCES]
    for _ in range(40):
        data = bytearray(rng.choice(blobs))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            if rng.random() < 0.5:
                data[at:at] = rng.choice(SNIPPETS)
            else:
                del data[at : at + rng.randint(1, 20)]
        _only_refusals(lambda data=data: import_pipeline(bytes(data), "f.yaml"))
