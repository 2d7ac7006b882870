"""Canal's Argo driver (``runtime/driver.py``): standard library only, and the same semantics
as the engine it stands in for (values, placeholders, CEL, cache keys, outputs), checked
function against function; then whole driver runs on configurations the compiler wrote,
with the raw values Argo would hand them."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.backends.argo.compiler import ABSENT, driver_source
from apps.backends.argo.compiler_cel import cel_to_tree
from apps.backends.argo.runtime import driver
from apps.engine import cel, values
from apps.engine.cache import build_cache_key, fingerprint
from apps.engine.executor_io import OutputError, collect_outputs, parse_parameter_text
from apps.engine.keys import NodeKind
from apps.engine.model import ArtifactRef, CacheDecision, StepLaunch
from apps.engine.placeholders import PlaceholderContext, render_args, structured_placeholder
from apps.engine.spec import ArtifactTypeSpec, OutputArtifactDef, OutputParameterDef
from tests.backends.argo.helpers import compile_ir, dag_task, role
from tests.engine.corpus import minimal_ir, valid_files
from tests.paths import KFP_VALID, missing

DRIVER = Path(driver.__file__)
TAG = "{" + "{"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


# -- what the file may contain --------------------------------------------------------------


def test_the_driver_imports_only_the_standard_library() -> None:
    tree = ast.parse(DRIVER.read_text())
    modules = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
        if not (isinstance(node, ast.ImportFrom) and node.module == "__future__")
    }
    assert modules <= set(sys.stdlib_module_names), modules - set(sys.stdlib_module_names)


def test_the_shipped_driver_holds_no_argo_tag_and_runs() -> None:
    assert TAG not in DRIVER.read_text()
    plain = driver_source(plain=True)
    assert TAG not in plain and '"""' not in plain  # docstrings stripped
    namespace: dict[str, Any] = {"__name__": "canal_driver"}
    exec(compile(driver_source(), "canal_driver.py", "exec"), namespace)  # noqa: S102 - our own code
    assert namespace["value_to_text"](2.5) == "2.5"


# -- the same functions as the engine ---------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_values_print_like_the_engine(value: Any) -> None:
    try:
        expected = values.go_json_dumps(value)
    except (ValueError, TypeError):
        with pytest.raises((ValueError, TypeError)):
            driver.go_json_dumps(value)
        return
    assert driver.go_json_dumps(value) == expected
    assert driver.value_to_text(value) == values.value_to_text(value)


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**30), 10**30))
def test_numbers_format_like_the_engine(number: float) -> None:
    assert driver.format_float_f(number) == values.format_float_f(number)
    assert driver.format_float_g(number) == values.format_float_g(number)


@pytest.mark.parametrize("ptype", ["STRING", "NUMBER_INTEGER", "NUMBER_DOUBLE", "BOOLEAN", "LIST", "STRUCT"])
@pytest.mark.parametrize("text", ["3", " 4 ", "2.5", "true", "False", "[1, 2]", '{"a": 1}', "x", "", "1e3"])
def test_output_parameter_files_parse_like_the_engine(ptype: str, text: str) -> None:
    try:
        expected = parse_parameter_text(text, ptype, "p")
    except OutputError as exc:
        message = str(exc)
    else:
        assert driver.parse_parameter_text(text, ptype, "p") == expected
        return
    with pytest.raises(driver.OutputError) as ours:
        driver.parse_parameter_text(text, ptype, "p")
    assert str(ours.value) == message


def _corpus_expressions() -> list[str]:
    found: set[str] = set()
    for path in valid_files() if KFP_VALID.is_dir() else []:
        for doc in yaml.safe_load_all(path.read_text()):
            stack = [doc]
            while stack:
                node = stack.pop()
                if isinstance(node, dict):
                    for key, value in node.items():
                        if key in ("condition", "parameterExpressionSelector") and isinstance(value, str):
                            found.add(value)
                        else:
                            stack.append(value)
                elif isinstance(node, list):
                    stack.extend(node)
    return sorted(found)


