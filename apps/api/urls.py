"""The KFP v2beta1-compatible REST API, mounted at /apis/v2beta1/.

KFP's custom methods are written ``/runs/{id}:terminate``; ids are matched with a
converter that stops at ``/`` and ``:``, so ``runs/<id>:archive`` and
``runs/<id>`` never shadow each other.
"""

from django.urls import path, register_converter

from apps.api.views import auxiliary, docs, experiments, health, pipelines, recurring_runs, runs
from apps.api.views.base import NotFoundView


class KfpIdConverter:
    regex = r"[^/:]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(KfpIdConverter, "kfpid")

app_name = "api"
urlpatterns = [
    path("healthz", health.HealthzView.as_view(), name="healthz"),
    # Pipelines (literal routes before the ones with an id).
    path("pipelines", pipelines.PipelineListView.as_view(), name="pipelines"),
    path("pipelines/upload", pipelines.PipelineUploadView.as_view(), name="pipeline-upload"),
    path("pipelines/upload_version", pipelines.PipelineVersionUploadView.as_view(), name="version-upload"),
    path("pipelines/create", pipelines.PipelineCreateView.as_view(), name="pipeline-create"),
    path("pipelines/names/<kfpid:name>", pipelines.PipelineByNameView.as_view(), name="pipeline-by-name"),
    path("pipelines/<kfpid:pipeline_id>", pipelines.PipelineDetailView.as_view(), name="pipeline"),
    path(
        "pipelines/<kfpid:pipeline_id>/versions",
        pipelines.PipelineVersionListView.as_view(),
        name="pipeline-versions",
    ),
    path(
        "pipelines/<kfpid:pipeline_id>/versions/<kfpid:pipeline_version_id>",
        pipelines.PipelineVersionDetailView.as_view(),
        name="pipeline-version",
    ),
    # Experiments.
    path("experiments", experiments.ExperimentListView.as_view(), name="experiments"),
    path("experiments/<kfpid:experiment_id>", experiments.ExperimentDetailView.as_view(), name="experiment"),
    path(
        "experiments/<kfpid:experiment_id>:archive",
        experiments.ExperimentArchiveView.as_view(),
        name="experiment-archive",
    ),
    path(
        "experiments/<kfpid:experiment_id>:unarchive",
        experiments.ExperimentUnarchiveView.as_view(),
        name="experiment-unarchive",
    ),
    # Runs.
    path("runs", runs.RunListView.as_view(), name="runs"),
    path("runs/<kfpid:run_id>", runs.RunDetailView.as_view(), name="run"),
    path("runs/<kfpid:run_id>:terminate", runs.RunTerminateView.as_view(), name="run-terminate"),
    path("runs/<kfpid:run_id>:retry", runs.RunRetryView.as_view(), name="run-retry"),
    path(
        "runs/<kfpid:run_id>/tasks/<kfpid:task_id>:rerun", runs.TaskRerunView.as_view(), name="run-task-rerun"
    ),
    path("runs/<kfpid:run_id>:archive", runs.RunArchiveView.as_view(), name="run-archive"),
    path("runs/<kfpid:run_id>:unarchive", runs.RunUnarchiveView.as_view(), name="run-unarchive"),
    path(
        "runs/<kfpid:run_id>/nodes/<kfpid:node_id>/artifacts/<kfpid:artifact_name>:read",
        runs.ReadArtifactView.as_view(),
        name="run-artifact-read",
    ),
    path("runs/<kfpid:run_id>/nodes/<kfpid:node_id>/log", runs.TaskLogView.as_view(), name="run-task-log"),
    # Recurring runs.
    path("recurringruns", recurring_runs.RecurringRunListView.as_view(), name="recurring-runs"),
    path(
        "recurringruns/<kfpid:recurring_run_id>",
        recurring_runs.RecurringRunDetailView.as_view(),
        name="recurring-run",
    ),
    path(
        "recurringruns/<kfpid:recurring_run_id>:enable",
        recurring_runs.RecurringRunEnableView.as_view(),
        name="recurring-run-enable",
    ),
    path(
        "recurringruns/<kfpid:recurring_run_id>:disable",
        recurring_runs.RecurringRunDisableView.as_view(),
        name="recurring-run-disable",
    ),
    # AuthService, DummyFilterService, ReportService (501), VisualizationService (501).
    path("auth", auxiliary.AuthView.as_view(), name="auth"),
    path("filters", auxiliary.FilterView.as_view(), name="filters"),
    path("workflows", auxiliary.ReportWorkflowView.as_view(), name="report-workflow"),
    path(
        "scheduledworkflows",
        auxiliary.ReportScheduledWorkflowView.as_view(),
        name="report-scheduled-workflow",
    ),
    path("visualizations/<kfpid:namespace>", auxiliary.VisualizationView.as_view(), name="visualization"),
    # The OpenAPI schema and a Swagger UI page (its assets come from drf-spectacular-sidecar).
    path("openapi.json", docs.OpenApiView.as_view(), name="openapi"),
    path("docs/", docs.SwaggerView.as_view(url_name="api:openapi"), name="docs"),
    # Anything else under /apis/v2beta1/: a KFP-style 404 (401 when anonymous).
    path("<path:unknown>", NotFoundView.as_view(), name="not-found"),
]
