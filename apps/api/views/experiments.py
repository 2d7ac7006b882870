"""ExperimentService."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from apps.api import schema, wire
from apps.api.listing import EXPERIMENTS
from apps.api.parsing import query_text, read_body
from apps.api.views.base import EMPTY, KfpView, answer, list_page, namespace_for
from apps.experiments.selectors import experiment_get, experiment_list
from apps.experiments.services import (
    experiment_archive,
    experiment_create,
    experiment_delete,
    experiment_unarchive,
)

TAG = "ExperimentService"
EXPERIMENT_ID = schema.path("experiment_id", "The experiment's id.")


class ExperimentListView(KfpView):
    @extend_schema(
        operation_id="experiment_service_list_experiments",
        tags=[TAG],
        parameters=[schema.NAMESPACE, *schema.LIST_PARAMETERS],
        responses=schema.responses(schema.ListExperimentsSerializer),
    )
    def get(self, request: Request) -> Response:
        namespace = namespace_for(request.user, query_text(request.query_params, "namespace"))
        qs = experiment_list(user=request.user, namespace=namespace)
        return list_page(request, qs, EXPERIMENTS, schema.ListExperimentsSerializer, wire.experiment)

    @extend_schema(
        operation_id="experiment_service_create_experiment",
        tags=[TAG],
        request=schema.ExperimentSerializer,
        responses=schema.responses(schema.ExperimentSerializer),
    )
    def post(self, request: Request) -> Response:
        body = read_body(request, schema.ExperimentSerializer)
        experiment = experiment_create(
            namespace=namespace_for(request.user, body.get("namespace")),
            actor=request.user,
            display_name=body.get("display_name", ""),
            description=body.get("description", ""),
            # A Canal extension: where the experiment's runs execute (KFP has no such field).
            execution_backend=body.get("execution_backend", ""),
        )
        return answer(schema.ExperimentSerializer, wire.experiment(experiment))


class ExperimentDetailView(KfpView):
    @extend_schema(
        operation_id="experiment_service_get_experiment",
        tags=[TAG],
        parameters=[EXPERIMENT_ID],
        responses=schema.responses(schema.ExperimentSerializer),
    )
    def get(self, request: Request, experiment_id: str) -> Response:
        experiment = experiment_get(user=request.user, experiment_id=experiment_id)
        return answer(schema.ExperimentSerializer, wire.experiment(experiment))

    @extend_schema(
        operation_id="experiment_service_delete_experiment",
        tags=[TAG],
        parameters=[EXPERIMENT_ID],
        responses=schema.responses(schema.EMPTY),
    )
    def delete(self, request: Request, experiment_id: str) -> Response:
        experiment_delete(
            actor=request.user, experiment=experiment_get(user=request.user, experiment_id=experiment_id)
        )
        return Response(EMPTY)


class ExperimentArchiveView(KfpView):
    @extend_schema(
        operation_id="experiment_service_archive_experiment",
        tags=[TAG],
        parameters=[EXPERIMENT_ID],
        request=None,
        responses=schema.responses(schema.EMPTY),
        description="Archive the experiment and its runs, and disable its recurring runs.",
    )
    def post(self, request: Request, experiment_id: str) -> Response:
        experiment_archive(
            actor=request.user, experiment=experiment_get(user=request.user, experiment_id=experiment_id)
        )
        return Response(EMPTY)


class ExperimentUnarchiveView(KfpView):
    @extend_schema(
        operation_id="experiment_service_unarchive_experiment",
        tags=[TAG],
        parameters=[EXPERIMENT_ID],
        request=None,
        responses=schema.responses(schema.EMPTY),
    )
    def post(self, request: Request, experiment_id: str) -> Response:
        experiment_unarchive(
            actor=request.user, experiment=experiment_get(user=request.user, experiment_id=experiment_id)
        )
        return Response(EMPTY)
