"""Read-side queries for artifacts, scoped to the user's namespaces, and safe reads
of their content from the artifact store."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from apps.artifacts.models import Artifact
from apps.core.exceptions import NotFound
from apps.core.models import Namespace
from apps.core.selectors import namespace_list_for_user
from apps.storage import ArtifactNotFound, ArtifactStore, Preview, StorageError, StoreConfig, get_store


def store_config() -> StoreConfig:
    """Artifact store settings from Django settings."""
    endpoint = settings.CANAL_S3_ENDPOINT_URL or None
    # Reads are confined per artifact (resolve(path, base=artifact.uri)), so the root is "/".
    return StoreConfig(root="/", s3_endpoint_url=endpoint, minio_endpoint_url=endpoint)


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


def artifact_store(artifact: Artifact) -> ArtifactStore:
    """The store holding an artifact."""
    try:
        return get_store(artifact.uri, store_config())
    except StorageError as exc:
        raise NotFound(f"artifact storage is unavailable: {exc}") from exc


def artifact_preview(*, artifact: Artifact, limit: int = 256 * 1024, path: str = "") -> Preview:
    """The first ``limit`` bytes of an artifact (or of ``path`` inside a directory
    artifact, confined to it: ``..``, absolute paths and escaping symlinks are refused)."""
    store = artifact_store(artifact)
    try:
        uri = store.resolve(path, base=artifact.uri) if path else artifact.uri
        return store.preview(uri, limit)
    except (ArtifactNotFound, FileNotFoundError):
        raise NotFound("the artifact's content is not in the store") from None
    except StorageError as exc:
        raise NotFound(str(exc)) from exc
