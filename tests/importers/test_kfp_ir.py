"""KFP IR: structural errors (via KFP's protobuf) and semantic errors from the engine, both with lines."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
import yaml

from apps.engine.spec import SpecError
from apps.importers import ImportedPipeline, PipelineImportError, import_pipeline, import_spec_dict

from .conftest import MINIMAL_IR

TASK_END = "        taskInfo:\n          name: echo\n"


def refused(text: str, filename: str = "pipeline.yaml") -> PipelineImportError:
    with pytest.raises(PipelineImportError) as caught:
        import_pipeline(text.encode(), filename)
    return caught.value


def test_minimal_ir_imports() -> None:
    result = import_pipeline(MINIMAL_IR.encode(), "echo.yaml")
    assert isinstance(result, ImportedPipeline)
    assert (result.format, result.name, result.display_name, result.description) == (
        "kfp-ir",
        "echo",
        "echo",
        "",
    )
    assert result.source_filename == "echo.yaml"
    assert result.content_hash == hashlib.sha256(MINIMAL_IR.encode()).hexdigest()
    assert result.pipeline_spec == yaml.safe_load(MINIMAL_IR)
    assert result.platform_spec is None
    assert result.warnings == ()
    assert [n.label for n in result.graph.nodes if n.kind == "container"] == ["echo"]


def test_display_name_and_description_come_from_pipeline_info() -> None:
    text = MINIMAL_IR.replace(
        "  name: echo\nroot", "  name: echo\n  displayName: Echo!\n  description: Says hi\nroot"
    )
    result = import_pipeline(text.encode(), "p.yaml")
    assert (result.display_name, result.description) == ("Echo!", "Says hi")


def test_unknown_component_reference_is_located() -> None:
    error = refused(
        MINIMAL_IR.replace("name: comp-echo\n        taskInfo", "name: comp-bar\n        taskInfo")
    )
    assert str(error) == (
        "pipeline.yaml, line 24, at root.dag.tasks.echo.componentRef.name: "
        "task 'echo' uses component 'comp-bar', which is not defined in components"
    )


def test_dependency_cycle_is_located() -> None:
    text = MINIMAL_IR.replace(
        TASK_END,
        "        dependentTasks: [two]\n" + TASK_END + "      two:\n        componentRef: {name: comp-echo}\n"
        "        dependentTasks: [echo]\n",
    )
    error = refused(text)
    assert "cycle" in error.message
    assert error.field_path == "root.dag.tasks.two.dependentTasks"
    assert error.line == 30


def test_unknown_producer_task_is_located() -> None:
    text = MINIMAL_IR.replace(
        TASK_END,
        "        inputs:\n          parameters:\n            x:\n              taskOutputParameter:\n"
        "                producerTask: ghost\n                outputParameterKey: out\n" + TASK_END,
    )
    error = refused(text)
    assert "ghost" in error.message
    assert error.field_path == "root.dag.tasks.echo.inputs.parameters.x.taskOutputParameter.producerTask"
    assert error.line == 29


@pytest.mark.parametrize(
    ("old", "new", "message", "field_path"),
    [
        ("enableCache: true", "enableCache: maybe", "expected true or false, got the string 'maybe'", None),
        (
            "        image: python:3.12\n",
            "",
            "missing required field 'image'",
            "deploymentSpec.executors['exec-echo'].container",
        ),
        ("schemaVersion: 2.1.0", "schemaVersion: 1.0.0", "unsupported schemaVersion", "schemaVersion"),
        (
            "executorLabel: exec-echo",
            "executorLabel: 3",
            "expected a string, got 3",
            "components['comp-echo'].executorLabel",
        ),
        (
            "        componentRef:\n          name: comp-echo\n",
            "",
            "missing required field 'componentRef'",
            "root.dag.tasks.echo",
        ),
        (
            "      container:\n",
            "      importer: {artifactUri: {constant: x}}\n      container:\n",
            "exactly one of 'container', 'importer'",
            "deploymentSpec.executors['exec-echo']",
        ),
        (
            "root:\n  dag:\n",
            "root:\n  executorLabel: exec-echo\n  dag:\n",
            "exactly one of 'dag' or 'executorLabel'",
            "root",
        ),
        ("    tasks:\n", "    taskz:\n", "unknown field 'taskz' (did you mean 'tasks'?)", "root.dag.taskz"),
        (
            "  name: echo\n",
            f"  name: {'p' * 256}\n",
            "pipelineInfo.name is 256 characters long; at most 255",
            "pipelineInfo.name",
        ),
    ],
)
def test_structural_errors(old: str, new: str, message: str, field_path: str | None) -> None:
    assert old in MINIMAL_IR
    error = refused(MINIMAL_IR.replace(old, new))
    assert message in error.message
    if field_path is not None:
        assert error.field_path == field_path
    assert error.line is not None


LONG = "n" * 256
ARTIFACT_TYPE = "{schemaTitle: system.Artifact, schemaVersion: 0.0.1}"
OUTPUTS = "    executorLabel: exec-echo\n    outputDefinitions:\n      artifacts:\n"


@pytest.mark.parametrize(
    ("old", "new", "message", "field_path"),
    [
        (
            "      echo:\n        cachingOptions",
            f"      {LONG}:\n        cachingOptions",
            "task name is 256 characters long; at most 255 are allowed",
            f"root.dag.tasks.{LONG}",
        ),
        (
            "          name: echo\nschemaVersion",
            f"          name: {LONG}\nschemaVersion",
            "taskInfo.name is 256 characters long; at most 255 are allowed",
            "root.dag.tasks.echo.taskInfo.name",
        ),
        (
            "comp-echo",
            LONG,
            "component name is 256 characters long; at most 255 are allowed",
            f"components.{LONG}",
        ),
        (
            "exec-echo",
            LONG,
            "executor label is 256 characters long; at most 255 are allowed",
            f"deploymentSpec.executors.{LONG}",
        ),
        (
            "  name: echo\nroot",
            f"  name: echo\n  displayName: {LONG}\nroot",
            "pipelineInfo.displayName is 256 characters long; at most 255 are allowed",
            "pipelineInfo.displayName",
        ),
        (
            "image: python:3.12",
            f"image: registry.example/{'i' * 1008}",
            "image is 1,025 characters long; at most 1024 are allowed",
            "deploymentSpec.executors['exec-echo'].container.image",
        ),
        (
            "schemaVersion: 2.1.0",
            f"schemaVersion: 2.1.0\ndefaultPipelineRoot: /data/{'r' * 1020}",
            "defaultPipelineRoot is 1,026 characters long; at most 1024 are allowed",
            "defaultPipelineRoot",
        ),
        (
            "    executorLabel: exec-echo\n",
            OUTPUTS + f"        {LONG}:\n          artifactType: {ARTIFACT_TYPE}\n",
            "output artifact name is 256 characters long; at most 255 are allowed",
            f"components['comp-echo'].outputDefinitions.artifacts.{LONG}",
        ),
        (
            "    executorLabel: exec-echo\n",
            OUTPUTS
            + f"        out:\n          artifactType: {ARTIFACT_TYPE.replace('Artifact', 'A' * 122)}\n",
            "schemaTitle is 129 characters long; at most 128 are allowed",
            "components['comp-echo'].outputDefinitions.artifacts.out.artifactType.schemaTitle",
        ),
        (
            "    executorLabel: exec-echo\n",
            OUTPUTS + "        out:\n          artifactType: "
            f"{{schemaTitle: system.Artifact, schemaVersion: 0.0.{'1' * 30}}}\n",
            "schemaVersion is 34 characters long; at most 32 are allowed",
            "components['comp-echo'].outputDefinitions.artifacts.out.artifactType.schemaVersion",
        ),
    ],
)
def test_names_longer_than_their_columns_are_refused(
    old: str, new: str, message: str, field_path: str
) -> None:
    # SQLite would store them; MySQL refuses them, and the run failed when first planned.
    assert old in MINIMAL_IR
    error = refused(MINIMAL_IR.replace(old, new))
    assert message in error.message
    assert error.field_path == field_path
    assert error.line is not None


def _nested_ir(depth: int, name_length: int, *, loop: bool = False) -> str:
    """A pipeline of ``depth`` DAG levels, one task each, the innermost running comp-echo;
    every task named with ``name_length`` characters; with ``loop`` (and ``depth`` > 1)
    the outermost task is a ParallelFor over a raw list."""
    spec = yaml.safe_load(MINIMAL_IR)
    inner = "comp-echo"
    for level in range(depth, 0, -1):
        task: dict[str, object] = {"componentRef": {"name": inner}, "taskInfo": {"name": "t"}}
        dag = {"dag": {"tasks": {f"t{level}".ljust(name_length, "x"): task}}}
        if level == 1:
            spec["root"] = dag
            if loop:
                item = "pipelinechannel--loop-item"
                task["parameterIterator"] = {"items": {"raw": "[1, 2]"}, "itemInput": item}
                spec["components"][inner]["inputDefinitions"] = {
                    "parameters": {item: {"parameterType": "NUMBER_INTEGER"}}
                }
        else:
            inner = f"comp-level-{level}"
            spec["components"][inner] = dag
    return yaml.safe_dump(spec)


def _shared_levels(levels: int, width: int) -> str:
    """``levels`` DAG components, each of ``width`` tasks using the one below: small to
    write, ``width ** levels`` tasks once expanded where they are used."""
    spec = yaml.safe_load(MINIMAL_IR)
    inner = "comp-echo"
    for level in range(levels, 0, -1):
        tasks = {
            f"t{index}": {"componentRef": {"name": inner}, "taskInfo": {"name": "t"}}
            for index in range(width)
        }
        if level == 1:
            spec["root"] = {"dag": {"tasks": tasks}}
        else:
            inner = f"comp-level-{level}"
            spec["components"][inner] = {"dag": {"tasks": tasks}}
    return yaml.safe_dump(spec)


def test_a_pipeline_that_expands_to_too_many_tasks_is_refused_quickly() -> None:
    # 30**4 + 30**3 + 30**2 + 30 = 837,930 tasks from a file of a few KiB: refused in
    # linear time (drawing its graph used to expand every use, for minutes).
    text = _shared_levels(4, 30)
    assert len(text) < 20_000
    started = time.perf_counter()
    error = refused(text)
    assert time.perf_counter() - started < 5  # about 10 ms; anything exponential is far above
    assert "the pipeline declares 837,930 tasks once its DAG components are expanded" in error.message
    assert "at most 20,000 are allowed" in error.message
    assert error.field_path == "root"
    # 30**2 + 30 = 930 tasks: imported, drawn whole.
    result = import_pipeline(_shared_levels(2, 30).encode(), "p.yaml")
    assert len([n for n in result.graph.nodes if n.kind == "container"]) == 900


def test_a_key_longer_than_its_column_is_refused_at_the_task_where_it_overflows() -> None:
    # root + 3 x "/<170 characters>" = 517 characters: the third level's task overflows.
    error = refused(_nested_ir(3, 170))
    assert "is nested too deeply under names too long" in error.message
    assert "takes up to 517 characters" in error.message
    assert "at most 512 are allowed" in error.message
    assert error.field_path == "components['comp-level-3'].dag.tasks." + "t3".ljust(170, "x")
    assert error.line is not None


def test_a_key_that_fits_imports_and_a_loop_counts_its_index() -> None:
    # root + 3 x "/<168 characters>" = 511: it fits. Under a loop, the key keeps room for
    # "#<index>" (8 characters), 519 in all: refused, at the innermost task.
    result = import_pipeline(_nested_ir(3, 168).encode(), "p.yaml")
    assert result.name == "echo"
    error = refused(_nested_ir(3, 168, loop=True))
    assert "takes up to 519 characters" in error.message
    assert "/t1" + "x" * 166 + "#N/" in error.message
    assert error.field_path == "components['comp-level-3'].dag.tasks." + "t3".ljust(168, "x")


def test_platform_spec_document_is_validated_and_located() -> None:
    platform = (
        "---\nplatforms:\n  kubernetes:\n    deploymentSpec:\n      executors:\n        exec-ghost: {}\n"
    )
    error = refused(MINIMAL_IR + platform)
    assert "exec-ghost" in error.message
    assert error.field_path == "platforms.kubernetes.deploymentSpec.executors['exec-ghost']"
    assert error.line == 34
    ok = MINIMAL_IR + platform.replace("exec-ghost", "exec-echo")
    assert import_pipeline(ok.encode(), "p.yaml").platform_spec == {
        "platforms": {"kubernetes": {"deploymentSpec": {"executors": {"exec-echo": {}}}}}
    }


def test_second_document_must_be_a_platform_spec() -> None:
    error = refused(MINIMAL_IR + "---\nsomething: else\n")
    assert "the second YAML document must be the platform spec" in error.message
    assert error.line == 29  # its "---"


def test_three_documents_are_refused() -> None:
    error = refused(MINIMAL_IR + "---\nplatforms: {}\n---\nplatforms: {}\n")
    assert "at most two YAML documents" in error.message


def test_top_level_must_be_a_mapping() -> None:
    assert "the top level must be a mapping, got a list" in refused("- a\n- b\n").message


def test_spec_dict_imports_without_lines() -> None:
    spec = yaml.safe_load(MINIMAL_IR)
    result = import_spec_dict(spec)
    assert result.name == "echo"
    assert result.source_filename == "pipeline_spec"
    assert yaml.safe_load(result.source_text) == spec
    assert result.content_hash == hashlib.sha256(result.source_text.encode()).hexdigest()
    result.pipeline_spec["pipelineInfo"]["name"] = "changed"
    assert spec["pipelineInfo"]["name"] == "echo"  # the caller's dict is not shared


def test_spec_dict_wrapper_with_platform_spec() -> None:
    spec = yaml.safe_load(MINIMAL_IR)
    platform = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {"exec-echo": {}}}}}}
    result = import_spec_dict({"pipeline_spec": spec, "platform_spec": platform})
    assert result.platform_spec == platform
    assert [d for d in yaml.safe_load_all(result.source_text)] == [spec, platform]


def test_spec_dict_errors_carry_paths_not_lines() -> None:
    spec = yaml.safe_load(MINIMAL_IR)
    spec["root"]["dag"]["tasks"]["echo"]["componentRef"]["name"] = "comp-bar"
    with pytest.raises(PipelineImportError) as caught:
        import_spec_dict(json.loads(json.dumps(spec)), source_name="request.pipeline_spec")
    error = caught.value
    assert error.line is None
    assert str(error).startswith("request.pipeline_spec, at root.dag.tasks.echo.componentRef.name: ")


def test_spec_dict_wrapper_refuses_extra_keys_and_non_objects() -> None:
    with pytest.raises(PipelineImportError, match="unknown field 'extra' next to pipeline_spec"):
        import_spec_dict({"pipeline_spec": {}, "extra": 1})
    with pytest.raises(PipelineImportError, match="pipeline_spec must be a JSON object, got a list"):
        import_spec_dict({"pipeline_spec": []})
    with pytest.raises(PipelineImportError, match="not a recognised pipeline"):
        import_spec_dict({"hello": "world"})


def test_spec_error_is_what_the_engine_raises() -> None:
    # The integration relies on SpecError carrying .message and .path.
    error = SpecError("boom", ("root", "dag"))
    assert (error.message, error.path) == ("boom", ("root", "dag"))
