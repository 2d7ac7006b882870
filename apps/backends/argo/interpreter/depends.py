"""DAG ``depends`` / ``dependencies``: which tasks a task waits for, and whether it runs.

Argo (workflow/common/ancestry.go) rewrites ``dependencies: [A, B]`` and every bare
task name in ``depends`` into ``(A.Succeeded || A.Skipped || A.Daemoned)`` (plus
``A.Errored`` / ``A.Failed`` when A has ``continueOn``), then evaluates the result
with expr-lang against ``{task: {Succeeded: …, Failed: …, …}}`` (dashes in names
become underscores). ``AnySucceeded`` / ``AllFailed`` look at a loop's children.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from . import exprlang
from .errors import ExpressionError

__all__ = ["RESULTS", "dependency_names", "depends_logic", "evaluate_depends", "task_results"]

RESULTS = ("Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned", "AnySucceeded", "AllFailed")
_TOKEN = re.compile(r"([a-zA-Z0-9][-a-zA-Z0-9]*?\.[A-Z][a-zA-Z]+)|([a-zA-Z0-9][-a-zA-Z0-9]*)")
_KEYWORDS = frozenset({"and", "or", "not", "true", "false", "in", "nil"})


def _expand(name: str, task: Mapping[str, Any] | None) -> str:
    results = ["Succeeded", "Skipped", "Daemoned"]
    cont = (task or {}).get("continueOn") or {}
    if cont.get("error"):
        results.append("Errored")
    if cont.get("failed"):
        results.append("Failed")
    return "(" + " || ".join(f"{name}.{r}" for r in results) + ")"


def depends_logic(task: Mapping[str, Any], tasks: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], str]:
    """(the tasks ``task`` depends on, its depends expression with every result explicit)."""
    depends = task.get("depends")
    if not depends:
        deps = [str(d) for d in task.get("dependencies") or []]
        return list(dict.fromkeys(deps)), " && ".join(_expand(d, tasks.get(d)) for d in deps)
    text = str(depends)
    names: dict[str, None] = {}
    pieces: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        pieces.append(text[pos : match.start()])
        pos = match.end()
        if match.group(1):
            name, result = match.group(1).split(".", 1)
            if result not in RESULTS:
                raise ExpressionError(f"task result '{result}' for task '{name}' is invalid")
            names[name] = None
            pieces.append(match.group(1))
        else:
            word = match.group(2)
            if word in _KEYWORDS:
                pieces.append(word)
                continue
            names[word] = None
            pieces.append(_expand(word, tasks.get(word)))
    pieces.append(text[pos:])
    return list(names), "".join(pieces)


def dependency_names(task: Mapping[str, Any], tasks: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The tasks ``task`` waits for."""
    return depends_logic(task, tasks)[0]


def task_results(phase: str, *, task_group: bool, child_phases: list[str]) -> dict[str, bool]:
    """The result flags of one finished dependency."""
    any_succeeded = task_group and any(p == "Succeeded" for p in child_phases)
    all_failed = task_group and bool(child_phases) and all(p == "Failed" for p in child_phases)
    return {
        "Succeeded": phase == "Succeeded",
        "Failed": phase == "Failed",
        "Errored": phase == "Error",
        "Skipped": phase == "Skipped",
        "Omitted": phase == "Omitted",
        "Daemoned": False,
        "AnySucceeded": any_succeeded,
        "AllFailed": all_failed,
    }


def evaluate_depends(logic: str, results: Mapping[str, Mapping[str, bool]]) -> bool:
    """Evaluate an explicit depends expression against each dependency's result flags."""
    env = {name.replace("-", "_"): dict(flags) for name, flags in results.items()}
    text = logic.replace("-", "_")
    try:
        value = exprlang.evaluate(text, env)
    except ExpressionError as exc:
        raise ExpressionError(f"unable to evaluate expression '{text}': {exc}") from None
    if not isinstance(value, bool):
        raise ExpressionError(f"unable to evaluate expression '{text}': it is not a boolean")
    return value
