"""Canal objects as KFP v2beta1 JSON, shaped the way KFP's gRPC gateway writes them.

- keys are the proto field names (snake_case);
- unset fields are left out (proto3: an empty string, empty list or map, zero
  enum, false or missing message is not written);
- enums are written by name, int64 values as strings, times as RFC3339 in UTC.

Values inside ``pipeline_spec`` and ``runtime_config.parameters`` are user data and
are passed through untouched (a parameter whose value is ``false`` or ``""`` stays).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from apps.core.choices import TriggerType
from apps.core.text import without_surrogates


def message(**fields: Any) -> dict[str, Any]:
    """A proto message: every field whose value is unset (proto3 default) is dropped."""
    return {key: value for key, value in fields.items() if not _is_unset(value)}


def _is_unset(value: Any) -> bool:
    if value is None or value is False:
        return True
    return isinstance(value, str | list | tuple | dict) and len(value) == 0


def timestamp(value: datetime | str | None) -> str | None:
    """RFC3339 in UTC with a Z, as protobuf's JSON mapping writes a Timestamp."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None  # not a time: leave the field unset rather than write garbage
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        micros = f"{value.microsecond:06d}"
        text += "." + (micros[:3] if micros.endswith("000") else micros)
    return text + "Z"


def int64(value: int | None) -> str | None:
    """proto3 JSON writes int64 as a decimal string."""
    return None if value is None else str(int(value))


def status(error: str | None, code: int | None = None) -> dict[str, Any] | None:
    """A google.rpc.Status for an error message, or nothing."""
    if not error:
        return None
    return message(code=code, message=str(error))


