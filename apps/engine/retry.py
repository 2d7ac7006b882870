"""Step retries (``retryPolicy``) and retrying a whole failed run.

Step retries happen below the engine: the service keeps a failed step non-terminal,
waits ``retry_delay(policy, n)`` seconds and launches it again, and only records FAILED
once ``retry_delay`` returns None. The backoff is Argo's (which KFP compiles
``retryPolicy`` into): ``backoffDuration * backoffFactor ** (n - 1)``, capped at
``backoffMaxDuration``.

Retrying a failed run (KFP's ``runs/{id}:retry``) re-runs only what did not succeed:
:func:`plan_run_retry` says which records to delete (they are planned afresh, with fresh
inputs) and which group nodes to reopen (set back to RUNNING, keeping their succeeded
children). After applying it, a ``plan()`` call picks the run up again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from apps.engine.keys import GROUP_KINDS, ROOT_KEY, NodeState, is_terminal, parent_key
from apps.engine.model import NodeRecord
from apps.engine.spec import RetryPolicy


def retry_delay(policy: RetryPolicy | None, attempt_number: int) -> float | None:
    """Seconds to wait before retry number ``attempt_number`` (1 = first retry); None = give up."""
    if policy is None or attempt_number < 1 or attempt_number > policy.max_retry_count:
        return None
    delay = policy.backoff_duration * policy.backoff_factor ** (attempt_number - 1)
    return float(min(delay, policy.backoff_max_duration))


@dataclass(frozen=True)
class RunRetry:
    """What to change before re-planning a failed run."""

    delete: list[str] = field(default_factory=list)  # records to remove, children listed too
    reopen: list[str] = field(default_factory=list)  # group records to set back to RUNNING


def plan_run_retry(records: Iterable[NodeRecord]) -> RunRetry:
    """Which nodes a retry of a finished, unsuccessful run must reset.

    Succeeded nodes are kept with their outputs. A failed, skipped or canceled step is
    deleted so the engine creates it again. A group that did not succeed is reopened if
    something under it succeeded (so that work is kept), and deleted with everything
    under it otherwise. A group that succeeded is left alone, even if a condition inside
    it was false: re-planning it would decide the same.
    """
    by_key = {r.key: r for r in records}
    root = by_key.get(ROOT_KEY)
    if root is None:
        raise ValueError("the run has no root record")
    if not is_terminal(root.state):
        raise ValueError("only a finished run can be retried")
    if root.state == NodeState.SUCCEEDED:
        return RunRetry()

    children: dict[str, list[str]] = {}
    for key in by_key:
        parent = parent_key(key)
        if parent is not None:
            children.setdefault(parent, []).append(key)

    kept_below: dict[str, bool] = {}

    def has_success_below(key: str) -> bool:
        if key not in kept_below:
            kept_below[key] = any(
                by_key[c].state == NodeState.SUCCEEDED or has_success_below(c) for c in children.get(key, ())
            )
        return kept_below[key]

    def subtree(key: str) -> list[str]:
        out, stack = [], [key]
        while stack:
            current = stack.pop()
            out.append(current)
            stack.extend(children.get(current, ()))
        return out

    result = RunRetry()
    stack = [ROOT_KEY]
    result.reopen.append(ROOT_KEY)
    while stack:
        key = stack.pop()
        for child in sorted(children.get(key, ())):
            record = by_key[child]
            if record.state == NodeState.SUCCEEDED:
                continue
            if record.kind in GROUP_KINDS and has_success_below(child):
                result.reopen.append(child)
                stack.append(child)
            else:
                result.delete.extend(subtree(child))
    return result
