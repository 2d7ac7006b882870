"""The static graph drawn from the IR."""

from __future__ import annotations

from apps.engine.graph import artifact_node_id, condition_text, graph_from_ir
from apps.engine.keys import template_key
from apps.engine.spec import parse_pipeline_spec
from tests.engine.corpus import load_documents, load_spec, valid_files


def test_graph_of_a_chain() -> None:
    graph = graph_from_ir(load_spec("sequential_v2.yaml"))
    assert [n.id for n in graph.nodes] == ["root/download", "root/echo"]
    assert [(e.source, e.target) for e in graph.edges] == [("root/download", "root/echo")]
    echo = graph.node("root/echo")
    assert echo is not None
    assert echo.kind == "container"
    assert echo.parent is None
    assert echo.detail["image"]
    assert echo.detail["inputs"]["parameters"]["downloaded"]["from"] == "download.downloaded"
    assert "command" in echo.detail
    assert "args" in echo.detail


def test_graph_groups_loops_conditions_and_exit_tasks() -> None:
    graph = graph_from_ir(load_spec("pipeline_with_loops_and_conditions.yaml"))
    condition = graph.node("root/condition-1")
    assert condition is not None
    assert condition.kind == "condition"
    assert "flip-coin-op-Output" in condition.detail["condition"]
    loop = graph.node("root/condition-1/for-loop-2")
    assert loop is not None
    assert loop.kind == "loop"
    assert loop.parent == "root/condition-1"
    inner = [n.id for n in graph.children("root/condition-1/for-loop-2")]
    assert "root/condition-1/for-loop-2/condition-3" in inner
    assert ("root/condition-1/args-generator-op-2", "root/condition-1/for-loop-2") in {
        (e.source, e.target) for e in graph.edges
    }

    exit_graph = graph_from_ir(load_spec("failing/pipeline_with_exit_handler.yaml"))
    kinds = {n.id: n.kind for n in exit_graph.nodes}
    assert kinds["root/print-op"] == "exit"
    assert kinds["root/exit-handler-1"] == "dag"
    assert kinds["root/exit-handler-1/fail-op"] == "container"


def test_graph_importer_and_node_ids_match_run_keys() -> None:
    graph = graph_from_ir(load_spec("pipeline_with_importer.yaml"))
    importers = [n for n in graph.nodes if n.kind == "importer"]
    assert importers
    # This importer takes its URI from its "uri" input (a pipeline parameter).
    assert importers[0].detail["artifact_uri"] == "input uri"
    assert importers[0].detail["artifact_type"] == "system.Dataset"
    assert template_key("root/for-loop-1#4/print-op") == "root/for-loop-1/print-op"


def test_every_corpus_pipeline_draws() -> None:
    for path in valid_files():
        ir, platform = load_documents(path)
        graph = graph_from_ir(parse_pipeline_spec(ir, platform))
        ids = {n.id for n in graph.nodes}
        assert len(ids) == len(graph.nodes)
        assert all(n.parent is None or n.parent in ids for n in graph.nodes)
        assert all(e.source in ids and e.target in ids for e in graph.edges)


def test_artifacts_passed_between_tasks_are_nodes_between_them() -> None:
    graph = graph_from_ir(load_spec("artifacts_complex.yaml"))
    artifacts = [n for n in graph.nodes if n.kind == "artifact"]
    assert artifacts
    edges = {(e.source, e.target) for e in graph.edges}
    for node in artifacts:
        producer = node.detail["producer"]
        assert node.id == artifact_node_id(producer, node.label)
        assert (producer, node.id) in edges
        consumers = [t for s, t in edges if s == node.id]
        assert consumers
        # The dependency is drawn through the artifact, not again beside it.
        assert all((producer, c) not in edges for c in consumers)
    # A pipeline that passes only parameters gets no artifact nodes.
    chain = graph_from_ir(load_spec("sequential_v2.yaml"))
    assert not [n for n in chain.nodes if n.kind == "artifact"]


def test_conditions_read_as_written() -> None:
    raw = "int(inputs.parameter_values['pipelinechannel--random-num-Output']) > 5"
    assert condition_text(raw) == "int(random-num-Output) > 5"
    assert condition_text("!(inputs.parameter_values['pipelinechannel--flip-Output'] == 'heads')") == (
        "!(flip-Output == 'heads')"
    )
    graph = graph_from_ir(load_spec("pipeline_with_loops_and_conditions.yaml"))
    condition = graph.node("root/condition-1")
    assert condition is not None and "pipelinechannel" not in condition.detail["condition_text"]