CONDITION_INPUTS: list[dict[str, Any]] = [
    {},
    {"x": "heads", "y": 3, "z": 2.5, "b": True},
    {"x": "tails", "y": "7", "z": "1.5", "b": False},
]
EXTRA = [
    "inputs.parameter_values['y'] >= 5 || inputs.parameter_values['x'] == 'heads'",
    "double(inputs.parameter_values['z']) > 2 && !(inputs.parameter_values['b'] == true)",
    "inputs.parameter_values['x'] in ['heads', 'tails'] ? true : false",
    "size(inputs.parameter_values['x']) == 5 && inputs.parameter_values['x'].startsWith('h')",
    "int(inputs.parameter_values['y']) + 1 == 4",
    "inputs.parameter_values['missing'] == 1",
]


@pytest.mark.parametrize("expression", _corpus_expressions() + EXTRA)
def test_conditions_and_selectors_evaluate_like_the_engines_cel(expression: str) -> None:
    tree = cel_to_tree(expression)
    names = set()
    for token in expression.replace("'", " ").replace("[", " ").replace("]", " ").split():
        if token.startswith("pipelinechannel--"):
            names.add(token)
    for base in CONDITION_INPUTS:
        params = dict(base)
        for i, name in enumerate(sorted(names)):
            params[name] = ["heads", 7, "2", True, '{"A_a": 1, "B_b": "x"}'][i % 5]
        if expression.startswith("parseJson") or "string_value" in expression:
            for candidate in ('{"A_a": 3, "B_b": [1]}', 5, "x"):
                _same_outcome(
                    lambda c=candidate: cel.select(c, expression),
                    lambda c=candidate: driver.select(c, tree),
                )
            continue
        _same_outcome(
            lambda p=params: cel.evaluate_condition(expression, p),
            lambda p=params: driver.evaluate_condition(tree, p, {}),
        )


def _same_outcome(engine: Any, ours: Any) -> None:
    try:
        expected = engine()
    except cel.CelError:
        with pytest.raises(driver.CelError):
            ours()
        return
    assert ours() == expected


def test_placeholders_render_like_the_engine() -> None:
    executor_input = {
        "inputs": {
            "parameterValues": {"s": "a b", "n": 3, "f": 2.5, "l": [1, 2], "t": True, "d": {"k": "v"}},
            "artifacts": {
                "a": {"artifacts": [{"name": "id/a", "uri": "s3://b/k", "metadata": {"m": 1.0}, "type": {}}]}
            },
        },
        "outputs": {
            "parameters": {"o": {"outputFile": "/canal/outputs/p-o"}},
            "artifacts": {"x": {"artifacts": [{"name": "x", "uri": "/canal/outputs/x", "metadata": {}}]}},
            "outputFile": "/canal/outputs/executor-output.json",
        },
    }
    args = [
        "{{$}}",
        "{{$.inputs.parameters['s']}}-{{$.inputs.parameters['n']}}/{{$.inputs.parameters['f']}}",
        "{{$.inputs.parameters['l']}} {{$.inputs.parameters['t']}} {{$.inputs.parameters['d']}}",
        "{{$.inputs.artifacts['a'].uri}} {{$.inputs.artifacts['a'].path}}",
        "{{$.inputs.artifacts['a'].metadata}}",
        "{{$.inputs.artifacts['a'].metadata['m']}} {{$.inputs.artifacts['a']}}",
        "{{$.outputs.parameters['o'].output_file}} {{$.outputs.artifacts['x'].path}}",
        "{{$.outputs.output_file}}",
        "{{$.inputs.parameters['absent']}} {{$.pipeline_task_name}} {{$.pipeline_job_uuid}}",
        '{"Concat": ["a", "{{$.inputs.parameters[\'n\']}}", '
        '{"IfPresent": {"InputName": "s", "Then": ["-y"]}}]}',
        '{"IfPresent": {"InputName": "absent", "Then": ["x"], "Else": ["e1", "e2"]}}',
        '{"IfPresent": {"InputName": "absent", "Then": ["x"]}}',
    ]
    context = PlaceholderContext(pipeline_task_name="t", pipeline_job_uuid="u")
    expected = render_args(args, executor_input, context)
    renderer = driver.Renderer(
        executor_input, {TAG + "$.pipeline_task_name}}": "t", TAG + "$.pipeline_job_uuid}}": "u"}
    )
    ours = [item for arg in args for item in renderer.items(structured_placeholder(arg) or arg)]
    assert ours == expected


