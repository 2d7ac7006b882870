"""RecurringRunService: the wire format, wired to ``apps.schedules`` (which owns the
scheduling behaviour). The list response key is ``recurringRuns``, as in KFP."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from apps.api import schema, wire
from apps.api.listing import RECURRING_RUNS
from apps.api.parsing import query_text, read_body
from apps.api.views.base import EMPTY, KfpView, answer, list_page, namespace_for
from apps.api.views.runs import resolve_experiment, resolve_pipeline_source, runtime_config
from apps.core.choices import RecurringRunMode, TriggerType
from apps.core.exceptions import InvalidInput
from apps.experiments.selectors import experiment_get
from apps.schedules.selectors import recurring_run_get, recurring_run_list
from apps.schedules.services import (
    recurring_run_create,
    recurring_run_delete,
    recurring_run_disable,
    recurring_run_enable,
)

TAG = "RecurringRunService"
RECURRING_RUN_ID = schema.path("recurring_run_id", "The recurring run's id.")
TRIGGER_FIELDS = {"cron", "interval_second", "start_time", "end_time"}


def _get(request: Request, recurring_run_id: str) -> Any:
    return recurring_run_get(user=request.user, recurring_run_id=recurring_run_id)


def _trigger(body: dict[str, Any]) -> dict[str, Any]:
    trigger = body.get("trigger") or {}
    cron, periodic = "cron_schedule" in trigger, "periodic_schedule" in trigger
    if cron == periodic:
        raise InvalidInput("trigger needs exactly one of cron_schedule or periodic_schedule", field="trigger")
    schedule = trigger["cron_schedule" if cron else "periodic_schedule"]
    times = {"start_time": schedule.get("start_time"), "end_time": schedule.get("end_time")}
    if cron:
        expression = schedule.get("cron", "").strip()
        if not expression:
            raise InvalidInput("trigger.cron_schedule.cron is required", field="trigger.cron_schedule.cron")
        return {"trigger_type": TriggerType.CRON, "cron": expression, **times}
    interval = schedule.get("interval_second")
    if not interval or interval <= 0:
        raise InvalidInput(
            "trigger.periodic_schedule.interval_second must be a positive number of seconds",
            field="trigger.periodic_schedule.interval_second",
        )
    return {"trigger_type": TriggerType.PERIODIC, "interval_second": interval, **times}


def _trigger_errors_name_their_place(post: Callable[..., Response]) -> Callable[..., Response]:
    """The schedules service names trigger fields bare (``end_time``); answer with
    their place in the request body (``trigger.periodic_schedule.end_time``)."""

    @functools.wraps(post)
    def wrapper(self: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return post(self, request, *args, **kwargs)
        except InvalidInput as exc:
            if exc.field not in TRIGGER_FIELDS:
                raise
            cron = "cron_schedule" in read_body(request, schema.RecurringRunSerializer)["trigger"]
            path = f"trigger.{'cron_schedule' if cron else 'periodic_schedule'}.{exc.field}"
            raise InvalidInput(f"{path}: {exc.message}", field=path) from exc

    return wrapper


class RecurringRunListView(KfpView):
    @extend_schema(
        operation_id="recurring_run_service_list_recurring_runs",
        tags=[TAG],
        parameters=[
            schema.NAMESPACE,
            schema.query("experiment_id", "Only this experiment's recurring runs (takes precedence)."),
            *schema.LIST_PARAMETERS,
        ],
        responses=schema.responses(schema.ListRecurringRunsSerializer),
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        experiment_id = query_text(params, "experiment_id", max_length=64)
        if experiment_id:
            experiment = experiment_get(user=request.user, experiment_id=experiment_id)
            qs = recurring_run_list(user=request.user, namespace=experiment.namespace, experiment=experiment)
        else:
            namespace = namespace_for(request.user, query_text(params, "namespace"))
            qs = recurring_run_list(user=request.user, namespace=namespace)

        def to_wire(recurring_run: Any) -> dict[str, Any]:
            return wire.recurring_run(recurring_run, with_spec=False)

        return list_page(request, qs, RECURRING_RUNS, schema.ListRecurringRunsSerializer, to_wire)

    @extend_schema(
        operation_id="recurring_run_service_create_recurring_run",
        tags=[TAG],
        request=schema.RecurringRunSerializer,
        responses=schema.responses(schema.RecurringRunSerializer),
    )
    @_trigger_errors_name_their_place
    def post(self, request: Request) -> Response:
        body = read_body(request, schema.RecurringRunSerializer)
        namespace, experiment = resolve_experiment(
            request.user, body.get("experiment_id", ""), body.get("namespace", "")
        )
        source = resolve_pipeline_source(request.user, body)
        parameters, pipeline_root = runtime_config(body)
        max_concurrency = body.get("max_concurrency") or 1
        created = recurring_run_create(
            namespace=namespace,
            actor=request.user,
            display_name=body.get("display_name", ""),
            experiment=experiment,
            pipeline=source.get("pipeline"),
            pipeline_version=source.get("pipeline_version"),
            pipeline_spec=source.get("pipeline_spec"),
            description=body.get("description", ""),
            parameters=parameters,
            pipeline_root=pipeline_root,
            service_account=body.get("service_account", ""),
            max_concurrency=max_concurrency,
            no_catchup=body.get("no_catchup", False),
            enabled=body.get("mode") != RecurringRunMode.DISABLE,
            **_trigger(body),
        )
        return answer(schema.RecurringRunSerializer, wire.recurring_run(created))


class RecurringRunDetailView(KfpView):
    @extend_schema(
        operation_id="recurring_run_service_get_recurring_run",
        tags=[TAG],
        parameters=[RECURRING_RUN_ID],
        responses=schema.responses(schema.RecurringRunSerializer),
    )
    def get(self, request: Request, recurring_run_id: str) -> Response:
        return answer(schema.RecurringRunSerializer, wire.recurring_run(_get(request, recurring_run_id)))

    @extend_schema(
        operation_id="recurring_run_service_delete_recurring_run",
        tags=[TAG],
        parameters=[RECURRING_RUN_ID],
        responses=schema.responses(schema.EMPTY),
    )
    def delete(self, request: Request, recurring_run_id: str) -> Response:
        recurring_run_delete(actor=request.user, recurring_run=_get(request, recurring_run_id))
        return Response(EMPTY)


class RecurringRunEnableView(KfpView):
    @extend_schema(
        operation_id="recurring_run_service_enable_recurring_run",
        tags=[TAG],
        parameters=[RECURRING_RUN_ID],
        request=None,
        responses=schema.responses(schema.EMPTY),
    )
    def post(self, request: Request, recurring_run_id: str) -> Response:
        recurring_run_enable(actor=request.user, recurring_run=_get(request, recurring_run_id))
        return Response(EMPTY)


class RecurringRunDisableView(KfpView):
    @extend_schema(
        operation_id="recurring_run_service_disable_recurring_run",
        tags=[TAG],
        parameters=[RECURRING_RUN_ID],
        request=None,
        responses=schema.responses(schema.EMPTY),
    )
    def post(self, request: Request, recurring_run_id: str) -> Response:
        recurring_run_disable(actor=request.user, recurring_run=_get(request, recurring_run_id))
        return Response(EMPTY)
