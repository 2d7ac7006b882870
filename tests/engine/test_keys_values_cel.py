"""Node keys, Go-compatible value rendering, CEL evaluation and durations."""

from __future__ import annotations

from typing import Any

import pytest

from apps.engine.cel import CelError, check_syntax, evaluate_condition, select
from apps.engine.durations import DurationError, parse_duration
from apps.engine.keys import (
    child_key,
    iteration_index,
    iteration_key,
    parent_key,
    task_path,
    template_key,
)
from apps.engine.values import format_float_f, format_float_g, go_json_dumps, value_to_text


def test_keys_round_trip() -> None:
    loop = child_key("root", "for-loop-1")
    it = iteration_key(loop, 3)
    step = child_key(it, "train")
    assert (loop, it, step) == ("root/for-loop-1", "root/for-loop-1#3", "root/for-loop-1#3/train")
    assert parent_key(step) == it
    assert parent_key(it) == loop
    assert parent_key(loop) == "root"
    assert parent_key("root") is None
    assert iteration_index(step) == 3
    assert iteration_index("root/for-loop-1#3/inner#7/x") == 7
    assert iteration_index(loop) is None
    assert task_path("root/for-loop-1#3/inner#7/x") == ("for-loop-1", "inner", "x")
    assert template_key("root/for-loop-1#3/train") == "root/for-loop-1/train"
    with pytest.raises(ValueError, match="not a node key"):
        task_path("elsewhere/x")


@pytest.mark.parametrize(
    ("value", "f_text", "g_text", "json_text"),
    [
        (3, "3", "3", "3"),
        (3.0, "3", "3", "3"),
        (2.5, "2.5", "2.5", "2.5"),
        (0.1, "0.1", "0.1", "0.1"),
        (1e21, "1000000000000000000000", "1e+21", "1e+21"),
        (1e20, "100000000000000000000", "1e+20", "100000000000000000000"),
        (1e6, "1000000", "1e+06", "1000000"),
        (1.5e-7, "0.00000015", "1.5e-07", "1.5e-7"),
        (-0.0, "-0", "-0", "-0"),
    ],
)
def test_numbers_print_like_go(value: float, f_text: str, g_text: str, json_text: str) -> None:
    assert format_float_f(value) == f_text
    assert format_float_g(value) == g_text
    assert go_json_dumps(value) == json_text


def test_go_json_escapes_html_and_sorts_keys() -> None:
    assert go_json_dumps({"b": "<&>", "a": "é\u2028", "c": [None, True, 1.0]}) == (
        '{"a":"é\\u2028","b":"\\u003c\\u0026\\u003e","c":[null,true,1]}'
    )
    assert value_to_text("raw text") == "raw text"
    assert value_to_text(False) == "false"
    assert value_to_text(None) == ""


def cond(expr: str, **params: Any) -> bool:
    return evaluate_condition(expr, params)


def test_conditions_the_sdk_emits() -> None:
    key = "inputs.parameter_values['pipelinechannel--x']"
    assert cond(f"int({key}) >= 5", **{"pipelinechannel--x": 5})
    assert cond(f"int({key}) >= 5", **{"pipelinechannel--x": "7"})
    assert cond(f"{key} == 'heads'", **{"pipelinechannel--x": "heads"})
    assert cond(f"{key} == true", **{"pipelinechannel--x": True})
    assert cond(f"!({key} == 'heads') && {key} == 'tails'", **{"pipelinechannel--x": "tails"})
    assert cond(f"!({key} == 'heads') || {key} == 'heads'", **{"pipelinechannel--x": "x"}) is not False


@pytest.mark.parametrize(
    ("expr", "value", "expected"),
    [
        # kfp.local raises NameError on double() and silently skips the branch.
        ("double(inputs.parameter_values['x']) > 2.5", 3, True),
        ("double(inputs.parameter_values['x']) > 2.5", 2.5, False),
        ("double(int(inputs.parameter_values['x'])) > 2.5", "3", True),
        ("inputs.parameter_values['x'] > double(1)", 2.0, True),
        # Cross-type numeric comparisons, as cel-go does them.
        ("inputs.parameter_values['x'] > 2.5", 3, True),
        ("inputs.parameter_values['x'] < 3", 2.5, True),
        ("inputs.parameter_values['x'] == 3", 3.0, True),
        ("inputs.parameter_values['x'] != 3", 3.0, False),
        ("inputs.parameter_values['x'] >= 3", 3, True),
        # Heterogeneous equality is false, not an error.
        ("inputs.parameter_values['x'] == 'heads'", 3, False),
        ("string(inputs.parameter_values['x']) == '3'", 3.0, True),
        ("parseJson(inputs.parameter_values['x'])['a'] == 1", '{"a": 1}', True),
    ],
)
def test_cel_numeric_semantics(expr: str, value: Any, expected: bool) -> None:
    assert evaluate_condition(expr, {"x": value}) is expected


def test_cel_errors_are_reported() -> None:
    with pytest.raises(CelError, match="no such key: missing"):
        cond("inputs.parameter_values['missing'] == 1", x=1)
    with pytest.raises(CelError, match="not a boolean"):
        cond("inputs.parameter_values['x']", x=1)
    with pytest.raises(CelError):
        cond("int(inputs.parameter_values['x']) > 1", x="abc")
    with pytest.raises(CelError, match="column"):
        check_syntax("int(x >")


def test_selectors() -> None:
    item = {"A_a": 1, "B_b": ["x", "y"]}
    assert select(item, 'parseJson(string_value)["A_a"]') == 1
    assert type(select(item, 'parseJson(string_value)["A_a"]')) is int
    assert select(item, 'parseJson(string_value)["B_b"]') == ["x", "y"]
    assert select(item, 'struct_value["B_b"][1]') == "y"
    assert select('{"q_a": "11"}', 'parseJson(string_value)["q_a"]') == "11"
    assert select(4, "number_value + 1") == 5


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("3s", 3.0),
        ("0s", 0.0),
        ("1.5s", 1.5),
        ("3600s", 3600.0),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("250ms", 0.25),
        (5, 5.0),
    ],
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_bad_durations() -> None:
    for bad in ("soon", "3 s", "-1s", "", True):
        with pytest.raises(DurationError):
            parse_duration(bad)
    assert parse_duration({"seconds": 2, "nanos": 500_000_000}) == 2.5