def json_safe(value: Any) -> Any:
    """Non-finite floats become "NaN"/"Infinity"/"-Infinity" (protobuf's JSON for them);
    JSON has no literal for them, and a spec loaded from YAML may hold one. Lone
    surrogates in text (stored from a JSON "\\ud800" escape) become U+FFFD: UTF-8 has
    no encoding for them."""
    if isinstance(value, str):
        return without_surrogates(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {without_surrogates(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


# --- Namespaced objects ---------------------------------------------------------


def _namespace_name(obj: Any) -> str:
    namespace = getattr(obj, "namespace", None)
    return getattr(namespace, "name", "") or ""


def spec_document(pipeline_spec: Any, platform_spec: Any) -> Any:
    """The ``pipeline_spec`` field: the IR, or ``{pipeline_spec, platform_spec}`` when
    there is a platform spec (the form kfp.Client sends)."""
    if platform_spec:
        return {"pipeline_spec": pipeline_spec, "platform_spec": platform_spec}
    return pipeline_spec


def pipeline(obj: Any) -> dict[str, Any]:
    return message(
        pipeline_id=str(obj.pk),
        display_name=obj.display_name or obj.name,
        name=obj.name,
        description=obj.description,
        created_at=timestamp(obj.created_at),
        namespace=_namespace_name(obj),
    )


def pipeline_version(obj: Any, *, with_spec: bool = True) -> dict[str, Any]:
    return message(
        pipeline_id=str(obj.pipeline_id),
        pipeline_version_id=str(obj.pk),
        display_name=obj.display_name or obj.name,
        name=obj.name,
        description=obj.description,
        created_at=timestamp(obj.created_at),
        code_source_url=obj.code_source_url,
        pipeline_spec=spec_document(obj.pipeline_spec, obj.platform_spec) if with_spec else None,
    )


def experiment(obj: Any) -> dict[str, Any]:
    return message(
        experiment_id=str(obj.pk),
        display_name=obj.display_name,
        description=obj.description,
        created_at=timestamp(obj.created_at),
        namespace=_namespace_name(obj),
        storage_state=obj.storage_state,
        last_run_created_at=timestamp(obj.last_run_created_at),
        execution_backend=obj.execution_backend or None,
    )


def _state_history(entries: Iterable[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    out = []
    for entry in entries or []:
        if not isinstance(entry, Mapping):
            continue
        error = entry.get("error")
        if isinstance(error, Mapping):
            error = message(code=error.get("code"), message=error.get("message"))
        else:
            error = status(error)
        out.append(
            message(update_time=timestamp(entry.get("update_time")), state=entry.get("state"), error=error)
        )
    return out


def _version_reference(obj: Any) -> dict[str, Any] | None:
    version = getattr(obj, "pipeline_version", None) if getattr(obj, "pipeline_version_id", None) else None
    if version is not None:
        return message(pipeline_id=str(version.pipeline_id), pipeline_version_id=str(version.pk))
    pipeline_id = getattr(obj, "pipeline_id", None)
    if pipeline_id:
        return message(pipeline_id=str(pipeline_id))
    return None


def runtime_config(parameters: Mapping[str, Any] | None, pipeline_root: str) -> dict[str, Any] | None:
    return message(parameters=json_safe(dict(parameters or {})), pipeline_root=pipeline_root) or None


def run(
    obj: Any,
    *,
    tasks: Iterable[Any] | None = None,
    with_spec: bool = False,
    why: Mapping[Any, str] | None = None,
) -> dict[str, Any]:
    """A Run. ``tasks`` (the run's Task rows) fills ``run_details``; the inline spec is
    written only with ``with_spec`` (lists leave it out: it can be large)."""
    reference = _version_reference(obj)
    spec = None
    if reference is None and with_spec:
        spec = json_safe(spec_document(obj.pipeline_spec, obj.platform_spec))
    return message(
        experiment_id=str(obj.experiment_id),
        run_id=str(obj.pk),
        display_name=obj.display_name,
        storage_state=obj.storage_state,
        description=obj.description,
        pipeline_spec=spec,
        pipeline_version_reference=reference,
        runtime_config=runtime_config(obj.runtime_parameters, obj.pipeline_root),
        service_account=obj.service_account,
        created_at=timestamp(obj.created_at),
        scheduled_at=timestamp(obj.scheduled_at),
        finished_at=timestamp(obj.finished_at),
        state=obj.state,
        error=status(obj.error),
        run_details=run_details(obj, tasks, why) if tasks is not None else None,
        recurring_run_id=str(obj.recurring_run_id) if obj.recurring_run_id else None,
        state_history=_state_history(obj.state_history),
        executor=obj.executor,
        rerun_of_run_id=str(obj.rerun_of_id) if obj.rerun_of_id else None,
        rerun_of_task_key=obj.rerun_of_task_key or None,
    )


def _artifact_lists(io: Mapping[str, Any] | None) -> dict[str, Any]:
    artifacts = (io or {}).get("artifacts") or {}
    out: dict[str, Any] = {}
    for name, refs in artifacts.items():
        ids = [str(ref.get("id")) for ref in refs or [] if isinstance(ref, Mapping) and ref.get("id")]
        out[str(name)] = message(artifact_ids=ids) if ids else {}
    return out


def run_details(obj: Any, tasks: Iterable[Any], why: Mapping[Any, str] | None = None) -> dict[str, Any]:
    tasks = list(tasks)
    children: dict[Any, list[Any]] = {}
    for task in tasks:
        if task.parent_id:
            children.setdefault(task.parent_id, []).append(task.pk)
    why = why or {}
    return message(
        task_details=[task_detail(task, children.get(task.pk, ()), why.get(task.pk)) for task in tasks]
    )


def task_detail(task: Any, child_ids: Iterable[Any] = (), why: str | None = None) -> dict[str, Any]:
    error = task.error or (task.status_message if task.state == "FAILED" else "")
    return message(
        run_id=str(task.run_id),
        task_id=str(task.pk),
        display_name=task.display_name or task.name,
        create_time=timestamp(task.created_at),
        start_time=timestamp(task.started_at),
        end_time=timestamp(task.finished_at),
        state=task.state,
        error=status(error),
        inputs=_artifact_lists(task.inputs),
        outputs=_artifact_lists(task.outputs),
        parent_task_id=str(task.parent_id) if task.parent_id else None,
        state_history=_state_history(task.state_history),
        child_tasks=[{"task_id": str(child)} for child in child_ids],
        why=why or None,
    )


def recurring_run(obj: Any, *, with_spec: bool = True) -> dict[str, Any]:
    """A RecurringRun; lists leave out an inline spec (``with_spec=False``)."""
    schedule = message(
        start_time=timestamp(obj.start_time),
        end_time=timestamp(obj.end_time),
        cron=obj.cron if obj.trigger_type == TriggerType.CRON else None,
        interval_second=int64(obj.interval_second) if obj.trigger_type == TriggerType.PERIODIC else None,
    )
    trigger_key = "cron_schedule" if obj.trigger_type == TriggerType.CRON else "periodic_schedule"
    reference = _version_reference(obj)
    spec = None
    if reference is None and with_spec and obj.pipeline_spec:
        spec = json_safe(spec_document(obj.pipeline_spec, obj.platform_spec))
    return message(
        recurring_run_id=str(obj.pk),
        display_name=obj.display_name,
        description=obj.description,
        pipeline_spec=spec,
        pipeline_version_reference=reference,
        runtime_config=runtime_config(obj.runtime_parameters, obj.pipeline_root),
        service_account=obj.service_account,
        max_concurrency=int64(obj.max_concurrency),
        trigger={trigger_key: schedule},
        mode=obj.mode,
        created_at=timestamp(obj.created_at),
        updated_at=timestamp(obj.updated_at),
        status=obj.status,
        error=status(obj.error),
        no_catchup=bool(obj.no_catchup),
        namespace=_namespace_name(obj),
        experiment_id=str(obj.experiment_id) if obj.experiment_id else None,
    )


def list_response(items_key: str, items: list[dict[str, Any]], total: int, next_token: str) -> dict[str, Any]:
    """A List response. The items key and ``total_size`` are always written (an empty
    list is ``[]``, not absent); ``next_page_token`` is "" on the last page."""
    return {items_key: items, "total_size": total, "next_page_token": next_token}
