"""A synchronous, clock-controlled harness for the interpreter (no processes, no sleeps)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from apps.backends.argo.interpreter import Interpreter, PodRequest, PodResult

START = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def wf(text: str) -> dict[str, Any]:
    """A workflow from YAML text."""
    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict)
    return loaded


def ok(request: PodRequest) -> PodResult:
    """Every pod succeeds; stdout is its argv; output parameters are '<name>-value'."""
    return PodResult(
        exit_code=0,
        stdout=" ".join(request.main.argv) + "\n",
        parameters={p.name: f"{p.name}-value" for p in request.output_parameters},
        artifacts={a.name: {"s3": {"key": a.key}} for a in request.output_artifacts},
    )


@dataclass
class Harness:
    """Drives an interpreter: every advance starts pods, each gets ``decide``'s result at once.

    ``duration`` seconds of fake time pass while a pod runs; when nothing is
    running the clock jumps to the interpreter's wake-up time.
    """

    interpreter: Interpreter
    decide: Callable[[PodRequest], PodResult] = ok
    now: datetime = START
    duration: float = 1.0
    started: list[PodRequest] = field(default_factory=list)
    ticks: int = 0

    def step(self) -> bool:
        """One advance, and the pods it started run to their end; False once the workflow is done."""
        tick = self.interpreter.advance(self.now)
        self.ticks += 1
        if tick.done:
            return False
        for request in tick.start:
            self.started.append(request)
            self.interpreter.pod_started(request.node_id, self.now)
        if tick.start:
            self.now += timedelta(seconds=self.duration)
            for request in tick.start:
                self.interpreter.pod_finished(request.node_id, self.decide(request), self.now)
        elif tick.wake_at is not None:
            self.now = max(self.now + timedelta(milliseconds=1), tick.wake_at)
        else:
            raise AssertionError("the interpreter neither started a pod nor asked to be woken")
        return True

    def run(self, limit: int = 500) -> dict[str, Any]:
        """Step until done (``limit`` advances at most); returns the status."""
        for _ in range(limit):
            if not self.step():
                return self.interpreter.status
        raise AssertionError(f"not done after {limit} advances: {self.interpreter.status.get('phase')}")


def nodes_by_display(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Nodes keyed by display name (the last one wins for duplicates)."""
    return {n["displayName"]: n for n in status["nodes"].values()}


def roundtrip(status: dict[str, Any]) -> dict[str, Any]:
    """The status as a controller would persist and load it."""
    loaded = json.loads(json.dumps(status))
    assert isinstance(loaded, dict)
    return loaded
