"""RunService, plus reading a step's artifact and log."""

from __future__ import annotations

import base64
from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from apps.api import schema, wire
from apps.api.listing import RUNS
from apps.api.parsing import query_text, read_body
from apps.api.views.base import EMPTY, KfpView, answer, list_page, namespace_for
from apps.artifacts.selectors import artifact_get, artifact_preview
from apps.core.exceptions import FailedPrecondition, InvalidInput, NotFound
from apps.experiments.selectors import experiment_get
from apps.pipelines.selectors import pipeline_get, pipeline_version_get, pipeline_version_latest
from apps.runs.selectors import (
    run_get,
    run_list,
    task_get,
    task_list_named,
    task_list_with_cache_origin,
    task_log_read,
    task_why,
)
from apps.runs.services import (
    run_archive,
    run_create,
    run_delete,
    run_retry,
    run_terminate,
    run_unarchive,
    task_rerun,
)

TAG = "RunService"
RUN_ID = schema.path("run_id", "The run's id.")
NODE_ID = schema.path("node_id", "The task: its task_id, or its task name in the pipeline.")
MAX_ARTIFACT_READ = 32 * 1024 * 1024
DEFAULT_LOG_LIMIT = 1024 * 1024
MAX_LOG_LIMIT = 16 * 1024 * 1024


def resolve_pipeline_source(user: Any, body: dict[str, Any]) -> dict[str, Any]:
    """The pipeline a run or recurring run starts from: exactly one of an inline
    ``pipeline_spec``, ``pipeline_version_reference`` (no version: the latest) or the
    deprecated ``pipeline_version_id``. Returns keyword arguments for the services."""
    spec = body.get("pipeline_spec")
    reference = body.get("pipeline_version_reference")
    legacy_version = body.get("pipeline_version_id")
    given = [spec is not None, reference is not None, bool(legacy_version)]
    if sum(given) != 1:
        raise InvalidInput(
            "give exactly one of pipeline_spec, pipeline_version_reference or pipeline_version_id",
            field="pipeline_spec",
        )
    if spec is not None:
        return {"pipeline_spec": spec}
    if legacy_version:
        version = pipeline_version_get(user=user, version_id=legacy_version)
        return {"pipeline": version.pipeline, "pipeline_version": version}
    assert reference is not None
    pipeline_id, version_id = reference.get("pipeline_id"), reference.get("pipeline_version_id")
    if version_id:
        version = pipeline_version_get(user=user, version_id=version_id, pipeline_id=pipeline_id or None)
        return {"pipeline": version.pipeline, "pipeline_version": version}
    if not pipeline_id:
        raise InvalidInput(
            "pipeline_version_reference needs a pipeline_id", field="pipeline_version_reference.pipeline_id"
        )
    pipeline = pipeline_get(user=user, pipeline_id=pipeline_id)
    return {"pipeline": pipeline, "pipeline_version": None}


def resolve_experiment(user: Any, experiment_id: str, namespace_name: str = "") -> tuple[Any, Any]:
    """(namespace, experiment) for a new run: the experiment's namespace when one is
    given (it must be visible), else the named or default namespace (and its
    Default experiment, which the service picks)."""
    if experiment_id:
        experiment = experiment_get(user=user, experiment_id=experiment_id)
        if namespace_name and namespace_name != experiment.namespace.name:
            raise InvalidInput("the experiment belongs to another namespace", field="experiment_id")
        return experiment.namespace, experiment
    return namespace_for(user, namespace_name), None


