"""The bounded SafeLoader: what it accepts, what it refuses, and where it says the problem is."""

from __future__ import annotations

import pytest
import yaml

from apps.importers import ImportLimits, PipelineImportError
from apps.importers.yaml_safe import CanalSafeLoader, decode_text, load_documents


def load(text: str, **limits: int) -> list[object]:
    return [d.data for d in load_documents(text, filename="f.yaml", limits=ImportLimits(**limits))]


def refusal(text: str, **limits: int) -> PipelineImportError:
    with pytest.raises(PipelineImportError) as caught:
        load(text, **limits)
    return caught.value


def test_it_is_a_safe_loader() -> None:
    assert issubclass(CanalSafeLoader, yaml.SafeLoader)


def test_plain_data_loads_like_safe_load() -> None:
    text = "a: 1\nb: [x, 2.5, true, null]\nc: {d: 'e'}\n"
    assert load(text) == [yaml.safe_load(text)]


def test_keys_stay_as_written_and_dates_stay_strings() -> None:
    assert load("1: a\ntrue: b\nwhen: 2024-01-02\n") == [{"1": "a", "true": "b", "when": "2024-01-02"}]


def test_merge_keys_and_aliases_work_within_limits() -> None:
    text = "base: &b {image: busybox, args: [x]}\nstep:\n  <<: *b\n  args: [y]\n"
    assert load(text) == [
        {"base": {"image": "busybox", "args": ["x"]}, "step": {"image": "busybox", "args": ["y"]}}
    ]


def test_documents_are_split_and_empty_ones_dropped() -> None:
    docs = load_documents("a: 1\n---\n---\nb: 2\n")
    assert [d.data for d in docs] == [{"a": 1}, {"b": 2}]
    assert [d.line for d in docs] == [1, 3]  # where its "---" is


def test_too_many_documents() -> None:
    assert "more than 8 YAML documents" in refusal("---\na: 1\n" * 9).message


def test_syntax_error_has_line_and_column() -> None:
    error = refusal("a: 1\nb: [1, 2\nc: 3\n")
    assert error.message.startswith("invalid YAML: ")
    assert error.line == 3
    assert error.column is not None
    assert f"line {error.line}, column {error.column}" in str(error)


def test_tab_indentation_gets_a_hint() -> None:
    assert "a tab" in refusal("a:\n\tb: 1\n").message


def test_duplicate_keys_at_depth_name_the_mapping() -> None:
    error = refusal("spec:\n  templates:\n  - name: a\n    name: b\n")
    assert error.field_path == "spec.templates[0]"
    assert error.line == 4
    assert "first at line 3" in error.message


def test_complex_keys_are_refused() -> None:
    assert "keys must be plain strings" in refusal("? {a: 1}\n: x\n").message


def test_nan_and_infinity_are_refused() -> None:
    assert "NaN or infinity" in refusal("x: -.inf\n").message


def test_alias_counting_limit() -> None:
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * 20) + "]\n"
    assert "more than 10 aliases" in refusal(text, max_aliases=10).message


def test_aliases_count_towards_depth() -> None:
    deep = "a: &deep " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*deep" + "]" * 30 + "\n"
    error = refusal(deep)
    assert "alias *deep nests the data deeper than 64 levels" in error.message
    assert error.line == 2


def test_undefined_alias_is_a_clear_error() -> None:
    assert "undefined alias" in refusal("a: *nope\n").message


def test_reader_errors_have_positions() -> None:
    error = refusal("a: ok\nb: bell\x07\n")
    assert "U+0007" in error.message
    assert (error.line, error.column) == (2, 8)


def test_decode_text_strips_bom_and_reports_offsets() -> None:
    assert decode_text(b"\xef\xbb\xbfa: 1") == "a: 1"
    with pytest.raises(PipelineImportError) as caught:
        decode_text(b"\xef\xbb\xbfa: \xc3\n", "x.yaml")
    assert "byte 0xc3 at byte offset 6" in caught.value.message
    assert caught.value.line == 1


def test_locator_maps_paths_to_lines() -> None:
    text = (
        "root:\n  dag:\n    tasks:\n      train:\n        componentRef:\n          name: comp-x\n"
        "list:\n- a\n- b: 1\n"
    )
    locator = load_documents(text)[0].locator
    assert locator.locate(("root", "dag", "tasks", "train", "componentRef", "name")) == (6, 11)
    assert locator.line(("list", 1, "b")) == 9
    assert locator.line(("list", 0)) == 8
    # Past the end of what exists: the deepest existing part.
    assert locator.line(("root", "dag", "tasks", "train", "missing", "deeper")) == 4
    assert locator.line(()) == 1
