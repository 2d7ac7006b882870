"""Where a run may write, and which artifact URIs it may reference.

* A run's pipeline root must be a configured root or inside one (``CANAL_PIPELINE_ROOT``
  plus ``CANAL_PIPELINE_ROOTS``), after normalisation; anything else is refused naming
  the allowed roots. The root is decided when the run is created and stored on it.
* An importer may reference only URIs its namespace owns: the directories of its own
  runs, or ``CANAL_IMPORT_ALLOWED_PREFIXES`` (see ``apps.storage.ownership``). A URI
  known at creation is checked then (a 400, nothing written); every URI is checked
  again when the importer runs, and every input artifact when a step starts, because a
  URI can also come from an upstream step's output.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.core.exceptions import InvalidInput
from apps.core.models import Namespace
from apps.core.storage import storage_scope
from apps.engine.execution import EngineError
from apps.engine.importer_uris import known_importer_uris
from apps.engine.model import StepLaunch
from apps.engine.spec import SpecError, parse_pipeline_spec
from apps.runs.models import Run
from apps.runs.selectors import storage_owned_prefix
from apps.storage import LocationError, RunDir, check_pipeline_root, parse_location
from apps.storage.ownership import run_id_candidates


class PipelineRootNotAllowed(EngineError):
    """A run's stored pipeline root is no longer a configured root: it must not write there."""


def tenant_work_root(namespace_name: str) -> Path:
    """All step directories of one namespace: what that namespace's step sandboxes can see
    (never another namespace's). Namespace names are slugs, safe as a path segment."""
    return Path(settings.CANAL_DATA_DIR) / "work" / (namespace_name or "_none")


def run_work_root(run_id: Any, namespace_name: str) -> Path:
    """The directory under which a run's steps get their own directories."""
    return tenant_work_root(namespace_name) / str(run_id)


def pipeline_root_check(*, pipeline_root: str) -> str:
    """The canonical form of a requested pipeline root, or InvalidInput (field
    ``pipeline_root``) naming the allowed roots. A root inside an existing run's
    artifact directory is refused too: that run's namespace would own this run's files."""
    try:
        canonical = check_pipeline_root(pipeline_root, storage_scope())
    except LocationError as exc:
        raise InvalidInput(str(exc), field="pipeline_root") from None
    location = parse_location(canonical)
    candidates = run_id_candidates(location)
    if candidates:
        rows = Run.objects.filter(pk__in=candidates).values_list("pk", "pipeline_root", "pipeline_name")
        for pk, root, name in rows:
            run_dir = RunDir(str(pk), root, name).location()
            if run_dir is not None and run_dir.contains(location):
                raise InvalidInput(
                    f"pipeline_root {pipeline_root!r} lies inside another run's artifact directory; "
                    "choose a directory of its own",
                    field="pipeline_root",
                )
    return canonical


def pipeline_root_for_run(*, requested: str, spec: Mapping[str, Any]) -> str:
    """The root a new run writes to: the requested one (checked), else the IR's
    ``defaultPipelineRoot`` when it is allowed, else ``CANAL_PIPELINE_ROOT``.

    KFP compiles a default root into most pipelines (``minio://mlpipeline/v2/artifacts``,
    ``s3://change/me``). Refusing those would refuse most KFP pipelines, and using them
    would write where nobody configured, so an unconfigured default falls back to
    Canal's default root; the run page says so (``run_pipeline_root_note``).
    """
    requested = (requested or "").strip()
    if requested:
        return pipeline_root_check(pipeline_root=requested)
    default = spec.get("defaultPipelineRoot")
    if isinstance(default, str) and default.strip():
        try:
            return pipeline_root_check(pipeline_root=default.strip())
        except InvalidInput:
            pass
    return pipeline_root_check(pipeline_root=str(settings.CANAL_PIPELINE_ROOT))


def run_pipeline_root_verify(*, run: Run) -> bool:
    """Before planning: raise PipelineRootNotAllowed when the run's root is not (or no
    longer) allowed, a run created before roots were checked or after the configuration
    changed. A run without a root (created before run_create decided it) gets one here;
    returns True when it did."""
    decided = False
    if not run.pipeline_root:
        try:
            run.pipeline_root = pipeline_root_for_run(requested="", spec=run.pipeline_spec or {})
        except InvalidInput as exc:
            raise PipelineRootNotAllowed(exc.message) from None
        decided = True
    try:
        check_pipeline_root(run.pipeline_root, storage_scope())
    except LocationError as exc:
        raise PipelineRootNotAllowed(str(exc)) from None
    return decided


def import_refusal(*, uri: str, namespace_name: str, task: str = "") -> str:
    """The message for an importer URI its namespace does not own."""
    who = f"task '{task}' imports" if task else "the importer references"
    return (
        f"{who} {uri!r}, which namespace '{namespace_name}' does not own: an importer may reference only "
        f"artifacts of this namespace's runs, or URIs under CANAL_IMPORT_ALLOWED_PREFIXES "
        f"({storage_scope().describe_prefixes()})"
    )


def importer_uris_check(
    *,
    namespace: Namespace,
    spec: Mapping[str, Any],
    platform_spec: Mapping[str, Any] | None,
    parameters: Mapping[str, Any],
) -> None:
    """Refuse (InvalidInput naming the task and the URI) an importer whose URI is known
    now (a constant or a pipeline parameter) and not owned by ``namespace``. The field is
    ``parameters.<name>`` when the URI came from a parameter, else ``pipeline_spec``."""
    try:
        parsed = parse_pipeline_spec(spec, platform_spec)
    except SpecError:
        return  # the run fails with the reason when it is planned
    for found in known_importer_uris(parsed, parameters):
        if storage_owned_prefix(uri=found.uri, namespace_id=namespace.pk) is None:
            raise InvalidInput(
                import_refusal(uri=found.uri, namespace_name=namespace.name, task=found.task),
                field=f"parameters.{found.parameter}" if found.parameter else "pipeline_spec",
            )


def run_uri_usable(*, run: Run, uri: str) -> bool:
    """Whether a running step of ``run`` may use ``uri``: its namespace owns it, or it is
    inside the run's own work directories (where ``dsl.get_uri()`` puts pythonic artifacts)."""
    if storage_owned_prefix(uri=uri, namespace_id=run.namespace_id, known_runs=[run]) is not None:
        return True
    try:
        location = parse_location(uri)
        work = parse_location(str(run_work_root(run.pk, run.namespace.name)))
    except LocationError:
        return False
    return work.contains(location)


def step_inputs_check(*, run: Run, launch: StepLaunch) -> str:
    """Why a step may not start (an input artifact outside its namespace's storage), or ''."""
    for name, refs in launch.input_artifacts.items():
        for ref in refs:
            if ref.uri and not run_uri_usable(run=run, uri=ref.uri):
                return (
                    f"input artifact '{name}' is at {ref.uri}, which namespace '{run.namespace.name}' "
                    "does not own; a step may read only artifacts of its namespace's runs or under "
                    "CANAL_IMPORT_ALLOWED_PREFIXES"
                )
    return ""
