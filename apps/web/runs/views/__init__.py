"""Run pages: the runs list with bulk actions and metric columns, the new-run form, the
run page with live updates and the task panel, logs, run actions, and comparison."""

from apps.web.runs.views.actions import run_archive, run_delete, run_retry, run_terminate, run_unarchive
from apps.web.runs.views.compare import run_compare
from apps.web.runs.views.create import run_new
from apps.web.runs.views.detail import run_detail, run_graph_svg, run_panel, run_status, run_tasks_fragment
from apps.web.runs.views.lists import run_bulk, run_list
from apps.web.runs.views.logs import task_log, task_log_download
from apps.web.runs.views.rerun import task_rerun

__all__ = [
    "run_archive",
    "run_bulk",
    "run_compare",
    "run_delete",
    "run_detail",
    "run_graph_svg",
    "run_list",
    "run_new",
    "run_panel",
    "run_retry",
    "run_status",
    "run_tasks_fragment",
    "run_terminate",
    "run_unarchive",
    "task_log",
    "task_log_download",
    "task_rerun",
]