def runtime_config(body: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    config = body.get("runtime_config") or {}
    return config.get("parameters"), config.get("pipeline_root", "")


class RunListView(KfpView):
    @extend_schema(
        operation_id="run_service_list_runs",
        tags=[TAG],
        parameters=[
            schema.NAMESPACE,
            schema.query("experiment_id", "Only the runs of this experiment (takes precedence)."),
            *schema.LIST_PARAMETERS,
        ],
        responses=schema.responses(schema.ListRunsSerializer),
        description="Runs without their spec and task details (get a run for those).",
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        experiment_id = query_text(params, "experiment_id", max_length=64)
        if experiment_id:
            experiment = experiment_get(user=request.user, experiment_id=experiment_id)
            qs = run_list(user=request.user, namespace=experiment.namespace, experiment=experiment)
        else:
            namespace = namespace_for(request.user, query_text(params, "namespace"))
            qs = run_list(user=request.user, namespace=namespace)
        return list_page(request, qs, RUNS, schema.ListRunsSerializer, wire.run)

    @extend_schema(
        operation_id="run_service_create_run",
        tags=[TAG],
        parameters=[schema.query("experiment_id", "Deprecated: use the body's experiment_id.")],
        request=schema.RunSerializer,
        responses=schema.responses(schema.RunSerializer),
    )
    def post(self, request: Request) -> Response:
        body = read_body(request, schema.RunSerializer)
        experiment_id = body.get("experiment_id") or query_text(
            request.query_params, "experiment_id", max_length=64
        )
        namespace, experiment = resolve_experiment(request.user, experiment_id)
        source = resolve_pipeline_source(request.user, body)
        if source.get("pipeline") is not None and source.get("pipeline_version") is None:
            latest = pipeline_version_latest(pipeline=source["pipeline"])
            if latest is None:
                raise FailedPrecondition("the pipeline has no versions to run")
            source["pipeline_version"] = latest
        parameters, pipeline_root = runtime_config(body)
        run = run_create(
            namespace=namespace,
            actor=request.user,
            display_name=body.get("display_name", ""),
            experiment=experiment,
            pipeline_version=source.get("pipeline_version"),
            pipeline_spec=source.get("pipeline_spec"),
            description=body.get("description", ""),
            parameters=parameters,
            pipeline_root=pipeline_root,
            service_account=body.get("service_account", ""),
            # A Canal extension (KFP has no such field; its client never sends it).
            executor=body.get("executor", ""),
        )
        return answer(schema.RunSerializer, wire.run(run, tasks=[], with_spec=True))


def _run(request: Request, run_id: str, *, with_spec: bool = False) -> Any:
    return run_get(user=request.user, run_id=run_id, with_spec=with_spec)


class RunDetailView(KfpView):
    @extend_schema(
        operation_id="run_service_get_run",
        tags=[TAG],
        parameters=[RUN_ID, schema.query("experiment_id", "Ignored (deprecated).")],
        responses=schema.responses(schema.RunSerializer),
    )
    def get(self, request: Request, run_id: str) -> Response:
        run = _run(request, run_id, with_spec=True)
        tasks = list(task_list_with_cache_origin(run=run))
        why = {task.pk: task_why(run=run, task=task) for task in tasks}
        return answer(schema.RunSerializer, wire.run(run, tasks=tasks, with_spec=True, why=why))

    @extend_schema(
        operation_id="run_service_delete_run",
        tags=[TAG],
        parameters=[RUN_ID, schema.query("experiment_id", "Ignored (deprecated).")],
        responses=schema.responses(schema.EMPTY),
    )
    def delete(self, request: Request, run_id: str) -> Response:
        run_delete(actor=request.user, run=_run(request, run_id))
        return Response(EMPTY)


def _action_view(name: str, action: Any, description: str) -> type[KfpView]:
    class RunActionView(KfpView):
        @extend_schema(
            operation_id=f"run_service_{name}_run",
            tags=[TAG],
            parameters=[RUN_ID, schema.query("experiment_id", "Ignored (deprecated).")],
            request=None,
            responses=schema.responses(schema.EMPTY),
            description=description,
        )
        def post(self, request: Request, run_id: str) -> Response:
            action(actor=request.user, run=_run(request, run_id))
            return Response(EMPTY)

    RunActionView.__name__ = RunActionView.__qualname__ = f"Run{name.title()}View"
    return RunActionView


RunTerminateView = _action_view(
    "terminate", run_terminate, "Stop the run: it goes CANCELING, then CANCELED when nothing is left running."
)


def _retry(*, actor: Any, run: Any) -> None:
    try:
        run_retry(actor=actor, run=run)
    except ValueError as exc:  # the engine cannot plan a retry (e.g. the run never started a step)
        raise FailedPrecondition(f"this run cannot be retried: {exc}") from exc


RunRetryView = _action_view(
    "retry", _retry, "Re-run a failed or canceled run's unfinished steps; succeeded steps are kept."
)
RunArchiveView = _action_view("archive", run_archive, "Hide the run from the default lists.")


class TaskRerunView(KfpView):
    @extend_schema(
        operation_id="run_service_rerun_task",
        tags=[TAG],
        parameters=[RUN_ID, schema.path("task_id", "The step to re-run: its task_id, or its task name.")],
        request=schema.TaskRerunRequestSerializer,
        responses=schema.responses(schema.RunSerializer),
        description="Canal extension. Re-run one step of a finished run in a new child run, with the "
        "input parameters the origin recorded, overridden by `parameters` (name: value, typed as the "
        "step declares them; strings are parsed). Upstream outputs come from the origin's records; "
        "with `include_downstream`, the tasks that depend on the step run too. Editor role and up.",
    )
    def post(self, request: Request, run_id: str, task_id: str) -> Response:
        run = _run(request, run_id, with_spec=True)
        body = read_body(request, schema.TaskRerunRequestSerializer)
        task = find_task(run, task_id)
        child = task_rerun(
            actor=request.user,
            run=run,
            task_ref=task.pk,
            parameters=body.get("parameters"),
            include_downstream=body.get("include_downstream", False),
            display_name=body.get("display_name", ""),
        )
        return answer(schema.RunSerializer, wire.run(child, tasks=[], with_spec=True))


RunUnarchiveView = _action_view("unarchive", run_unarchive, "Bring an archived run back.")


def find_task(run: Any, node_id: str) -> Any:
    """A run's task by id, by key, by its name at the top level, or by a name used once."""
    try:
        return task_get(run=run, task_id=node_id)
    except NotFound:
        pass
    try:
        return task_get(run=run, task_id=f"root/{node_id}")
    except NotFound:
        pass
    matches = task_list_named(run=run, name=node_id)
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise InvalidInput(f"several tasks are named {node_id!r}; use the task_id", field="node_id")
    raise NotFound(f"task {node_id} not found in run {run.pk}")


class ReadArtifactView(KfpView):
    @extend_schema(
        operation_id="run_service_read_artifact",
        tags=[TAG],
        parameters=[RUN_ID, NODE_ID, schema.path("artifact_name", "The output artifact's name.")],
        responses=schema.responses(schema.ReadArtifactSerializer),
        description="The content of one output artifact of a task (a file), base64-encoded in `data`.",
    )
    def get(self, request: Request, run_id: str, node_id: str, artifact_name: str) -> Response:
        run = _run(request, run_id)
        task = find_task(run, node_id)
        refs = ((task.outputs or {}).get("artifacts") or {}).get(artifact_name) or []
        ids = [ref.get("id") for ref in refs if isinstance(ref, dict) and ref.get("id")]
        if not ids:
            raise NotFound(f"task {node_id} has no output artifact named {artifact_name!r}")
        if len(ids) > 1:
            raise InvalidInput(f"{artifact_name!r} is a list of {len(ids)} artifacts; read them one by one")
        artifact = artifact_get(user=request.user, artifact_id=ids[0])
        try:
            preview = artifact_preview(artifact=artifact, limit=MAX_ARTIFACT_READ)
        except IsADirectoryError:
            raise FailedPrecondition("the artifact is a directory; download its files from the UI") from None
        except OSError:
            raise NotFound("the artifact's content cannot be read") from None
        if preview.truncated:
            raise FailedPrecondition(
                f"the artifact is larger than {MAX_ARTIFACT_READ} bytes; download it from the UI"
            )
        return answer(schema.ReadArtifactSerializer, {"data": base64.b64encode(preview.data).decode("ascii")})


def _int_param(params: Any, name: str, default: int, *, minimum: int = 0) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    if not str(raw).isdigit() or len(str(raw)) > 15:
        raise InvalidInput(f"{name} must be a non-negative integer", field=name)
    value = int(raw)
    if value < minimum:
        raise InvalidInput(f"{name} must be at least {minimum}", field=name)
    return value


class TaskLogView(KfpView):
    @extend_schema(
        operation_id="run_service_read_task_log",
        tags=[TAG],
        parameters=[
            RUN_ID,
            NODE_ID,
            schema.query("attempt", "Attempt number (default: the latest).", OpenApiTypes.INT),
            schema.query("offset", "Byte offset to start at (for tailing).", OpenApiTypes.INT),
            schema.query("limit", "Most bytes to return (default 1 MiB, at most 16 MiB).", OpenApiTypes.INT),
        ],
        responses={
            (200, "text/plain"): OpenApiResponse(
                OpenApiTypes.STR,
                description="The log bytes. X-Log-Next-Offset says where to continue, X-Log-Size how "
                "much has been written so far.",
            ),
            **schema.ERRORS,
        },
        description="A step's log (Canal's counterpart of KFP's /apis/v1alpha1/runs/{id}/nodes/{node}/log).",
    )
    def get(self, request: Request, run_id: str, node_id: str) -> HttpResponse:
        params = request.query_params
        attempt = _int_param(params, "attempt", 0) or None
        offset = _int_param(params, "offset", 0)
        limit = min(_int_param(params, "limit", DEFAULT_LOG_LIMIT, minimum=1), MAX_LOG_LIMIT)
        task = find_task(_run(request, run_id), node_id)
        chunk = task_log_read(task=task, attempt=attempt, offset=offset, limit=limit)
        response = HttpResponse(chunk.data, content_type="text/plain; charset=utf-8")
        response["X-Log-Offset"] = str(chunk.offset)
        response["X-Log-Next-Offset"] = str(chunk.next_offset)
        response["X-Log-Size"] = str(chunk.size)
        response["X-Content-Type-Options"] = "nosniff"
        return response
