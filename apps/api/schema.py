"""The KFP v2beta1 messages as serializers: they read the request bodies
(``apps.api.parsing.read_body``), write every answer, and drf-spectacular describes
them in the OpenAPI document. Every field is optional, because proto3 JSON leaves
unset fields out; field behaviour (protojson's) is in ``apps.api.parsing``.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema_field
from rest_framework import serializers

from apps.api.parsing import Enum, Flag, Int64, Map, Message, Struct, Text, Time
from apps.core.choices import RecurringRunMode, RecurringRunStatus, RunExecutor, RuntimeState, StorageState

# A proto enum's zero value is part of its value set, though proto3 JSON never writes it
# (an unset field is left out).
STORAGE_STATES = ["STORAGE_STATE_UNSPECIFIED", *StorageState.values]
EXECUTORS = list(RunExecutor.choices)
# Bounds of the strings a request may give, as the models store them. Descriptions and
# error messages are unbounded: one imported from a pipeline file, or a step's error, can be long.
NAME, ID = 255, 64


@extend_schema_field(OpenApiTypes.BINARY)
class UploadedFileField(serializers.FileField):
    """A multipart file part (Swagger 2's ``type: file``)."""


# google.protobuf.Any: its JSON names a type in "@type", which no Python name can spell.
ProtobufAnySerializer = type(
    "ProtobufAnySerializer",
    (Message,),
    {
        "__doc__": "google.protobuf.Any. Canal writes no details, so never one of these.",
        "@type": Text("The type URL of the packed message."),
        "type_url": Text(),
        "value": serializers.CharField(required=False, help_text="base64 bytes."),
    },
)


class StatusSerializer(Message):
    code = serializers.IntegerField(required=False, help_text="gRPC status code.")
    message = Text("What went wrong.", max_length=None)
    details = ProtobufAnySerializer(many=True)


class UploadErrorSerializer(Message):
    error_message = Text()
    error_details = Text()


# google.protobuf.Empty: the views answer {} (a serializer without fields would be
# documented as no body at all).
EMPTY = {"type": "object", "properties": {}}


class HealthzSerializer(Message):
    keep = ("multi_user",)  # written false: kfp.Client reads it
    commit_sha = Text()
    tag_name = Text()
    multi_user = Flag()
    pipeline_store = Text()


# --- Pipelines ----------------------------------------------------------------------


class PipelineSerializer(Message):
    pipeline_id = Text()
    display_name = Text(max_length=NAME)
    name = Text(max_length=NAME)
    description = Text(max_length=None)
    created_at = Time()
    namespace = Text(max_length=63)


TAGS_HELP = "KFP's user tags (a map of strings). Canal does not store tags"


class Tags(Map):
    default_error_messages = {"not_a_dict": "must be a JSON object of strings"}

    def __init__(self, help_text: str) -> None:
        super().__init__(Text(), help_text)

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict) or not all(isinstance(value, str) for value in data.values()):
            self.fail("not_a_dict")
        return dict(data)


class PipelineCreateSerializer(PipelineSerializer):
    """CreatePipeline's body: a v2beta1.Pipeline (output fields are ignored)."""

    tags = Tags(help_text=TAGS_HELP + ": checked, not stored.")


class PipelineUpdateSerializer(Message):
    """UpdatePipeline's body: the pipeline (its id is in the path). Only display_name changes."""

    display_name = Text("The new display name; empty: unchanged.", max_length=NAME)
    name = Text("Ignored: the name does not change.")
    description = Text("Ignored: the description does not change.")
    created_at = Time("Ignored (output only).")
    namespace = Text("Ignored: the namespace does not change.")
    tags = Tags(help_text=TAGS_HELP + ": a non-empty map is refused.")


class UrlSerializer(Message):
    pipeline_url = Text()


class PipelineVersionSerializer(Message):
    pipeline_id = Text()
    pipeline_version_id = Text()
    display_name = Text(max_length=NAME)
    name = Text(max_length=NAME)
    description = Text(max_length=None)
    created_at = Time()
    package_url = UrlSerializer(help_text="Not supported: Canal does not fetch URLs.")
    code_source_url = Text(max_length=1000)
    pipeline_spec = Struct(help_text="The IR as a JSON object, or {pipeline_spec, platform_spec}.")


class PipelineVersionUpdateSerializer(Message):
    """UpdatePipelineVersion's body: the version (its ids are in the path). Only display_name changes."""

    display_name = Text("The new display name; empty: unchanged.", max_length=NAME)
    name = Text("Ignored: the name does not change.")
    description = Text("Ignored: the description does not change.")
    created_at = Time("Ignored (output only).")
    package_url = UrlSerializer(help_text="Ignored.")
    code_source_url = Text("Ignored.")
    pipeline_spec = Struct(help_text="Ignored: a version's spec never changes.")
    tags = Tags(help_text=TAGS_HELP + ": a non-empty map is refused.")