def test_cache_fingerprints_are_the_engines() -> None:
    params = {"a": 1, "b": "x", "c": [1.5, {"k": None}]}
    artifacts = {"in": [ArtifactRef(id="42", name="in", uri="s3://b/k")]}
    outputs = {"m": OutputArtifactDef("m", ArtifactTypeSpec("system.Model"), metadata={"k": 1})}
    engine = build_cache_key(
        input_parameters=params,
        input_artifacts=artifacts,
        output_parameter_types={"p": "STRING"},
        output_artifacts=outputs,
        image="python:3.11",
        command=["sh", "-c"],
        args=["{{$}}"],
        pvc_names=["b", "a", "b"],
    )
    ours = driver.cache_key(
        params,
        {"in": [{"name": "42", "uri": "s3://b/k"}]},
        {
            "image": "python:3.11",
            "command": ["sh", "-c"],
            "args": ["{{$}}"],
            "output_parameters": {"p": "STRING"},
            "output_artifacts": {"m": {"type": outputs["m"].artifact_type.to_json(), "metadata": {"k": 1}}},
        },
        ["b", "a", "b"],
    )
    assert ours == engine
    assert driver.fingerprint(ours) == fingerprint(engine)


def test_executor_output_wins_over_files_and_metadata_merges_like_the_engine() -> None:
    launch = StepLaunch(
        key="root/t",
        kind=NodeKind.CONTAINER,
        run_id="r",
        task_name="t",
        display_name="t",
        component_name="comp-t",
        executor_label="exec-t",
        container=None,
        importer=None,
        input_parameters={},
        input_artifacts={},
        output_parameters={
            "n": OutputParameterDef("n", "NUMBER_INTEGER"),
            "s": OutputParameterDef("s", "STRING"),
        },
        output_artifacts={"m": OutputArtifactDef("m", ArtifactTypeSpec("system.Metrics"), metadata={"a": 1})},
        caching=CacheDecision(enabled=False),
        retry=None,
        platform_config={},
        timeout_seconds=None,
        iteration_index=None,
        pipeline_root="",
        placeholder_context=PlaceholderContext(),
    )
    produced = {
        "parameterValues": {"n": 4.0},
        "artifacts": {"m": {"artifacts": [{"name": "m", "metadata": {"b": 2, "a": 3}}]}},
    }
    engine = collect_outputs(launch, produced, {"n": "9", "s": "text\n"}, {"m": "/x/m"})
    raw = json.dumps(produced)
    assert driver.output_parameter({"task": "t", "key": "n", "type": "NUMBER_INTEGER"}, "9", raw, True) == (
        True,
        engine.parameters["n"],
    )
    assert driver.output_parameter({"task": "t", "key": "s", "type": "STRING"}, "text\n", raw, True) == (
        True,
        engine.parameters["s"],
    )
    [ours] = driver.output_artifacts(
        {
            "task": "t",
            "key": "m",
            "type": {},
            "meta": {"a": 1},
            "file": "m",
            "dir": "/x",
            "root": "/canal/outputs",
        },
        raw,
        "",
    )
    assert ours["metadata"] == dict(engine.artifacts["m"][0].metadata) and ours["uri"] == "/x/m"
    # A producer that ran but wrote nothing fails its consumer, naming the producer.
    with pytest.raises(driver.OutputError, match="task 't' did not produce its output parameter 'n'"):
        driver.output_parameter({"task": "t", "key": "n", "type": "NUMBER_INTEGER"}, ABSENT, ABSENT, True)
    # One that was skipped simply has no value; older Argo leaves the reference in place.
    for absent in (ABSENT, TAG + "tasks.t.outputs.parameters.o-n}}"):
        present, _ = driver.output_parameter(
            {"task": "t", "key": "n", "type": "NUMBER_INTEGER"}, absent, absent, False
        )
        assert present is False


def test_key_directories_are_object_store_paths() -> None:
    assert driver.key_directory("root/sub/loop#3") == "sub/loop/3"
    assert driver.key_directory("root/a b/../x#1") == "a-b/-/x/1"


# -- whole driver runs on compiled configurations -------------------------------------------------


