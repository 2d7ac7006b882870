"""apps.engine.untrusted: the checks every edge runs on text, JSON and times."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from apps.engine.untrusted import (
    MAX_JSON_DEPTH,
    TIME_MAX,
    TIME_MIN,
    InputError,
    check_json,
    check_text,
    check_time,
    check_unix_seconds,
    loads_json,
    text_problem,
)


@pytest.mark.parametrize("text", ["", "plain", "é ü 中文", "\U0001f600", "tab\tand\nnewline"])
def test_valid_text_passes(text: str) -> None:
    assert text_problem(text) is None
    assert check_text(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\ud800", "lone surrogate (\\ud800) at character 1"),
        ("ab\udfff", "lone surrogate (\\udfff) at character 3"),
        ("a\x00b", "NUL character (at character 2)"),
    ],
)
def test_bad_text_is_named(text: str, expected: str) -> None:
    problem = text_problem(text)
    assert problem is not None and expected in problem
    problem.encode("utf-8")  # the message itself can always be sent back


def test_json_errors_carry_the_path() -> None:
    with pytest.raises(InputError) as err:
        check_json({"a": [1, {"b": "x\ud800"}]})
    assert err.value.path == ("a", 1, "b")
    assert err.value.field == "a[1].b"
    assert str(err.value).startswith("a[1].b: contains a lone surrogate")


def test_bad_keys_are_refused_too() -> None:
    with pytest.raises(InputError) as err:
        check_json({"ok": {"\ud800": 1}})
    assert "lone surrogate" in err.value.message
    assert err.value.field.startswith("ok")


@pytest.mark.parametrize("number", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_numbers_are_refused(number: float) -> None:
    with pytest.raises(InputError, match="finite"):
        check_json({"x": [number]})


def test_depth_is_bounded_without_recursion() -> None:
    ok: object = "leaf"
    for _ in range(MAX_JSON_DEPTH):
        ok = [ok]
    check_json(ok)
    deep: object = "leaf"
    for _ in range(200_000):  # far past the recursion limit: the walk uses a stack
        deep = {"k": deep}
    with pytest.raises(InputError, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
        check_json(deep)


def test_json_only_refuses_other_types_unless_told() -> None:
    with pytest.raises(InputError, match="datetime is not a JSON value"):
        check_json([datetime.now(UTC)])
    check_json([datetime.now(UTC)], json_only=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[" * 100_000 + "]" * 100_000, f"nested deeper than {MAX_JSON_DEPTH} levels"),
        ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), "nested deeper"),
        ('{"a": "\\ud800"}', "lone surrogate"),
        ('["\\u0000"]', "NUL"),
        ("[1e400]", "finite"),
        ("NaN", "not valid JSON"),
        ("{broken", "not valid JSON"),
        ("1" * 5000, "not valid JSON"),  # more digits than int() converts
        (b"\xff\xfe", "not valid UTF-8"),
    ],
)
def test_loads_json_refuses_with_a_reason(text: str | bytes, expected: str) -> None:
    with pytest.raises(InputError) as err:
        loads_json(text)
    assert expected in err.value.message


def test_loads_json_accepts_real_documents() -> None:
    document = {"a": [1, 2.5, True, None, "é \U0001f600"], "b": {"c": "\u00e9"}}
    assert loads_json(json.dumps(document)) == document
    assert loads_json('"\\ud83d\\ude00"') == "\U0001f600"  # a surrogate *pair* is a real character


@pytest.mark.parametrize(
    "moment",
    [
        TIME_MIN,
        TIME_MAX - timedelta(seconds=1),
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=14))),
    ],
)
def test_times_in_range_pass(moment: datetime) -> None:
    assert check_time(moment) == moment


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),  # no UTC equivalent at all
        datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
        TIME_MAX,
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14))),
    ],
)
def test_times_out_of_range_are_refused(moment: datetime) -> None:
    with pytest.raises(InputError, match="out of range: times must be between 1970"):
        check_time(moment, ("end_time",))


def test_naive_times_are_refused() -> None:
    with pytest.raises(InputError, match="time zone"):
        check_time(datetime(2026, 1, 1))


@pytest.mark.parametrize("seconds", [253402300800, -99999999999, -1, int(TIME_MAX.timestamp())])
def test_unix_seconds_out_of_range_are_refused(seconds: int) -> None:
    with pytest.raises(InputError, match=f"Unix time {seconds} is out of range"):
        check_unix_seconds(seconds)


def test_unix_seconds_in_range_pass() -> None:
    assert check_unix_seconds(0) == 0
    assert check_unix_seconds(1_800_000_000) == 1_800_000_000


# --- A step's outputs: the same check, lenient (KFP records NUL and NaN as they are) -----------


def _outputs(**overrides: object) -> dict[str, object]:
    values: dict[str, object] = {
        "count": 1,
        "score": 0.5,
        "ok": True,
        "names": ["a"],
        "info": {"k": 1},
        "text": "fine",
    }
    values.update(overrides)
    return {"parameterValues": values}


def test_a_step_output_with_a_surrogate_fails_the_step_naming_it() -> None:
    from apps.engine.executor_io import OutputError, collect_outputs
    from tests.engine.test_executor_io import metrics_launch

    launch = metrics_launch()
    uris = {"metrics": "/m", "model": "/d"}
    with pytest.raises(OutputError, match="output parameter 'text': contains a lone surrogate"):
        collect_outputs(launch, _outputs(text="x\ud800"), {}, uris)
    with pytest.raises(OutputError, match=r"output parameter 'info' at k\[0\]: contains a lone surrogate"):
        collect_outputs(launch, _outputs(info={"k": ["\udfff"]}), {}, uris)
    written = {"metrics": {"artifacts": [{"name": "metrics", "metadata": {"\ud800": 1}}]}}
    with pytest.raises(OutputError, match="output artifact 'metrics'"):
        collect_outputs(launch, {**_outputs(), "artifacts": written}, {}, uris)
    # NUL and non-finite numbers are recorded as KFP records them.
    outputs = collect_outputs(launch, _outputs(text="a\x00b", score=float("nan")), {}, uris)
    assert outputs.parameters["text"] == "a\x00b"


def test_a_deep_output_parameter_file_fails_the_step_instead_of_recursing() -> None:
    from apps.engine.executor_io import OutputError, parse_parameter_text

    with pytest.raises(OutputError, match="nested too deeply"):
        parse_parameter_text("[" * 100_000 + "]" * 100_000, "LIST", "names")
