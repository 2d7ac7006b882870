"""Argo resources: strict schema, reference and cycle checks, kinds, and the graph."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from apps.importers import ImportLimits, PipelineImportError, argo_graph, import_pipeline, import_spec_dict
from apps.importers.argo import depends_names, strict_schema
from apps.importers.schema_check import load_schema
from tests.paths import ARGO_SCHEMA

from .conftest import ARGO_EXAMPLES, MINIMAL_WORKFLOW

SCHEMAS = Path(__file__).resolve().parents[2] / "apps" / "importers" / "schemas"


def refused(text: str, filename: str = "wf.yaml") -> PipelineImportError:
    with pytest.raises(PipelineImportError) as caught:
        import_pipeline(text.encode(), filename)
    return caught.value


def graph_of(text: str) -> Any:
    return argo_graph(yaml.safe_load(text))


def test_minimal_workflow_imports() -> None:
    result = import_pipeline(MINIMAL_WORKFLOW.encode(), "wf.yaml")
    assert (result.format, result.name, result.display_name) == ("argo", "hello", "hello")
    assert result.pipeline_spec == yaml.safe_load(MINIMAL_WORKFLOW)
    assert result.platform_spec is None
    assert result.content_hash == hashlib.sha256(MINIMAL_WORKFLOW.encode()).hexdigest()


def test_title_and_description_annotations() -> None:
    text = MINIMAL_WORKFLOW.replace(
        "  generateName: hello-\n",
        "  name: hi\n  annotations:\n    workflows.argoproj.io/title: Hi there\n"
        "    workflows.argoproj.io/description: |\n      Says hi.\n",
    )
    result = import_pipeline(text.encode(), "wf.yaml")
    assert (result.name, result.display_name, result.description) == ("hi", "Hi there", "Says hi.")


def test_vendored_schema_is_unmodified_and_valid_once_patched() -> None:
    # Compared when the corpus is here (a CI run without it fails at its start).
    if ARGO_SCHEMA.is_file():
        assert (SCHEMAS / "argo-workflows.schema.json").read_bytes() == ARGO_SCHEMA.read_bytes()
    patched = strict_schema(load_schema("argo-workflows.schema.json"))
    Draft202012Validator.check_schema({"$schema": patched["$schema"], "definitions": patched["definitions"]})
    assert patched["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["type"] == [
        "string",
        "integer",
    ]
    assert patched["definitions"]["io.argoproj.workflow.v1alpha1.Template"]["additionalProperties"] is False


def test_int_or_string_accepts_integers() -> None:
    text = MINIMAL_WORKFLOW.replace(
        "  - name: echo\n", "  - name: echo\n    retryStrategy:\n      limit: 3\n"
    )
    assert import_pipeline(text.encode(), "wf.yaml").name == "hello"


@pytest.mark.parametrize(
    ("old", "new", "message", "field_path"),
    [
        (
            "entrypoint: main",
            "entrypoint: mian",
            "entrypoint 'mian' is not a template in this workflow",
            "spec.entrypoint",
        ),
        ("  entrypoint: main\n", "", "a Workflow needs spec.entrypoint", "spec"),
        (
            "        template: echo\n        dependencies",
            "        template: ehco\n        dependencies",
            "template 'ehco' does not exist",
            "spec.templates[0].dag.tasks[1].template",
        ),
        (
            "dependencies: [a]",
            "dependencies: [z]",
            "depends on task 'z', which is not in this DAG",
            "spec.templates[0].dag.tasks[1].dependencies[0]",
        ),
        (
            "dependencies: [a]",
            "depends: 'a.Succeeded || z'",
            "'depends' names task 'z'",
            "spec.templates[0].dag.tasks[1].depends",
        ),
        ("  - name: echo\n", "  - name: main\n", "duplicate template name 'main'", "spec.templates[1].name"),
        (
            "      - name: b\n",
            "      - name: a\n",
            "duplicate task name 'a'",
            "spec.templates[0].dag.tasks[1].name",
        ),
        (
            "      image: busybox\n",
            "      image: 3\n",
            "expected a string, got 3",
            "spec.templates[1].container.image",
        ),
        ("kind: Workflow", "kind: Workflw", "Argo kind 'Workflw' is not a pipeline", "kind"),
        (
            "  generateName: hello-\n",
            f"  generateName: {'h' * 254}\n",
            "metadata.generateName is 254 characters long; Kubernetes names are at most 253",
            "metadata.generateName",
        ),
    ],
)
def test_semantic_and_schema_errors(old: str, new: str, message: str, field_path: str) -> None:
    assert old in MINIMAL_WORKFLOW
    error = refused(MINIMAL_WORKFLOW.replace(old, new))
    assert message in error.message
    assert error.field_path == field_path
    assert error.line is not None


def test_dependency_cycle_names_the_tasks() -> None:
    text = MINIMAL_WORKFLOW.replace(
        "      - name: a\n        template: echo\n",
        "      - name: a\n        template: echo\n        dependencies: [b]\n",
    )
    error = refused(text)
    assert "dependency cycle: " in error.message
    assert "a -> b" in error.message or "b -> a" in error.message
    assert error.field_path is not None
    assert error.field_path.startswith("spec.templates[0].dag.tasks[")


def test_steps_reference_must_exist() -> None:
    text = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: s}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: one
        template: nope
"""
    error = refused(text)
    assert "template 'nope' does not exist" in error.message
    assert error.field_path == "spec.templates[0].steps[0][0].template"
    assert error.line == 10


