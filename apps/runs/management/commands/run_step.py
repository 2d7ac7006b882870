"""``manage.py run_step RUN_ID TASK [--param k=v ...] [--downstream] [--wait]``: re-run one
step of a finished run, as the task panel's "Re-run this step" form does.

TASK is the task's id, its key (``root/train``) or its name at the top level. The new
child run goes through the same service as the UI and API (``task_rerun``); a worker
must be running to execute it. Prints the child run's id and URL; with ``--wait``, its
final state, and the command fails (exit 1) unless it succeeded.
"""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse

from apps.core.authz import OPERATOR
from apps.core.exceptions import NotFound, ServiceError
from apps.runs.management.commands.run_pipeline import fail_unless_succeeded, parse_param, wait_finished
from apps.runs.selectors import run_get, run_get_unscoped, task_get
from apps.runs.services import task_rerun


class Command(BaseCommand):
    help = "Re-run one step of a finished run in a new child run (recorded or edited inputs)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id", help="The origin run's id.")
        parser.add_argument("task", help="The step: its task id, its key (root/NAME) or its top-level name.")
        parser.add_argument(
            "--param",
            "-p",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="Change one of the step's input parameters (parsed as its declared type).",
        )
        parser.add_argument(
            "--downstream", action="store_true", help="Also run the tasks that depend on the step."
        )
        parser.add_argument("--name", default="", help="The new run's name.")
        parser.add_argument(
            "--user",
            default="",
            help="Act as this user (needs the editor role in the run's namespace). Default: the operator.",
        )
        parser.add_argument("--wait", action="store_true", help="Wait until the new run finishes.")
        parser.add_argument("--timeout", type=float, default=3600.0, help="Seconds to wait (with --wait).")
        parser.add_argument(
            "--base-url",
            default=os.environ.get("CANAL_BASE_URL", "http://127.0.0.1:8000"),
            help="Where Canal's web UI is, for the printed link (default: $CANAL_BASE_URL or "
            "http://127.0.0.1:8000).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        params = dict(parse_param(p) for p in options["param"])
        actor = self._actor(options["user"])
        try:
            run = run_get_unscoped(run_id=options["run_id"]) if actor is OPERATOR else None
            if run is None:
                run = run_get(user=actor, run_id=options["run_id"])
            task = self._task(run, options["task"])
            child = task_rerun(
                actor=actor,
                run=run,
                task_ref=task.pk,
                parameters=params,
                include_downstream=options["downstream"],
                display_name=options["name"],
            )
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        url = options["base_url"].rstrip("/") + reverse("runs:detail", kwargs={"run_id": child.pk})
        self.stdout.write(f"run {child.pk}: re-run of {task.key} from run {run.pk}")
        self.stdout.write(f"  {url}")
        if not options["wait"]:
            return
        child = wait_finished(child, options["timeout"])
        self.stdout.write(f"run {child.pk}: {child.state}")
        fail_unless_succeeded(child)

    def _actor(self, username: str) -> Any:
        if not username:
            return OPERATOR
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"--user {username!r}: there is no active user of that name")
        return user

    def _task(self, run: Any, ref: str) -> Any:
        try:
            return task_get(run=run, task_id=ref)
        except NotFound:
            pass
        try:
            return task_get(run=run, task_id=f"root/{ref}")
        except NotFound as exc:
            raise CommandError(f"run {run.pk} has no task {ref!r}") from exc