def _run(
    workflow: dict[str, Any],
    task_key: str,
    values_by_expr: dict[str, Any],
    out: Path,
    *,
    role_name: str = "driver",
) -> tuple[int, dict[str, str]]:
    """Run the driver of ``task_key`` as Argo would: config and leaves in env, outputs in files."""
    template = role(workflow, role_name, task_key)
    env = {e["name"]: e["value"] for e in template["script"]["env"] if not e["value"].startswith(TAG)}
    # Leaves: find the DAG task that calls this template and map its argument expressions.
    for t in workflow["spec"]["templates"]:
        for task in (t.get("dag") or {}).get("tasks", []):
            if task["template"] == template["name"]:
                for param in (task.get("arguments") or {}).get("parameters", []):
                    index = int(param["name"][1:])
                    env[f"CANAL_L{index}"] = values_by_expr.get(param["value"], ABSENT)
    env["CANAL_OUT"] = str(out)
    env["CANAL_CREATED"] = "2026-01-02T03:04:05Z"
    code = driver.main(env)
    outputs = {p.name: p.read_text() for p in out.iterdir()} if out.exists() else {}
    return code, outputs


def _expr(task: str, output: str) -> str:
    return TAG + f"tasks.{task}.outputs.parameters.{output}" + "}}"


def _two_steps() -> dict[str, Any]:
    ir = minimal_ir()
    ir["deploymentSpec"]["executors"]["exec-b"]["container"] = {
        "image": "alpine",
        "command": ["echo"],
        "args": ["{{$.inputs.parameters['y']}}", "{{$}}"],
    }
    return ir


def test_a_task_driver_resolves_its_input_and_renders_the_command(tmp_path: Path) -> None:
    workflow = compile_ir(_two_steps(), parameters={"n": 2})
    code, out = _run(
        workflow,
        "root/b",
        {_expr("a", "o-out"): "7\n", _expr("a", "executor-output"): ABSENT, _expr("a", "ran"): "ran"},
        tmp_path,
    )
    assert code == 0, out.get("error")
    assert out["condition"] == "true" and out["a0"] == "7"
    executor_input = json.loads(out["a1"])
    assert executor_input["inputs"]["parameterValues"] == {"y": 7}
    assert executor_input["outputs"]["outputFile"] == "/canal/outputs/executor-output.json"
    resolved = json.loads(out["resolved"])
    assert resolved["key"] == "root/b" and resolved["parameters"] == {"y": 7}
    assert out["keydir"] == out["uid"] and len(out["uid"]) == 32


def test_executor_output_json_wins_over_the_parameter_file(tmp_path: Path) -> None:
    workflow = compile_ir(_two_steps())
    produced = json.dumps({"parameterValues": {"out": 11}})
    code, out = _run(
        workflow,
        "root/b",
        {_expr("a", "o-out"): ABSENT, _expr("a", "executor-output"): produced, _expr("a", "ran"): "ran"},
        tmp_path,
    )
    assert code == 0 and out["a0"] == "11"


def test_a_producer_that_ran_without_its_output_fails_the_consumer_naming_it(tmp_path: Path) -> None:
    workflow = compile_ir(_two_steps())
    code, out = _run(
        workflow,
        "root/b",
        {_expr("a", "o-out"): ABSENT, _expr("a", "executor-output"): ABSENT, _expr("a", "ran"): "ran"},
        tmp_path,
    )
    assert code == 1
    assert out["error"] == "task 'a' did not produce its output parameter 'out'"


def test_a_malformed_value_fails_with_the_type(tmp_path: Path) -> None:
    workflow = compile_ir(_two_steps())
    code, out = _run(
        workflow,
        "root/b",
        {_expr("a", "o-out"): "seven", _expr("a", "executor-output"): ABSENT, _expr("a", "ran"): "ran"},
        tmp_path,
    )
    assert code == 1 and "NUMBER_INTEGER" in out["error"] and "'out'" in out["error"]


def test_a_false_condition_says_so_and_still_writes_every_output(tmp_path: Path) -> None:
    ir = _two_steps()
    ir["root"]["dag"]["tasks"]["b"]["triggerPolicy"] = {"condition": "inputs.parameter_values['y'] > 10"}
    workflow = compile_ir(ir)
    code, out = _run(
        workflow,
        "root/b",
        {_expr("a", "o-out"): "3", _expr("a", "executor-output"): ABSENT, _expr("a", "ran"): "ran"},
        tmp_path,
    )
    assert code == 0 and out["condition"] == "false"
    assert out["a0"] == "" and out["a1"] == ""
    assert role(workflow, "executor", "root/b")  # the executor exists; Argo skips it by its `when`
    assert "when" in dag_task(workflow, "root", "b")


