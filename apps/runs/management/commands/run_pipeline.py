"""``manage.py run_pipeline FILE.yaml [--param k=v ...] [--wait]``: start a run from a file
(KFP IR, or an Argo Workflow).

For scripting and benchmarks: the run goes through the same services as the UI and
API (a worker must be running to execute it). With ``--user NAME`` it acts as that
user, whose role in the namespace is checked as in the UI; without, it acts as the
operator (``apps.core.authz.OPERATOR``), who may create the namespace too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.authz import OPERATOR
from apps.core.choices import RuntimeState
from apps.core.exceptions import ServiceError
from apps.core.selectors import namespace_get_for_user
from apps.core.services import namespace_ensure
from apps.importers import PipelineImportError, import_pipeline
from apps.runs.selectors import run_get_unscoped, task_list
from apps.runs.services import run_create


def parse_param(text: str) -> tuple[str, str]:
    """One ``--param NAME=VALUE`` as (name, value text); a CommandError without ``=``."""
    # The value stays text: run_create parses it as the parameter's declared type
    # (so "5" is a number for NUMBER_INTEGER and the string "5" for STRING), as for
    # the kfp CLI's k=v arguments.
    if "=" not in text:
        raise CommandError(f"--param {text!r}: expected NAME=VALUE")
    name, raw = text.split("=", 1)
    return name.strip(), raw


class Command(BaseCommand):
    help = (
        "Start a run of a pipeline file (KFP IR YAML/zip/tar.gz, or Argo Workflow YAML) "
        "and optionally wait for it."
    )
    # Django's system checks load the whole URL configuration (every view, the API's
    # schema, DRF, markdown-it): about 0.4 s of a scripted run's 1.5 s, for checks of
    # the web server's configuration that ``migrate`` and ``runserver`` run anyway.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--param",
            "-p",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="A runtime parameter, parsed as its declared type (LIST and STRUCT as JSON).",
        )
        parser.add_argument("--name", default="", help="Run name (default: the pipeline's name).")
        parser.add_argument("--namespace", default="default")
        parser.add_argument(
            "--user",
            default="",
            help="Act as this user (needs the editor role in the namespace). Default: the operator.",
        )
        parser.add_argument("--pipeline-root", default="")
        parser.add_argument(
            "--cache",
            dest="cache",
            action="store_true",
            default=None,
            help="Force caching on for every step.",
        )
        parser.add_argument("--no-cache", dest="cache", action="store_false", help="Force caching off.")
        parser.add_argument("--wait", action="store_true", help="Wait until the run finishes.")
        parser.add_argument("--timeout", type=float, default=3600.0, help="Seconds to wait (with --wait).")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from exc
        try:
            imported = import_pipeline(data, path.name)
        except PipelineImportError as exc:
            raise CommandError(str(exc)) from exc
        params = dict(parse_param(p) for p in options["param"])
        try:
            actor, namespace = self._actor_and_namespace(options["user"], options["namespace"])
            run = run_create(
                actor=actor,
                namespace=namespace,
                display_name=options["name"] or imported.display_name or imported.name or path.stem,
                pipeline_spec=imported.pipeline_spec,
                platform_spec=imported.platform_spec,
                parameters=params,
                pipeline_root=options["pipeline_root"],
                enable_caching=options["cache"],
            )
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        if not options["wait"]:
            self._print(run, options["json"], final=False)
            return
        run = wait_finished(run, options["timeout"])
        self._print(run, options["json"], final=True)
        fail_unless_succeeded(run)

    def _actor_and_namespace(self, username: str, namespace_name: str) -> tuple[Any, Any]:
        if not username:
            return OPERATOR, namespace_ensure(actor=OPERATOR, name=namespace_name)
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"--user {username!r}: there is no active user of that name")
        return user, namespace_get_for_user(user=user, name=namespace_name)

    def _print(self, run: Any, as_json: bool, *, final: bool) -> None:
        tasks = list(task_list(run=run)) if final else []
        result = {
            "run_id": str(run.pk),
            "state": run.state,
            "error": run.error,
            "created_at": run.created_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "tasks": {
                t.key: {
                    "state": t.state,
                    "outputs": t.outputs,
                    **({"cached_from": str(t.cached_from_id)} if t.cached_from_id else {}),
                    **({"error": t.error} if t.error else {}),
                }
                for t in tasks
            },
        }
        if as_json:
            self.stdout.write(json.dumps(result, default=str))
            return
        self.stdout.write(f"run {result['run_id']}: {run.state}")
        if run.error:
            self.stdout.write(f"  error: {run.error}")
        for key, info in result["tasks"].items():
            outputs = info["outputs"] or {}
            params = outputs.get("parameters") or {}
            arts = outputs.get("artifacts") or {}
            extra = "".join(f" {k}={json.dumps(v)}" for k, v in params.items())
            extra += "".join(f" {k}->{[a.get('uri') for a in v]}" for k, v in arts.items())
            self.stdout.write(
                f"  {key}: {info['state']}{' (cached)' if 'cached_from' in info else ''}{extra}"
            )


def wait_finished(run: Any, timeout: float) -> Any:
    """The run, re-read until it reaches a terminal state (``--wait``); a CommandError
    naming its state once ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        run = run_get_unscoped(run_id=run.pk)
        if run.state in RuntimeState.terminal():
            return run
        if time.monotonic() > deadline:
            raise CommandError(f"run {run.pk} did not finish within {timeout:g}s (state {run.state})")
        time.sleep(0.02)  # one primary-key read: cheap, and --wait returns within 20 ms of the end


def fail_unless_succeeded(run: Any) -> None:
    """``--wait``'s exit status: non-zero, with the run's error, unless it succeeded."""
    if run.state != RuntimeState.SUCCEEDED:
        raise CommandError(f"run {run.pk} ended {run.state}: {run.error}".rstrip(": "))
