"""KFP's smaller services: AuthService, DummyFilterService, ReportService and
VisualizationService.

Authorize is answered from Canal's roles. The filter endpoint answers an empty
Filter. The two report methods (KFP's persistence agent pushing Argo Workflow and
ScheduledWorkflow objects to the API server) and Python visualizations have no
meaning in Canal: a well-formed request gets 501 ``{"code": 12, ...}`` (gRPC
UNIMPLEMENTED), a malformed one a 400 naming what is wrong, and nothing is written.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from apps.api import schema
from apps.api.parsing import query_text, read_body
from apps.api.views.base import EMPTY, KfpView, namespace_for
from apps.core.exceptions import InvalidInput, Unimplemented
from apps.core.services import access_authorize

# Enum values as grpc-gateway reads them from a query: by name or by number.
RESOURCES = {"0": "UNASSIGNED_RESOURCES", "1": "VIEWERS"}
VERBS = {"0": "UNASSIGNED_VERB", "1": "CREATE", "2": "GET", "3": "DELETE"}


def _enum_query(request: Request, name: str, numbers: dict[str, str]) -> str:
    value = query_text(request.query_params, name, max_length=64).strip()
    value = numbers.get(value, value)
    return "" if value.startswith("UNASSIGNED") else value


class AuthView(KfpView):
    @extend_schema(
        operation_id="auth_service_authorize",
        tags=["AuthService"],
        parameters=[
            schema.query("namespace", "The namespace asked about (required)."),
            OpenApiParameter(
                "resources",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                required=False,
                enum=["UNASSIGNED_RESOURCES", "VIEWERS"],
                description="The resource type asked about (required; KFP knows only VIEWERS).",
            ),
            OpenApiParameter(
                "verb",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                required=False,
                enum=["UNASSIGNED_VERB", "CREATE", "GET", "DELETE"],
                description="GET needs the viewer role, CREATE the editor role, DELETE the owner role.",
            ),
        ],
        responses=schema.responses(schema.EMPTY),
        description=(
            "May the caller do `verb` in `namespace`? 200 `{}` when yes, 403 `{code: 7}` when "
            "the caller's role is too low, 404 when the caller is not a member."
        ),
    )
    def get(self, request: Request) -> Response:
        name = query_text(request.query_params, "namespace", max_length=63)
        if not name:
            raise InvalidInput("namespace is empty; name the namespace to authorize in", field="namespace")
        namespace = namespace_for(request.user, name)
        access_authorize(
            actor=request.user,
            namespace=namespace,
            resources=_enum_query(request, "resources", RESOURCES),
            verb=_enum_query(request, "verb", VERBS),
        )
        return Response(EMPTY)


class FilterView(KfpView):
    @extend_schema(
        operation_id="dummy_filter_service_get_filter",
        tags=["DummyFilterService"],
        responses=schema.responses(schema.FilterSerializer),
        description=(
            "KFP declares this method only so that its API document describes the Filter "
            "message (the `filter` query parameter of the List methods); it filters nothing. "
            "Canal answers an empty Filter."
        ),
    )
    def get(self, request: Request) -> Response:
        return Response(EMPTY)


def _report_body(request: Request, field: str) -> None:
    """ReportService bodies are one JSON string (the object, marshalled)."""
    if not isinstance(request.data, str):
        raise InvalidInput(
            f"the body must be a JSON string: the {field} object marshalled as JSON", field=field
        )


REPORT_REFUSAL = (
    "Canal runs its own steps and records their state itself; it has no persistence "
    "agent to report {what} objects, so ReportService.{method} is not implemented"
)


class ReportWorkflowView(KfpView):
    @extend_schema(
        operation_id="report_service_report_workflow",
        tags=["ReportService"],
        request={"application/json": OpenApiTypes.STR},
        responses=schema.unimplemented(),
        description="Not implemented in Canal (501): KFP's persistence agent calls it.",
    )
    def post(self, request: Request) -> Response:
        _report_body(request, "workflow")
        raise Unimplemented(REPORT_REFUSAL.format(what="Argo Workflow", method="ReportWorkflow"))


class ReportScheduledWorkflowView(KfpView):
    @extend_schema(
        operation_id="report_service_report_scheduled_workflow",
        tags=["ReportService"],
        request={"application/json": OpenApiTypes.STR},
        responses=schema.unimplemented(),
        description="Not implemented in Canal (501): KFP's persistence agent calls it.",
    )
    def post(self, request: Request) -> Response:
        _report_body(request, "scheduled_workflow")
        raise Unimplemented(REPORT_REFUSAL.format(what="ScheduledWorkflow", method="ReportScheduledWorkflow"))


class VisualizationView(KfpView):
    @extend_schema(
        operation_id="visualization_service_create_visualization_v1",
        tags=["VisualizationService"],
        parameters=[schema.path("namespace", "The namespace.")],
        request=schema.VisualizationSerializer,
        responses=schema.unimplemented(),
        description=(
            "Not implemented in Canal (501): KFP runs Python in a visualization server; Canal "
            "shows a step's metrics, Markdown and HTML artifacts on the run page instead."
        ),
    )
    def post(self, request: Request, namespace: str) -> Response:
        namespace_for(request.user, namespace)
        read_body(request, schema.VisualizationSerializer)
        raise Unimplemented(
            "Canal does not run Python visualizations (KFP's visualization server); a step's "
            "metrics, Markdown and HTML artifacts are shown on its run page"
        )
