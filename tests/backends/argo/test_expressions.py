"""Pure pieces of the interpreter: when, depends, expressions, substitution, loop expansion."""

from __future__ import annotations

from typing import Any

import pytest

from apps.backends.argo.interpreter import ExpressionError, fnv32a, node_id_for, pod_name_for
from apps.backends.argo.interpreter.depends import depends_logic, evaluate_depends, task_results
from apps.backends.argo.interpreter.exprlang import UnsupportedExpression, evaluate, expand_env, format_result
from apps.backends.argo.interpreter.govaluate import evaluate_when
from apps.backends.argo.interpreter.items import (
    ExpansionError,
    expand_sequence,
    item_name,
    item_scope,
    parse_with_param,
)
from apps.backends.argo.interpreter.substitute import SubstitutionError, substitute, substitute_string

# --- node ids --------------------------------------------------------------------------------


def test_fnv32a_matches_the_reference_vectors() -> None:
    # Published FNV-1a 32-bit test vectors.
    assert fnv32a("") == 0x811C9DC5
    assert fnv32a("a") == 0xE40C292C
    assert fnv32a("foobar") == 0xBF9CF968


def test_node_ids_and_pod_names_are_argos() -> None:
    assert node_id_for("wf-abc", "wf-abc") == "wf-abc"
    assert node_id_for("wf-abc", "wf-abc[0].hello") == f"wf-abc-{fnv32a('wf-abc[0].hello')}"
    assert node_id_for("wf-abc", "wf-abc[0].hello") == node_id_for("wf-abc", "wf-abc[0].hello")
    assert node_id_for("wf-abc", "wf-abc[0].hello") != node_id_for("wf-abc", "wf-abc[1].hello")
    assert pod_name_for("wf-abc", "wf-abc.A", "echo") == f"wf-abc-echo-{fnv32a('wf-abc.A')}"
    assert pod_name_for("wf-abc", "wf-abc", "echo") == "wf-abc"


# --- when (govaluate) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("heads == heads", True),  # bare words are strings in Argo
        ("tails == heads", False),
        ("Failed != Succeeded", True),
        ("5 > 3", True),
        ("10 < 9", False),  # numbers compare as numbers
        ("'10' < '9'", True),  # quoted strings compare as bytes
        ("'5' == 5", False),  # no coercion
        ("true", True),
        ("true && !false", True),
        ("1 > 2 || 3 > 2", True),
        ("'hello-world' =~ '^hello'", True),
        ("'hello' !~ 'x'", True),
        ("2 in (1, 2, 3)", True),
        ("'a' in ('b', 'c')", False),
        ("(1 + 2) * 3 == 9", True),
        ("-2 < 0", True),
        ('["a", "b"] == nothing', False),  # [escaped variables] are strings too
        ("[a b] == 'a b'", True),
    ],
)
def test_when_follows_govaluate(when: str, expected: bool) -> None:
    assert evaluate_when(when) is expected


