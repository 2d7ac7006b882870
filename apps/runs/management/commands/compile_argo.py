"""``manage.py compile_argo FILE [--param k=v ...]``: print the Argo Workflow a run would submit.

The file is read like an upload (KFP IR YAML, zip or tar.gz), compiled with
``apps.backends.argo.compiler`` and checked against Argo's strict schema. Settings come
from the ``CANAL_ARGO_*`` environment variables (``ArgoSettings.from_env``). Bad input is
a one-line error naming the file or field and exit code 1, never a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.backends.argo.compiler import ArgoSettings, CompileError, compile_workflow
from apps.importers import PipelineImportError, import_pipeline
from apps.importers.argo import validate_argo


def _parse_param(text: str) -> tuple[str, str]:
    # Text, as for the kfp CLI: the compiler parses it as the parameter's declared type.
    if "=" not in text:
        raise CommandError(f"--param {text!r}: expected NAME=VALUE")
    name, raw = text.split("=", 1)
    return name.strip(), raw


class Command(BaseCommand):
    help = "Compile a KFP pipeline file into the Argo Workflow YAML that a run would submit."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE")
        parser.add_argument("--run-id", default="00000000-0000-4000-8000-000000000000")
        parser.add_argument("--run-name", default="")
        parser.add_argument("--namespace", default=os.environ.get("CANAL_ARGO_NAMESPACE", ""))
        parser.add_argument("--pipeline-root", default="")
        parser.add_argument("--cache", dest="cache", action="store_true", default=None)
        parser.add_argument("--no-cache", dest="cache", action="store_false")

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
        if imported.format != "kfp-ir":
            raise CommandError(f"{path.name}: this is already an Argo Workflow; it is submitted as it is")
        try:
            settings = ArgoSettings.from_env(os.environ)
            workflow = compile_workflow(
                imported.pipeline_spec,
                platform_spec=imported.platform_spec,
                run_id=options["run_id"],
                run_name=options["run_name"],
                parameters=dict(_parse_param(p) for p in options["param"]),
                pipeline_root=options["pipeline_root"],
                namespace=options["namespace"],
                enable_caching=options["cache"],
                settings=settings,
            )
        except CompileError as exc:
            raise CommandError(f"{path.name}: {exc}") from exc
        try:
            validate_argo(workflow, filename=None, locate=None)
        except PipelineImportError as exc:  # a compiler bug: say so plainly
            raise CommandError(f"{path.name}: the compiled Workflow fails Argo's schema: {exc}") from exc
        self.stdout.write(yaml.safe_dump(workflow, sort_keys=False, allow_unicode=True, width=120))