def test_missing_api_version() -> None:
    assert (
        "missing required field 'apiVersion'"
        in refused(MINIMAL_WORKFLOW.replace("apiVersion: argoproj.io/v1alpha1\n", "")).message
    )


def test_cron_workflow_becomes_a_workflow_with_a_warning() -> None:
    result = import_pipeline((ARGO_EXAMPLES / "cron-workflow.yaml").read_bytes(), "cron-workflow.yaml")
    assert result.pipeline_spec["kind"] == "Workflow"
    assert result.pipeline_spec["metadata"]["name"] == "hello-world"
    assert "hello-world-with-time" in {t["name"] for t in result.pipeline_spec["spec"]["templates"]}
    assert any("'* * * * *'" in w and "recurring run" in w for w in result.warnings)


def test_workflow_template_ref_imports_with_a_warning() -> None:
    path = ARGO_EXAMPLES / "workflow-template" / "workflow-template-ref.yaml"
    result = import_pipeline(path.read_bytes(), path.name)
    assert any("workflow-template-submittable" in w for w in result.warnings)
    assert [n.kind for n in result.graph.nodes] == ["root"]


def test_argo_spec_dict() -> None:
    result = import_spec_dict(yaml.safe_load(MINIMAL_WORKFLOW), source_name="body")
    assert result.format == "argo"
    assert result.source_filename == "body"
    with pytest.raises(PipelineImportError, match="platform_spec only applies to KFP"):
        import_spec_dict(yaml.safe_load(MINIMAL_WORKFLOW), {"platforms": {}})


def test_depends_expression_parsing() -> None:
    assert depends_names("(a.Succeeded || b.Failed) && !c && d-1.AnySucceeded") == [
        ("a", "Succeeded"),
        ("b", "Failed"),
        ("c", ""),
        ("d-1", "AnySucceeded"),
    ]


# --- graph ---------------------------------------------------------------------------


def test_dag_graph_has_dependencies_and_container_details() -> None:
    graph = graph_of(MINIMAL_WORKFLOW.replace("dependencies: [a]", "depends: a.Failed"))
    assert [(n.id, n.kind, n.parent, n.component) for n in graph.nodes] == [
        ("a", "container", None, "echo"),
        ("b", "container", None, "echo"),
    ]
    assert [(e.source, e.target, e.label) for e in graph.edges] == [("a", "b", "Failed")]
    assert graph.node("a").detail == {
        "template": "echo",
        "type": "container",
        "image": "busybox",
        "command": ["echo"],
        "args": ["hi"],
    }


