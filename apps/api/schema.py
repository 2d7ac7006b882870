"""OpenAPI descriptions of the KFP v2beta1 messages, for drf-spectacular.

These serializers only describe the wire format (the views build responses with
``apps.api.wire`` and read bodies with ``apps.api.parsing``). Every field is
optional, because proto3 JSON leaves unset fields out.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema_field
from rest_framework import serializers

from apps.core.choices import RecurringRunMode, RecurringRunStatus, RunExecutor, RuntimeState, StorageState


def _str(help_text: str = "", **kwargs: Any) -> serializers.CharField:
    return serializers.CharField(required=False, help_text=help_text, **kwargs)


def _time(help_text: str = "") -> serializers.DateTimeField:
    return serializers.DateTimeField(required=False, help_text=help_text or "RFC3339 time (UTC).")


def _int64(help_text: str) -> serializers.CharField:
    return serializers.CharField(required=False, help_text=help_text + " (int64, written as a string)")


# A proto enum's zero value is part of its value set, though proto3 JSON never writes it
# (an unset field is left out).
STORAGE_STATES = ["STORAGE_STATE_UNSPECIFIED", *StorageState.values]


def _choice(choices: list[str] | list[tuple[str, str]], help_text: str = "") -> serializers.ChoiceField:
    return serializers.ChoiceField(choices=choices, required=False, help_text=help_text)


@extend_schema_field(OpenApiTypes.OBJECT)
class AnyObjectField(serializers.JSONField):
    """A JSON object passed through as is (google.protobuf.Struct)."""


@extend_schema_field(OpenApiTypes.BINARY)
class UploadedFileField(serializers.FileField):
    """A multipart file part (Swagger 2's ``type: file``)."""


# google.protobuf.Any: its JSON names a type in "@type", which no Python name can spell.
ProtobufAnySerializer = type(
    "ProtobufAnySerializer",
    (serializers.Serializer,),
    {
        "__doc__": "google.protobuf.Any. Canal writes no details, so never one of these.",
        "@type": _str("The type URL of the packed message."),
        "type_url": _str(),
        "value": serializers.CharField(required=False, help_text="base64 bytes."),
    },
)


class StatusSerializer(serializers.Serializer[Any]):
    code = serializers.IntegerField(required=False, help_text="gRPC status code.")
    message = _str("What went wrong.")
    details = ProtobufAnySerializer(many=True, required=False)


class UploadErrorSerializer(serializers.Serializer[Any]):
    error_message = _str()
    error_details = _str()


class EmptySerializer(serializers.Serializer[Any]):
    pass


class HealthzSerializer(serializers.Serializer[Any]):
    commit_sha = _str()
    tag_name = _str()
    multi_user = serializers.BooleanField(required=False)
    pipeline_store = _str()


# --- Pipelines ----------------------------------------------------------------------


class PipelineSerializer(serializers.Serializer[Any]):
    pipeline_id = _str()
    display_name = _str()
    name = _str()
    description = _str()
    created_at = _time()
    namespace = _str()


TAGS_HELP = "KFP's user tags (a map of strings). Canal does not store tags"


class PipelineCreateSerializer(PipelineSerializer):
    """CreatePipeline's body: a v2beta1.Pipeline (output fields are ignored)."""

    tags = serializers.DictField(
        child=serializers.CharField(), required=False, help_text=TAGS_HELP + ": checked, not stored."
    )


class PipelineUpdateSerializer(serializers.Serializer[Any]):
    """UpdatePipeline's body: the pipeline (its id is in the path). Only display_name changes."""

    display_name = _str("The new display name; empty: unchanged.")
    name = _str("Ignored: the name does not change.")
    description = _str("Ignored: the description does not change.")
    created_at = _time("Ignored (output only).")
    namespace = _str("Ignored: the namespace does not change.")
    tags = serializers.DictField(
        child=serializers.CharField(), required=False, help_text=TAGS_HELP + ": a non-empty map is refused."
    )


class UrlSerializer(serializers.Serializer[Any]):
    pipeline_url = _str()


class PipelineVersionSerializer(serializers.Serializer[Any]):
    pipeline_id = _str()
    pipeline_version_id = _str()
    display_name = _str()
    name = _str()
    description = _str()
    created_at = _time()
    package_url = UrlSerializer(required=False, help_text="Not supported: Canal does not fetch URLs.")
    code_source_url = _str()
    pipeline_spec = AnyObjectField(
        required=False, help_text="The IR as a JSON object, or {pipeline_spec, platform_spec}."
    )


class PipelineVersionUpdateSerializer(serializers.Serializer[Any]):
    """UpdatePipelineVersion's body: the version (its ids are in the path). Only display_name changes."""

    display_name = _str("The new display name; empty: unchanged.")
    name = _str("Ignored: the name does not change.")
    description = _str("Ignored: the description does not change.")
    created_at = _time("Ignored (output only).")
    package_url = UrlSerializer(required=False, help_text="Ignored.")
    code_source_url = _str("Ignored.")
    pipeline_spec = AnyObjectField(required=False, help_text="Ignored: a version's spec never changes.")
    tags = serializers.DictField(
        child=serializers.CharField(), required=False, help_text=TAGS_HELP + ": a non-empty map is refused."
    )


class CreatePipelineAndVersionSerializer(serializers.Serializer[Any]):
    pipeline = PipelineSerializer(required=False)
    pipeline_version = PipelineVersionSerializer(required=False)


class ListPipelinesSerializer(serializers.Serializer[Any]):
    pipelines = PipelineSerializer(many=True, required=False)
    total_size = serializers.IntegerField(required=False)
    next_page_token = _str()


class ListPipelineVersionsSerializer(serializers.Serializer[Any]):
    pipeline_versions = PipelineVersionSerializer(many=True, required=False)
    total_size = serializers.IntegerField(required=False)
    next_page_token = _str()


class UploadFileSerializer(serializers.Serializer[Any]):
    uploadfile = UploadedFileField(help_text="The pipeline package: .yaml, .yml, .zip or .tar.gz.")


# --- Experiments --------------------------------------------------------------------


class ExperimentSerializer(serializers.Serializer[Any]):
    experiment_id = _str()
    display_name = _str()
    description = _str()
    created_at = _time()
    namespace = _str()
    storage_state = _choice(STORAGE_STATES)
    last_run_created_at = _time()
    execution_backend = _choice(
        list(RunExecutor.choices),
        "Canal extension: where the experiment's runs execute (local or argo); empty: the server's default.",
    )


class ListExperimentsSerializer(serializers.Serializer[Any]):
    experiments = ExperimentSerializer(many=True, required=False)
    total_size = serializers.IntegerField(required=False)
    next_page_token = _str()


# --- Runs ---------------------------------------------------------------------------


class PipelineVersionReferenceSerializer(serializers.Serializer[Any]):
    pipeline_id = _str()
    pipeline_version_id = _str("Omitted: the pipeline's latest version.")


class RuntimeConfigSerializer(serializers.Serializer[Any]):
    parameters = serializers.DictField(child=serializers.JSONField(), required=False)
    pipeline_root = _str()


class RuntimeStatusSerializer(serializers.Serializer[Any]):
    update_time = _time()
    state = _choice(list(RuntimeState.values))
    error = StatusSerializer(required=False)


class ArtifactListSerializer(serializers.Serializer[Any]):
    artifact_ids = serializers.ListField(child=serializers.CharField(), required=False)


class ChildTaskSerializer(serializers.Serializer[Any]):
    task_id = _str()
    pod_name = _str()


class TaskExecutorDetailSerializer(serializers.Serializer[Any]):
    """KFP's Kubernetes job names for a task. Canal runs no such jobs: never set."""

    main_job = _str()
    pre_caching_check_job = _str()
    failed_main_jobs = serializers.ListField(child=serializers.CharField(), required=False)
    failed_pre_caching_check_jobs = serializers.ListField(child=serializers.CharField(), required=False)


class PipelineTaskDetailSerializer(serializers.Serializer[Any]):
    run_id = _str()
    task_id = _str()
    display_name = _str()
    create_time = _time()
    start_time = _time()
    end_time = _time()
    state = _choice(list(RuntimeState.values))
    execution_id = _int64("MLMD execution id; not set by Canal")
    executor_detail = TaskExecutorDetailSerializer(required=False, help_text="Not set by Canal.")
    error = StatusSerializer(required=False)
    inputs = serializers.DictField(child=ArtifactListSerializer(), required=False)
    outputs = serializers.DictField(child=ArtifactListSerializer(), required=False)
    parent_task_id = _str()
    state_history = RuntimeStatusSerializer(many=True, required=False)
    pod_name = _str()
    child_tasks = ChildTaskSerializer(many=True, required=False)
    why = _str(
        "Canal extension: one sentence saying why the task ran, was served from cache, was skipped "
        "(its condition and the values it saw) or was not reached (which upstream failed)."
    )


class RunDetailsSerializer(serializers.Serializer[Any]):
    pipeline_context_id = _int64("MLMD context id; not set by Canal")
    pipeline_run_context_id = _int64("MLMD context id; not set by Canal")
    task_details = PipelineTaskDetailSerializer(many=True, required=False)


class RunSerializer(serializers.Serializer[Any]):
    experiment_id = _str()
    run_id = _str()
    display_name = _str()
    storage_state = _choice(STORAGE_STATES)
    description = _str()
    pipeline_version_id = _str("Deprecated: use pipeline_version_reference.")
    pipeline_spec = AnyObjectField(
        required=False, help_text="The IR as a JSON object, or {pipeline_spec, platform_spec}."
    )
    pipeline_version_reference = PipelineVersionReferenceSerializer(required=False)
    runtime_config = RuntimeConfigSerializer(required=False)
    service_account = _str()
    created_at = _time()
    scheduled_at = _time()
    finished_at = _time()
    state = _choice(list(RuntimeState.values))
    error = StatusSerializer(required=False)
    run_details = RunDetailsSerializer(required=False)
    recurring_run_id = _str()
    state_history = RuntimeStatusSerializer(many=True, required=False)
    executor = _choice(
        list(RunExecutor.choices),
        "Canal extension: where the run executes (local: Canal's workers; argo: an Argo Workflow "
        "on Kubernetes). On create, empty means the experiment's executor, else the server's default.",
    )
    rerun_of_run_id = _str("Canal extension: for a step re-run, the run it re-runs a step of (read-only).")
    rerun_of_task_key = _str("Canal extension: for a step re-run, the key of the task it re-runs.")


class TaskRerunRequestSerializer(serializers.Serializer[Any]):
    """Canal extension: re-run one step of a finished run."""

    parameters = serializers.DictField(
        child=AnyObjectField(),
        required=False,
        help_text="The step's input parameters to change, by name (the others keep the recorded values).",
    )
    include_downstream = serializers.BooleanField(
        required=False, help_text="Also run the tasks that depend on the step (default false)."
    )
    display_name = _str("The new run's name (default: 'Re-run of <task> from <run>').")


class ListRunsSerializer(serializers.Serializer[Any]):
    runs = RunSerializer(many=True, required=False)
    total_size = serializers.IntegerField(required=False)
    next_page_token = _str()


class ReadArtifactSerializer(serializers.Serializer[Any]):
    # KFP's field name; DRF takes declared fields off the class, so Serializer.data stays.
    data = serializers.CharField(required=False, help_text="The artifact's bytes, base64-encoded.")  # type: ignore[assignment]


# --- Recurring runs -----------------------------------------------------------------


class CronScheduleSerializer(serializers.Serializer[Any]):
    start_time = _time()
    end_time = _time()
    cron = _str("Cron expression: 5 fields, or 6 with seconds first (robfig/cron, as KFP).")


class PeriodicScheduleSerializer(serializers.Serializer[Any]):
    start_time = _time()
    end_time = _time()
    interval_second = _int64("Seconds between runs")


class TriggerSerializer(serializers.Serializer[Any]):
    cron_schedule = CronScheduleSerializer(required=False)
    periodic_schedule = PeriodicScheduleSerializer(required=False)


class RecurringRunSerializer(serializers.Serializer[Any]):
    recurring_run_id = _str()
    display_name = _str()
    description = _str()
    pipeline_version_id = _str("Deprecated: use pipeline_version_reference.")
    pipeline_spec = AnyObjectField(required=False)
    pipeline_version_reference = PipelineVersionReferenceSerializer(required=False)
    runtime_config = RuntimeConfigSerializer(required=False)
    service_account = _str()
    max_concurrency = _int64("Most runs at once")
    trigger = TriggerSerializer(required=False)
    mode = _choice(["MODE_UNSPECIFIED", *RecurringRunMode.values])
    created_at = _time()
    updated_at = _time()
    status = _choice(list(RecurringRunStatus.values))
    error = StatusSerializer(required=False)
    no_catchup = serializers.BooleanField(required=False)
    namespace = _str()
    experiment_id = _str()


class ListRecurringRunsSerializer(serializers.Serializer[Any]):
    recurringRuns = RecurringRunSerializer(many=True, required=False)
    total_size = serializers.IntegerField(required=False)
    next_page_token = _str()


# --- AuthService, DummyFilterService, ReportService, VisualizationService --------------


class IntValuesSerializer(serializers.Serializer[Any]):
    values = serializers.ListField(child=serializers.IntegerField(), required=False)


class LongValuesSerializer(serializers.Serializer[Any]):
    values = serializers.ListField(child=_int64("A long value"), required=False)


class StringValuesSerializer(serializers.Serializer[Any]):
    values = serializers.ListField(child=serializers.CharField(), required=False)


class PredicateSerializer(serializers.Serializer[Any]):
    operation = _choice(
        [
            "OPERATION_UNSPECIFIED",
            "EQUALS",
            "NOT_EQUALS",
            "GREATER_THAN",
            "GREATER_THAN_EQUALS",
            "LESS_THAN",
            "LESS_THAN_EQUALS",
            "IN",
            "IS_SUBSTRING",
        ]
    )
    key = _str()
    int_value = serializers.IntegerField(required=False)
    long_value = _int64("A long value")
    string_value = _str()
    timestamp_value = _time()
    int_values = IntValuesSerializer(required=False)
    long_values = LongValuesSerializer(required=False)
    string_values = StringValuesSerializer(required=False)


class FilterSerializer(serializers.Serializer[Any]):
    predicates = PredicateSerializer(many=True, required=False)


class VisualizationSerializer(serializers.Serializer[Any]):
    type = _choice(["ROC_CURVE", "TFDV", "TFMA", "TABLE", "CUSTOM"])
    # KFP's field name; DRF takes declared fields off the class, so Field.source is untouched.
    source = _str()  # type: ignore[assignment]
    arguments = _str("A JSON string.")
    html = _str("Output.")
    error = _str("Output.")


# --- Parameters ---------------------------------------------------------------------


def path(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.STR, OpenApiParameter.PATH, description=description)


def query(name: str, description: str, type_: Any = OpenApiTypes.STR) -> OpenApiParameter:
    return OpenApiParameter(name, type_, OpenApiParameter.QUERY, required=False, description=description)


NAMESPACE = query("namespace", "Namespace; the caller's default namespace when omitted.")
LIST_PARAMETERS = [
    query("page_token", "The next_page_token of the previous page."),
    query("page_size", "Items per page: default 20, at most 200.", OpenApiTypes.INT),
    query("sort_by", 'A key, optionally followed by "asc" or "desc", e.g. "created_at desc".'),
    query(
        "filter",
        'URL-encoded JSON Filter, e.g. {"predicates":[{"operation":"EQUALS","key":"display_name",'
        '"string_value":"x"}]}.',
    ),
]

ERRORS = {
    400: StatusSerializer,
    401: StatusSerializer,
    403: StatusSerializer,
    404: StatusSerializer,
    409: StatusSerializer,
    500: StatusSerializer,
}
UPLOAD_ERRORS = {
    400: UploadErrorSerializer,
    401: UploadErrorSerializer,
    403: UploadErrorSerializer,
    404: UploadErrorSerializer,
    409: UploadErrorSerializer,
    500: UploadErrorSerializer,
}


def responses(ok: object, *, upload: bool = False) -> dict[int, object]:
    return {200: ok, **(UPLOAD_ERRORS if upload else ERRORS)}


def unimplemented() -> dict[int, object]:
    """A KFP method Canal does not carry out: never a 200; 501 for a well-formed request,
    400 for a malformed one."""
    return {**ERRORS, 501: StatusSerializer}


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Documents ``Authorization: Bearer <token>`` (tokens from ``manage.py create_api_token``)."""

    target_class = "apps.core.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A Canal API token (canal_...)."}
