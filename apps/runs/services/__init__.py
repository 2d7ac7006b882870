"""Write-side operations for runs (lifecycle, execution, recovery)."""

from apps.runs.services.argo_cluster import argo_run_sync, argo_runs_sync
from apps.runs.services.argo_interpreted import argo_interpret
from apps.runs.services.execution import run_advance, run_fail_unexpected
from apps.runs.services.lifecycle import (
    run_archive,
    run_clone,
    run_create,
    run_delete,
    run_retry,
    run_terminate,
    run_unarchive,
)
from apps.runs.services.local_steps import task_execute
from apps.runs.services.reaper import ReapReport, runs_reap
from apps.runs.services.rerun import rerun_plan, task_rerun

__all__ = [
    "ReapReport",
    "argo_interpret",
    "argo_run_sync",
    "argo_runs_sync",
    "rerun_plan",
    "run_advance",
    "run_archive",
    "run_clone",
    "run_create",
    "run_delete",
    "run_fail_unexpected",
    "run_retry",
    "run_terminate",
    "run_unarchive",
    "runs_reap",
    "task_execute",
    "task_rerun",
]