def test_steps_are_sequential_groups_of_parallel_steps() -> None:
    graph = graph_of((ARGO_EXAMPLES / "steps.yaml").read_text())
    assert [(n.id, n.kind, n.parent) for n in graph.nodes] == [
        ("hello1", "container", None),
        ("[1]", "dag", None),
        ("[1]/hello2a", "container", "[1]"),
        ("[1]/hello2b", "container", "[1]"),
    ]
    assert [(e.source, e.target) for e in graph.edges] == [("hello1", "[1]")]


def test_nested_templates_are_groups_and_recursion_is_collapsed() -> None:
    nested = graph_of((ARGO_EXAMPLES / "dag-nested.yaml").read_text())
    assert nested.node("A") is not None
    assert nested.node("A").kind == "dag"
    assert {n.id for n in nested.children("A")} == {"A/A", "A/B", "A/C", "A/D"}
    assert ("A/A", "A/B") in {(e.source, e.target) for e in nested.edges}
    recursive = graph_of((ARGO_EXAMPLES / "coinflip-recursive.yaml").read_text())
    tails = recursive.node("[1]/tails")
    assert tails is not None
    assert tails.detail["recursive"] is True
    assert tails.detail["when"] == "{{steps.flip-coin.outputs.result}} == tails"


def test_exit_handler_is_an_exit_node() -> None:
    graph = graph_of((ARGO_EXAMPLES / "exit-handlers.yaml").read_text())
    exit_node = graph.node("onExit")
    assert exit_node is not None
    assert exit_node.kind == "exit"
    assert graph.children("onExit")


def test_template_library_without_entrypoint_shows_each_template() -> None:
    path = ARGO_EXAMPLES / "cluster-workflow-template" / "clustertemplates.yaml"
    first = path.read_text().split("---")[0]
    result = import_pipeline(first.encode(), "clustertemplates.yaml")
    assert [n.id for n in result.graph.nodes] == ["print-message"]
    assert any("ClusterWorkflowTemplate imported as a template" in w for w in result.warnings)
    assert any("no spec.entrypoint" in w for w in result.warnings)


def test_graph_is_cut_at_the_node_limit() -> None:
    tasks = "".join(f"      - name: t{i}\n        template: inner\n" for i in range(10))
    inner = "".join(f"      - name: u{i}\n        template: echo\n" for i in range(10))
    text = f"""\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: wide}}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
{tasks}  - name: inner
    dag:
      tasks:
{inner}  - name: echo
    container: {{image: busybox}}
"""
    assert len(graph_of(text).nodes) == 110
    result = import_pipeline(text.encode(), "wide.yaml", limits=ImportLimits(max_graph_nodes=30))
    assert len(result.graph.nodes) <= 30
    assert any("graph was cut at 30 nodes" in w for w in result.warnings)


def test_template_needs_exactly_one_body() -> None:
    error = refused(
        MINIMAL_WORKFLOW.replace("    container:\n", "    script: {image: x, source: y}\n    container:\n")
    )
    assert "a template needs exactly one of container, script" in error.message
    assert "it has container, script" in error.message
    assert error.field_path == "spec.templates[1]"
    empty = refused(
        MINIMAL_WORKFLOW.replace("  - name: echo\n    container:\n", "  - name: echo\n    x-container:\n")
    )
    assert "unknown field 'x-container'" in empty.message


def test_the_kind_given_is_kept_when_a_cron_workflow_is_imported_as_its_workflow() -> None:
    """A CronWorkflow's workflowSpec is imported as a Workflow; ``source_kind`` still says
    what was given (an inline run refuses anything but a Workflow, as KFP does)."""
    doc = yaml.safe_load(MINIMAL_WORKFLOW)
    cron = {**doc, "kind": "CronWorkflow", "metadata": {"name": "nightly"}}
    cron["spec"] = {"schedules": ["0 2 * * *"], "workflowSpec": doc["spec"]}
    imported = import_spec_dict(cron)
    assert (imported.pipeline_spec["kind"], imported.source_kind) == ("Workflow", "CronWorkflow")
    assert import_spec_dict(doc).source_kind == "Workflow"
    template = import_spec_dict({**doc, "kind": "WorkflowTemplate", "metadata": {"name": "t"}})
    assert template.source_kind == "WorkflowTemplate"
