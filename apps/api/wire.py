"""Canal objects as the KFP v2beta1 messages ``apps.api.schema`` renders.

Each function gives a message's fields as Python values (times as datetimes, int64s
as ints); the serializer writes them as KFP's gateway does: proto field names, unset
fields left out (proto3: an empty string, list or map, false or a missing message is
not written), enums by name, int64 as strings, times as RFC3339 in UTC.

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


def is_unset(value: Any) -> bool:
    """A proto3 default, which JSON leaves out."""
    return value is None or value is False or (isinstance(value, str | list | tuple | dict) and not value)


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


def _status(error: Any) -> dict[str, Any] | None:
    """A google.rpc.Status for an error message (or a recorded ``{code, message}``)."""
    if isinstance(error, Mapping):
        return {"code": error.get("code"), "message": error.get("message")}
    return {"message": str(error)} if error else None


def _namespace_name(obj: Any) -> str:
    return getattr(getattr(obj, "namespace", None), "name", "") or ""


def spec_document(pipeline_spec: Any, platform_spec: Any) -> Any:
    """The ``pipeline_spec`` field: the IR, or ``{pipeline_spec, platform_spec}`` when
    there is a platform spec (the form kfp.Client sends)."""
    if platform_spec:
        return {"pipeline_spec": pipeline_spec, "platform_spec": platform_spec}
    return pipeline_spec


def pipeline(obj: Any) -> dict[str, Any]:
    return {
        "pipeline_id": str(obj.pk),
        "display_name": obj.display_name or obj.name,
        "name": obj.name,
        "description": obj.description,
        "created_at": obj.created_at,
        "namespace": _namespace_name(obj),
    }


def pipeline_version(obj: Any, *, with_spec: bool = True) -> dict[str, Any]:
    return {
        "pipeline_id": str(obj.pipeline_id),
        "pipeline_version_id": str(obj.pk),
        "display_name": obj.display_name or obj.name,
        "name": obj.name,
        "description": obj.description,
        "created_at": obj.created_at,
        "code_source_url": obj.code_source_url,
        "pipeline_spec": spec_document(obj.pipeline_spec, obj.platform_spec) if with_spec else None,
    }


def experiment(obj: Any) -> dict[str, Any]:
    return {
        "experiment_id": str(obj.pk),
        "display_name": obj.display_name,
        "description": obj.description,
        "created_at": obj.created_at,
        "namespace": _namespace_name(obj),
        "storage_state": obj.storage_state,
        "last_run_created_at": obj.last_run_created_at,
        "execution_backend": obj.execution_backend,
    }


def _state_history(entries: Iterable[Any] | None) -> list[dict[str, Any]]:
    return [
        {
            "update_time": entry.get("update_time"),
            "state": entry.get("state"),
            "error": _status(entry.get("error")),
        }
        for entry in entries or []
        if isinstance(entry, Mapping)
    ]


def _version_reference(obj: Any) -> dict[str, Any] | None:
    version = getattr(obj, "pipeline_version", None) if getattr(obj, "pipeline_version_id", None) else None
    if version is not None:
        return {"pipeline_id": str(version.pipeline_id), "pipeline_version_id": str(version.pk)}
    pipeline_id = getattr(obj, "pipeline_id", None)
    return {"pipeline_id": str(pipeline_id)} if pipeline_id else None


def _common(obj: Any, with_spec: bool) -> dict[str, Any]:
    """The fields a Run and a RecurringRun share; the inline spec only ``with_spec``
    (lists leave it out: it can be large)."""
    reference = _version_reference(obj)
    with_spec = with_spec and reference is None and bool(obj.pipeline_spec)
    return {
        "display_name": obj.display_name,
        "description": obj.description,
        "pipeline_spec": spec_document(obj.pipeline_spec, obj.platform_spec) if with_spec else None,
        "pipeline_version_reference": reference,
        "runtime_config": {"parameters": obj.runtime_parameters, "pipeline_root": obj.pipeline_root},
        "service_account": obj.service_account,
        "created_at": obj.created_at,
        "error": _status(obj.error),
    }


def run(
    obj: Any, *, tasks: Iterable[Any] | None = None, with_spec: bool = False, why: Any = None
) -> dict[str, Any]:
    """A Run. ``tasks`` (the run's Task rows) fills ``run_details``."""
    return {
        **_common(obj, with_spec),
        "experiment_id": str(obj.experiment_id),
        "run_id": str(obj.pk),
        "storage_state": obj.storage_state,
        "scheduled_at": obj.scheduled_at,
        "finished_at": obj.finished_at,
        "state": obj.state,
        "run_details": run_details(tasks, why or {}) if tasks is not None else None,
        "recurring_run_id": str(obj.recurring_run_id) if obj.recurring_run_id else None,
        "state_history": _state_history(obj.state_history),
        "executor": obj.executor,
        "rerun_of_run_id": str(obj.rerun_of_id) if obj.rerun_of_id else None,
        "rerun_of_task_key": obj.rerun_of_task_key,
    }


def _artifact_lists(io: Mapping[str, Any] | None) -> dict[str, Any]:
    artifacts = (io or {}).get("artifacts") or {}
    return {
        str(name): {
            "artifact_ids": [
                str(ref["id"]) for ref in refs or [] if isinstance(ref, Mapping) and ref.get("id")
            ]
        }
        for name, refs in artifacts.items()
    }


def run_details(tasks: Iterable[Any], why: Mapping[Any, str]) -> dict[str, Any]:
    tasks = list(tasks)
    children: dict[Any, list[Any]] = {}
    for task in tasks:
        if task.parent_id:
            children.setdefault(task.parent_id, []).append(task.pk)
    return {
        "task_details": [task_detail(task, children.get(task.pk, ()), why.get(task.pk)) for task in tasks]
    }


def task_detail(task: Any, child_ids: Iterable[Any] = (), why: str | None = None) -> dict[str, Any]:
    return {
        "run_id": str(task.run_id),
        "task_id": str(task.pk),
        "display_name": task.display_name or task.name,
        "create_time": task.created_at,
        "start_time": task.started_at,
        "end_time": task.finished_at,
        "state": task.state,
        "error": _status(task.error or (task.status_message if task.state == "FAILED" else "")),
        "inputs": _artifact_lists(task.inputs),
        "outputs": _artifact_lists(task.outputs),
        "parent_task_id": str(task.parent_id) if task.parent_id else None,
        "state_history": _state_history(task.state_history),
        "child_tasks": [{"task_id": str(child)} for child in child_ids],
        "why": why,
    }


def recurring_run(obj: Any, *, with_spec: bool = True) -> dict[str, Any]:
    """A RecurringRun; lists leave out an inline spec (``with_spec=False``)."""
    cron = obj.trigger_type == TriggerType.CRON
    schedule = {
        "start_time": obj.start_time,
        "end_time": obj.end_time,
        **({"cron": obj.cron} if cron else {"interval_second": obj.interval_second}),
    }
    return {
        **_common(obj, with_spec),
        "recurring_run_id": str(obj.pk),
        "max_concurrency": obj.max_concurrency,
        "trigger": {"cron_schedule" if cron else "periodic_schedule": schedule},
        "mode": obj.mode,
        "updated_at": obj.updated_at,
        "status": obj.status,
        "no_catchup": bool(obj.no_catchup),
        "namespace": _namespace_name(obj),
        "experiment_id": str(obj.experiment_id) if obj.experiment_id else None,
    }