class CreatePipelineAndVersionSerializer(Message):
    pipeline = PipelineSerializer()
    pipeline_version = PipelineVersionSerializer()


class ListPipelinesSerializer(Message):
    keep = ("pipelines", "total_size", "next_page_token")
    pipelines = PipelineSerializer(many=True)
    total_size = serializers.IntegerField(required=False)
    next_page_token = Text()


class ListPipelineVersionsSerializer(Message):
    keep = ("pipeline_versions", "total_size", "next_page_token")
    pipeline_versions = PipelineVersionSerializer(many=True)
    total_size = serializers.IntegerField(required=False)
    next_page_token = Text()


class UploadFileSerializer(Message):
    uploadfile = UploadedFileField(help_text="The pipeline package: .yaml, .yml, .zip or .tar.gz.")


# --- Experiments --------------------------------------------------------------------


class ExperimentSerializer(Message):
    experiment_id = Text()
    display_name = Text(max_length=NAME)
    description = Text(max_length=None)
    created_at = Time()
    namespace = Text(max_length=63)
    storage_state = Enum(STORAGE_STATES)
    last_run_created_at = Time()
    execution_backend = Enum(
        EXECUTORS,
        numbered=False,
        help_text="Canal extension: where the experiment's runs execute (local or argo); "
        "empty: the server's default.",
    )


class ListExperimentsSerializer(Message):
    keep = ("experiments", "total_size", "next_page_token")
    experiments = ExperimentSerializer(many=True)
    total_size = serializers.IntegerField(required=False)
    next_page_token = Text()


# --- Runs ---------------------------------------------------------------------------


class PipelineVersionReferenceSerializer(Message):
    pipeline_id = Text(max_length=ID)
    pipeline_version_id = Text("Omitted: the pipeline's latest version.", max_length=ID)


class RuntimeConfigSerializer(Message):
    parameters = Map(serializers.JSONField(allow_null=True))
    pipeline_root = Text(max_length=1024)


class RuntimeStatusSerializer(Message):
    update_time = Time()
    state = Enum(list(RuntimeState.values))
    error = StatusSerializer()


class ArtifactListSerializer(Message):
    artifact_ids = serializers.ListField(child=serializers.CharField(), required=False)


class ChildTaskSerializer(Message):
    task_id = Text()
    pod_name = Text()


class TaskExecutorDetailSerializer(Message):
    """KFP's Kubernetes job names for a task. Canal runs no such jobs: never set."""

    main_job = Text()
    pre_caching_check_job = Text()
    failed_main_jobs = serializers.ListField(child=serializers.CharField(), required=False)
    failed_pre_caching_check_jobs = serializers.ListField(child=serializers.CharField(), required=False)


class PipelineTaskDetailSerializer(Message):
    run_id = Text()
    task_id = Text()
    display_name = Text()
    create_time = Time()
    start_time = Time()
    end_time = Time()
    state = Enum(list(RuntimeState.values))
    execution_id = Int64("MLMD execution id; not set by Canal")
    executor_detail = TaskExecutorDetailSerializer(help_text="Not set by Canal.")
    error = StatusSerializer()
    inputs = serializers.DictField(child=ArtifactListSerializer(), required=False)
    outputs = serializers.DictField(child=ArtifactListSerializer(), required=False)
    parent_task_id = Text()
    state_history = RuntimeStatusSerializer(many=True)
    pod_name = Text()
    child_tasks = ChildTaskSerializer(many=True)
    why = Text(
        "Canal extension: one sentence saying why the task ran, was served from cache, was skipped "
        "(its condition and the values it saw) or was not reached (which upstream failed)."
    )


class RunDetailsSerializer(Message):
    pipeline_context_id = Int64("MLMD context id; not set by Canal")
    pipeline_run_context_id = Int64("MLMD context id; not set by Canal")
    task_details = PipelineTaskDetailSerializer(many=True)