def test_a_condition_that_cannot_be_evaluated_fails_the_task(tmp_path: Path) -> None:
    ir = _two_steps()
    ir["root"]["dag"]["tasks"]["b"]["triggerPolicy"] = {"condition": "inputs.parameter_values['nope'] > 10"}
    code, out = _run(
        compile_ir(ir),
        "root/b",
        {_expr("a", "o-out"): "3", _expr("a", "executor-output"): ABSENT, _expr("a", "ran"): "ran"},
        tmp_path,
    )
    assert code == 1 and "could not be evaluated" in out["error"] and "nope" in out["error"]


def _loop_ir(raw: str | None = None) -> dict[str, Any]:
    ir = minimal_ir()
    ir["components"]["comp-a"]["outputDefinitions"]["parameters"]["out"]["parameterType"] = "LIST"
    ir["components"]["comp-loop"] = {
        "dag": {
            "tasks": {
                "b": {
                    "componentRef": {"name": "comp-b"},
                    "taskInfo": {"name": "b"},
                    "inputs": {"parameters": {"y": {"componentInputParameter": "item"}}},
                }
            },
            "outputs": {
                "parameters": {
                    "ys": {"valueFromParameter": {"producerSubtask": "b", "outputParameterKey": "o"}}
                }
            },
        },
        "inputDefinitions": {
            "parameters": {"item": {"parameterType": "NUMBER_INTEGER"}, "items": {"parameterType": "LIST"}}
        },
        "outputDefinitions": {"parameters": {"ys": {"parameterType": "LIST"}}},
    }
    ir["components"]["comp-b"]["outputDefinitions"] = {
        "parameters": {"o": {"parameterType": "NUMBER_INTEGER"}}
    }
    ir["components"]["comp-sum"] = {
        "executorLabel": "exec-b",
        "inputDefinitions": {"parameters": {"y": {"parameterType": "LIST"}}},
    }
    iterator: dict[str, Any] = {"raw": raw} if raw is not None else {"inputParameter": "items"}
    ir["root"]["dag"]["tasks"] = {
        "a": ir["root"]["dag"]["tasks"]["a"],
        "loop": {
            "componentRef": {"name": "comp-loop"},
            "taskInfo": {"name": "loop"},
            "dependentTasks": ["a"],
            "inputs": {
                "parameters": {
                    "items": {"taskOutputParameter": {"producerTask": "a", "outputParameterKey": "out"}}
                }
            },
            "parameterIterator": {"itemInput": "item", "items": iterator},
        },
        "sum": {
            "componentRef": {"name": "comp-sum"},
            "taskInfo": {"name": "sum"},
            "dependentTasks": ["loop"],
            "inputs": {
                "parameters": {
                    "y": {"taskOutputParameter": {"producerTask": "loop", "outputParameterKey": "ys"}}
                }
            },
        },
    }
    return ir


def test_an_iterator_lists_items_losslessly(tmp_path: Path) -> None:
    workflow = compile_ir(_loop_ir())
    code, out = _run(
        workflow,
        "root/loop",
        {
            _expr("a", "o-out"): '[1, "2", {"k": 3}, 12345678901234567890]',
            _expr("a", "executor-output"): ABSENT,
            _expr("a", "ran"): "ran",
        },
        tmp_path,
    )
    assert code == 0, out.get("error")
    items = json.loads(out["items"])
    assert [json.loads(i["v"]) for i in items] == [1, "2", {"k": 3}, 12345678901234567890]
    assert [i["i"] for i in items] == [0, 1, 2, 3] and out["count"] == "4"


