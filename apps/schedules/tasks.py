"""Scheduler entry points (called by the canal_scheduler loop)."""

from __future__ import annotations

import logging

from apps.runs.services import argo_runs_sync, runs_reap
from apps.schedules.services import schedules_tick

logger = logging.getLogger("canal.scheduler")


def scheduler_tick() -> None:
    """One scheduler pass: fire due recurring runs, then recover lost work. Each
    part runs even if the other failed."""
    try:
        schedules_tick()
    except Exception:
        logger.exception("recurring runs: tick failed")
    runs_reap()
    try:
        argo_runs_sync()  # the persistence agent of the argo executor
    except Exception:
        logger.exception("Argo runs: sync failed")
