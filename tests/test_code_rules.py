"""Rules of the code that import-linter does not check, read from the source with ``ast``.

A name starting with an underscore is private to its module: no module under apps/
imports one from another module (``from x import _helper``, also inside functions, also
relative), nor imports one of our modules whose name starts with one. Helpers that two
modules share are public, with a name saying what they do. Dunder names (``__version__``,
``__main__``) are not private."""

from __future__ import annotations

import ast

import pytest

from tests.paths import PROJECT

APPS = PROJECT / "apps"
FIRST_PARTY = {"apps", "pipelines_site", "tests"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_imports(source: str, filename: str = "<source>") -> list[str]:
    """Each import of a private name (or of a private module) in ``source``, as
    ``file:line: what``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if node.module == "__future__":
                continue
            # A private module counts when it is ours (a library's C module, yaml._yaml, is
            # its business); a private name counts wherever it comes from.
            ours = node.level > 0 or (node.module or "").split(".")[0] in FIRST_PARTY
            parts = (node.module or "").split(".") if ours else []
            names = [alias.name for alias in node.names]
            for name in [*(p for p in parts if _private(p)), *(n for n in names if _private(n))]:
                found.append(f"{filename}:{node.lineno}: from {module} import {name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] in FIRST_PARTY and any(_private(part) for part in parts):
                    found.append(f"{filename}:{node.lineno}: import {alias.name}")
    return found


@pytest.mark.parametrize(
    ("source", "caught"),
    [
        ("from apps.runs.views import _get_run", True),
        ("from .common import (\n    TASK_PAGE,\n    _json,\n)", True),
        ("def f():\n    from apps.x import _helper\n    return _helper", True),
        ("import apps.backends._private", True),
        ("from apps.backends._private import thing", True),
        ("from __future__ import annotations", False),
        ("from apps.backends.argo.emulator.__main__ import main", False),
        ("from apps.x import __version__", False),
        ("from apps.x import helper as _helper", False),
        ("from apps.x import public", False),
        ("from yaml._yaml import CParser", False),
        ("from os import _exit", True),
    ],
)
def test_the_check_sees_private_imports(source: str, caught: bool) -> None:
    assert bool(private_imports(source)) is caught


def test_no_module_under_apps_imports_a_private_name() -> None:
    files = sorted(APPS.rglob("*.py"))
    assert len(files) > 100  # the walk found the code
    found = [
        line
        for path in files
        for line in private_imports(path.read_text(encoding="utf-8"), str(path.relative_to(PROJECT)))
    ]
    assert found == [], (
        "private names imported across modules (make them public or move them):\n" + "\n".join(found)
    )