def test_a_collected_input_reads_argos_aggregated_loop_outputs(tmp_path: Path) -> None:
    workflow = compile_ir(_loop_ir())
    loop = role(workflow, "loop", "root/loop")
    exported = {o["name"]: o["valueFrom"]["parameter"] for o in loop["outputs"]["parameters"]}
    # What Argo hands the consumer: per iteration, each leaf of the body's output recipe;
    # JSON objects are parsed by Argo's aggregation, other texts stay strings.
    iteration_values = {
        "o-o": ["4", ABSENT, "8"],
        "executor-output": [ABSENT, ABSENT, ABSENT],
        "ran": ["ran", ABSENT, "ran"],  # iteration 1's task was skipped
    }
    inner = {
        o["name"]: o["valueFrom"]["parameter"]
        for o in role(workflow, "iteration", "root/loop")["outputs"]["parameters"]
    }
    leaf_values = {}
    for name, expression in exported.items():
        inner_name = expression.split("outputs.parameters.")[1].rstrip("}")
        source = inner[inner_name]
        kind = next(k for k in iteration_values if source.endswith(f".{k}" + "}}"))
        leaf_values[_expr("loop", name)] = json.dumps(iteration_values[kind])
    code, out = _run(workflow, "root/sum", leaf_values, tmp_path)
    assert code == 0, out.get("error")
    assert json.loads(out["resolved"])["parameters"] == {"y": [4, 8]}


def test_an_empty_loop_collects_an_empty_list(tmp_path: Path) -> None:
    workflow = compile_ir(_loop_ir())
    code, out = _run(workflow, "root/sum", {}, tmp_path)  # every leaf absent: Argo skipped the loop
    assert code == 0 and json.loads(out["resolved"])["parameters"] == {"y": []}


