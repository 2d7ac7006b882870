"""Scheduler entry points (called by the canal_scheduler loop)."""

from __future__ import annotations

import logging

from apps.runs.services import runs_reap

logger = logging.getLogger("canal.scheduler")


def scheduler_tick() -> None:
    """One scheduler pass: recover lost work. (Recurring runs plug in here too.)"""
    runs_reap()