class RunSerializer(Message):
    experiment_id = Text(max_length=ID)
    run_id = Text()
    display_name = Text(max_length=NAME)
    storage_state = Enum(STORAGE_STATES)
    description = Text(max_length=None)
    pipeline_version_id = Text("Deprecated: use pipeline_version_reference.", max_length=ID)
    pipeline_spec = Struct(help_text="The IR as a JSON object, or {pipeline_spec, platform_spec}.")
    pipeline_version_reference = PipelineVersionReferenceSerializer()
    runtime_config = RuntimeConfigSerializer()
    service_account = Text(max_length=NAME)
    created_at = Time()
    scheduled_at = Time()
    finished_at = Time()
    state = Enum(list(RuntimeState.values))
    error = StatusSerializer()
    run_details = RunDetailsSerializer()
    recurring_run_id = Text()
    state_history = RuntimeStatusSerializer(many=True)
    executor = Enum(
        EXECUTORS,
        numbered=False,
        help_text="Canal extension: where the run executes (local: Canal's workers; argo: an Argo Workflow "
        "on Kubernetes). On create, empty means the experiment's executor, else the server's default.",
    )
    rerun_of_run_id = Text("Canal extension: for a step re-run, the run it re-runs a step of (read-only).")
    rerun_of_task_key = Text("Canal extension: for a step re-run, the key of the task it re-runs.")


class TaskRerunRequestSerializer(Message):
    """Canal extension: re-run one step of a finished run."""

    parameters = Map(
        serializers.JSONField(allow_null=True),
        help_text="The step's input parameters to change, by name (the others keep the recorded values).",
    )
    include_downstream = Flag("Also run the tasks that depend on the step (default false).")
    display_name = Text("The new run's name (default: 'Re-run of <task> from <run>').", max_length=NAME)


class ListRunsSerializer(Message):
    keep = ("runs", "total_size", "next_page_token")
    runs = RunSerializer(many=True)
    total_size = serializers.IntegerField(required=False)
    next_page_token = Text()


class ReadArtifactSerializer(Message):
    # KFP's field name; DRF takes declared fields off the class, so Serializer.data stays.
    data = serializers.CharField(required=False, help_text="The artifact's bytes, base64-encoded.")  # type: ignore[assignment]


# --- Recurring runs -----------------------------------------------------------------


class CronScheduleSerializer(Message):
    start_time = Time()
    end_time = Time()
    cron = Text("Cron expression: 5 fields, or 6 with seconds first (robfig/cron, as KFP).", max_length=NAME)


class PeriodicScheduleSerializer(Message):
    start_time = Time()
    end_time = Time()
    interval_second = Int64("Seconds between runs")


class TriggerSerializer(Message):
    cron_schedule = CronScheduleSerializer()
    periodic_schedule = PeriodicScheduleSerializer()


class RecurringRunSerializer(Message):
    recurring_run_id = Text()
    display_name = Text(max_length=NAME)
    description = Text(max_length=None)
    pipeline_version_id = Text("Deprecated: use pipeline_version_reference.", max_length=ID)
    pipeline_spec = Struct()
    pipeline_version_reference = PipelineVersionReferenceSerializer()
    runtime_config = RuntimeConfigSerializer()
    service_account = Text(max_length=NAME)
    max_concurrency = Int64("Most runs at once")
    trigger = TriggerSerializer()
    mode = Enum(["MODE_UNSPECIFIED", *RecurringRunMode.values])
    created_at = Time()
    updated_at = Time()
    status = Enum(list(RecurringRunStatus.values))
    error = StatusSerializer()
    no_catchup = Flag()
    namespace = Text(max_length=63)
    experiment_id = Text(max_length=ID)


class ListRecurringRunsSerializer(Message):
    keep = ("recurringRuns", "total_size", "next_page_token")
    recurringRuns = RecurringRunSerializer(many=True)
    total_size = serializers.IntegerField(required=False)
    next_page_token = Text()


# --- AuthService, DummyFilterService, ReportService, VisualizationService --------------


class IntValuesSerializer(Message):
    values = serializers.ListField(child=serializers.IntegerField(), required=False)


class LongValuesSerializer(Message):
    values = serializers.ListField(child=Int64("A long value"), required=False)


class StringValuesSerializer(Message):
    values = serializers.ListField(child=serializers.CharField(), required=False)


class PredicateSerializer(Message):
    operation = Enum(
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
    key = Text()
    int_value = serializers.IntegerField(required=False)
    long_value = Int64("A long value")
    string_value = Text()
    timestamp_value = Time()
    int_values = IntValuesSerializer()
    long_values = LongValuesSerializer()
    string_values = StringValuesSerializer()


class FilterSerializer(Message):
    predicates = PredicateSerializer(many=True)


class VisualizationSerializer(Message):
    type = Enum(["ROC_CURVE", "TFDV", "TFMA", "TABLE", "CUSTOM"])
    # KFP's field name; DRF takes declared fields off the class, so Field.source is untouched.
    source = Text()  # type: ignore[assignment]
    arguments = Text("A JSON string.")
    html = Text("Output.")
    error = Text("Output.")


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
