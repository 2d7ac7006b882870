"""Artifact store configuration from Django settings, for the pure storage package."""

from __future__ import annotations

from django.conf import settings

from apps.storage import StoreConfig


def store_config(*, confine_to_artifact_root: bool = False) -> StoreConfig:
    """The store settings. Workers write wherever a run's pipeline root says; web and API
    reads are confined to ``CANAL_PIPELINE_ROOT`` (``confine_to_artifact_root``), so a
    URI an importer or a user supplied can never make Canal serve another local file."""
    endpoint = settings.CANAL_S3_ENDPOINT_URL or None
    return StoreConfig(
        root=str(settings.CANAL_PIPELINE_ROOT) if confine_to_artifact_root else None,
        s3_endpoint_url=endpoint,
        minio_endpoint_url=endpoint,
    )
