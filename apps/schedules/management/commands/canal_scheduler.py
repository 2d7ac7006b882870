"""``manage.py canal_scheduler``: Canal's scheduler loop (started by ``make run``).

Each tick it (1) fires due recurring runs and (2) reaps lost work: steps whose
worker stopped renewing their lease, and runs with nothing left in flight. Both
are safe to run in several scheduler processes at once: claims use row locks
(SKIP LOCKED where the database has it) and run identity is unique per schedule
instant, so nothing fires twice.
"""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from apps.core.heartbeat import Heartbeat
from apps.schedules.tasks import scheduler_tick

logger = logging.getLogger("canal.scheduler")


class Command(BaseCommand):
    help = "Run the scheduler loop: fire due recurring runs and recover lost work."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Run one tick and exit.")
        parser.add_argument(
            "--tick", type=float, default=None, help="Seconds between ticks (CANAL_SCHEDULER_TICK_SECONDS)."
        )
        parser.add_argument("--duration", type=float, default=None, help="Stop after this many seconds.")

    def handle(self, *args: Any, **options: Any) -> None:
        tick = options["tick"] or settings.CANAL_SCHEDULER_TICK_SECONDS
        deadline = time.monotonic() + options["duration"] if options["duration"] else None
        stopping = False

        def stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        logger.info("scheduler started (tick %.1fs)", tick)
        # Beaten from the loop itself (not a thread): a wedged loop shows as dead in /healthz.
        heartbeat = Heartbeat("scheduler")
        while not stopping:
            started = time.monotonic()
            close_old_connections()
            heartbeat.beat_if_due()
            try:
                scheduler_tick()
            except Exception:  # one bad tick must not stop the loop; the next one retries
                logger.exception("scheduler tick failed")
            if options["once"] or (deadline is not None and time.monotonic() >= deadline):
                break
            time.sleep(max(0.0, tick - (time.monotonic() - started)))
        heartbeat.stop()
        logger.info("scheduler stopped")