def test_a_final_status_reads_the_producers_argo_phase(tmp_path: Path) -> None:
    ir = _two_steps()
    ir["components"]["comp-b"]["inputDefinitions"]["parameters"]["status"] = {
        "parameterType": "TASK_FINAL_STATUS"
    }
    ir["root"]["dag"]["tasks"]["b"]["triggerPolicy"] = {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
    ir["root"]["dag"]["tasks"]["b"]["inputs"]["parameters"] = {
        "status": {"taskFinalStatus": {"producerTask": "a"}}
    }
    ir["components"]["comp-b"]["inputDefinitions"]["parameters"].pop("y")
    ir["deploymentSpec"]["executors"]["exec-b"]["container"]["args"] = ["{{$.inputs.parameters['status']}}"]
    workflow = compile_ir(ir)
    code, out = _run(workflow, "root/b", {TAG + "tasks.a.status}}": "Failed"}, tmp_path)
    assert code == 0, out.get("error")
    status = json.loads(out["a0"])
    assert status == {
        "error": {"code": 5},
        "pipeline_job_resource_name": f"mini-{workflow['metadata']['labels']['canal.io/run-id']}",
        "pipeline_task_name": "a",
        "state": "FAILED",
    }


def test_a_check_step_fails_the_dag_when_a_task_failed(tmp_path: Path) -> None:
    ir = _two_steps()
    ir["root"]["dag"]["tasks"]["b"]["triggerPolicy"] = {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
    workflow = compile_ir(ir)
    values_ = {TAG + "tasks.a.status}}": "Failed", TAG + "tasks.b.status}}": "Succeeded"}
    code, out = _run(workflow, "root", values_, tmp_path / "1", role_name="check")
    assert code == 1 and out["error"] == "failed: 'a'"
    values_[TAG + "tasks.a.status}}"] = "Succeeded"
    assert _run(workflow, "root", values_, tmp_path / "2", role_name="check")[0] == 0


def test_an_ifpresent_guess_the_run_contradicts_fails_clearly(tmp_path: Path) -> None:
    ir = _two_steps()
    ir["components"]["comp-b"]["inputDefinitions"]["parameters"]["y"]["isOptional"] = True
    ir["deploymentSpec"]["executors"]["exec-b"]["container"]["args"] = [
        '{"IfPresent": {"InputName": "y", "Then": ["{{$.inputs.parameters[\'y\']}}"]}}'
    ]
    workflow = compile_ir(ir)
    # The compiler assumed the producer's output is there; a JSON null makes it absent.
    code, out = _run(
        workflow,
        "root/b",
        {
            _expr("a", "executor-output"): json.dumps({"parameterValues": {"out": None}}),
            _expr("a", "ran"): "ran",
        },
        tmp_path,
    )
    assert code == 1 and "IfPresent" in out["error"]


def test_an_importer_resolves_its_uri_and_metadata(tmp_path: Path) -> None:
    ir = minimal_ir()
    ir["components"]["comp-imp"] = {
        "executorLabel": "exec-imp",
        "inputDefinitions": {"parameters": {"uri": {"parameterType": "STRING"}}},
        "outputDefinitions": {"artifacts": {"artifact": {"artifactType": {"schemaTitle": "system.Dataset"}}}},
    }
    ir["deploymentSpec"]["executors"]["exec-imp"] = {
        "importer": {
            "artifactUri": {"runtimeParameter": "uri"},
            "typeSchema": {"schemaTitle": "system.Dataset"},
            "metadata": {"source": "{{$.inputs.parameters['uri']}}"},
        }
    }
    ir["root"]["dag"]["tasks"]["imp"] = {
        "componentRef": {"name": "comp-imp"},
        "taskInfo": {"name": "imp"},
        "inputs": {"parameters": {"uri": {"runtimeValue": {"constant": "s3://data/set.csv"}}}},
    }
    workflow = compile_ir(ir)
    code, out = _run(workflow, "root/imp", {}, tmp_path, role_name="importer")
    assert code == 0, out.get("error")
    assert json.loads(out["artifact"])["metadata"] == {"source": "s3://data/set.csv"}
    assert (out["bucket"], out["key"]) == ("data", "set.csv")


def test_a_pvc_driver_builds_the_claim(tmp_path: Path) -> None:
    if not KFP_VALID.is_dir():
        pytest.skip(missing(KFP_VALID))
    from tests.backends.argo.helpers import compile_corpus

    workflow = compile_corpus("pipeline_with_volume.yaml")
    code, out = _run(workflow, "root/createpvc", {}, tmp_path)
    assert code == 0, out.get("error")
    manifest = json.loads(out["manifest"])
    assert manifest["kind"] == "PersistentVolumeClaim"
    assert manifest["metadata"]["name"] == f"{workflow['metadata']['name']}-my-pvc"
    assert manifest["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "5Mi"}},
        "storageClassName": "standard",
    }


def test_no_driver_failure_is_a_traceback(tmp_path: Path) -> None:
    code = driver.main({"CANAL_CONFIG": "{not json", "CANAL_OUT": str(tmp_path)})
    assert code == 1 and (tmp_path / "error").read_text().startswith("internal error:")


# -- reading outputs back (the persistence agent's side) -------------------------------------


def test_executor_outputs_are_read_back_typed_with_their_object_store_uris() -> None:
    from apps.backends.argo.compiler_outputs import executor_outputs, template_info

    ir = minimal_ir()
    ir["components"]["comp-a"]["outputDefinitions"]["artifacts"] = {
        "metrics": {"artifactType": {"schemaTitle": "system.Metrics"}},
        "model": {"artifactType": {"schemaTitle": "system.Model"}},
    }
    workflow = compile_ir(ir, pipeline_root="minio://bucket/root")
    template = role(workflow, "executor", "root/a")
    assert template_info(workflow, template["name"]).role == "executor"
    key = f"root/mini/run/a/{'f' * 32}"
    node = {
        "parameters": [
            {"name": "o-out", "value": "5"},
            {
                "name": "executor-output",
                "value": json.dumps(
                    {
                        "artifacts": {
                            "metrics": {"artifacts": [{"name": "metrics", "metadata": {"accuracy": 0.9}}]},
                            "model": {
                                "artifacts": [{"name": "model", "uri": "/canal/outputs/sub/model.bin"}]
                            },
                        }
                    }
                ),
            },
            {"name": "ran", "value": "ran"},
        ],
        "artifacts": [{"name": "outputs", "s3": {"key": key}}],
    }
    outputs = executor_outputs(workflow, template["name"], node)
    assert outputs.parameters == {"out": 5}
    assert outputs.artifacts["metrics"][0]["uri"] == f"minio://bucket/{key}/metrics"
    assert outputs.artifacts["metrics"][0]["metadata"] == {"accuracy": 0.9}
    assert outputs.artifacts["model"][0]["uri"] == f"minio://bucket/{key}/sub/model.bin"
    node["parameters"][0]["value"] = "five"
    with pytest.raises(driver.OutputError, match="'out'"):
        executor_outputs(workflow, template["name"], node)
