"""A simple driver: run a workflow to the end with an injected pod runner and a thread pool."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol

from .machine import Interpreter, Limits
from .model import PodRequest, PodResult

__all__ = ["PodRunner", "run_interpreter", "run_workflow"]


class PodRunner(Protocol):
    """Runs one pod to its end; ``cancel`` is set when the interpreter stops it."""

    def run(self, request: PodRequest, cancel: threading.Event) -> PodResult:
        """Run ``request`` in the calling thread and report how it ended."""
        ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


def run_workflow(
    workflow: Mapping[str, Any],
    runner: PodRunner,
    parameters: Mapping[str, Any] | None = None,
    *,
    templates: Sequence[Mapping[str, Any]] = (),
    max_workers: int = 8,
    limits: Limits | None = None,
    clock: Callable[[], datetime] = _utcnow,
    on_change: Callable[[dict[str, Any]], None] | None = None,
    deadline: datetime | None = None,
) -> dict[str, Any]:
    """Interpret ``workflow`` until it ends and return its final Argo-shaped status.

    Raises WorkflowRefused (before anything runs) for what the interpreter cannot do.
    """
    interpreter = Interpreter(workflow, parameters=parameters, templates=templates, limits=limits)
    return run_interpreter(
        interpreter, runner, max_workers=max_workers, clock=clock, on_change=on_change, deadline=deadline
    )


def run_interpreter(
    interpreter: Interpreter,
    runner: PodRunner,
    *,
    max_workers: int = 8,
    clock: Callable[[], datetime] = _utcnow,
    on_change: Callable[[dict[str, Any]], None] | None = None,
    deadline: datetime | None = None,
    poll: Callable[[], bool] | None = None,
    poll_interval: float = 1.0,
) -> dict[str, Any]:
    """Drive an (possibly resumed) interpreter to the end; see run_workflow.

    The interpreter is only touched from this thread; pods run in a pool of
    ``max_workers`` threads and report back through a queue. ``deadline`` (wall
    clock) terminates the workflow if it is still running then. ``poll`` is
    called about every ``poll_interval`` seconds (a caller's heartbeat); when it
    returns True the workflow is terminated (``spec.shutdown: Terminate``).
    """
    events: queue.SimpleQueue[tuple[str, str, Any]] = queue.SimpleQueue()
    cancels: dict[str, threading.Event] = {}
    running: set[str] = set()

    def work(request: PodRequest, cancel: threading.Event) -> None:
        events.put(("started", request.node_id, clock()))
        try:
            result = runner.run(request, cancel)
        except Exception as exc:  # a runner bug must not hang the workflow
            result = PodResult(exit_code=None, error=True, message=f"the pod runner failed: {exc}")
        events.put(("finished", request.node_id, result))

    terminated = False
    last_poll = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="argo-pod") as pool:
        try:
            while True:
                now = clock()
                if deadline is not None and now >= deadline and not terminated:
                    interpreter.terminate()
                    terminated = True
                if poll is not None and time.monotonic() - last_poll >= poll_interval:
                    last_poll = time.monotonic()
                    if poll() and not terminated:
                        interpreter.terminate()
                        terminated = True
                tick = interpreter.advance(now)
                for node_id in tick.stop:
                    event = cancels.get(node_id)
                    if event is not None:
                        event.set()
                for request in tick.start:
                    cancel = threading.Event()
                    cancels[request.node_id] = cancel
                    running.add(request.node_id)
                    pool.submit(work, request, cancel)
                if on_change is not None:
                    on_change(interpreter.status)
                if tick.done:
                    for event in cancels.values():
                        event.set()
                    while running:
                        kind, node_id, payload = events.get()
                        if kind == "finished":
                            running.discard(node_id)
                            interpreter.pod_finished(node_id, payload, clock())
                    break
                if not running and tick.wake_at is None:
                    interpreter.abort(
                        "the workflow cannot make progress: nothing runs and nothing is scheduled", now
                    )
                    continue
                wait: float | None = None
                if tick.wake_at is not None:
                    wait = max(0.0, (tick.wake_at - clock()).total_seconds()) + 0.01
                if deadline is not None:
                    until = max(0.0, (deadline - clock()).total_seconds()) + 0.01
                    wait = until if wait is None else min(wait, until)
                if poll is not None:
                    until = max(0.0, poll_interval - (time.monotonic() - last_poll)) + 0.01
                    wait = until if wait is None else min(wait, until)
                try:
                    first = events.get(timeout=wait) if wait is not None else events.get()
                except queue.Empty:
                    continue
                batch = [first]
                while True:
                    try:
                        batch.append(events.get_nowait())
                    except queue.Empty:
                        break
                for kind, node_id, payload in batch:
                    if kind == "started":
                        interpreter.pod_started(node_id, payload)
                    else:
                        running.discard(node_id)
                        cancels.pop(node_id, None)
                        interpreter.pod_finished(node_id, payload, clock())
        except BaseException:
            # The caller gave up (its lease is gone, its database is down): stop every
            # pod before leaving, or they would run on beside whoever resumes the workflow.
            for event in cancels.values():
                event.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return interpreter.status