@pytest.mark.parametrize(
    ("when", "fragment"),
    [
        ("tails-heads == x", "cannot be used with the modifier '-'"),
        ("foo && true", "cannot be used with the logical operator"),
        ("5", "Expected boolean evaluation"),
        ("'unclosed == x", "Unclosed string literal"),
        ("(1 == 1", "Unbalanced parenthesis"),
        ("5 > 'a'", "cannot be used with the comparator"),
    ],
)
def test_bad_when_is_an_error_naming_the_expression(when: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate_when(when)
    assert fragment in str(caught.value)
    assert when in str(caught.value)


def test_empty_when_runs() -> None:
    assert evaluate_when("") is True


# --- depends ---------------------------------------------------------------------------------

TASKS: dict[str, dict[str, Any]] = {
    "A": {"name": "A"},
    "B": {"name": "B", "continueOn": {"failed": True}},
    "C-x": {"name": "C-x"},
}


def test_bare_names_expand_with_continue_on() -> None:
    deps, logic = depends_logic({"name": "D", "depends": "A && B"}, TASKS)
    assert deps == ["A", "B"]
    assert logic == (
        "(A.Succeeded || A.Skipped || A.Daemoned) && (B.Succeeded || B.Skipped || B.Daemoned || B.Failed)"
    )
    deps, logic = depends_logic({"name": "D", "dependencies": ["A", "C-x"]}, TASKS)
    assert deps == ["A", "C-x"]
    assert logic.startswith("(A.Succeeded") and "C-x.Daemoned" in logic


def test_an_unknown_task_result_is_refused() -> None:
    with pytest.raises(ExpressionError, match="task result 'Finished' for task 'A' is invalid"):
        depends_logic({"name": "D", "depends": "A.Finished"}, TASKS)


@pytest.mark.parametrize(
    ("depends", "phases", "expected"),
    [
        ("A", {"A": "Succeeded"}, True),
        ("A", {"A": "Failed"}, False),
        ("A", {"A": "Skipped"}, True),
        ("A.Failed", {"A": "Failed"}, True),
        ("A.Failed || A.Errored", {"A": "Error"}, True),
        ("!A.Succeeded", {"A": "Omitted"}, True),
        ("A.Succeeded && C-x.Failed", {"A": "Succeeded", "C-x": "Failed"}, True),
        ("(A.Succeeded || C-x.Succeeded) && !A.Failed", {"A": "Failed", "C-x": "Succeeded"}, False),
        ("B", {"B": "Failed"}, True),  # continueOn.failed
    ],
)
def test_depends_evaluates_like_argo(depends: str, phases: dict[str, str], expected: bool) -> None:
    _, logic = depends_logic({"name": "D", "depends": depends}, TASKS)
    results = {name: task_results(phase, task_group=False, child_phases=[]) for name, phase in phases.items()}
    assert evaluate_depends(logic, results) is expected


def test_any_succeeded_and_all_failed_look_at_loop_children() -> None:
    group = task_results("Failed", task_group=True, child_phases=["Failed", "Succeeded"])
    assert group["AnySucceeded"] and not group["AllFailed"]
    group = task_results("Failed", task_group=True, child_phases=["Failed", "Failed"])
    assert group["AllFailed"] and not group["AnySucceeded"]
    _, logic = depends_logic({"name": "D", "depends": "A.AnySucceeded"}, TASKS)
    assert evaluate_depends(logic, {"A": task_results("Failed", task_group=True, child_phases=["Succeeded"])})


# --- expressions (expr-lang subset) ----------------------------------------------------------

ENV = expand_env(
    {
        "steps.flip-coin.outputs.result": "heads",
        "inputs.parameters.num": "3",
        "workflow.parameters.config": '{"a": 1, "list": [{"n": "x", "v": 1}, {"n": "y", "v": 2}]}',
        "tasks.skipped.outputs.parameters.msg": None,
    }
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("steps['flip-coin'].outputs.result == 'heads' ? 'H' : 'T'", "H"),
        ("asInt(inputs.parameters.num) * 10", 30),
        ("asFloat(inputs.parameters.num) / 2", 1.5),
        ("jsonpath(workflow.parameters.config, '$.a')", 1),
        ("jsonpath(workflow.parameters.config, '$.list[*].n')", ["x", "y"]),
        ("jsonpath(workflow.parameters.config, '$.list[?(@.v > 1)].n')", ["y"]),
        ("tasks.skipped.outputs.parameters.msg ?? 'fallback'", "fallback"),
        ("'abc' contains 'b' and not ('x' in ['y'])", True),
        ("toJson({b: 1, a: [true, nil]})", '{"a":[true,null],"b":1}'),
        ("len('abcd') + 1", 5),
        ("string(1.0)", "1"),
    ],
)
def test_expr_lang_subset(text: str, expected: object) -> None:
    assert evaluate(text, ENV) == expected


def test_unsupported_expr_features_are_named() -> None:
    with pytest.raises(UnsupportedExpression, match=r"sprig\.date"):
        evaluate("sprig.date('2006', workflow.creationTimestamp)", ENV)
    with pytest.raises(UnsupportedExpression, match="closures"):
        evaluate("filter([1, 2], {# > 1})", ENV)


