"""Access to the shared KFP corpus and tiny IR builders for the engine tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from apps.engine.model import ArtifactRef
from apps.engine.spec import PipelineSpec, parse_pipeline_spec
from tests.paths import KFP_VALID  # ../shared beside the project, or CANAL_SHARED_DIR


def valid_files() -> list[Path]:
    """Every compiled pipeline under ``valid/`` (recursively), sorted."""
    return sorted(KFP_VALID.rglob("*.yaml"))


def load_documents(path: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The pipeline spec and the optional platform spec of a compiled YAML file."""
    with path.open() as fh:
        docs = [d for d in yaml.safe_load_all(fh) if d is not None]
    return docs[0], (docs[1] if len(docs) > 1 else None)


def load_spec(relative: str) -> PipelineSpec:
    """Parse a corpus file given relative to ``valid/``."""
    ir, platform = load_documents(KFP_VALID / relative)
    return parse_pipeline_spec(ir, platform)


def container_executor(image: str = "alpine", command: list[str] | None = None) -> dict[str, Any]:
    """A minimal container executor."""
    return {"container": {"image": image, "command": command or ["echo", "hi"]}}


def minimal_ir() -> dict[str, Any]:
    """A small valid two-step pipeline: ``a`` produces ``out``, ``b`` consumes it."""
    return copy.deepcopy(
        {
            "pipelineInfo": {"name": "mini"},
            "schemaVersion": "2.1.0",
            "sdkVersion": "kfp-2.17.3",
            "components": {
                "comp-a": {
                    "executorLabel": "exec-a",
                    "inputDefinitions": {"parameters": {"x": {"parameterType": "NUMBER_INTEGER"}}},
                    "outputDefinitions": {"parameters": {"out": {"parameterType": "NUMBER_INTEGER"}}},
                },
                "comp-b": {
                    "executorLabel": "exec-b",
                    "inputDefinitions": {"parameters": {"y": {"parameterType": "NUMBER_INTEGER"}}},
                },
            },
            "deploymentSpec": {"executors": {"exec-a": container_executor(), "exec-b": container_executor()}},
            "root": {
                "inputDefinitions": {
                    "parameters": {
                        "n": {"parameterType": "NUMBER_INTEGER", "defaultValue": 1.0, "isOptional": True}
                    }
                },
                "dag": {
                    "tasks": {
                        "a": {
                            "componentRef": {"name": "comp-a"},
                            "taskInfo": {"name": "a"},
                            "inputs": {"parameters": {"x": {"componentInputParameter": "n"}}},
                        },
                        "b": {
                            "componentRef": {"name": "comp-b"},
                            "taskInfo": {"name": "b"},
                            "dependentTasks": ["a"],
                            "inputs": {
                                "parameters": {
                                    "y": {
                                        "taskOutputParameter": {
                                            "producerTask": "a",
                                            "outputParameterKey": "out",
                                        }
                                    }
                                }
                            },
                        },
                    }
                },
            },
        }
    )


_DUMMY = {"STRING": "x", "NUMBER_INTEGER": 1, "NUMBER_DOUBLE": 1.5, "BOOLEAN": True, "LIST": [], "STRUCT": {}}


def dummy_inputs(spec: PipelineSpec) -> dict[str, Any]:
    """A value for every required root parameter (by type) and an ArtifactRef per root artifact,
    so any corpus pipeline can be started."""
    params: dict[str, Any] = {
        name: _DUMMY[d.parameter_type]
        for name, d in spec.root.input_definitions.parameters.items()
        if not d.has_default and not d.is_optional
    }
    for name, art in spec.root.input_definitions.artifacts.items():
        params[name] = ArtifactRef(f"in-{name}", name, f"gs://bucket/{name}", art.artifact_type.schema_title)
    return params
