"""Liveness heartbeats of Canal's background processes, read by ``/healthz``.

A Celery worker beats from a daemon thread started by a worker bootstep
(``WorkerHeartbeatStep``, registered in pipelines_site/celery.py); the scheduler beats
from its own loop (``canal_scheduler``), so a wedged loop stops beating. Each beat is
one UPDATE of the process's own row (``core.ProcessHeartbeat``).

Why not Celery's own worker heartbeats? They are broker events (the filesystem
broker of ``make run`` has none, and a health check would have to listen for them);
a row in the database answers ``/healthz`` with one cheap query.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime
from typing import Any

from celery import bootsteps
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

logger = logging.getLogger("canal.heartbeat")


class Heartbeat:
    """The heartbeat of this process, as one ``kind`` (worker or scheduler)."""

    def __init__(self, kind: str, *, interval: float | None = None) -> None:
        self.kind = kind
        self.interval = interval if interval is not None else settings.CANAL_PROCESS_HEARTBEAT_SECONDS
        self.instance = uuid.uuid4()
        self.started_at: datetime = timezone.now()
        self._last = float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def beat(self) -> bool:
        """Record one heartbeat now. Never raises: a database hiccup must not stop the
        process it reports on (the next beat tries again). Returns whether it was stored."""
        from apps.core.services import process_heartbeat_record

        self._last = time.monotonic()
        try:
            process_heartbeat_record(
                instance=self.instance,
                kind=self.kind,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                started_at=self.started_at,
            )
        except Exception:  # logged once per outage, not every few seconds
            if not self._failing:
                logger.warning("%s heartbeat could not be recorded", self.kind, exc_info=True)
            self._failing = True
            return False
        if self._failing:
            logger.info("%s heartbeat recorded again", self.kind)
        self._failing = False
        return True

    def beat_if_due(self) -> None:
        """For a loop that calls this every tick: beat when an interval has passed."""
        if time.monotonic() - self._last >= self.interval:
            self.beat()

    def start_thread(self) -> None:
        """Beat every interval from a daemon thread until ``stop()``."""

        def run() -> None:
            # This thread's own database connection: renewed as Django's request cycle
            # would (CONN_MAX_AGE, broken connections), closed when the thread ends.
            try:
                while not self._stop.is_set():
                    close_old_connections()
                    self.beat()
                    self._stop.wait(self.interval)
            finally:
                connection.close()

        self._thread = threading.Thread(target=run, name=f"canal-{self.kind}-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and remove this process's row (a clean stop is not a death)."""
        from apps.core.services import process_heartbeat_forget

        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
        try:
            process_heartbeat_forget(instance=self.instance)
        except Exception:
            logger.warning("%s heartbeat row could not be removed", self.kind, exc_info=True)


class WorkerHeartbeatStep(bootsteps.StartStopStep):  # type: ignore[misc]  # Celery ships no types
    """A Celery worker bootstep: the worker's heartbeat runs while the worker does."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.heartbeat: Heartbeat | None = None

    def start(self, parent: Any) -> None:
        self.heartbeat = Heartbeat("worker")
        self.heartbeat.start_thread()
        logger.info("worker heartbeat started (every %.1fs)", self.heartbeat.interval)

    def stop(self, parent: Any) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
            self.heartbeat = None