def test_expression_results_are_written_as_argo_writes_them() -> None:
    assert format_result(3.0) == "3"
    assert format_result("text") == "text"
    assert format_result({"b": 1, "a": "x"}) == '{"a":"x","b":1}'
    assert format_result(True) == "true"


# --- substitution ----------------------------------------------------------------------------

SCOPE = {
    "inputs.parameters.msg": "hello",
    "workflow.name": "wf-1",
    "steps.gen.outputs.result": "42",
    "steps.skipped.outputs.parameters.p": None,
}


def test_simple_tags_are_replaced_everywhere_and_unknown_ones_kept() -> None:
    value = {
        "args": ["echo {{inputs.parameters.msg}} {{ workflow.name }}", "{{item}}"],
        "{{workflow.name}}": 1,
    }
    assert substitute(value, SCOPE) == {"args": ["echo hello wf-1", "{{item}}"], "wf-1": 1}


def test_strict_prefixes_must_resolve() -> None:
    with pytest.raises(SubstitutionError, match=r"failed to resolve \{\{steps.missing.outputs.result\}\}"):
        substitute_string("{{steps.missing.outputs.result}}", SCOPE, strict=("steps", "tasks"))
    assert substitute_string("{{steps.gen.outputs.result}}", SCOPE, strict=("steps",)) == "42"


def test_an_absent_optional_cannot_be_substituted() -> None:
    with pytest.raises(SubstitutionError, match="absent optional"):
        substitute_string("x {{steps.skipped.outputs.parameters.p}}", SCOPE)


def test_expression_tags_evaluate_or_wait_for_their_variables() -> None:
    assert substitute_string("{{=asInt(steps.gen.outputs.result) + 1}}", SCOPE) == "43"
    assert substitute_string("n={{= item + 1 }}", SCOPE) == "n={{= item + 1 }}"
    with pytest.raises(SubstitutionError, match="failed to evaluate expression"):
        substitute_string("{{=asInt(inputs.parameters.msg)}}", SCOPE)


def test_substitution_does_not_grow_without_bound() -> None:
    scope = {"inputs.parameters.big": "x" * 1_000_000}
    with pytest.raises(SubstitutionError, match="longer than"):
        substitute_string("{{inputs.parameters.big}}" * 10, scope)


# --- loop expansion --------------------------------------------------------------------------


def test_with_sequence_counts_ends_and_formats() -> None:
    assert expand_sequence({"count": "3"}, limit=10) == ["0", "1", "2"]
    assert expand_sequence({"start": "5", "end": "3"}, limit=10) == ["5", "4", "3"]
    assert expand_sequence({"start": 1, "count": 2, "format": "item-%02d"}, limit=10) == [
        "item-01",
        "item-02",
    ]
    assert expand_sequence({"count": "0"}, limit=10) == []
    with pytest.raises(ExpansionError, match="at most 10"):
        expand_sequence({"count": "1000000000"}, limit=10)
    with pytest.raises(ExpansionError, match="neither end nor count"):
        expand_sequence({"start": "1"}, limit=10)


def test_with_param_needs_a_json_list_within_the_limit() -> None:
    assert parse_with_param('[1, "a", {"k": 2}]', limit=5) == [1, "a", {"k": 2}]
    with pytest.raises(ExpansionError, match="could not be parsed as a JSON list"):
        parse_with_param("not json", limit=5)
    with pytest.raises(ExpansionError, match="could not be parsed as a JSON list"):
        parse_with_param('{"a": 1}', limit=5)
    with pytest.raises(ExpansionError, match="at most 2"):
        parse_with_param("[1, 2, 3]", limit=2)


def test_items_get_argos_node_names_and_variables() -> None:
    assert item_name("print", 0, "hello (world)") == "print(0:hello world)"
    assert item_name("t", 2, {"os": "debian", "tag": 9.1}) == "t(2:os:debian,tag:9.1)"
    assert item_name("t", 1, [1, "a"]) == "t(1:[1 a])"
    assert item_scope({"b": 1, "a": "x"}) == {"item.b": "1", "item.a": "x", "item": '{"a":"x","b":1}'}
    assert item_scope(7) == {"item": "7"}
