"""Read-side queries for artifacts, scoped to the user's namespaces, and safe reads
of their content from the artifact store.

Every read of content goes through ``artifact_confined_uri``: the artifact's URI must
lie in storage its namespace owns (its runs' directories, or an allowed import prefix:
``apps.runs.selectors.storage_owned_prefix``), and a ``path=`` inside a directory
artifact must stay inside the artifact. Anything else is NotFound (a 404)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from django.core.cache import cache
from django.db.models import F, FloatField, OuterRef, Q, QuerySet, Subquery
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from apps.artifacts.filters import ArtifactFilterSet
from apps.artifacts.models import Artifact
from apps.artifacts.visualizations import metric_scalars, metric_values_of
from apps.core.exceptions import NotFound
from apps.core.models import Namespace
from apps.core.selectors import namespace_list_for_user
from apps.core.storage import store_config
from apps.runs.models import Run, Task
from apps.runs.selectors import storage_owned_prefix
from apps.storage import (
    ArtifactNotFound,
    ArtifactStore,
    LocationError,
    Preview,
    StorageError,
    UnsafePathError,
    confine_path,
    get_store,
    parse_location,
)


def artifact_list(*, user: Any, namespace: Namespace | None = None) -> QuerySet[Artifact]:
    """Artifacts the user may see, with their producer run and task joined in."""
    qs = Artifact.objects.filter(run__namespace__in=namespace_list_for_user(user=user))
    if namespace is not None:
        qs = qs.filter(run__namespace=namespace)
    return qs.select_related("run", "producer_task")


def artifact_get(*, user: Any, artifact_id: Any) -> Artifact:
    """One artifact the user may see, or NotFound."""
    try:
        pk = int(str(artifact_id))
    except ValueError:
        raise NotFound(f"artifact {artifact_id} not found") from None
    artifact = artifact_list(user=user).filter(pk=pk).first()
    if artifact is None:
        raise NotFound(f"artifact {artifact_id} not found")
    return artifact


def artifact_preview(*, artifact: Artifact, limit: int = 256 * 1024, path: str = "") -> Preview:
    """The first ``limit`` bytes of an artifact (or of ``path`` inside a directory
    artifact), confined like every read (see ``artifact_confined_uri``)."""
    store, uri = artifact_confined_uri(artifact=artifact, path=path)
    try:
        return store.preview(uri, limit)
    except (ArtifactNotFound, FileNotFoundError):
        raise NotFound("the artifact's content is not in the store") from None
    except StorageError as exc:
        raise NotFound(str(exc)) from exc


# --- Web UI reads: confined content, per-task and per-run artifacts, run metrics ----------


def artifact_confined_uri(*, artifact: Artifact, path: str = "") -> tuple[ArtifactStore, str]:
    """The store and URI of an artifact (or of ``path`` inside a directory artifact),
    refused with NotFound unless the artifact lies in storage its run's namespace owns.
    ``path`` may not use ``..``, absolute paths, encoded separators, fragments or
    symlinks that leave the artifact."""
    run = artifact.run
    return _confined(uri=artifact.uri, namespace_id=run.namespace_id, known_runs=[run], path=path)


def _confined(
    *, uri: str, namespace_id: Any, known_runs: list[Run], path: str = ""
) -> tuple[ArtifactStore, str]:
    if storage_owned_prefix(uri=uri, namespace_id=namespace_id, known_runs=known_runs) is None:
        raise NotFound("the artifact is not in its namespace's storage; Canal does not serve it")
    try:
        # The normalised location is what is served (for a local file: its real path,
        # which ownership was checked on), never the raw text of the URI.
        location = parse_location(uri)
        if path:
            location = confine_path(location, path)
    except (UnsafePathError, LocationError):
        raise NotFound("no such file in this artifact") from None
    try:
        store = get_store(location.uri, store_config())
    except StorageError as exc:
        raise NotFound(f"artifact storage is unavailable: {exc}") from exc
    return store, location.uri


def artifact_read(*, artifact: Artifact, limit: int, path: str = "") -> tuple[bytes, bool, int]:
    """The first ``limit`` bytes of a (confined) artifact file: data, truncated, size."""
    store, uri = artifact_confined_uri(artifact=artifact, path=path)
    return _read(store, uri, limit)


def _read(store: ArtifactStore, uri: str, limit: int) -> tuple[bytes, bool, int]:
    try:
        preview = store.preview(uri, limit)
    except (ArtifactNotFound, FileNotFoundError, IsADirectoryError):
        raise NotFound("the artifact's content is not in the store (or it is a directory)") from None
    except StorageError as exc:
        raise NotFound(str(exc)) from exc
    except Exception as exc:  # an unreachable object store must not break the page showing it
        raise _unavailable(exc) from exc
    return preview.data, preview.truncated, preview.size


def artifact_open(*, artifact: Artifact, path: str = "") -> tuple[Any, int, str]:
    """A binary stream of a (confined) artifact file, its size and a download file name."""

    store, uri = artifact_confined_uri(artifact=artifact, path=path)
    try:
        stat = store.stat(uri)
        if stat.is_dir:
            raise NotFound("this artifact is a directory: download its files one by one")
        handle = store.open(uri)
    except (ArtifactNotFound, FileNotFoundError):
        raise NotFound("the artifact's content is not in the store") from None
    except StorageError as exc:
        raise NotFound(str(exc)) from exc
    except NotFound:
        raise
    except Exception as exc:
        raise _unavailable(exc) from exc
    name = PurePosixPath(path or uri.rstrip("/")).name or artifact.name or "artifact"
    return handle, stat.size, name


def artifact_entries(*, artifact: Artifact, limit: int = 500) -> tuple[bool, list[Any]]:
    """(is_dir, files) of a confined artifact; files are ArtifactEntry, at most ``limit``."""
    store, uri = artifact_confined_uri(artifact=artifact)
    try:
        stat = store.stat(uri)
        if not stat.is_dir:
            return False, []
        return True, store.list_files(uri)[:limit]
    except (ArtifactNotFound, FileNotFoundError):
        raise NotFound("the artifact's content is not in the store") from None
    except StorageError as exc:
        raise NotFound(str(exc)) from exc
    except Exception as exc:
        raise _unavailable(exc) from exc


def _unavailable(exc: Exception) -> NotFound:
    """A store failure outside StorageError (e.g. an S3 endpoint that is down), logged."""

    logging.getLogger(__name__).warning("artifact store read failed: %r", exc)
    return NotFound(f"the artifact store could not be read ({type(exc).__name__})")


def artifact_filter(
    *, user: Any, namespace: Namespace | None, params: Any, request: Any = None
) -> ArtifactFilterSet:
    """The artifacts list page's rows: artifact_list filtered and sorted by the request
    parameters ``params`` (``type``, ``q``, ``sort``); ``.qs`` is the queryset."""
    return ArtifactFilterSet(params, artifact_list(user=user, namespace=namespace), request=request)


def artifact_list_for_task(*, task: Any) -> QuerySet[Artifact]:
    """The artifacts a task produced, by output name; for a cache hit, which produces
    nothing, the artifacts it reused (those its recorded outputs name), so its panel
    draws them as KFP's does. Only artifacts of the task's own namespace are returned."""
    if task.cached_from_id:
        ids = _artifact_ids(task.outputs)
        return Artifact.objects.filter(pk__in=ids, run__namespace_id=task.run.namespace_id).order_by(
            "name", "pk"
        )
    return Artifact.objects.filter(producer_task=task).order_by("name", "pk")


def artifact_list_for_runs(*, run_ids: list[Any]) -> QuerySet[Artifact]:
    """Artifacts of several runs (run compare), with their producer task joined in."""
    return Artifact.objects.filter(run_id__in=run_ids).select_related("producer_task").order_by("pk")


def artifact_schema_titles(*, user: Any, namespace: Namespace | None = None) -> list[str]:
    """The distinct artifact types present (the artifacts page's type filter)."""
    qs = artifact_list(user=user, namespace=namespace).order_by().values_list("schema_title", flat=True)
    return sorted(set(qs.distinct()))


METRICS_FILE_NAMES = ("mlpipeline-metrics", "mlpipeline_metrics")


def run_metric_values(*, run_ids: list[Any]) -> dict[Any, dict[str, Any]]:
    """Scalar metrics per run, in one query: ``system.Metrics`` (and Classification
    metrics') scalar metadata, and KFP v1 ``mlpipeline-metrics`` files (read, bounded)."""
    return run_metric_table(run_ids=run_ids)[0]


def run_metric_table(*, run_ids: list[Any]) -> tuple[dict[Any, dict[str, Any]], frozenset[str]]:
    """``run_metric_values`` and, in the same query, the names among them that the
    database can sort runs by (``runs_order_by_metric``): those in ``system.Metrics``
    metadata. Metrics read from v1 files are not in the database, so not sortable."""

    if not run_ids:
        return {}, frozenset()
    rows = list(
        Artifact.objects.filter(run_id__in=run_ids)
        .filter(Q(schema_title="system.Metrics") | Q(name__in=METRICS_FILE_NAMES))
        .order_by("created_at", "pk")
        .values(
            "id",
            "run_id",
            "run__namespace_id",
            "run__pipeline_root",
            "run__pipeline_name",
            "name",
            "schema_title",
            "metadata",
            "uri",
        )
    )
    grouped: dict[Any, list[Mapping[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["run_id"], []).append(row)

    def read_file(row: Any) -> str | None:
        # An artifact's content never changes once recorded: read each file once.

        key = f"canal:v1-metrics:{row['id']}"
        text = cache.get(key)
        if text is None:
            try:
                # The artifact's run, as far as ownership needs it (no query per file).
                run = Run(
                    pk=row["run_id"],
                    namespace_id=row["run__namespace_id"],
                    pipeline_root=row["run__pipeline_root"],
                    pipeline_name=row["run__pipeline_name"],
                )
                store, uri = _confined(uri=row["uri"], namespace_id=run.namespace_id, known_runs=[run])
                data, _, _ = _read(store, uri, 256 * 1024)
                text = data.decode("utf-8", errors="replace")
            except NotFound:
                text = ""
            cache.set(key, text, timeout=3600)
        return text or None

    sortable = frozenset(
        key
        for row in rows
        if row["schema_title"] == "system.Metrics" and row["name"] not in METRICS_FILE_NAMES
        for key, value in metric_scalars(row["metadata"])
        if isinstance(value, int | float) and not isinstance(value, bool)
    )
    return {run_id: metric_values_of(items, read_file) for run_id, items in grouped.items()}, sortable


#: The longest metric name a sort accepts (Artifact.name's length; no key is longer).
MAX_METRIC_NAME = 255


def runs_order_by_metric(qs: QuerySet[Run], *, name: str, descending: bool) -> QuerySet[Run]:
    """Runs ordered by one scalar metric of their newest ``system.Metrics`` artifact that
    has it (the value the runs table shows), in SQL: a correlated subquery, so one query
    for the page whatever its size. Runs without the metric come last either way."""

    value = (
        Artifact.objects.filter(run_id=OuterRef("pk"), schema_title="system.Metrics", metadata__has_key=name)
        .exclude(name__in=METRICS_FILE_NAMES)
        .order_by("-created_at", "-pk")
        .annotate(metric_value=Cast(KeyTextTransform(name, "metadata"), FloatField()))
        .values("metric_value")[:1]
    )
    key = F("metric_sort_value")
    order = key.desc(nulls_last=True) if descending else key.asc(nulls_last=True)
    return qs.annotate(metric_sort_value=Subquery(value, output_field=FloatField())).order_by(order, "-pk")


# --- Lineage: where an artifact came from and where it went, one hop beyond ----------------

#: Task kinds that produce and consume artifacts as steps (groups only pass them through).
LINEAGE_STEP_KINDS = ("CONTAINER", "IMPORTER")
#: At most this many runs are searched for consumers: the artifact's own run and the newest
#: runs whose steps reused its producer's outputs through the cache.
LINEAGE_MAX_RUNS = 20
#: At most this many nodes per column of the lineage.
LINEAGE_MAX_PER_COLUMN = 25

LINEAGE_TASK_FIELDS = (
    "id",
    "run_id",
    "key",
    "name",
    "display_name",
    "component_name",
    "kind",
    "state",
    "inputs",
    "outputs",
    "cached_from_id",
)


def _artifact_ids(io: Any) -> list[str]:
    """The artifact ids a task's stored inputs or outputs refer to, in order."""
    ids: list[str] = []
    artifacts = (io or {}).get("artifacts") if isinstance(io, dict) else None
    if not isinstance(artifacts, dict):
        return ids
    for refs in artifacts.values():
        for ref in refs if isinstance(refs, list) else []:
            value = str(ref.get("id", "")) if isinstance(ref, dict) else ""
            if value.isdigit() and value not in ids:
                ids.append(value)
    return ids


def artifact_lineage(*, artifact: Artifact) -> dict[str, Any]:
    """The artifact's producer and that task's input artifacts (with their producers); the
    steps that consumed it and their output artifacts (with their consumers).

    Four queries whatever the size: the runs that reused the producer through the cache,
    the steps of those runs and the artifact's own (whose stored inputs name the artifacts
    they consumed), the referenced artifacts (with their producers), and nothing else.
    Consumers are found in the artifact's run and in the newest ``LINEAGE_MAX_RUNS`` runs
    whose steps were cache hits of its producer (they consume the same artifact)."""

    producer = artifact.producer_task
    run_ids = [artifact.run_id]
    if producer is not None:
        hits = (
            Task.objects.filter(cached_from_id=producer.pk)
            .order_by("-created_at")
            .values_list("run_id", flat=True)[: LINEAGE_MAX_RUNS * 4]
        )
        for run_id in hits:
            if run_id not in run_ids and len(run_ids) < LINEAGE_MAX_RUNS:
                run_ids.append(run_id)
    steps = list(
        Task.objects.filter(
            run_id__in=run_ids, run__namespace_id=artifact.run.namespace_id, kind__in=LINEAGE_STEP_KINDS
        )
        .order_by("created_at", "key")
        .only(*LINEAGE_TASK_FIELDS)
    )
    consumed_by: dict[str, list[Any]] = {}
    for step in steps:
        for artifact_id in _artifact_ids(step.inputs):
            consumed_by.setdefault(artifact_id, []).append(step)
    own = str(artifact.pk)
    consumers = consumed_by.get(own, [])[:LINEAGE_MAX_PER_COLUMN]
    input_ids = _artifact_ids(producer.inputs)[:LINEAGE_MAX_PER_COLUMN] if producer else []
    output_ids: list[str] = []
    outputs_of: dict[Any, list[str]] = {}
    for consumer in consumers:
        outputs_of[consumer.pk] = _artifact_ids(consumer.outputs)
        for artifact_id in outputs_of[consumer.pk]:
            if artifact_id not in output_ids and artifact_id != own:
                output_ids.append(artifact_id)
    output_ids = output_ids[:LINEAGE_MAX_PER_COLUMN]
    wanted = [int(i) for i in {*input_ids, *output_ids}]
    rows = (
        Artifact.objects.filter(pk__in=wanted, run__namespace_id=artifact.run.namespace_id)
        .select_related("producer_task")
        .defer("producer_task__launch", "producer_task__inputs", "producer_task__outputs")
        if wanted
        else Artifact.objects.none()
    )
    by_id = {str(row.pk): row for row in rows}
    inputs = [by_id[i] for i in input_ids if i in by_id]
    outputs = [by_id[i] for i in output_ids if i in by_id]
    return {
        "artifact": artifact,
        "producer": producer,
        "inputs": [{"artifact": a, "producer": a.producer_task} for a in inputs],
        "consumers": [
            {"task": c, "outputs": [by_id[i] for i in outputs_of[c.pk] if i in by_id and i != own]}
            for c in consumers
        ],
        "outputs": [
            {"artifact": a, "consumers": consumed_by.get(str(a.pk), [])[:LINEAGE_MAX_PER_COLUMN]}
            for a in outputs
        ],
    }
