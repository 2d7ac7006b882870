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


# --- Views build no queries -------------------------------------------------------------
#
# Views and the API views call services and selectors only: they import no model and
# call no queryset method (filtering, sorting and the like live in the selectors and the
# FilterSets beside them, apps/<app>/filters.py). import-linter forbids importing a
# models module; this also sees ``from apps.x import models`` and the queryset calls.
# The check reads names, not types, so ``a_dict.values()`` counts too (write ``.items()``).

QUERYSET_METHODS = frozenset(
    {
        "filter",
        "exclude",
        "order_by",
        "annotate",
        "values",
        "values_list",
        "select_related",
        "prefetch_related",
        "aggregate",
        "only",
        "defer",
        "distinct",
        "extra",
        "raw",
    }
)

#: View files not yet clean, with what each still does (file: call or import), left for
#: after the concurrent API work merges. An entry that no longer occurs fails the test
#: too, so the list shrinks as the code is cleaned.
VIEW_QUERY_ALLOWED: dict[str, list[str]] = {}


def _models_module(module: str) -> bool:
    parts = module.split(".")
    return "models" in parts and (parts[0] == "apps" or parts[0] == "")


def view_queries(source: str, filename: str = "<source>") -> list[str]:
    """Each model import and queryset-method call in ``source``, as ``file:line: what``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            absolute = (node.module or "") if node.level == 0 else "." + (node.module or "")
            names = [alias.name for alias in node.names]
            if _models_module(absolute) or (
                (node.level > 0 or absolute.startswith("apps")) and "models" in names
            ):
                found.append(f"{filename}:{node.lineno}: from {module} import {', '.join(names)}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if _models_module(alias.name):
                    found.append(f"{filename}:{node.lineno}: import {alias.name}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in QUERYSET_METHODS
        ):
            found.append(f"{filename}:{node.lineno}: .{node.func.attr}()")
    return found


def view_files() -> list[str]:
    paths = {
        *APPS.glob("web/**/*.py"),
        *APPS.glob("*/views*.py"),
        *APPS.glob("api/views/**/*.py"),
    }
    return sorted(str(path.relative_to(PROJECT)) for path in paths)


@pytest.mark.parametrize(
    ("source", "caught"),
    [
        ("from apps.runs.models import Run", True),
        ("from apps.runs import models", True),
        ("import apps.runs.models", True),
        ("from .models import Pipeline", True),
        ("from . import models", True),
        ("def f():\n    from apps.runs.models import Run\n    return Run", True),
        ("qs = selectors.run_list(user=u).filter(pk__in=ids)", True),
        ("runs = qs.exclude(kind='root')", True),
        ("qs, sort = rows.order_by('-created_at'), 'x'", True),
        ("rows = list(selectors.tasks(run=r).values('id', 'key'))", True),
        ("x = qs.select_related('run').defer('spec').only('id')", True),
        ("total = qs.aggregate(n=Count('id'))", True),
        ("names = {n for _, v in metrics.items() for n in v}", False),
        ("from apps.runs import selectors", False),
        ("from django.db import models", False),
        ("from apps.core.choices import RuntimeState", False),
        ("found = selectors.run_table_filter(runs=qs, archived=False, params=request.GET)", False),
        ("page = Paginator(found.qs, 20)", False),
    ],
)
def test_the_check_sees_view_queries(source: str, caught: bool) -> None:
    assert bool(view_queries(source)) is caught


def test_views_build_no_queries() -> None:
    files = view_files()
    assert "apps/web/runs/tables.py" in files and "apps/api/views/runs.py" in files
    assert "apps/pipelines/views.py" in files and len(files) > 15  # the walk found the views
    found = []
    allowed_seen: dict[str, list[str]] = {}
    for name in files:
        for line in view_queries((PROJECT / name).read_text(encoding="utf-8"), name):
            what = line.split(": ", 1)[1]
            if what in VIEW_QUERY_ALLOWED.get(name, []):
                allowed_seen.setdefault(name, []).append(what)
            else:
                found.append(line)
    assert found == [], (
        "views import models or call queryset methods (move it into a selector or a FilterSet):\n"
        + "\n".join(found)
    )
    stale = {
        name: what
        for name, whats in VIEW_QUERY_ALLOWED.items()
        for what in whats
        if what not in allowed_seen.get(name, [])
    }
    assert stale == {}, f"allowed but no longer found (drop from VIEW_QUERY_ALLOWED): {stale}"
